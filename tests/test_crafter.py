"""Crafter as a task suite (`crafter_reward`, harmony_v3.envs.crafter).

The env against `crafter.Env` in lock-step (same seed and actions: same
images, rewards, achievements and episode ends), clear errors for bad tasks
and options, the episode statistics the runner records, the Crafter score
on hand-made runs with known answers, and one smoke run of
`python -m harmony_v3.train --task crafter_reward --configs crafter tiny`.

Crafter draws a new world at every reset (about a second on a busy CPU), so
the tests reset as few times as they can.
"""
import json
import math
import sys

import numpy as np
import pytest
from conftest import train_smoke

from harmony_v3.config import ConfigError, load_config
from harmony_v3.envs import check_task
from harmony_v3.envs import crafter as ours
from harmony_v3.run.records import episode_stats, stat_keys
from harmony_v3.scores import crafter as scores

crafter = pytest.importorskip('crafter')

RESET = {'action': 0, 'reset': True}


def test_lock_step_with_crafter():
  """Ours with Crafter's reward, ours without it, and `crafter.Env`, seeded
  alike and given the same actions, over a death and a time-limit end."""
  seed, length = 0, 170
  env = ours.Crafter(reward=True, seed=seed, length=length)
  silent = ours.Crafter(reward=False, seed=seed, length=length)
  ref = crafter.Env(seed=seed, length=length)
  assert tuple(crafter.constants.achievements) == ours.ACHIEVEMENTS
  assert ref.action_space.n == ours.NUM_ACTIONS == len(
      crafter.constants.actions)
  assert env.obs_space['image'].shape == ref.observation_space.shape
  rng = np.random.default_rng(0)
  obs, quiet, image = env.step(RESET), silent.step(RESET), ref.reset()
  ends = []
  while len(ends) < 2:
    for o in (obs, quiet):
      np.testing.assert_array_equal(o['image'], image)
    if obs['is_last']:
      ends.append(bool(obs['is_terminal']))
      if len(ends) == 2:
        break
      obs, quiet, image = env.step(RESET), silent.step(RESET), ref.reset()
      assert obs['is_first'] and obs['reward'] == 0
      assert all(obs[ours.ACHIEVEMENT_PREFIX + n] == 0
                 for n in ours.ACHIEVEMENTS)
      continue
    action = int(rng.integers(ours.NUM_ACTIONS))
    obs = env.step({'action': action, 'reset': False})
    quiet = silent.step({'action': action, 'reset': False})
    image, reward, done, info = ref.step(action)
    assert obs['reward'] == np.float32(reward) == obs['log_reward']
    assert quiet['reward'] == 0 and quiet['log_reward'] == obs['log_reward']
    assert obs['is_last'] == quiet['is_last'] == done
    assert obs['is_terminal'] == (info['discount'] == 0)
    assert not obs['is_first']
    for name, count in info['achievements'].items():
      assert obs[ours.ACHIEVEMENT_PREFIX + name] == count
  # Seed 0 with these actions: the player dies in the first episode and
  # lives to the time limit in the second.
  assert ends == [True, False]
  assert env.environment._step == length


def test_unknown_tasks_and_bad_options_are_one_clear_error(capsys):
  from harmony_v3 import train
  config = load_config(['crafter'], ['--task', 'crafter_diamonds'])
  with pytest.raises(ValueError) as error:
    check_task(config)
  assert str(error.value) == ("Unknown Crafter task 'diamonds'. Valid tasks: "
                              'crafter_reward, crafter_noreward.')
  assert train.main(['--task', 'crafter_reward', '--configs', 'crafter',
                     '--env.crafter.size', '48,48',
                     '--env.crafter.length', '-5']) == 2
  err = capsys.readouterr().err
  assert 'env.crafter.size must be two equal powers of two >= 32' in err
  assert 'env.crafter.length must be a whole number of steps >= 0' in err
  # Without the crafter preset no achievement would be recorded.
  assert train.main(['--task', 'crafter_reward', '--configs', 'tiny']) == 2
  assert ("run.log_keys_max ('^$') does not select Crafter's "
          'log_achievement_* keys') in capsys.readouterr().err
  # `tiny` after `crafter` brings Pong's task: said, not trained.
  assert train.main(['--configs', 'crafter', 'tiny']) == 2
  assert ("--configs crafter tiny would train atari_pong: preset 'tiny' "
          "brings the task atari_pong") in capsys.readouterr().err
  with pytest.raises(ValueError, match='two equal powers of two'):
    ours.Crafter(size=(64, 48))
  for bad in ('crafter', 'minatar_reward'):
    with pytest.raises(ValueError, match='crafter_reward'):
      ours.task_from_name(bad)
  unknown = load_config(['tiny'], ['--task', 'craftr_reward'])
  with pytest.raises(ValueError, match="'crafter_reward', 'crafter_noreward'"):
    check_task(unknown)


def test_preset_is_the_base_one_with_a_budget_and_listed(capsys):
  from harmony_v3 import train
  c = load_config(['crafter'])
  assert c.task == 'crafter_reward' and check_task(c) == 'crafter'
  assert (c.run.train_ratio, c.envs.amount, c.run.steps) == (512, 1, 1e6)
  assert c.run.log_keys_max == '^log_achievement_.*'
  assert c.run.log_keys_sum == '^log_reward$'
  assert (c.encoder.cnn_keys, c.encoder.mlp_keys) == ('image', '$^')
  assert tuple(c.env.crafter.size) == (64, 64) and c.env.crafter.length == 10000
  tiny = train.build_config(['--task', 'crafter_reward', '--configs',
                             'crafter', 'tiny', '--logdir', '/tmp/unused'])
  assert tiny.task == 'crafter_reward' and tiny.rssm.deter == 64
  assert tiny.run.log_keys_max == '^log_achievement_.*'
  with pytest.raises(SystemExit):
    train.main(['--help'])
  out = capsys.readouterr().out
  usable = out.split('presets (--configs):')[1].split('not supported yet:')[0]
  assert 'crafter     task crafter_reward' in usable
  assert 'suites: atari, minatar, dmc, crafter, toy' in ' '.join(out.split())
  with pytest.raises(ConfigError):  # The reason is in train.build_config.
    train.build_config(['--configs', 'crafter', 'tiny'])
  # crafter_noreward: no reward to train on, Crafter's reward to evaluate.
  from harmony_v3.envs import SUITES
  silent = load_config(['crafter'], ['--task', 'crafter_noreward'])
  assert check_task(silent) == 'crafter'
  made = {evaluation: SUITES['crafter'](silent, 0, evaluation).environment
          for evaluation in (False, True)}
  assert (made[False]._reward, made[True]._reward) == (False, True)
  assert SUITES['crafter'](c, 0, False).environment._reward


def test_episode_stats_follow_the_log_key_patterns():
  run = load_config(['crafter']).run
  keys = stat_keys(['image', 'reward', 'log_reward', 'log_achievement_eat_cow',
                    'log_achievement_wake_up'], run)
  assert keys == {'sum': ('log_reward',), 'mean': (),
                  'max': ('log_achievement_eat_cow', 'log_achievement_wake_up')}
  ep = {'reward': np.float32([0, 1, 0.1]),
        'log_reward': np.float32([[0], [1], [0.25]]),
        'log_achievement_eat_cow': np.int32([0, 0, 0]),
        'log_achievement_wake_up': np.int32([0, 1, 2])}
  stats = episode_stats(ep, keys)
  assert stats == {'sum_log_reward': 1.25, 'max_log_achievement_eat_cow': 0,
                   'max_log_achievement_wake_up': 2}
  assert all(type(v) in (int, float) for v in stats.values())  # JSON.
  assert stat_keys(['image', 'reward'], run) == {'sum': (), 'mean': (),
                                                 'max': ()}


def _episode(step, unlocked=(), ret=0.0):
  stats = {f'max_log_achievement_{n}': int(n in unlocked)
           for n in ours.ACHIEVEMENTS}
  stats['sum_log_reward'] = ret
  return {'step': step, 'frames': step, 'score': ret, 'length': 10,
          'stats': stats}


def _write_run(folder, seed, episodes, task='crafter_reward', harmony=True):
  folder.mkdir(parents=True)
  (folder / 'config.yaml').write_text(
      f'task: {task}\nseed: {seed}\nharmony:\n  enabled: {harmony}\n')
  (folder / 'episodes.jsonl').write_text(
      ''.join(json.dumps(ep) + '\n' for ep in episodes))


def test_crafter_score_on_hand_made_runs(tmp_path, capsys):
  zero = {n: 0.0 for n in ours.ACHIEVEMENTS}
  assert scores.crafter_score(zero) == 0.0
  assert scores.crafter_score({n: 100.0 for n in ours.ACHIEVEMENTS}
                              ) == pytest.approx(100.0)
  # Seed 0, four episodes: collect_wood in 4 (100%), wake_up in 2 (50%),
  # place_table in 1 (25%): S = exp((ln 101 + ln 51 + ln 26) / 22) - 1.
  seed0 = [_episode(10, ('collect_wood', 'wake_up', 'place_table'), 3.0),
           _episode(20, ('collect_wood', 'wake_up'), 2.0),
           _episode(30, ('collect_wood',), 1.0),
           _episode(40, ('collect_wood',), 2.0)]
  expected0 = math.exp((math.log(101) + math.log(51) + math.log(26)) / 22) - 1
  assert expected0 == pytest.approx(0.7101701174166728, abs=1e-12)
  # Seed 1, two episodes: collect_wood in 1 (50%): S = 51 ** (1 / 22) - 1.
  seed1 = [_episode(10, ('collect_wood',), 1.0), _episode(20, (), 0.0),
           _episode(999, ('collect_diamond',), 9.0)]  # After --steps 100.
  expected1 = 51 ** (1 / 22) - 1
  root = tmp_path / 'runs'
  _write_run(root / 'harmony' / 'seed0', 0, seed0)
  _write_run(root / 'harmony' / 'seed1', 1, seed1)
  _write_run(root / 'pong', 0, [{'step': 1, 'score': 1.0}],
             task='atari_pong')
  run0 = scores.read_run(root / 'harmony' / 'seed0')
  assert run0.rates['collect_wood'] == 100 and run0.rates['wake_up'] == 50
  assert run0.rates['place_table'] == 25 and run0.score == pytest.approx(
      expected0, abs=1e-12)
  assert run0.mean_return == 2.0 and run0.episodes == 4
  out_json = tmp_path / 'crafter.json'
  assert scores.main([str(root), '--steps', '100', '--achievements',
                      '--json', str(out_json)]) == 0
  out, err = capsys.readouterr()
  groups = json.loads(out_json.read_text())['groups']
  assert len(groups) == 1 and groups[0]['seeds'] == [0, 1]
  assert groups[0]['episodes'] == 6  # seed 1's episode at step 999 is out.
  mean = (expected0 + expected1) / 2
  std = abs(expected0 - expected1) / math.sqrt(2)
  assert groups[0]['score'] == pytest.approx([mean, std], abs=1e-12)
  assert groups[0]['mean_return'] == pytest.approx([1.25, 1.5 / math.sqrt(2)])
  assert (f'| crafter_reward | harmony_dreamerv3 | 0,1 | 6 | '
          f'{mean:.2f} ± {std:.2f} | 1.25 ± 1.06 |') in out
  assert '| collect_wood | 75.0 |' in out
  assert "task 'atari_pong', not Crafter: skipped" in err
  # Bad input: one line naming the file.
  _write_run(tmp_path / 'bare' / 'run', 0, [{'step': 5, 'score': 0.0}])
  assert scores.main([str(tmp_path / 'bare')]) == 2
  err = capsys.readouterr().err.strip()
  assert err.count('\n') == 0 and 'episodes.jsonl:1' in err
  assert "run.log_keys_max '^log_achievement_.*'" in err
  assert scores.main([str(tmp_path / 'nothing')]) == 2
  assert 'is not a folder of runs' in capsys.readouterr().err
  # The Atari table points to this tool when it finds Crafter runs.
  from harmony_v3 import scores as atari_scores
  (root / 'harmony' / 'seed0' / 'metrics.jsonl').write_text('')
  assert atari_scores.main([str(root / 'harmony')]) == 2
  assert (f'score them with python -m harmony_v3.scores.crafter '
          f'{root / "harmony"}') in capsys.readouterr().err
  with pytest.raises(SystemExit):
    scores.main([str(root), '--random', '3'])
  assert 'give RUNROOT folders, or --random N' in capsys.readouterr().err
  with pytest.raises(ValueError, match='in \\[0, 100\\]'):
    scores.crafter_score({**zero, 'eat_cow': 101.0})
  with pytest.raises(ValueError, match='missing eat_cow'):
    scores.crafter_score({n: 0.0 for n in ours.ACHIEVEMENTS if n != 'eat_cow'})


def test_random_policy_score(capsys):
  """One episode of the random policy: each success rate is 0 or 100, so
  the score is 101 ** (k / 22) - 1 for k achievements unlocked."""
  (counts, ret, length), = ours.random_episodes(1, seed=0)
  assert scores.main(['--random', '1', '--seed', '0']) == 0
  out = capsys.readouterr().out
  unlocked = sum(count > 0 for count in counts.values())
  assert unlocked >= 1 and length >= 1
  assert f'Crafter score {101 ** (unlocked / 22) - 1:.2f}%' in out
  assert f'return {ret:.2f} ± 0.00' in out


def test_smoke_run(tmp_path, capsys):
  """300 steps of the CPU command: three episodes of 99 actions through the
  runner, achievements in episodes.jsonl and metrics.jsonl, an evaluation,
  done.json, and the Crafter score of the run.

  The 300 steps are the random prefill (--run.train_fill 300), so no train
  update is compiled: that update is the same for every image task (the
  Atari end-to-end test runs it) and would double this test's time. 32x32
  images for the same reason."""
  logdir = tmp_path / 'run'
  out = train_smoke(
      logdir, 'crafter_reward', ['crafter', 'tiny'],
      '--run.steps', '300', '--run.train_fill', '300',
      '--run.eval_every', '300', '--run.eval_eps', '1', '--run.eval_envs', '1',
      '--env.crafter.length', '99', '--env.crafter.size', '32,32')
  assert "Encoder CNN shapes: {'image': (32, 32, 3)}" in out
  episodes = [json.loads(l) for l in
              (logdir / 'episodes.jsonl').read_text().splitlines()]
  assert [e['step'] for e in episodes] == [100, 200, 300]
  for ep in episodes:
    assert ep['length'] == 99
    assert sorted(ep['stats']) == sorted(
        ['sum_log_reward'] + [f'max_log_achievement_{n}'
                              for n in ours.ACHIEVEMENTS])
    assert ep['stats']['sum_log_reward'] == pytest.approx(ep['score'])
  # Seed 0's random actions wake the player up in the first episode.
  assert episodes[0]['stats']['max_log_achievement_wake_up'] >= 1
  metrics = [json.loads(l) for l in
             (logdir / 'metrics.jsonl').read_text().splitlines()]
  assert any(m.get('stats/max_log_achievement_wake_up', 0) >= 1
             for m in metrics)
  evals = [json.loads(l) for l in
           (logdir / 'eval.jsonl').read_text().splitlines()]
  assert [(e['step'], e['episodes'], e['lengths']) for e in evals] == [
      (300, 1, [99])]
  assert json.loads((logdir / 'done.json').read_text())['steps'] == 300
  run = scores.read_run(logdir)
  counts = [scores.episode_achievements(ep, 'run') for ep in episodes]
  assert run.episodes == 3 and run.rates['wake_up'] > 0
  assert run.score == pytest.approx(scores.crafter_score(
      scores.success_rates(counts)))
  assert scores.main([str(tmp_path)]) == 0
  assert f'{run.score:.2f}' in capsys.readouterr().out


def test_sweep_suite_plans_seeds_and_reports_the_crafter_score(
    tmp_path, capsys, monkeypatch):
  from harmony_v3.sweep import cli as sweep_cli
  from harmony_v3.sweep import devices, reporting
  monkeypatch.setenv(devices.NVIDIA_SMI_ENV, str(tmp_path / 'no-nvidia-smi'))
  monkeypatch.delenv(reporting.CRAFTER_SCORES_CMD_ENV, raising=False)
  logroot = tmp_path / 'logs'
  code = sweep_cli.main(['--suite', 'crafter', '--both', '--seeds', '0', '1',
                         '--dry-run', '--logroot', str(logroot)])
  out = capsys.readouterr().out
  assert code == 0, out
  assert 'Crafter sweep: 1 game(s) x 2 seed(s) x harmony+dreamerv3' in out
  assert '--task crafter_<game> --configs crafter --seed <seed>' in out
  assert 'new     dreamerv3/reward/seed1' in out
  assert '4 runs: 0 done, 0 resume, 4 new' in out
  args = sweep_cli.parse_args(['--suite', 'crafter'])
  assert args.configs == ['crafter'] and args.cpu_workers == 1
  assert args.logroot == '~/logdir/harmony_v3_crafter'
  assert reporting.report_commands(logroot, 'crafter') == [[
      sys.executable, '-m', 'harmony_v3.scores.crafter', str(logroot),
      '--achievements', '--json', str(logroot / 'report' / 'crafter.json')]]
  code = sweep_cli.main(['--suite', 'crafter', '--games', 'diamonds',
                         '--dry-run', '--logroot', str(logroot)])
  assert code == 2
  assert ("Unknown Crafter game(s): 'diamonds'. Valid games: reward"
          in capsys.readouterr().err)
