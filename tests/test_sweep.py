"""Tests of the Atari 100K sweep runner with a fake trainer (no training)."""
from __future__ import annotations

import collections
import fcntl
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import pytest

from harmony_v3.sweep import cli, devices, launch, local, plan, reporting, slurm
from harmony_v3.envs.games import ATARI100K_GAMES
from trainer_runs import read_jsonl

REPO = pathlib.Path(__file__).resolve().parents[1]
PLAN_LINE = re.compile(r'^\s+(done|running|resume|new)\s+'
                       r'(harmony|dreamerv3)/([a-z_]+)/seed(\d+)$')

# The stand-in trainer (see its docstring): records each call in
# {logdir}/fake_runs.jsonl, saves on SIGTERM and exits 130 like the real one.
STAND_IN = REPO / 'tests' / 'stand_in_trainer.py'

NVIDIA_SMI_2 = '''#!/bin/sh
echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-aaaa)"
echo "GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-bbbb)"
'''


def stand_in(**options) -> str:
  """The stand-in trainer's command, with --fake-NAME VALUE options (for
  workers that do not see this process's later environment changes)."""
  flags = [f'--fake-{k.replace("_", "-")} {v}' for k, v in options.items()]
  return ' '.join([sys.executable, str(STAND_IN), *flags])


def wait_until(predicate, timeout, what, poll=0.1):
  """Return once `predicate()` holds; fail after `timeout` seconds."""
  deadline = time.time() + timeout
  while time.time() < deadline:
    if predicate():
      return
    time.sleep(poll)
  raise AssertionError(f'timed out after {timeout} s waiting for {what}')



def run_main(capsys, *argv):
  code = cli.main([str(a) for a in argv])
  out, err = capsys.readouterr()
  return code, out, err


def plan_lines(out):
  return [m.groups() for m in map(PLAN_LINE.match, out.splitlines()) if m]


def records(folder):
  """The fake trainer's calls in run folder `folder`."""
  return read_jsonl(folder / 'fake_runs.jsonl')


def flag(argv, name):
  return argv[argv.index(name) + 1]


def terminate(proc, timeout):
  """SIGTERM to `proc`; its output once it exits (killed after `timeout`)."""
  proc.send_signal(signal.SIGTERM)
  try:
    out, _ = proc.communicate(timeout=timeout)
  except subprocess.TimeoutExpired:
    proc.kill()
    raise
  return out


def max_overlap(intervals):
  events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in
                                                     intervals])
  now = most = 0
  for _, step in events:
    now += step
    most = max(most, now)
  return most


# Plan ------------------------------------------------------------------------


def test_dry_run_defaults_is_26_games_by_5_seeds_harmony(fake, capsys):
  logroot = fake / 'logs'
  code, out, _ = run_main(capsys, '--dry-run', '--logroot', logroot)
  assert code == 0
  lines = plan_lines(out)
  assert len(lines) == 130
  assert {m for _, m, _, _ in lines} == {'harmony'}
  games = collections.Counter(g for _, _, g, _ in lines)
  assert set(games) == set(ATARI100K_GAMES) and set(games.values()) == {5}
  assert {(g, int(s)) for _, _, g, s in lines} == {
      (g, s) for g in ATARI100K_GAMES for s in range(5)}
  assert '130 runs: 0 done, 0 resume, 130 new' in out
  assert not logroot.exists()  # A dry run creates nothing.


@pytest.mark.parametrize('argv, count, methods', [
    (['--both'], 260, {'harmony', 'dreamerv3'}),
    (['--baseline'], 130, {'dreamerv3'}),
    (['--games', 'pong', 'breakout', '--seeds', '0'], 2, {'harmony'}),
    (['--games', 'atari_pong', '--num-seeds', '3', '--both'], 6,
     {'harmony', 'dreamerv3'}),
])
def test_dry_run_counts(fake, capsys, argv, count, methods):
  code, out, _ = run_main(capsys, '--dry-run', '--logroot', fake / 'l', *argv)
  assert code == 0
  lines = plan_lines(out)
  assert len(lines) == count
  assert {m for _, m, _, _ in lines} == methods
  assert f'{count} runs: 0 done, 0 resume, {count} new' in out


@pytest.mark.parametrize('argv, expected', [
    (['--games', 'pong', 'pongg'], ["'pongg'", 'Valid games'] +
     list(ATARI100K_GAMES)),
    (['--dry-run', '--', '--seed', '3'], ['--seeds']),
    (['--dry-run', '--', '--harmony.enabled', 'False'], ['--baseline']),
    (['--dry-run', '--', '--run.no_such_key', '1'], ['run.no_such_key']),
    (['--dry-run', '--per-gpu', '2', '--mem-fraction', '0.6'], ['fit']),
    # Issue 19, round two: a variant the baseline half cannot apply, and
    # option values that are split as a shell would (were tracebacks).
    (['--dry-run', '--both', '--', '--harmony.mode', 'closed_form'],
     ['for the dreamerv3 runs', 'harmony.mode closed_form has no effect',
      'two sweeps']),
    (['--dry-run', '--engine', 'slurm', '--slurm-args', "--partition 'gpu"],
     ['--slurm-args', 'No closing quotation']),
    (['--dry-run', '--train-cmd', "'python"],
     ['--train-cmd', 'No closing quotation']),
])
def test_bad_options_exit_nonzero_with_a_clear_message(
    fake, capsys, argv, expected):
  code, out, err = run_main(capsys, '--logroot', fake / 'l', *argv)
  assert code == 2
  for text in expected:
    assert text in err
  assert not plan_lines(out)


def test_unsplittable_train_command_in_the_environment_is_one_message(
    fake, capsys, monkeypatch):
  monkeypatch.setenv('HARMONY_TRAIN_CMD', "python -m 'harmony_v3.train")
  code, out, err = run_main(capsys, '--logroot', fake / 'l', '--dry-run')
  assert code == 2 and not plan_lines(out)
  assert '$HARMONY_TRAIN_CMD' in err and 'No closing quotation' in err


def test_bad_logroot_and_plan_file_are_one_message(fake, capsys):
  """Issue 19, round two: a --logroot below a file, and a plan file that is
  JSON but not a plan, were tracebacks."""
  blocker = fake / 'a_file'
  blocker.write_text('x')
  for logroot in (blocker, blocker / 'logs'):
    code, out, err = run_main(capsys, '--dry-run', '--logroot', logroot,
                              '--games', 'pong', '--seeds', '0')
    assert code == 2 and not plan_lines(out)
    assert f'{blocker} is a file, not a folder' in err
    assert 'Traceback' not in err
  bad_plan = fake / 'plan-1.json'
  bad_plan.write_text('[1, 2]')
  code, out, err = run_main(capsys, '--plan', bad_plan, '--slice', '0')
  assert code == 2 and f'cannot read the plan file {bad_plan}' in err


def test_dry_run_shows_done_resume_new(fake, capsys):
  logroot = fake / 'logs'
  (logroot / 'harmony/pong/seed0').mkdir(parents=True)
  (logroot / 'harmony/pong/seed0/done.json').write_text('{}')
  (logroot / 'harmony/breakout/seed0').mkdir(parents=True)
  (logroot / 'harmony/breakout/seed0/checkpoint.ckpt').write_text('x')
  (logroot / 'harmony/boxing/seed0').mkdir(parents=True)
  (logroot / 'harmony/boxing/seed0/config.yaml').write_text('seed: 0')
  code, out, _ = run_main(capsys, '--dry-run', '--logroot', logroot)
  assert code == 0
  status = {(g, int(s)): st for st, _, g, s in plan_lines(out)}
  assert status[('pong', 0)] == 'done'
  assert status[('breakout', 0)] == 'resume'
  assert status[('boxing', 0)] == 'new'  # Started but never checkpointed.
  assert status[('pong', 1)] == 'new'
  assert '130 runs: 1 done, 1 resume, 128 new' in out


# Running ---------------------------------------------------------------------


def test_sweep_skips_done_runs_and_resumes_started_ones(fake, capsys):
  logroot = fake / 'logs'
  pong, breakout, boxing = (logroot / f'harmony/{g}/seed0'
                            for g in ('pong', 'breakout', 'boxing'))
  pong.mkdir(parents=True)
  (pong / 'done.json').write_text('{}')
  breakout.mkdir(parents=True)
  (breakout / 'checkpoint.ckpt').write_text('x')
  argv = ['--cpu', '--games', 'pong', 'breakout', 'boxing', '--seeds', '0',
          '--logroot', logroot, '--no-report']
  code, out, _ = run_main(capsys, *argv)
  assert code == 0, out
  assert records(pong) == []  # Skipped.
  for folder in (breakout, boxing):
    [call] = records(folder)
    assert flag(call['argv'], '--logdir') == str(folder)
    assert (folder / 'done.json').exists()
    assert 'fake training' in (folder / 'train.log').read_text()
  assert 'resumed harmony/breakout/seed0' in out
  assert 'started harmony/boxing/seed0' in out
  assert 'skipped (already done): 1' in out
  # A second sweep has nothing left to do and starts nothing.
  code, out, _ = run_main(capsys, *argv)
  assert code == 0
  assert '3 runs: 3 done, 0 resume, 0 new' in out
  assert [len(records(f)) for f in (pong, breakout, boxing)] == [0, 1, 1]


def test_one_failed_run_does_not_stop_the_others(fake, capsys, monkeypatch):
  monkeypatch.setenv('FAKE_FAIL_GAME', 'breakout')
  logroot = fake / 'logs'
  code, out, _ = run_main(
      capsys, '--cpu', '--cpu-workers', '2', '--games', 'pong', 'breakout',
      'boxing', '--seeds', '0', '1', '--logroot', logroot, '--no-report')
  assert code == 1
  for game in ('pong', 'boxing'):
    for seed in (0, 1):
      assert (logroot / f'harmony/{game}/seed{seed}/done.json').exists()
  for seed in (0, 1):
    log = logroot / f'harmony/breakout/seed{seed}/train.log'
    assert 'fake crash' in log.read_text()
    assert f'FAILED harmony/breakout/seed{seed} (exit 1)' in out
    assert f'harmony/breakout/seed{seed}: exit 1, log: {log}' in out
  assert 'finished now: 4' in out and 'failed: 2' in out
  # --dry-run reads each failure from the run's train.log.
  code, out, _ = run_main(capsys, '--dry-run', '--games', 'breakout',
                          '--seeds', '0', '--logroot', logroot)
  log = logroot / 'harmony/breakout/seed0/train.log'
  assert (f'  new     harmony/breakout/seed0  (last attempt failed: exit 1; '
          f'log: {log})') in out


def test_runs_locked_by_another_process_are_left_alone(fake, capsys):
  logroot = fake / 'logs'
  pong = logroot / 'harmony/pong/seed0'
  pong.mkdir(parents=True)
  with open(pong / plan.LOCK_NAME, 'w') as held:
    fcntl.flock(held, fcntl.LOCK_EX)  # As a trainer of another sweep does.
    code, out, _ = run_main(capsys, '--dry-run', '--games', 'pong', 'boxing',
                            '--seeds', '0', '--logroot', logroot)
    assert code == 0
    assert 'running elsewhere' in out and 'running harmony/pong/seed0' in out
    code, out, _ = run_main(capsys, '--cpu', '--games', 'pong', 'boxing',
                            '--seeds', '0', '--logroot', logroot,
                            '--no-report')
  assert code == 0, out
  assert records(pong) == []
  assert len(records(logroot / 'harmony/boxing/seed0')) == 1
  assert 'busy (trained by another process, left alone): 1' in out
  # The finished trainer released its lock.
  assert not plan.is_locked(logroot / 'harmony/boxing/seed0')


def test_a_trainer_started_by_hand_counts_as_running(tmp_path):
  """A folder whose trainer lock (.trainer.lock) is held is left alone."""
  from harmony_v3.run import run_lock
  folder = tmp_path / 'harmony/pong/seed0'
  folder.mkdir(parents=True)
  (folder / 'checkpoint.ckpt').write_bytes(b'')
  assert plan.run_status(folder) == 'resume'
  fd = run_lock.acquire(folder)
  try:
    assert plan.run_status(folder) == 'running'
  finally:
    run_lock.release(fd)
  assert plan.run_status(folder) == 'resume'


def test_exit_0_without_done_json_is_a_failure(fake, capsys, monkeypatch):
  monkeypatch.setenv('FAKE_NO_DONE_GAME', 'pong')
  code, out, _ = run_main(capsys, '--cpu', '--games', 'pong', 'boxing',
                          '--seeds', '0', '--logroot', fake / 'l',
                          '--no-report')
  assert code == 1
  assert 'FAILED harmony/pong/seed0 (exit 0, no done.json)' in out
  assert 'finished harmony/boxing/seed0' in out


def test_gpu_scheduling_two_gpus_two_runs_each(fake, capsys, monkeypatch):
  smi = fake / 'nvidia-smi'
  smi.write_text(NVIDIA_SMI_2)
  smi.chmod(0o755)
  monkeypatch.setenv(devices.NVIDIA_SMI_ENV, str(smi))
  monkeypatch.setenv('FAKE_SLEEP', '2.0')  # Long enough to overlap under load.
  monkeypatch.setenv('XLA_PYTHON_CLIENT_MEM_FRACTION', '0.99')  # Replaced.
  logroot = fake / 'logs'
  games = ['pong', 'breakout', 'boxing', 'hero']
  code, out, _ = run_main(
      capsys, '--per-gpu', '2', '--no-gpu-check', '--games', *games,
      '--seeds', '0', '1', '--logroot', logroot, '--no-report')
  assert code == 0, out
  calls = [c for g in games for s in (0, 1)
           for c in records(logroot / f'harmony/{g}/seed{s}')]
  assert len(calls) == 8
  for call in calls:
    assert call['cuda'] in ('0', '1')
    assert flag(call['argv'], '--jax.mem_fraction') == '0.45'
    assert call['xla_mem'] == '0.45'
    assert flag(call['argv'], '--run.compilation_cache') == str(
        logroot / '.jax_cache')
    assert '--jax.platform' not in call['argv']
  spans = [(c['start'], c['end']) for c in calls]
  assert max_overlap(spans) == 4  # All 4 slots used, never more.
  for gpu in ('0', '1'):
    on_gpu = [(c['start'], c['end']) for c in calls if c['cuda'] == gpu]
    assert on_gpu and max_overlap(on_gpu) <= 2
  assert 'on GPU 0' in out and 'on GPU 1' in out


def test_cpu_mode_workers_and_pass_through_flags(fake, capsys, monkeypatch):
  logroot = fake / 'logs'
  monkeypatch.setenv('FAKE_SLEEP', '0.5')
  code, out, _ = run_main(
      capsys, '--cpu', '--cpu-workers', '2', '--baseline', '--games', 'pong',
      'breakout', 'boxing', '--seeds', '3', '--configs', 'tiny',
      '--logroot', logroot, '--no-report', '--', '--run.log_every', '7',
      '--run.compilation_cache', fake / 'my_cache')
  assert code == 0, out
  calls = [c for g in ('pong', 'breakout', 'boxing')
           for c in records(logroot / f'dreamerv3/{g}/seed3')]
  assert len(calls) == 3
  for call in calls:
    argv = call['argv']
    assert call['cuda'] == ''
    assert flag(argv, '--jax.platform') == 'cpu'
    assert flag(argv, '--harmony.enabled') == 'False'
    assert flag(argv, '--configs') == 'tiny'
    assert flag(argv, '--run.log_every') == '7'
    # The user's cache replaces the sweep's own, and comes once.
    assert argv.count('--run.compilation_cache') == 1
    assert flag(argv, '--run.compilation_cache') == str(fake / 'my_cache')
    assert flag(argv, '--seed') == '3'
    assert '--jax.mem_fraction' not in argv
  assert max_overlap([(c['start'], c['end']) for c in calls]) == 2


@pytest.mark.parametrize('setup', ['no-nvidia-smi', 'failing-nvidia-smi',
                                   'empty-cuda-visible-devices'])
def test_no_gpu_without_cpu_flag_exits_nonzero(fake, capsys, monkeypatch,
                                               setup):
  if setup == 'failing-nvidia-smi':
    smi = fake / 'nvidia-smi'
    smi.write_text('#!/bin/sh\necho "NVIDIA-SMI has failed" >&2\nexit 9\n')
    smi.chmod(0o755)
    monkeypatch.setenv(devices.NVIDIA_SMI_ENV, str(smi))
  elif setup == 'empty-cuda-visible-devices':
    monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
  logroot = fake / 'logs'
  code, out, err = run_main(capsys, '--games', 'pong', '--seeds', '0',
                            '--logroot', logroot, '--no-report')
  assert code == 2
  assert 'no GPU found' in err and '--cpu' in err
  assert not logroot.exists()


def test_parse_nvidia_smi_gpus_and_mig():
  text = ('GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1111)\n'
          'GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-2222)\n'
          '  MIG 3g.20gb     Device  0: (UUID: MIG-aaaa)\n'
          '  MIG 3g.20gb     Device  1: (UUID: MIG-bbbb)\n'
          'GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-3333)\n')
  assert devices.parse_nvidia_smi(text) == ['0', 'MIG-aaaa', 'MIG-bbbb', '2']
  assert devices.parse_nvidia_smi('No devices were found\n') == []


@pytest.mark.parametrize('value, gpus', [
    ('2,3', ['2', '3']), ('', []), ('-1', []), ('0,-1,1', ['0']),
    ('GPU-1111', ['GPU-1111'])])
def test_detect_gpus_honours_cuda_visible_devices(value, gpus):
  found, source = devices.detect_gpus({'CUDA_VISIBLE_DEVICES': value,
                                     devices.NVIDIA_SMI_ENV: '/nonexistent'})
  assert found == gpus
  assert 'CUDA_VISIBLE_DEVICES' in source


def test_mem_fraction_default_shares_the_gpu():
  assert devices.default_mem_fraction(1) == 0.9
  assert devices.default_mem_fraction(2) == 0.45
  assert devices.default_mem_fraction(4) * 4 <= 0.9


def test_score_report_called_and_its_failure_tolerated(fake, capsys,
                                                       monkeypatch):
  scores = fake / 'fake_scores.py'
  scores.write_text(
      'import json, sys\n'
      f'json.dump(sys.argv[1:], open({str(fake / "scores_argv.json")!r}, '
      '"w"))\nsys.exit(3)\n')
  monkeypatch.setenv(reporting.SCORES_CMD_ENV, f'{sys.executable} {scores}')
  logroot = fake / 'logs'
  code, out, _ = run_main(capsys, '--cpu', '--games', 'pong', '--seeds', '0',
                          '--logroot', logroot)
  assert code == 0
  argv = json.loads((fake / 'scores_argv.json').read_text())
  assert argv == [str(logroot), '--out', str(logroot / 'report'), '--plots']
  assert 'score table failed (exit 3)' in out


def test_sigterm_stops_runs_with_checkpoints_and_exits_130(fake):
  """Through the shell wrapper: SIGTERM reaches each run once, the sweep
  waits for their checkpoints and exits 130 without starting more."""
  logroot = fake / 'logs'
  env = dict(os.environ, FAKE_SLEEP='60', PYTHON=sys.executable)
  proc = subprocess.Popen(
      [str(REPO / 'run_atari100k.sh'), '--cpu', '--cpu-workers', '2',
       '--games', 'pong', 'breakout', 'boxing', '--seeds', '0',
       '--logroot', str(logroot), '--no-report'],
      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  logs = [logroot / f'harmony/{g}/seed0/train.log' for g in ('pong',
                                                              'breakout')]
  deadline = time.time() + 30
  while time.time() < deadline and not all(
      p.exists() and 'fake training' in p.read_text() for p in logs):
    time.sleep(0.1)
  assert all(plan.is_locked(p.parent) for p in logs)  # Held by trainers.
  out = terminate(proc, timeout=20)
  assert proc.returncode == 130, out
  for game in ('pong', 'breakout'):
    folder = logroot / f'harmony/{game}/seed0'
    assert (folder / 'checkpoint.ckpt').read_text() == 'saved'
    assert not (folder / 'done.json').exists()
  assert not (logroot / 'harmony/boxing/seed0').exists()
  assert 'not started: 1' in out and 'stopped (rerun' in out


# Engines without a scheduler ---------------------------------------------------


def test_slurm_dry_run_shows_plan_and_script_and_writes_nothing(fake, capsys):
  logroot = fake / 'logs'
  code, out, _ = run_main(
      capsys, '--engine', 'slurm', '--dry-run', '--per-gpu', '2', '--games',
      'pong', 'breakout', 'boxing', '--seeds', '0', '--logroot', logroot,
      '--slurm-args', '--partition gpu --time 8:00:00',
      '--slurm-max-running', '2', '--', '--run.log_every', '60')
  assert code == 0
  assert len(plan_lines(out)) == 3
  assert 'Engine: SLURM job array of 2 element(s)' in out
  assert (f'Would submit: sbatch --array=0-1%2 --partition gpu --time '
          f'8:00:00 {logroot}/slurm/sweep.sbatch') in out
  for line in ('#SBATCH --gres=gpu:1', '#SBATCH --signal=B:TERM@300',
               '#SBATCH --requeue', '#SBATCH --cpus-per-task=4',
               f'--plan {logroot}/slurm/plan-1.json --slice '
               '"$SLURM_ARRAY_TASK_ID"'):
    assert line in out
  assert not logroot.exists()


FAKE_SBATCH = """#!{python}
import json, os, sys
calls = os.environ['FAKE_SBATCH_CALLS']
with open(calls, 'a') as f:
  f.write(json.dumps(sys.argv[1:]) + '\\n')
print(sum(1 for _ in open(calls)) + 100)
"""


def test_slurm_submits_a_score_table_job_after_the_array(fake, capsys,
                                                         monkeypatch):
  """Issue 19, round two: a SLURM sweep ends with the score table, as the
  local one does: a job that waits for the array (afterany) runs the
  report into <logroot>/report/ (not with --no-report)."""
  sbatch = fake / 'sbatch'
  sbatch.write_text(FAKE_SBATCH.format(python=sys.executable))
  sbatch.chmod(0o755)
  monkeypatch.setattr(slurm, 'SBATCH', str(sbatch))
  monkeypatch.setenv('FAKE_SBATCH_CALLS', str(fake / 'sbatch.jsonl'))
  logroot = fake / 'logs'
  argv = ['--engine', 'slurm', '--per-gpu', '1', '--games', 'pong',
          '--seeds', '0', '--logroot', logroot, '--slurm-args', '--time 5']
  code, out, _ = run_main(capsys, '--dry-run', *argv)
  assert code == 0 and 'Then: ' in out
  assert f'--dependency=afterany:<array job> {logroot}/slurm/report.sbatch' \
      in out
  code, out, _ = run_main(capsys, *argv)
  assert code == 0, out
  calls = [json.loads(line) for line in
           (fake / 'sbatch.jsonl').read_text().splitlines()]
  assert calls[1] == ['--parsable', '--dependency=afterany:101', '--time',
                      '5', str(logroot / 'slurm' / 'report.sbatch')]
  assert 'Submitted array job 101' in out
  assert 'Submitted the score-table job 102' in out
  script = (logroot / 'slurm' / 'report.sbatch').read_text()
  assert f'--plan {logroot}/slurm/plan-1.json --report' in script
  assert '--gres' not in script and '--requeue' not in script
  assert '#SBATCH --cpus-per-task=1' in script
  # --no-report: the array alone.
  (fake / 'sbatch.jsonl').unlink()
  code, out, _ = run_main(capsys, *argv, '--no-report')
  assert code == 0 and 'score-table job' not in out
  assert len((fake / 'sbatch.jsonl').read_text().splitlines()) == 1


def test_slurm_report_job_writes_the_score_table(fake, capsys, monkeypatch):
  """What the report job runs, without SLURM: --plan FILE --report."""
  scores = fake / 'fake_scores.py'
  scores.write_text(
      'import json, os, sys\n'
      f'json.dump(sys.argv[1:], open({str(fake / "scores_argv.json")!r}, '
      '"w"))\nsys.exit(int(os.environ.get("FAKE_SCORES_EXIT", 0)))\n')
  monkeypatch.setenv(reporting.SCORES_CMD_ENV, f'{sys.executable} {scores}')
  logroot = fake / 'logs'
  the_plan = plan.Plan(logroot, ['pong', 'breakout'], [0], ['harmony'],
                       ['atari100k'], [], launch.train_command(),
                       per_device=1, gpu_check=False)
  path = logroot / 'slurm' / 'plan-1.json'
  plan.write_plan_file(path, the_plan, the_plan.runs())
  code, out, _ = run_main(capsys, '--plan', path, '--report')
  assert code == 0 and 'No finished runs: no score table.' in out
  assert not (fake / 'scores_argv.json').exists()
  (logroot / 'harmony/pong/seed0').mkdir(parents=True)
  (logroot / 'harmony/pong/seed0/done.json').write_text('{}')
  code, out, _ = run_main(capsys, '--plan', path, '--report')
  assert code == 0, out
  argv = json.loads((fake / 'scores_argv.json').read_text())
  assert argv == [str(logroot), '--out', str(logroot / 'report'), '--plots']
  monkeypatch.setenv('FAKE_SCORES_EXIT', '2')
  code, out, _ = run_main(capsys, '--plan', path, '--report')
  assert code == 1 and 'score table failed (exit 2)' in out


def test_ray_dry_run_needs_no_ray(fake, capsys, monkeypatch):
  monkeypatch.setitem(sys.modules, 'ray', None)  # As if not installed.
  logroot = fake / 'logs'
  argv = ['--engine', 'ray', '--per-gpu', '2', '--games', 'pong',
          '--seeds', '0', '1', '--logroot', logroot]
  code, out, _ = run_main(capsys, '--dry-run', *argv)
  assert code == 0 and len(plan_lines(out)) == 2
  assert 'Engine: Ray' in out and not logroot.exists()
  code, out, err = run_main(capsys, *argv)
  assert code == 2 and "pip install 'harmony_v3[ray]'" in err


@pytest.mark.parametrize('argv, expected', [
    (['--slurm-args', '--time 1'], 'an option of --engine slurm'),
    (['--engine', 'slurm', '--ray-address', 'auto'], 'of --engine ray'),
    (['--engine', 'slurm', '--gpus', '0'], 'of --engine local'),
    (['--slice', '0'], 'goes with --plan'),
])
def test_engine_options_belong_to_their_engine(fake, capsys, argv, expected):
  code, out, err = run_main(capsys, '--dry-run', '--logroot', fake / 'l',
                            *argv)
  assert code == 2 and expected in err


def test_slurm_submit_without_sbatch_is_a_clear_error(fake, capsys,
                                                      monkeypatch):
  monkeypatch.setattr(slurm, 'SBATCH', 'no-such-sbatch')
  logroot = fake / 'logs'
  code, out, err = run_main(capsys, '--engine', 'slurm', '--per-gpu', '1',
                            '--games', 'pong', '--seeds', '0', '--logroot',
                            logroot)
  assert code == 2 and 'no no-such-sbatch command' in err
  assert not logroot.exists()


def test_slurm_element_trains_its_slice_on_the_gpu_slurm_gave_it(
    fake, capsys, monkeypatch):
  """What each array element runs, without SLURM: --plan FILE --slice I."""
  logroot = fake / 'logs'
  the_plan = plan.Plan(logroot, ['pong', 'breakout', 'boxing'], [0, 1],
                       ['harmony'], ['atari100k'], [],
                       launch.train_command(), per_device=2,
                       gpu_check=False)
  runs = the_plan.runs()[:5]
  path = logroot / 'slurm' / 'plan-1.json'
  plan.write_plan_file(path, the_plan, runs)
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '3')
  code, out, _ = run_main(capsys, '--plan', path, '--slice', '1')
  assert code == 0, out
  trained = [r for r in runs if records(r.folder)]
  assert [r.name for r in trained] == [r.name for r in runs[2:4]]
  for run in trained:
    [call] = records(run.folder)
    assert call['cuda'] == '3' and call['xla_mem'] == '0.45'
  code, out, _ = run_main(capsys, '--plan', path, '--slice', '3')
  assert code == 0 and 'Nothing to do' in out
  monkeypatch.setenv('CUDA_VISIBLE_DEVICES', '')
  code, out, err = run_main(capsys, '--plan', path, '--slice', '2')
  assert code == 2 and 'SLURM gave this job no GPU' in err
  code, out, err = run_main(capsys, '--plan', path)
  assert code == 2 and 'exactly one of --slice I, --measure or --report' in err


def test_filesystem_without_locks_is_a_clear_error(fake, capsys,
                                                   monkeypatch):
  """As on Lustre mounted without flock: flock fails with ENOSYS, which
  must not read as 'another process holds it' (every run skipped)."""
  def no_flock(fd, operation):
    raise OSError(38, 'Function not implemented')
  monkeypatch.setattr(plan.fcntl, 'flock', no_flock)
  logroot = fake / 'logs'
  code, out, err = run_main(capsys, '--cpu', '--games', 'pong', '--seeds',
                            '0', '--logroot', logroot, '--no-report')
  assert code == 2
  assert 'does not support file locks' in err and 'cluster.md' in err
  assert records(logroot / 'harmony/pong/seed0') == []
