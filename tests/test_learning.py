"""Learning tests: `python -m harmony_v3.train` learns the cue task on a CPU.

The cue task (harmony_v3.envs.toy, `--configs tiny cue`): each step the image
shows one of 4 cues, and the reward arriving with the next image is 1 if the
action matched the cue. Episodes are 16 actions long, so a return is 0..16:

  chance   4   (any policy that does not see the cue, on average)
  maximum 16

The check: the final evaluation's mean return (32 episodes) is at least
THRESHOLD = 12, i.e. two thirds of the way from chance to the maximum. Both
Harmony DreamerV3 and DreamerV3 must pass it; the same check must fail, near
chance, when learning is broken (rewards zeroed in what the agent learns
from, or images replaced by noise), so it cannot pass by chance.

Each run is the user's command in a subprocess (trainer, replay,
HarmonyAgent, evaluation), under a minute of CPU time on two cores; the runs
go one after another and share one persistent compilation cache.
"""
import json
import math
import os
import pathlib
import subprocess
import sys
import time

import numpy as np
import pytest

from harmony_v3.run.logs import JSONLines

CHANCE, MAXIMUM = 4.0, 16.0
THRESHOLD = 12.0
SEED = 0

# In this order, one at a time: the broken runs (Harmony, the default) reuse
# the first run's compiled functions from the cache. Two runs at a time were
# not faster on two cores (a run already keeps more than one core busy).
RUNS = {
    'harmony': ['--harmony.enabled', 'True'],
    'zero_rewards': ['--env.toy.broken', 'zero_rewards'],
    'noise_images': ['--env.toy.broken', 'noise_images'],
    'dreamerv3': ['--harmony.enabled', 'False'],
}


def _command(logdir, cache, flags):
  return [sys.executable, '-m', 'harmony_v3.train', '--configs', 'tiny',
          'cue', '--seed', str(SEED), '--logdir', str(logdir),
          '--run.compilation_cache', str(cache), '--run.progress', 'lines',
          *flags]


def final_score(logdir) -> float:
  """Mean return of the run's last evaluation."""
  evals = JSONLines(pathlib.Path(logdir) / 'eval.jsonl').read()
  assert evals, f'{logdir}: no evaluation'
  return evals[-1]['mean']


def learned(logdir) -> bool:
  """The learning check: the final evaluation reaches THRESHOLD."""
  return final_score(logdir) >= THRESHOLD


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('learning')
  cache = root / 'jax_cache'
  env = {**os.environ, 'PYTHONUNBUFFERED': '1'}
  results = {}
  for name, flags in RUNS.items():
    logdir = root / name
    start = time.time()
    try:
      done = subprocess.run(
          _command(logdir, cache, flags), stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True, env=env, timeout=600)
      returncode, output = done.returncode, done.stdout
    except subprocess.TimeoutExpired as e:
      partial = e.stdout.decode() if isinstance(e.stdout, bytes) else e.stdout
      returncode, output = None, f'{partial}\n(killed after 600 s)'
    results[name] = dict(logdir=logdir, returncode=returncode, output=output,
                         seconds=time.time() - start)
    evals = JSONLines(logdir / 'eval.jsonl').read()
    print(f"{name}: final evaluation {evals[-1]['mean'] if evals else '-'} "
          f"in {results[name]['seconds']:.0f} s", flush=True)
  return results


def _describe(run) -> str:
  curve = [(e['step'], e['mean'])
           for e in JSONLines(run['logdir'] / 'eval.jsonl').read()]
  return (f"evaluations (step, mean return): {curve}; "
          f"{run['seconds']:.0f} s\n{run['output'][-2000:]}")


@pytest.mark.parametrize('arm', ['harmony', 'dreamerv3'])
def test_agent_learns_the_cue_task(runs, arm):
  run = runs[arm]
  assert run['returncode'] == 0, _describe(run)
  assert learned(run['logdir']), _describe(run)
  done = json.loads((run['logdir'] / 'done.json').read_text())
  assert done['harmony'] is (arm == 'harmony')
  # 2 updates per step (train_ratio 128, batch 4 x 16) after the first 100
  # steps of random play that fill the replay.
  assert done['updates'] == pytest.approx(1800, abs=2)


@pytest.mark.parametrize('broken', ['zero_rewards', 'noise_images'])
def test_learning_check_fails_when_learning_is_broken(runs, broken):
  run = runs[broken]
  assert run['returncode'] == 0, _describe(run)
  assert not learned(run['logdir']), _describe(run)
  # Not merely below the threshold: at chance. Over 32 episodes the mean
  # return of a blind policy has a standard deviation of sqrt(16 * 1/4 *
  # 3/4 / 32) = 0.31.
  assert abs(final_score(run['logdir']) - CHANCE) <= 1.5, _describe(run)


def test_zero_rewards_learns_from_zeros_but_is_scored_on_true_rewards(runs):
  logdir = runs['zero_rewards']['logdir']
  episodes = JSONLines(logdir / 'episodes.jsonl').read()
  assert episodes and all(e['score'] == 0 for e in episodes)
  returns = JSONLines(logdir / 'eval.jsonl').read()[-1]['returns']
  assert len(returns) == 32 and sum(returns) > 0


def test_run_summary_adaptation_of_the_learning_run(runs, tmp_path):
  from harmony_v3.run import summary as run_summary
  from harmony_v3.harmonizer import optimal_sigma
  logdir = runs['harmony']['logdir']
  out_json = tmp_path / 'summary.json'
  assert run_summary.main([str(logdir), '--json', str(out_json)]) == 0
  summary = json.loads(out_json.read_text())[0]
  metrics = JSONLines(logdir / 'metrics.jsonl').read()
  for name in ('reward', 'obs', 'dyn'):
    logs = [r for r in metrics if f'train/harmony_s_{name}' in r]
    assert len(logs) >= 3
    a = summary['adaptation'][name]
    last = logs[-1]['perf/updates']
    mean_loss = np.mean([r[f'train/harmony_loss_{name}'] for r in logs
                         if r['perf/updates'] > last - 1000])
    target = math.log(optimal_sigma(mean_loss))  # rectified, the default
    assert a['target'] == pytest.approx(target)
    assert a['s'] == logs[-1][f'train/harmony_s_{name}']
    updates = [r['perf/updates'] for r in logs]
    assert a['updates'] is None or a['updates'] in updates
    assert a['within_at_end'] == (abs(a['s'] - target) <= 0.1 * abs(target))
