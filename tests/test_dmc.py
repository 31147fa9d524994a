"""DeepMind Control as a task suite (`dmc_<domain>_<task>`,
harmony_v3.envs.dmc).

The env against `dm_control.suite.load` in lock-step (same seed and
actions: same rewards, episode ends, observations and images), the action
repeat, names and cameras, seeding, clear errors, the presets, and one
smoke run of `python -m harmony_v3.train --configs tiny dmc_proprio
dmc_tiny`. Skipped without the `dmc` extra (`make install-dmc`).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import train_smoke

pytest.importorskip('dm_control')
pytest.importorskip('mujoco')

from harmony_v3.config import load_config  # noqa: E402
from harmony_v3.envs import (action_repeat, check_task, make_batch_env,  # noqa: E402
                             make_env)
from harmony_v3.envs import dmc as ours  # noqa: E402

CPU = ['tiny', 'dmc_proprio', 'dmc_tiny']


def _reset(dims):
  return {'action': np.zeros(dims, np.float32), 'reset': True}


def _reference(domain, task, seed):
  from dm_control import suite
  return suite.load(domain, task, task_kwargs={'random': seed})


@pytest.mark.parametrize('task,repeat', [
    ('dmc_cartpole_balance', 1), ('dmc_walker_walk', 2),
    ('dmc_cup_catch', 2)])
def test_lock_step_with_dm_control(task, repeat):
  """A whole episode and the next one's start: the env and the suite's own
  env, seeded alike and given the same actions (each repeated `repeat`
  times on the reference), show the same observations, rewards and ends."""
  seed = 3
  env = ours.DMC(task, repeat=repeat, render=False, seed=seed)
  ref = _reference(env.domain, env.task, seed)
  dims = env.act_space['action'].shape
  rng = np.random.default_rng(0)
  obs = env.step(_reset(dims))
  step = ref.reset()
  for episode in range(2):
    steps = 0
    while True:
      assert set(obs) == set(step.observation) | {
          'reward', 'is_first', 'is_last', 'is_terminal'}
      for key, value in step.observation.items():
        np.testing.assert_array_equal(
            obs[key], np.asarray(value, np.float32).reshape(-1))
      assert obs['is_first'] == step.first()
      assert obs['is_last'] == step.last()
      assert not obs['is_terminal']  # The suite's episodes end on time.
      if obs['is_last'] or (episode == 1 and steps == 10):
        break
      action = rng.uniform(-1, 1, dims).astype(np.float32)
      obs = env.step({'action': action, 'reset': False})
      reward = 0.0
      for _ in range(repeat):
        step = ref.step(action)
        reward += step.reward
      assert obs['reward'] == np.float32(reward)
      steps += 1
    if episode == 0:
      # 1,000 control steps an episode: 1,000 / repeat agent steps.
      assert steps == 1000 // repeat
      obs = env.step({'action': action, 'reset': False})  # Starts anew.
      step = ref.reset()


def test_images_match_the_suite_camera_and_repeat():
  """Rendering is deterministic: the env's image is the reference
  physics' render from DreamerV3's camera, step for step."""
  env = ours.DMC('dmc_walker_walk', seed=1)
  ref = _reference('walker', 'walk', 1)
  assert env.obs_space['image'].shape == (64, 64, 3)
  obs = env.step(_reset(6))
  ref.reset()
  rng = np.random.default_rng(1)
  for _ in range(4):
    expected = ref.physics.render(64, 64, camera_id=0)
    np.testing.assert_array_equal(obs['image'], expected)
    assert obs['image'].dtype == np.uint8 and obs['image'].std() > 0
    action = rng.uniform(-1, 1, 6).astype(np.float32)
    obs = env.step({'action': action, 'reset': False})
    ref.step(action)
    ref.step(action)
  assert ours.DMC('dmc_quadruped_walk', render=False).camera == 2
  assert ours.DMC('dmc_walker_walk', camera=1, render=False).camera == 1


def test_task_names_and_errors():
  assert ours.split_task('dmc_walker_walk') == ('walker', 'walk')
  assert ours.split_task('dmc_cup_catch') == ('ball_in_cup', 'catch')
  assert ours.split_task('dmc_ball_in_cup_catch') == ('ball_in_cup', 'catch')
  assert ours.split_task('dmc_point_mass_easy') == ('point_mass', 'easy')
  assert ours.split_task('dmc_cartpole_balance_sparse') == (
      'cartpole', 'balance_sparse')
  with pytest.raises(ValueError) as error:
    ours.split_task('dmc_walker_fly')
  message = str(error.value)
  assert "Unknown DeepMind Control task 'dmc_walker_fly'" in message
  assert 'walker: stand, walk, run' in message
  assert 'cartpole: balance, balance_sparse, swingup' in message
  with pytest.raises(ValueError, match="not a DeepMind Control task"):
    ours.split_task('walker_walk')


def test_sweep_tasks_are_suite_tasks():
  from harmony_v3.envs.games import DMC_TASKS
  assert len(DMC_TASKS) == len(set(DMC_TASKS)) == 20
  for name in DMC_TASKS:
    assert ours.split_task(f'dmc_{name}')


def test_config_errors_are_clear(capsys):
  from harmony_v3 import train
  assert train.main(['--task', 'dmc_walker_fly', '--configs', *CPU]) == 2
  assert 'walker: stand, walk, run' in capsys.readouterr().err
  assert train.main(['--task', 'dmc_walker_walk', '--configs', *CPU,
                     '--env.dmc.repeat', '0', '--encoder.mlp_keys', '$^']
                    ) == 2
  err = capsys.readouterr().err
  assert 'env.dmc.repeat must be a whole number >= 1, got 0' in err
  assert 'the encoder reads no observation of dmc_walker_walk' in err
  # tiny after dmc_proprio would silently train on images only.
  assert train.main(['--task', 'dmc_walker_walk', '--configs',
                     'dmc_proprio', 'tiny']) == 2
  assert '--configs tiny dmc_proprio dmc_tiny' in capsys.readouterr().err
  # tiny after dmc_vision keeps what the model reads (the image): accepted.
  config = train.build_config(['--task', 'dmc_walker_walk', '--configs',
                               'dmc_vision', 'tiny'])
  assert config.encoder.cnn_keys == 'image' and config.task == (
      'dmc_walker_walk')
  config = load_config(['tiny'], ['--task', 'dmc_walker_flyy'])
  with pytest.raises(ValueError, match='walker: stand, walk, run'):
    check_task(config)
  config = load_config(['tiny'], ['--task', 'dmcc_walker_walk'])
  with pytest.raises(ValueError, match=r'dmc_<domain>_<task> for the '):
    check_task(config)


def test_a_missing_gl_backend_is_one_clear_error(tmp_path):
  done = subprocess.run(
      [sys.executable, '-m', 'harmony_v3.train', '--task',
       'dmc_walker_walk', '--configs', *CPU, '--logdir', str(tmp_path)],
      capture_output=True, text=True, timeout=300,
      env={**os.environ, 'MUJOCO_GL': 'no_such_backend'})
  assert done.returncode == 2, done.stderr[-2000:]
  assert "OpenGL backend MUJOCO_GL='no_such_backend'" in done.stderr
  assert 'apt-get install libegl1 libopengl0' in done.stderr
  assert 'Traceback' not in done.stderr


def test_presets_and_help():
  from harmony_v3 import train
  usable, unsupported = train.preset_support()
  assert usable['dmc_proprio'] == usable['dmc_vision'] == 'dmc_walker_walk'
  assert 'dmc_proprio' not in unsupported
  proprio = load_config(CPU, ['--task', 'dmc_walker_walk'])
  vision = load_config(['tiny', 'dmc_vision', 'dmc_tiny'],
                       ['--task', 'dmc_walker_walk'])
  tiny = load_config(['tiny'], ['--task', 'dmc_walker_walk'])
  # dmc_tiny puts tiny's model back over the base's full-size DMC model.
  for key in ('rssm.deter', 'rssm.units', 'rssm.stoch', 'rssm.classes',
              'encoder.cnn_depth', 'reward_head.layers', 'actor.units',
              'critic.units', 'batch_size', 'batch_length', 'jax.platform'):
    assert proprio.flat[key] == vision.flat[key] == tiny.flat[key], key
  assert (proprio.encoder.mlp_keys, proprio.encoder.cnn_keys) == ('.*', '$^')
  assert (vision.encoder.mlp_keys, vision.encoder.cnn_keys) == ('$^', 'image')
  assert not ours.reads_image(proprio) and ours.reads_image(vision)
  assert tuple(proprio.env.dmc.size) == (64, 64)
  assert (proprio.env.dmc.repeat, proprio.env.dmc.camera) == (2, -1)
  assert action_repeat(proprio) == 2  # Logs count control steps as frames.
  # One update per agent step, as docs/dmc.md's learning check ran.
  assert proprio.run.train_ratio / (
      proprio.batch_size * proprio.batch_length) == 1
  assert (proprio.run.steps, proprio.run.eval_every) == (20000, 5000)


def test_env_from_config_and_seeding():
  config = load_config(CPU, ['--task', 'dmc_cartpole_balance'])
  env = make_env(config, seed=5)
  assert 'image' not in env.obs_space  # Proprio: nothing rendered.
  assert env.obs_space['position'].shape == (3,)
  batch = make_batch_env(config, 2, seed=5)
  first = batch.step({'action': np.zeros((2, 1), np.float32),
                      'reset': np.ones(2, bool)})
  one = env.step({'action': np.zeros(1, np.float32), 'reset': True})
  np.testing.assert_array_equal(first['position'][0], one['position'])
  assert not np.array_equal(first['position'][0], first['position'][1])
  batch.close()
  env.close()


def test_random_returns_in_docs():
  """docs/dmc.md's random-policy row for cartpole balance, measured again
  (50 episodes, seed 0): the figure the learning check is judged by."""
  import pathlib
  docs = (pathlib.Path(__file__).resolve().parents[1] / 'docs' / 'dmc.md'
          ).read_text()
  row = next(line for line in docs.splitlines()
             if line.startswith('| cartpole_balance |'))
  mean, std, low, high = (float(x) for x in row.split('|')[2:6])
  returns = np.asarray(ours.random_returns('dmc_cartpole_balance', 50, 0))
  assert (round(returns.mean(), 1), round(returns.std(ddof=1), 1)) == (
      mean, std)
  assert (round(returns.min(), 1), round(returns.max(), 1)) == (low, high)


def test_smoke_run(tmp_path):
  """The CPU command for a few hundred steps: training, an evaluation and
  the end of the run (Harmony DreamerV3), on proprio observations."""
  logdir = tmp_path / 'run'
  out = train_smoke(
      logdir, 'dmc_walker_walk', CPU,
      '--run.steps', '150', '--run.eval_every', '150', '--run.eval_eps', '1',
      '--run.eval_envs', '1', '--run.train_ratio', '16')
  assert ("Encoder MLP shapes: {'orientations': (14,), 'height': (1,), "
          "'velocity': (9,)}") in out
  evals = [json.loads(l) for l in
           (logdir / 'eval.jsonl').read_text().splitlines()]
  assert [e['step'] for e in evals] == [150]
  assert evals[0]['frames'] == 300 and evals[0]['episodes'] == 1
  summary = json.loads((logdir / 'done.json').read_text())
  assert summary['steps'] == 150 and summary['harmony'] is True
  assert summary['frames'] == 300
  metrics = [json.loads(l) for l in
             (logdir / 'metrics.jsonl').read_text().splitlines()]
  assert any('train/harmony_weight_obs' in m for m in metrics)
