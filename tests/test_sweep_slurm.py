"""The SLURM engine with real SLURM: a single-node cluster on this machine
(scripts/slurm_local_cluster.sh: slurmctld, slurmd and munge from Debian,
4 fake GPUs as device nodes), real job arrays of the sweep, the stand-in
trainer (tests/stand_in_trainer.py) and one real tiny-preset run.

Run with `make test-slurm` (it sets HARMONY_SLURM_TESTS=1); needs root and
apt-get the first time, and skips with the reason where they are missing.
The cluster is started if it is not running, and stopped again if these
tests started it.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from harmony_v3.sweep import cli, plan, slurm
from test_calibrate import FAKE_BENCH
from test_sweep import flag, max_overlap, records, stand_in, wait_until

REPO = pathlib.Path(__file__).resolve().parents[1]
CLUSTER = REPO / 'scripts' / 'slurm_local_cluster.sh'
GPUS = 4

pytestmark = pytest.mark.skipif(
    not os.environ.get('HARMONY_SLURM_TESTS'),
    reason='real SLURM tests: run `make test-slurm`')


@pytest.fixture(scope='module', autouse=True)
def slurm_cluster():
  """A running single-node cluster (started here if need be), SLURM_CONF
  set for sbatch and its jobs; every job of these tests cancelled after."""
  env = dict(os.environ, HARMONY_SLURM_GPUS=str(GPUS),
             HARMONY_SLURM_CPUS='8')
  was_up = subprocess.run([str(CLUSTER), 'status'], env=env,
                          capture_output=True).returncode == 0
  result = subprocess.run([str(CLUSTER), 'start'], env=env,
                          capture_output=True, text=True, timeout=900)
  if result.returncode == 3:
    pytest.skip(result.stderr.strip())
  assert result.returncode == 0, result.stdout + result.stderr
  conf = subprocess.run([str(CLUSTER), 'env'], env=env, capture_output=True,
                        text=True).stdout.strip().split('=', 1)[1]
  previous = os.environ.get('SLURM_CONF')
  os.environ['SLURM_CONF'] = conf
  yield
  subprocess.run(['scancel', '--name', slurm.JOB_NAME], capture_output=True)
  subprocess.run(['scancel', '--name', f'{slurm.JOB_NAME}-measure'],
                 capture_output=True)
  subprocess.run(['scancel', '--name', f'{slurm.JOB_NAME}-report'],
                 capture_output=True)
  if not was_up:
    subprocess.run([str(CLUSTER), 'stop'], env=env, capture_output=True)
  if previous is None:
    os.environ.pop('SLURM_CONF', None)
  else:
    os.environ['SLURM_CONF'] = previous


def submit(capsys, logroot, games, seeds, *more, **options):
  """`--engine slurm` in this process; (exit status, output, job id).

  With stand-in options, the trainer is the stand-in and no score-table
  job is submitted (its folders hold no run to score)."""
  train = (['--train-cmd', stand_in(**options), '--no-report'] if options
           else [])
  code = cli.main(['--engine', 'slurm', '--logroot', str(logroot),
                   '--games', *games, '--seeds', *map(str, seeds),
                   '--no-gpu-check', *train, *map(str, more)])
  out, err = capsys.readouterr()
  job = re.search(r'Submitted array job (\d+)', out)
  return code, out + err, job.group(1) if job else None


def states(job):
  """The JobState of each record of the job (one per element, pending
  elements of an array may share one), from slurmctld."""
  result = subprocess.run(['scontrol', '-o', 'show', 'job', job],
                          capture_output=True, text=True)
  assert result.returncode == 0, result.stderr
  return re.findall(r'\bJobState=(\S+)', result.stdout)


def wait_done(job, timeout=120):
  """Wait until every element of `job` has ended."""
  ended = ('COMPLETED', 'FAILED', 'CANCELLED', 'TIMEOUT', 'NODE_FAIL',
           'OUT_OF_MEMORY', 'PREEMPTED', 'BOOT_FAIL', 'DEADLINE')
  wait_until(lambda: all(s in ended for s in states(job)), timeout,
             f'job {job} to end', poll=0.2)


def job_field(job, field):
  text = subprocess.run(['scontrol', 'show', 'job', job], capture_output=True,
                        text=True).stdout
  return re.findall(rf'\b{field}=(\S+)', text)


def started(folder, times=1):
  log = folder / 'train.log'
  return log.exists() and log.read_text().count('fake training') >= times


def folders(logroot, games, seeds):
  return [logroot / f'harmony/{g}/seed{s}' for s in seeds for g in games]


def test_array_gives_each_element_one_gpu_for_its_k_runs(capsys, tmp_path):
  logroot = tmp_path / 'logs'
  games, seeds = ['pong', 'breakout', 'boxing', 'hero'], [0, 1]
  template = tmp_path / 'header.sbatch'
  template.write_text('#!/bin/bash\n#SBATCH --comment=from-template\n'
                      'export STAND_IN_TEMPLATE_VAR=set-up-ran\n')
  code, out, job = submit(
      capsys, logroot, games, seeds, '--per-gpu', '2', '--slurm-template',
      template, '--slurm-args', '--cpus-per-task 1 --time 5', sleep=2)
  assert code == 0 and job, out
  assert 'Engine: SLURM job array of 4 element(s)' in out
  assert f'scancel {job}' in out and f'squeue -j {job}' in out
  script = (logroot / 'slurm' / 'sweep.sbatch').read_text()
  for line in ('#SBATCH --gres=gpu:1', '#SBATCH --signal=B:TERM@300',
               '#SBATCH --requeue', '#SBATCH --comment=from-template'):
    assert line in script
  assert job_field(job, 'TimeLimit')[0] == '00:05:00'  # --slurm-args.
  wait_done(job)
  calls = [c for f in folders(logroot, games, seeds) for c in records(f)]
  assert len(calls) == 8
  by_element = {}
  for call in calls:
    assert call['cuda'] in [str(g) for g in range(GPUS)]
    assert flag(call['argv'], '--jax.mem_fraction') == '0.45'
    assert call['xla_mem'] == '0.45'
    assert call['template_var'] == 'set-up-ran'
    by_element.setdefault(call['slurm_job'], []).append(call)
  assert len(by_element) == 4
  for element in by_element.values():  # K = 2 runs share the element's GPU.
    assert len(element) == 2 and len({c['cuda'] for c in element}) == 1
  for gpu in {c['cuda'] for c in calls}:
    assert max_overlap([(c['start'], c['end']) for c in calls
                        if c['cuda'] == gpu]) <= 2
  assert max_overlap([(c['start'], c['end']) for c in calls]) > 2
  for folder in folders(logroot, games, seeds):
    assert (folder / 'done.json').exists()
  # Resubmitting is the retry: nothing is left to do.
  code, out, job = submit(capsys, logroot, games, seeds, '--per-gpu', '2')
  assert code == 0 and job is None
  assert '8 runs: 8 done' in out and 'Nothing to submit' in out


def test_scancel_saves_each_run_once_and_resubmitting_resumes(capsys,
                                                              tmp_path):
  logroot = tmp_path / 'logs'
  games, seeds = ['pong', 'breakout'], [0, 1]
  runs = folders(logroot, games, seeds)
  code, out, job = submit(capsys, logroot, games, seeds, '--per-gpu', '2',
                          sleep=120, save_seconds=0.5)
  assert code == 0 and job, out
  wait_until(lambda: all(started(f) for f in runs), 60, 'the runs to start',
             poll=0.2)
  subprocess.run(['scancel', job], check=True)
  wait_done(job, 60)
  for folder in runs:
    [call] = records(folder)
    # scancel signals the trainer, and the sweep forwards one more SIGTERM
    # while it saves: one clean save all the same.
    assert call['signals'] == 2 and call['saves'] == 1
    assert (folder / 'checkpoint.ckpt').read_text() == 'saved'
    assert not (folder / 'done.json').exists()
    assert not plan.is_locked(folder)
  logs = ''.join(p.read_text() for p in (logroot / 'slurm').glob('*.out'))
  assert logs.count('Interrupted: asking 2 running run(s)') == 2
  code, out, _ = submit(capsys, logroot, games, seeds, '--per-gpu', '2',
                        '--dry-run')
  assert code == 0 and '4 runs: 0 done, 4 resume, 0 new' in out
  code, out, job = submit(capsys, logroot, games, seeds, '--per-gpu', '2',
                          sleep=0)
  assert code == 0 and job, out
  wait_done(job)
  for folder in runs:
    assert (folder / 'done.json').exists()
    assert [c['resumed'] for c in records(folder)] == [False, True]


def test_failure_reported_and_requeued_element_resumes(capsys, tmp_path):
  logroot = tmp_path / 'logs'
  games, seeds = ['pong', 'boxing'], [0]
  pong, boxing = folders(logroot, games, seeds)
  code, out, job = submit(capsys, logroot, games, seeds, '--per-gpu', '1',
                          sleep=5, save_every=0.3, fail_game='boxing')
  assert code == 0 and job, out
  wait_until(lambda: started(pong) and (pong / 'checkpoint.ckpt').exists(),
             60, 'pong to start and save', poll=0.2)
  subprocess.run(['scontrol', 'requeue', f'{job}_0'], check=True)
  # A requeued job waits about two minutes before it may start again.
  wait_until(lambda: states(f'{job}_0') == ['PENDING'], 30, 'the requeue',
             poll=0.2)
  subprocess.run(['scontrol', 'update', f'JobId={job}_0', 'StartTime=now'],
                 check=True)
  wait_done(job, 120)
  first, second = records(pong)
  assert first['saves'] == 1 and not first['resumed']
  assert second['resumed'] and (pong / 'done.json').exists()
  element_log = (logroot / 'slurm' / f'{job}_0.out').read_text()
  assert '(requeued 1 time(s))' in element_log
  # The failure: in the element's log and its exit status, and --dry-run
  # reads it from the run folder.
  failed_log = (logroot / 'slurm' / f'{job}_1.out').read_text()
  assert 'FAILED harmony/boxing/seed0 (exit 1)' in failed_log
  assert job_field(f'{job}_1', 'ExitCode')[0] == '1:0'
  code, out, _ = submit(capsys, logroot, games, seeds, '--dry-run')
  assert re.search(r'resume\s+harmony/boxing/seed0\s+\(last attempt failed: '
                   r'exit 1; log: .*train.log\)', out), out


def test_measuring_job_settles_runs_per_gpu_before_the_array(
    capsys, tmp_path, monkeypatch):
  bench = tmp_path / 'fake_bench.py'
  bench.write_text(FAKE_BENCH)
  monkeypatch.setenv('HARMONY_BENCH_CMD', f'{sys.executable} {bench}')
  monkeypatch.setenv('FAKE_BENCH_CALLS', str(tmp_path / 'bench.jsonl'))
  monkeypatch.setenv('FAKE_BENCH_RATES', '1:18,2:30,4:41,8:42')
  logroot = tmp_path / 'logs'
  games = ['pong', 'breakout', 'boxing', 'hero']
  code, out, job = submit(capsys, logroot, games, [0], '--slurm-args',
                          '--cpus-per-task 1', sleep=1)
  assert code == 0 and job, out
  assert 'Submitted the measuring job' in out
  assert 'array of 4 element(s) sized for K = 1' in out
  wait_done(job, 120)
  [call] = [json.loads(l) for l in (tmp_path / 'bench.jsonl').read_text()
            .splitlines()]
  assert call['cuda'] in [str(g) for g in range(GPUS)]
  calls = [c for f in folders(logroot, games, [0]) for c in records(f)]
  assert len(calls) == 4
  assert len({c['slurm_job'] for c in calls}) == 1  # K = 4: one element.
  assert {flag(c['argv'], '--jax.mem_fraction') for c in calls} == {'0.225'}
  logs = [(logroot / 'slurm' / f'{job}_{i}.out').read_text()
          for i in range(4)]
  assert all('Nothing to do' in text for text in logs[1:])
  assert json.loads((logroot / 'per_gpu.json').read_text())['per_gpu'] == 4


def test_real_tiny_run_through_slurm(capsys, tmp_path, monkeypatch):
  monkeypatch.delenv('HARMONY_TRAIN_CMD', raising=False)
  logroot = tmp_path / 'logs'
  code, out, job = submit(
      capsys, logroot, ['pong'], [0], '--cpu', '--configs', 'tiny', '--',
      '--run.steps', '100', '--run.eval_every', '100', '--run.eval_eps', '1',
      '--run.eval_envs', '1')
  assert code == 0 and job, out
  assert '--gres' not in (logroot / 'slurm' / 'sweep.sbatch').read_text()
  wait_done(job, 600)
  folder = logroot / 'harmony/pong/seed0'
  done = json.loads((folder / 'done.json').read_text())
  assert done['steps'] == 100
  element_log = (logroot / 'slurm' / f'{job}_0.out').read_text()
  assert 'finished harmony/pong/seed0' in element_log
  assert '=== sweep: exit 0' in (folder / 'train.log').read_text()
  # Then the score-table job, as the local engine ends (issue 19, round
  # two): once the array has ended, <logroot>/report/.
  report_job = re.search(r'Submitted the score-table job (\d+)', out)
  assert report_job, out
  wait_done(report_job.group(1), 300)
  report_log = (logroot / 'slurm' / f'report-{report_job.group(1)}.out'
                ).read_text()
  assert 'score table after the array of plan-1.json' in report_log
  assert 'score table failed' not in report_log, report_log
  table = (logroot / 'report' / 'atari100k_scores.md').read_text()
  assert '| Pong |' in table and 'pong seed 0: incomplete' in table
  for name in ('atari100k_scores.csv', 'atari100k_scores.tex',
               'learning_curves.png'):
    assert (logroot / 'report' / name).stat().st_size > 0
  assert job_field(report_job.group(1), 'ExitCode')[0] == '0:0'
