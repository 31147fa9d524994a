"""MinAtar as a task suite (`minatar_<game>`, harmony_v3.envs.minatar).

The env against `minatar.Environment` in lock-step (same seed: same frames,
rewards and episode ends), seeding, the time limit, the two observation
forms, clear errors, the random-return data, and one smoke run of
`python -m harmony_v3.train --configs tiny minatar`.
"""
import json

import numpy as np
import pytest
from conftest import train_smoke

from harmony_v3.envs import minatar as ours
from harmony_v3.config import load_config
from harmony_v3.envs import check_task, make_batch_env, make_env

minatar = pytest.importorskip('minatar')

GAMES = ('asterix', 'breakout', 'freeway', 'seaquest', 'space_invaders')


def _reset():
  return {'action': 0, 'reset': True}


@pytest.mark.parametrize('game', GAMES)
@pytest.mark.parametrize('obs', ['grid', 'image'])
def test_lock_step_with_minatar(game, obs):
  """The env and MinAtar's own Environment, seeded alike and given the same
  minimal-set actions, show the same frames, rewards and episode ends."""
  seed, steps = 7, 3000
  env = ours.MinAtar(game, obs=obs, seed=seed)
  ref = minatar.Environment(game, sticky_action_prob=0.1,
                            difficulty_ramping=True)
  ref.seed(seed)
  actions = ref.minimal_action_set()
  assert env.action_set == actions and env.num_actions == len(actions)
  rng = np.random.default_rng(0)
  obs_ = env.step(_reset())
  ref.reset()
  episodes = 0
  for _ in range(steps):
    assert obs_['is_first'] == (env.steps == 0)
    np.testing.assert_array_equal(
        ours.unpack(obs_, env.channels), ref.state())
    if obs_['is_last']:
      episodes += 1
      obs_ = env.step(_reset())
      ref.reset()
      assert obs_['is_first'] and obs_['reward'] == 0
      continue
    index = int(rng.integers(len(actions)))
    obs_ = env.step({'action': index, 'reset': False})
    reward, terminal = ref.act(actions[index])
    assert obs_['reward'] == reward
    assert obs_['is_last'] == obs_['is_terminal'] == bool(terminal)
  assert episodes >= 1  # Episode ends were compared, and resets after them.


def test_observation_forms():
  grid = ours.MinAtar('seaquest', obs='grid', seed=0)
  image = ours.MinAtar('seaquest', obs='image', seed=0)
  a, b = grid.step(_reset()), image.step(_reset())
  assert set(grid.obs_space) == {'grid', 'reward', 'is_first', 'is_last',
                                 'is_terminal'}
  assert a['grid'].shape == grid.obs_space['grid'].shape == (1000,)
  assert a['grid'].dtype == np.uint8 and set(np.unique(a['grid'])) <= {0, 1}
  assert b['image'].shape == image.obs_space['image'].shape == (16, 16, 10)
  assert set(np.unique(b['image'])) == {0, 255}
  assert not b['image'][10:].any() and not b['image'][:, 10:].any()
  np.testing.assert_array_equal(ours.unpack(a, 10), ours.unpack(b, 10))
  np.testing.assert_array_equal(a['grid'], grid.frame().reshape(-1))
  assert 'grid' in grid.obs_space and image.obs_key == 'image'
  assert ours.MinAtar('breakout', obs='image', size=32).obs_space[
      'image'].shape == (32, 32, 4)


def _rollout(env, steps, seed=0):
  rng = np.random.default_rng(seed)
  frames, rewards, ends = [], [], []
  obs = env.step(_reset())
  for _ in range(steps):
    frames.append(ours.unpack(obs, env.channels))
    rewards.append(obs['reward'])
    ends.append(obs['is_last'])
    obs = env.step({'action': int(rng.integers(env.num_actions)),
                    'reset': False})
  return np.stack(frames), np.array(rewards), np.array(ends)


def test_same_seed_same_episodes_other_seed_others():
  a = _rollout(ours.MinAtar('space_invaders', seed=3), 400)
  b = _rollout(ours.MinAtar('space_invaders', seed=3), 400)
  c = _rollout(ours.MinAtar('space_invaders', seed=4), 400)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a[0], c[0])


def test_batch_envs_are_seeded_seed_plus_index():
  config = load_config(['tiny', 'minatar'], ['--task', 'minatar_asterix'])
  batch = make_batch_env(config, 2, seed=10)
  try:
    obs = batch.step({'action': np.zeros((2, 5), np.float32),
                      'reset': np.ones(2, bool)})
    for _ in range(30):
      obs = batch.step({'action': np.eye(5, dtype=np.float32)[[1, 3]],
                        'reset': obs['is_last']})
  finally:
    batch.close()
  single = make_env(config, seed=11)
  one = single.step({'action': np.zeros(5, np.float32), 'reset': True})
  for _ in range(30):
    one = single.step({'action': np.eye(5, dtype=np.float32)[3],
                       'reset': one['is_last']})
  np.testing.assert_array_equal(obs['grid'][1], one['grid'])
  assert not np.array_equal(obs['grid'][0], obs['grid'][1])


def test_time_limit_is_last_not_terminal():
  env = ours.MinAtar('freeway', max_steps=50, seed=0)  # Freeway: 2,501 steps.
  obs = env.step(_reset())
  for i in range(50):
    assert not obs['is_last']
    obs = env.step({'action': 0, 'reset': False})
  assert obs['is_last'] and not obs['is_terminal'] and env.steps == 50
  assert env.step({'action': 0, 'reset': False})['is_first']
  # MinAtar's own end of Freeway (2,500 frames) is kept, as a terminal.
  env = ours.MinAtar('freeway', seed=0)
  obs = env.step(_reset())
  while not obs['is_last']:
    obs = env.step({'action': 1, 'reset': False})
  assert obs['is_terminal'] and env.steps == 2501


def test_unknown_game_lists_the_five():
  config = load_config(['tiny', 'minatar'], ['--task', 'minatar_pong'])
  with pytest.raises(ValueError) as error:
    check_task(config)
  message = str(error.value)
  assert "Unknown MinAtar game 'pong'" in message
  assert 'asterix, breakout, freeway, seaquest, space_invaders' in message
  with pytest.raises(ValueError, match='space_invaders'):
    ours.MinAtar('spaceinvaders')


def test_cli_unknown_game_and_bad_options(capsys):
  from harmony_v3 import train
  assert train.main(['--task', 'minatar_pacman', '--configs', 'tiny',
                     'minatar']) == 2
  err = capsys.readouterr().err
  assert 'asterix, breakout, freeway, seaquest, space_invaders' in err
  # The frame is a vector that `tiny`'s encoder (CNN keys only) does not read.
  assert train.main(['--task', 'minatar_breakout', '--configs', 'tiny']) == 2
  assert "encoder.mlp_keys ('$^') does not select it" in capsys.readouterr(
      ).err
  assert train.main(['--task', 'minatar_breakout', '--configs', 'tiny',
                     'minatar', '--env.minatar.obs', 'pixels',
                     '--env.minatar.sticky', '2']) == 2
  err = capsys.readouterr().err
  assert 'env.minatar.obs must be one of' in err
  assert 'env.minatar.sticky must be in [0, 1]' in err


def test_minatar_tasks_are_listed_for_unknown_suites():
  config = load_config(['tiny'], ['--task', 'minatr_breakout'])
  with pytest.raises(ValueError, match=r'minatar_<game> for the five'):
    check_task(config)


def test_preset_is_as_documented():
  c = load_config(['tiny', 'minatar'])
  assert c.task == 'minatar_breakout' and c.jax.platform == 'cpu'
  m = c.env.minatar
  assert (m.sticky, m.ramping, m.max_steps, m.obs) == (0.1, True, 10000,
                                                       'grid')
  assert c.encoder.mlp_layers == c.decoder.mlp_layers == 2
  assert c.encoder.mlp_units == c.decoder.mlp_units == 256
  assert c.decoder.vector_dist == 'binary'
  assert (c.rssm.deter, c.batch_size, c.batch_length) == (64, 4, 16)
  assert c.envs.amount == 4 and c.run.train_ratio == 32
  assert c.run.steps == 20000 and c.run.eval_every == 10000
  assert (c.run.eval_eps, c.run.eval_envs) == (50, 25)
  assert (c.model_opt.lr, c.actor_opt.lr, c.critic_opt.lr) == (
      1e-3, 3e-4, 3e-4)
  assert c.harmony.enabled


def test_preset_selects_the_frame_in_either_form():
  for obs in ('grid', 'image'):
    config = load_config(['tiny', 'minatar'], [
        '--task', 'minatar_breakout', '--env.minatar.obs', obs])
    assert check_task(config) == 'minatar'


def test_random_returns_are_data_and_reproducible():
  text = ours.random_returns_text()
  assert '# Made by: python -m harmony_v3.' in text
  means = ours.read_random_returns()
  assert sorted(means) == sorted(GAMES)
  lines = [l for l in text.splitlines() if l and not l.startswith('#')]
  import csv
  rows = list(csv.DictReader(lines))
  assert all(int(r['episodes']) >= 100 for r in rows)
  # Breakout's episodes are short: measure its row again, exactly.
  row = next(r for r in rows if r['game'] == 'breakout')
  seed = int(text.split('seed ')[1].split(' ')[0])
  returns, _ = ours.random_returns('breakout', int(row['episodes']), seed)
  assert f'{np.mean(returns):.4f}' == row['mean']


def test_smoke_run(tmp_path):
  """A few hundred steps of the user's command, through training, an
  evaluation and the end of the run (Harmony DreamerV3, the default)."""
  logdir = tmp_path / 'run'
  out = train_smoke(
      logdir, 'minatar_breakout', ['tiny', 'minatar'],
      '--run.steps', '300', '--run.eval_every', '300', '--run.eval_eps', '4',
      '--run.eval_envs', '4', '--run.train_ratio', '16')
  assert "Encoder MLP shapes: {'grid': (400,)}" in out
  evals = [json.loads(l) for l in
           (logdir / 'eval.jsonl').read_text().splitlines()]
  assert [e['step'] for e in evals] == [300]
  assert evals[0]['frames'] == 300 and evals[0]['episodes'] == 4
  summary = json.loads((logdir / 'done.json').read_text())
  assert summary['steps'] == 300 and summary['harmony'] is True
  metrics = [json.loads(l) for l in
             (logdir / 'metrics.jsonl').read_text().splitlines()]
  assert any('train/harmony_weight_obs' in m for m in metrics)
