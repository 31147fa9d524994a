"""scripts/gpu_check.sh and the bench's input errors (no GPU needed)."""
import json
import os
import subprocess

from conftest import ROOT

SCRIPT = ROOT / 'scripts' / 'gpu_check.sh'


def _run_script(tmp_path, python, *stages, **env):
  env = {**os.environ, 'PYTHON': python, **env}
  return subprocess.run([str(SCRIPT), str(tmp_path / 'out'), *stages],
                        capture_output=True, text=True, env=env, timeout=600)


def test_a_failing_stage_does_not_stop_the_next(tmp_path, python):
  proc = _run_script(tmp_path, python, 'bench', 'env', TASK='atari_nope')
  assert proc.returncode == 1
  log = (tmp_path / 'out' / 'gpu_check.log').read_text()
  assert 'stage bench FAILED (exit 2)' in log
  assert "Unknown Atari 100K game 'nope'" in log
  info = json.loads((tmp_path / 'out' / 'env.json').read_text())
  assert info['dreamerv3'] == '1.5.0' and info['devices']
  assert 'done with failures in: bench' in log


def test_unknown_stage_is_refused_before_anything_runs(tmp_path, python):
  proc = _run_script(tmp_path, python, 'env', 'nonsense')
  assert proc.returncode == 2
  assert "unknown stage 'nonsense'" in proc.stdout
  assert not (tmp_path / 'out' / 'env.json').exists()


def test_bench_rejects_bad_input_with_a_message(python):
  for flags, message in [(['--task', 'atari_nope'], 'Valid games: alien'),
                         (['--configs', 'tiny', '--bogus.key', '3'],
                          'did not match any config keys')]:
    proc = subprocess.run([python, '-m', 'harmony_v3.bench', *flags],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr
    assert 'Traceback' not in proc.stderr


def test_quick_profile_runs_on_a_cpu_and_records_every_status(
    tmp_path, python):
  # The CPU smoke mode of PROFILE=quick: the real bench and train stages on
  # the tiny preset, shortened; the study gets a 1 s limit, so it times out
  # and must still leave its JSON and its entry in stages.json.
  proc = _run_script(tmp_path, python, PROFILE='quick', CONFIGS='tiny',
                     STEPS='250', UPDATES='5', ROUNDS='1', EVAL_EPS='2',
                     LIMIT_ENV='120', LIMIT_BENCH='400', LIMIT_TRAIN='400',
                     LIMIT_STUDY='1')
  out = tmp_path / 'out'
  assert proc.returncode == 1, proc.stdout[-3000:]
  stages = json.loads((out / 'stages.json').read_text())
  assert stages['profile'] == 'quick'
  status = {s['stage']: s['status'] for s in stages['stages']}
  assert status == {'install': 'ok', 'env': 'ok', 'bench': 'ok',
                    'train': 'ok', 'study': 'timeout'}, proc.stdout[-3000:]
  bench = json.loads((out / 'bench.json').read_text())
  assert bench['harmony']['updates_per_s'] > 0
  assert bench['dreamerv3']['updates_per_s'] > 0
  assert bench['harmony_over_dreamerv3'] == (
      bench['harmony']['updates_per_s'] / bench['dreamerv3']['updates_per_s'])
  (train,) = json.loads((out / 'train.json').read_text())
  assert train['harmony'] and train['steps'] == 250
  assert train['frames_per_s'] > 0 and train['eval']['evaluations'] >= 1
  assert set(train['weights']) == {'reward', 'obs', 'dyn'}
  assert (out / 'train.md').read_text().strip()
  entry = json.loads((out / 'study.json').read_text())
  assert entry['status'] == 'timeout' and entry['limit_s'] == 1
  assert entry['seconds'] <= 15
  assert json.loads((out / 'env.json').read_text())['dreamerv3'] == '1.5.0'
  log = (out / 'gpu_check.log').read_text()
  assert 'stage study (time limit 1 s)' in log
  assert 'harmony_v3.study --quick' in log
  assert 'nothing to install' in log


def test_unknown_profile_is_refused(tmp_path, python):
  proc = _run_script(tmp_path, python, PROFILE='slow')
  assert proc.returncode == 2 and "unknown PROFILE 'slow'" in proc.stdout
