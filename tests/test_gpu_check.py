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
