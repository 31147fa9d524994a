"""End to end on real ALE Pong with the tiny preset: train, evaluate,
checkpoint, get interrupted, resume; then a corrupt checkpoint.

Two training processes in all; the second reuses the first's persistent
compilation cache.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

STEPS, EVAL_EVERY = 400, 200


def _command(logdir, cache):
  return [sys.executable, '-m', 'harmony_v3.train', '--task', 'atari_pong',
          '--configs', 'tiny', '--logdir', str(logdir),
          '--run.steps', str(STEPS), '--run.eval_every', str(EVAL_EVERY),
          '--run.compilation_cache', str(cache), '--run.progress', 'lines']


def _env():
  return {**os.environ, 'PYTHONUNBUFFERED': '1'}


def _evals(logdir):
  path = pathlib.Path(logdir) / 'eval.jsonl'
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def _replay_steps(logdir):
  import harmony_v3  # noqa: F401
  from embodied.replay import saver
  return sum(1 for _ in saver.Saver(pathlib.Path(logdir) / 'replay').load(
      None, 16))


@pytest.fixture(scope='module')
def interrupted_then_resumed(tmp_path_factory):
  root = tmp_path_factory.mktemp('e2e')
  logdir, cache = root / 'run', root / 'jax_cache'
  first = subprocess.Popen(
      _command(logdir, cache), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, env=_env())
  deadline = time.time() + 600
  while not _evals(logdir) and time.time() < deadline:
    time.sleep(1)
    assert first.poll() is None, first.stdout.read()
  assert _evals(logdir), 'no evaluation within 10 minutes'
  time.sleep(3)  # Let it train a little past the evaluation.
  first.send_signal(signal.SIGTERM)  # Twice, 20 ms apart, as scancel can.
  time.sleep(0.02)
  first.send_signal(signal.SIGTERM)
  out1 = first.communicate(timeout=300)[0]
  replay_at_stop = _replay_steps(logdir)
  cache_files = list(cache.rglob('*')) if cache.exists() else []
  second = subprocess.run(
      _command(logdir, cache), capture_output=True, text=True, env=_env(),
      timeout=900)
  return dict(logdir=logdir, first=first, out1=out1, second=second,
              replay_at_stop=replay_at_stop, cache_files=cache_files)


def test_interrupt_saves_a_checkpoint(interrupted_then_resumed):
  r = interrupted_then_resumed
  assert r['first'].returncode == 130, r['out1'][-3000:]
  assert 'Saved. Run the same command again to resume.' in r['out1']
  assert r['out1'].count('Stop requested') == 1


def test_resume_continues_the_step_counter(interrupted_then_resumed):
  r = interrupted_then_resumed
  out = r['second'].stdout + r['second'].stderr
  assert r['second'].returncode == 0, out[-3000:]
  resumed = [l for l in out.splitlines() if l.startswith('Resumed from')]
  assert resumed, out[-3000:]
  step = int(resumed[0].split('at step ')[1].split(' ')[0].replace(',', ''))
  assert EVAL_EVERY < step < STEPS
  assert step == r['replay_at_stop']  # Counter and replay agree at the stop.
  done = json.loads((r['logdir'] / 'done.json').read_text())
  assert done['steps'] == STEPS and done['harmony'] is True


def test_no_replay_data_lost_or_duplicated(interrupted_then_resumed):
  r = interrupted_then_resumed
  assert r['second'].returncode == 0
  assert _replay_steps(r['logdir']) == STEPS


def test_evaluation_log_has_frames_and_no_duplicates(interrupted_then_resumed):
  evals = _evals(interrupted_then_resumed['logdir'])
  assert [e['step'] for e in evals] == [200, 400]
  for e in evals:
    assert e['frames'] == 4 * e['step']
    assert e['episodes'] == len(e['returns']) == 4
    assert abs(e['mean'] - sum(e['returns']) / 4) < 1e-9
    assert all(-21 <= x <= 21 for x in e['returns'])  # Pong's score range.


def test_run_folder_contents(interrupted_then_resumed):
  logdir = interrupted_then_resumed['logdir']
  for name in ('config.yaml', 'metrics.jsonl', 'eval.jsonl',
               'checkpoint.ckpt', 'done.json'):
    assert (logdir / name).exists(), name
  assert list(logdir.glob('events.out.tfevents.*'))
  lines = [json.loads(l) for l in
           (logdir / 'metrics.jsonl').read_text().splitlines()]
  harmony = [l for l in lines if 'train/harmony_weight_obs' in l]
  assert harmony and all(l['frames'] == 4 * l['step'] for l in lines)
  assert any('perf/updates_per_s' in l for l in lines)
  shares = [l for l in lines if 'perf/time_share/train' in l]
  assert shares
  for line in shares:
    parts = {k: v for k, v in line.items() if k.startswith('perf/time_share/')}
    assert {'perf/time_share/env', 'perf/time_share/other'} <= set(parts)
    assert abs(sum(parts.values()) - 1) < 1e-6  # The parts do not overlap.


def test_run_summary_of_a_real_run(interrupted_then_resumed):
  from harmony_v3.run.summary import summarize
  s = summarize(interrupted_then_resumed['logdir'])
  assert s['harmony'] and s['steps'] == s['total_steps'] == STEPS
  assert s['frames_per_s'] > 0 and s['updates_per_s'] > 0
  assert s['eval']['evaluations'] >= 1 and s['eval']['episodes_per_s'] > 0
  assert set(s['weights']) == {'reward', 'obs', 'dyn'}


def test_persistent_compilation_cache_is_used(interrupted_then_resumed):
  assert interrupted_then_resumed['cache_files'], 'cache folder stayed empty'


def test_corrupt_checkpoint_is_a_clear_error(interrupted_then_resumed,
                                             tmp_path):
  src = interrupted_then_resumed['logdir']
  logdir = tmp_path / 'corrupt'
  logdir.mkdir()
  shutil.copy(src / 'config.yaml', logdir / 'config.yaml')
  (logdir / 'checkpoint.ckpt').write_bytes(b'\x80\x04garbage')
  cache = tmp_path / 'cache'
  result = subprocess.run(
      _command(logdir, cache), capture_output=True, text=True, env=_env(),
      timeout=600)
  assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
  assert 'is corrupt or unreadable' in result.stderr
  assert not (logdir / 'eval.jsonl').exists()  # No silent fresh start.


def test_a_tiny_run_prints_no_nan_warning(interrupted_then_resumed):
  """Metrics with no value yet (e.g. the accuracy on terminal steps of a
  batch with none) are not sent to TensorBoard as NaN, which made
  tensorboardX print a warning that read like a failing run."""
  r = interrupted_then_resumed
  assert 'train/cont_neg_acc' in (r['logdir'] / 'metrics.jsonl').read_text()
  for output in (r['out1'], r['second'].stdout, r['second'].stderr):
    assert 'NaN or Inf' not in output
