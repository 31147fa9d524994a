"""`--per-gpu auto`: the sweep measures how many runs share a GPU best.

The choice and the sweep's use of it are tested with a fake bench (the CPU
has no GPU to measure); one test runs the real bench on the CPU to check
that the choice reads what the bench writes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from harmony_v3.sweep import calibrate, devices, launch, local
from test_sweep import (flag, max_overlap, read_jsonl, records,
                        run_main, terminate, stand_in)

# Writes `bench --concurrency` JSON with the rates of $FAKE_BENCH_RATES
# ("1:18,2:30"; "x" for a failed K), prints its K= lines, and appends its
# argv and CUDA_VISIBLE_DEVICES to $FAKE_BENCH_CALLS. $FAKE_BENCH_EXIT: exit
# with that status before writing anything. $FAKE_BENCH_SLEEP: sleep first
# (after writing its pid to $FAKE_BENCH_CALLS.pid).
FAKE_BENCH = r'''
import json, os, sys, time
args = sys.argv[1:]
calls = os.environ['FAKE_BENCH_CALLS']
with open(calls, 'a') as f:
  f.write(json.dumps({'argv': args,
                      'cuda': os.environ.get('CUDA_VISIBLE_DEVICES')}) + '\n')
open(calls + '.pid', 'w').write(str(os.getpid()))
time.sleep(float(os.environ.get('FAKE_BENCH_SLEEP', '0')))
if os.environ.get('FAKE_BENCH_EXIT'):
  print('Traceback: fake bench crash', flush=True)
  sys.exit(int(os.environ['FAKE_BENCH_EXIT']))
rates = dict(p.split(':') for p in os.environ['FAKE_BENCH_RATES'].split(','))
results = {}
for k in args[args.index('--concurrency') + 1:]:
  if not k.isdigit():
    break
  if rates[k] == 'x':
    results[k] = {'error': 'JaxRuntimeError: fake'}
    print(f'K={k}: failed', flush=True)
  else:
    results[k] = {'aggregate_updates_per_s': float(rates[k]),
                  'runs': [{'device': 'gpu:FAKE H100'}]}
    print(f'K={k}: {rates[k]} updates/s aggregate', flush=True)
results['command'] = 'fake'
json.dump(results, open(args[args.index('--json') + 1], 'w'))
'''

ONE_GPU = '#!/bin/sh\necho "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)"\n'


# The choice ------------------------------------------------------------------


def bench_json(**rates):
  """Results as `bench --concurrency --json` writes them (K keys as text)."""
  results = {'command': 'python -m harmony_v3.bench ...', 'date': 'today'}
  for k, rate in rates.items():
    results[k[1:]] = ({'error': 'failed'} if rate is None else
                      {'aggregate_updates_per_s': rate, 'runs': []})
  return json.loads(json.dumps(results))


@pytest.mark.parametrize('rates, chosen', [
    ({'k1': 18.0, 'k2': 30.0, 'k4': 41.0, 'k8': 42.0}, 4),  # 41 >= 0.95*42
    ({'k1': 18.0, 'k2': 30.0, 'k4': 38.0, 'k8': 42.0}, 8),
    ({'k1': 18.0, 'k2': 17.5, 'k4': 15.0}, 1),              # Sharing loses.
    ({'k1': 18.0, 'k2': 30.0, 'k4': None, 'k8': None}, 2),  # Failures skipped.
    ({'k1': None, 'k2': 30.0}, 2),
])
def test_choose_per_gpu_takes_the_smallest_k_near_the_best(rates, chosen):
  assert calibrate.choose_per_gpu(bench_json(**rates)) == chosen


def test_choose_per_gpu_without_any_measurement_raises():
  with pytest.raises(calibrate.CalibrationError, match='no K'):
    calibrate.choose_per_gpu(bench_json(k1=None, k2=None))


@pytest.mark.parametrize('gpus, cores, fraction, counts', [
    (1, 16, None, [1, 2, 4, 8]),
    (1, 2, None, [1, 2]),
    (2, 8, None, [1, 2, 4]),   # 8 runs on 2 GPUs would need 16 cores.
    (8, 4, None, [1]),         # K = 1 always.
    (1, 16, 0.3, [1, 2]),      # Fixed memory share: 4 x 0.3 > 1.
])
def test_candidate_counts_fit_cores_and_memory(gpus, cores, fraction, counts):
  assert calibrate.candidate_counts(gpus, cores, fraction) == counts


def test_saved_measurement_is_reused_only_for_the_same_sweep(tmp_path):
  key = calibrate.measurement_key(['atari100k'], [], [1, 2])
  (tmp_path / calibrate.RESULT_NAME).write_text(json.dumps(
      {'key': key, 'per_gpu': 2, 'aggregate_updates_per_s': {'1': 18.0}}))
  assert calibrate.load(tmp_path, key)['per_gpu'] == 2
  other = calibrate.measurement_key(['atari100k'], ['--jax.precision',
                                                    'bfloat16'], [1, 2])
  assert calibrate.load(tmp_path, other) is None
  (tmp_path / calibrate.RESULT_NAME).write_text('{"key": ')  # Truncated.
  assert calibrate.load(tmp_path, key) is None


def test_real_bench_on_the_cpu_gives_a_choice(tmp_path):
  """The real `bench --concurrency` output, read by the real chooser."""
  lines = []
  record = calibrate.measure(
      '', ['tiny'], ['--jax.platform', 'cpu'], [1], tmp_path,
      cache=tmp_path / 'cache', say=lines.append, updates=4, rounds=2)
  assert record['per_gpu'] == 1
  assert record['aggregate_updates_per_s']['1'] > 0
  assert record['device'].startswith('cpu')
  assert any(line.strip().startswith('K=1:') for line in lines)
  saved = json.loads((tmp_path / calibrate.RESULT_NAME).read_text())
  assert saved == record
  assert calibrate.load(tmp_path, record['key']) == record
  assert 'harmony_v3.bench' in (tmp_path / calibrate.LOG_NAME).read_text()
  assert list((tmp_path / 'cache').iterdir())  # The shared compile cache.


# The sweep with a fake bench -------------------------------------------------


@pytest.fixture
def gpu_sweep(tmp_path, monkeypatch):
  """A fake trainer and bench, one fake GPU and 16 cores."""
  bench = tmp_path / 'fake_bench.py'
  bench.write_text(FAKE_BENCH)
  smi = tmp_path / 'nvidia-smi'
  smi.write_text(ONE_GPU)
  smi.chmod(0o755)
  monkeypatch.setenv(launch.TRAIN_CMD_ENV, stand_in())
  monkeypatch.setenv(calibrate.BENCH_CMD_ENV, f'{sys.executable} {bench}')
  monkeypatch.setenv(devices.NVIDIA_SMI_ENV, str(smi))
  monkeypatch.setenv('FAKE_BENCH_CALLS', str(tmp_path / 'bench_calls.jsonl'))
  monkeypatch.setenv('FAKE_BENCH_RATES', '1:18,2:30,4:41,8:42')
  monkeypatch.setenv('FAKE_SLEEP', '0')
  for name in ('CUDA_VISIBLE_DEVICES', 'FAKE_BENCH_EXIT', 'FAKE_BENCH_SLEEP',
               'FAKE_FAIL_GAME', 'FAKE_NO_DONE_GAME'):
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setattr(local, 'POLL_SECONDS', 0.05)
  monkeypatch.setattr(calibrate, 'available_cores', lambda: 16)
  return tmp_path


def bench_calls(folder):
  return read_jsonl(folder / 'bench_calls.jsonl')


def trainer_calls(logroot, games):
  return [c for g in games for c in records(logroot / f'harmony/{g}/seed0')]


def sweep_args(logroot, games, *more):
  return ('--no-gpu-check', '--no-report', '--logroot', logroot, '--games',
          *games, '--seeds', '0', *more)


def test_auto_measures_once_and_uses_the_chosen_count(gpu_sweep, capsys,
                                                     monkeypatch):
  logroot = gpu_sweep / 'logs'
  monkeypatch.setenv('FAKE_SLEEP', '1.5')
  games = ['pong', 'breakout', 'boxing', 'hero', 'alien']
  code, out, _ = run_main(capsys, *sweep_args(logroot, games))
  assert code == 0, out
  [call] = bench_calls(gpu_sweep)
  assert call['cuda'] == '0'
  argv = call['argv']
  assert argv[argv.index('--concurrency') + 1:][:4] == ['1', '2', '4', '8']
  assert flag(argv, '--configs') == 'atari100k'
  assert flag(argv, '--run.compilation_cache') == str(logroot / '.jax_cache')
  assert 'Runs per GPU: 4 (the smallest K within 5% of the best' in out
  assert 'K=8: 42 updates/s aggregate' in out  # The bench's lines shown.
  calls = trainer_calls(logroot, games)
  assert len(calls) == 5
  for trainer in calls:
    assert flag(trainer['argv'], '--jax.mem_fraction') == '0.225'
    assert trainer['xla_mem'] == '0.225'
  assert 1 < max_overlap([(c['start'], c['end']) for c in calls]) <= 4
  saved = json.loads((logroot / calibrate.RESULT_NAME).read_text())
  assert saved['per_gpu'] == 4 and saved['device'] == 'gpu:FAKE H100'

  # The same sweep with another game: the saved measurement is reused.
  monkeypatch.setenv('FAKE_SLEEP', '0')
  code, out, _ = run_main(capsys, *sweep_args(logroot, games + ['qbert']))
  assert code == 0, out
  assert len(bench_calls(gpu_sweep)) == 1
  assert f'Runs per GPU: 4, from {logroot / calibrate.RESULT_NAME}' in out
  assert flag(records(logroot / 'harmony/qbert/seed0')[0]['argv'],
              '--jax.mem_fraction') == '0.225'

  # Other trainer flags change what is measured: measured again, and the
  # bench gets the flags too.
  monkeypatch.setenv('FAKE_BENCH_RATES', '1:18,2:17,4:16,8:15')
  code, out, _ = run_main(capsys, *sweep_args(
      logroot, ['gopher'], '--', '--jax.precision', 'bfloat16'))
  assert code == 0, out
  assert len(bench_calls(gpu_sweep)) == 2
  assert flag(bench_calls(gpu_sweep)[1]['argv'], '--jax.precision') == (
      'bfloat16')
  assert flag(records(logroot / 'harmony/gopher/seed0')[0]['argv'],
              '--jax.mem_fraction') == '0.9'


def test_explicit_per_gpu_and_finished_sweeps_measure_nothing(
    gpu_sweep, capsys):
  logroot = gpu_sweep / 'logs'
  code, out, _ = run_main(capsys, *sweep_args(logroot, ['pong'], '--per-gpu',
                                              '2'))
  assert code == 0, out
  assert flag(records(logroot / 'harmony/pong/seed0')[0]['argv'],
              '--jax.mem_fraction') == '0.45'
  code, out, _ = run_main(capsys, *sweep_args(logroot, ['pong']))
  assert code == 0, out  # Everything done: nothing to measure for.
  assert bench_calls(gpu_sweep) == []
  code, out, _ = run_main(capsys, '--dry-run', *sweep_args(logroot, ['hero']))
  assert 'runs per GPU: auto' in out and bench_calls(gpu_sweep) == []


@pytest.mark.parametrize('failure', ['crash', 'every-k-failed'])
def test_failed_measurement_falls_back_to_one_run_per_gpu(
    gpu_sweep, capsys, monkeypatch, failure):
  if failure == 'crash':
    monkeypatch.setenv('FAKE_BENCH_EXIT', '1')
  else:
    monkeypatch.setenv('FAKE_BENCH_RATES', '1:x,2:x,4:x,8:x')
  logroot = gpu_sweep / 'logs'
  code, out, _ = run_main(capsys, *sweep_args(logroot, ['pong', 'hero']))
  assert code == 0, out
  assert 'warning: could not measure runs per GPU' in out
  assert 'using 1 run per GPU' in out
  for trainer in trainer_calls(logroot, ['pong', 'hero']):
    assert flag(trainer['argv'], '--jax.mem_fraction') == '0.9'
  assert not (logroot / calibrate.RESULT_NAME).exists()  # Not saved.
  log = (logroot / calibrate.LOG_NAME).read_text()
  assert ('fake bench crash' in log) == (failure == 'crash')
  assert ('K=1: failed' in log) == (failure == 'every-k-failed')


def test_sigterm_while_measuring_stops_the_bench_and_trains_nothing(
    gpu_sweep):
  logroot = gpu_sweep / 'logs'
  env = dict(os.environ, FAKE_BENCH_SLEEP='60', PYTHON=sys.executable)
  proc = subprocess.Popen(
      [sys.executable, '-m', 'harmony_v3.sweep',
       *map(str, sweep_args(logroot, ['pong']))],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  pid_file = gpu_sweep / 'bench_calls.jsonl.pid'
  deadline = time.time() + 60
  while time.time() < deadline and not pid_file.exists():
    time.sleep(0.1)
  bench_pid = int(pid_file.read_text())
  out = terminate(proc, timeout=40)
  assert proc.returncode == 130, out
  assert 'nothing was trained' in out
  with pytest.raises(ProcessLookupError):
    os.kill(bench_pid, 0)  # The bench was stopped, not left behind.
  assert not (logroot / 'harmony/pong/seed0').exists()
