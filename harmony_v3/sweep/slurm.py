"""The SLURM engine: the sweep as one job array, one GPU per element.

  ./run_atari100k.sh --engine slurm --per-gpu 2 \\
      --slurm-args "--partition gpu --account myproj --time 8:00:00"

Submitting takes the runs still to train (not done, not being trained), in
plan order, cuts them into slices of K runs (--per-gpu K), and writes
<logroot>/slurm/plan-N.json (the plan and its runs) and
<logroot>/slurm/sweep.sbatch, then calls `sbatch --array=0-(E-1)[%MAX]`.
Array element i asks for one GPU and runs

  python -m harmony_v3.sweep --plan <logroot>/slurm/plan-N.json --slice i

which is the local engine on slice i: its K runs share the GPU that SLURM
gave the element (CUDA_VISIBLE_DEVICES), each with its memory share, lock,
resume and the shared compilation cache. Submitting the same command again
is the retry: finished runs are skipped and interrupted ones resume.

Runs per GPU are settled before any element starts, so that elements never
all measure at once: --per-gpu K, or a measurement saved in the logroot by
an earlier sweep, or one measuring job on one GPU (`--plan ... --measure`)
that the array waits for (`--dependency=afterany`). The array is then sized
for K = 1; elements beyond what the measured K needs exit at once.

When the array has ended (`--dependency=afterany`, whatever its elements'
exit status), one more job on one CPU, `python -m harmony_v3.sweep --plan
<logroot>/slurm/plan-N.json --report`, writes the score table of whatever
has finished to <logroot>/report/, as the local engine does at its end
(not with --no-report).

Signals: `#SBATCH --signal=B:TERM@300` warns the element's sweep alone (the
batch script execs it) 300 s before the time limit; it sends each trainer one
SIGTERM, they save and exit. `scancel` signals every process of the job, so
a trainer may get two SIGTERMs at once: it must treat them as one. The script
has `#SBATCH --requeue`: a requeued element (preemption, node failure,
`scontrol requeue`) starts its slice again and resumes it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
from typing import Sequence

from ..run.atomic_files import write_atomic
from . import calibrate
from .devices import check_jax_gpu, visible_devices
from .engine import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .launch import launch_for, say
from .local import LocalSweep
from .plan import (Plan, Run, SweepError, pending_first, read_plan_file,
                   status_counts, write_plan_file)

JOB_NAME = 'harmony_v3'
WARN_SECONDS = 300         # --signal=B:TERM@300: time to save before the limit.
CPUS_PER_RUN = 2           # Env stepping, plus evaluation's env processes.
MEASURE_CPUS = max(calibrate.CANDIDATES)  # The measuring job: K up to 8.
SBATCH = 'sbatch'


def folder_of(plan: Plan) -> pathlib.Path:
  """Where the engine writes its plan files, scripts and job logs."""
  return plan.logroot / 'slurm'


def next_plan_path(folder: pathlib.Path) -> pathlib.Path:
  """plan-N.json with the first N not used yet in `folder`."""
  used = [int(p.stem.split('-')[1]) for p in folder.glob('plan-*.json')
          if p.stem.split('-')[1].isdigit()]
  return folder / f'plan-{max(used, default=0) + 1}.json'


def measured_path(plan_path: pathlib.Path) -> pathlib.Path:
  """Where the measuring job leaves K for the elements of `plan_path`."""
  return plan_path.with_name(plan_path.stem + '.per_gpu.json')


def slice_of(runs: Sequence[Run], index: int, per_element: int) -> list[Run]:
  """The runs of array element `index`: the index-th K of them."""
  return list(runs[index * per_element:(index + 1) * per_element])


def batch_script(command: str, directives: Sequence[str],
                 comments: Sequence[str], template: str | None) -> str:
  """A batch script: our #SBATCH directives, then the user's template (its
  own #SBATCH lines come later and so win, then its set-up commands), then
  `exec command` (a shell line), so that the job's signals reach the sweep
  itself."""
  lines = ['#!/bin/bash', *(f'# {c}' for c in comments),
           *(f'#SBATCH {d}' for d in directives)]
  if template:
    body = template.splitlines()
    if body and body[0].startswith('#!'):
      body = body[1:]
    lines += ['# --- from --slurm-template ---', *body,
              '# --- end of --slurm-template ---']
  lines += ['export PYTHONUNBUFFERED=1', f'exec {command}']
  return '\n'.join(lines) + '\n'


def job_directives(plan: Plan, folder: pathlib.Path, name: str, output: str,
                   cpus: int) -> list[str]:
  """The #SBATCH lines every job of the sweep gets."""
  lines = [f'--job-name={name}', f'--output={folder / output}',
           '--open-mode=append', f'--cpus-per-task={cpus}']
  if not plan.cpu:
    lines.append('--gres=gpu:1')
  return lines + [f'--signal=B:TERM@{WARN_SECONDS}', '--requeue',
                  f'--chdir={os.getcwd()}']


def sbatch(options: Sequence[str], script: pathlib.Path) -> str:
  """Submit `script`; its job id. Raises SweepError with sbatch's message."""
  command = [SBATCH, '--parsable', *options, str(script)]
  try:
    result = subprocess.run(command, capture_output=True, text=True,
                            timeout=120, stdin=subprocess.DEVNULL)
  except (OSError, subprocess.TimeoutExpired) as e:
    raise SweepError(f'{shlex.join(command)} failed: {e}') from None
  if result.returncode != 0:
    why = (result.stderr or result.stdout).strip().splitlines()
    raise SweepError(f'sbatch refused the job (exit {result.returncode}): '
                     f'{why[-1] if why else "no message"}')
  return result.stdout.strip().split(';')[0]


@dataclasses.dataclass
class Submission:
  """What `submit` hands to sbatch: the plan file, the scripts, options."""
  plan_path: pathlib.Path
  runs: list[Run]               # The runs to train, in slice order.
  per_element: int | None       # K; None: measured by a job first.
  candidates: list[int]         # The K a measuring job tries.
  array: str                    # --array=0-(E-1)[%MAX]
  slurm_args: list[str]
  script: str                   # sweep.sbatch
  measure_script: str           # measure.sbatch (used when per_element is None)
  command_line: str             # The user's command, for the record.
  report_script: str | None = None  # report.sbatch; None with --no-report.

  @property
  def elements(self) -> int:
    return math.ceil(len(self.runs) / (self.per_element or 1))


def prepare(plan: Plan, runs: list[Run], args: argparse.Namespace,
            command_line: str) -> Submission:
  """The submission of the pending `runs`: K settled (given, saved, or to
  be measured), the scripts written out as text. Raises SweepError."""
  pending = pending_first(runs)
  per_element = plan.per_device
  candidates = calibrate.candidate_counts(1, MEASURE_CPUS, plan.mem_fraction)
  if per_element is None:
    record = calibrate.saved(plan.logroot, plan.configs, plan.extra,
                             candidates, say)
    per_element = record['per_gpu'] if record else None
  folder = folder_of(plan)
  plan_path = next_plan_path(folder)
  template = _read_template(args.slurm_template)
  elements = math.ceil(len(pending) / (per_element or 1))
  cpus = (per_element if plan.cpu
          else CPUS_PER_RUN * (per_element or max(candidates)))
  python = shlex.join([sys.executable, '-m', 'harmony_v3.sweep', '--plan',
                       str(plan_path)])
  script = batch_script(
      f'{python} --slice "$SLURM_ARRAY_TASK_ID"',
      job_directives(plan, folder, JOB_NAME, '%A_%a.out', cpus),
      [f'Atari 100K sweep, written by: {command_line}',
       f'Array element i trains slice i of {plan_path.name}.'], template)
  measure_script = batch_script(
      f'{python} --measure',
      job_directives(plan, folder, f'{JOB_NAME}-measure', 'measure-%j.out',
                     MEASURE_CPUS),
      [f'Runs per GPU for {plan_path.name}, written by: {command_line}'],
      template)
  report_script = None if args.no_report else batch_script(
      f'{python} --report', report_directives(folder),
      [f'Score table of {plan.logroot} once the array of {plan_path.name} '
       f'has ended, written by: {command_line}'], template)
  array = f'--array=0-{max(elements - 1, 0)}' + (
      f'%{args.slurm_max_running}' if args.slurm_max_running else '')
  return Submission(plan_path, pending, per_element, candidates, array,
                    shlex.split(args.slurm_args), script, measure_script,
                    command_line, report_script)


def report_directives(folder: pathlib.Path) -> list[str]:
  """The #SBATCH lines of the report job: one CPU, no GPU, no requeue."""
  return [f'--job-name={JOB_NAME}-report',
          f'--output={folder / "report-%j.out"}', '--open-mode=append',
          '--cpus-per-task=1', f'--chdir={os.getcwd()}']


def submit(plan: Plan, runs: list[Run], args: argparse.Namespace,
           own_argv: Sequence[str], extra: Sequence[str]) -> int:
  """--engine slurm: submit the pending runs as one job array (or, with
  --dry-run, show what would be submitted)."""
  from .reporting import print_dry_run
  own_argv = [a for a in own_argv if a != '--dry-run']
  trainer_flags = ['--', *extra] if extra else []
  command_line = shlex.join(['run_atari100k.sh', *own_argv, *trainer_flags])
  try:
    job = prepare(plan, runs, args, command_line)
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  device = 'the CPU' if plan.cpu else 'one GPU'
  if job.per_element is None:
    print(f'Engine: SLURM, one measuring job on one GPU (runs per GPU, K = '
          f'{", ".join(map(str, job.candidates))}), then a job array of '
          f'{job.elements} element(s) sized for K = 1 that waits for it; '
          'elements beyond what the measured K needs exit at once.')
  else:
    print(f'Engine: SLURM job array of {job.elements} element(s), each '
          f'{device} training {job.per_element} run(s) at a time.')
  folder = folder_of(plan)
  if args.dry_run:
    print_dry_run(runs)
    if job.runs:
      print(f'Would submit: {SBATCH} {shlex.join([job.array, *job.slurm_args])}'
            f' {folder / "sweep.sbatch"}, a script of:')
      print(''.join(f'    {line}\n' for line in job.script.splitlines()),
            end='')
      if job.report_script is not None:
        print(f'Then: {SBATCH} --dependency=afterany:<array job> '
              f'{folder / "report.sbatch"}, the score table into '
              f'{plan.logroot / "report"} once the array has ended.')
    return EXIT_OK
  print(status_counts(runs), flush=True)
  busy = sum(r.status == 'running' for r in runs)
  if busy:
    print(f'{busy} run(s) are being trained by another job or process: '
          'left out.')
  if not job.runs:
    print('Nothing to submit: every run is done or being trained.')
    return EXIT_OK
  if not shutil.which(SBATCH):
    print(f'error: no {SBATCH} command here: submit from a SLURM login '
          'node, or use --engine local.', file=sys.stderr)
    return EXIT_USAGE
  try:
    array_job = _send(plan, job)
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  say(f'Submitted array job {array_job}: {job.elements} element(s) of '
      f'{job.per_element or "K (measured)"} run(s), on {device} each.')
  if job.report_script is not None:
    _send_report(plan, job, array_job)
  dry_run = shlex.join(['run_atari100k.sh', *own_argv, '--dry-run',
                        *trainer_flags])
  print(f'  plan:   {job.plan_path}\n'
        f'  script: {folder / "sweep.sbatch"}\n'
        f'  logs:   {folder}/{array_job}_<element>.out, and each run\'s '
        'train.log\n'
        f'  watch:  squeue -j {array_job}\n'
        f'  status: {dry_run}\n'
        f'  cancel: scancel {array_job}    (running runs save a checkpoint '
        'first)\n'
        '  retry:  submit the same command again: finished runs are '
        'skipped, interrupted ones resume.\n'
        f'  scores: python -m harmony_v3.scores {plan.logroot} --out '
        f'{plan.logroot / "report"} --plots')
  return EXIT_OK


def _send(plan: Plan, job: Submission) -> str:
  """Write the plan file and scripts, sbatch them; the array's job id."""
  folder = folder_of(plan)
  write_plan_file(job.plan_path,
                  dataclasses.replace(plan, per_device=job.per_element),
                  job.runs, candidates=job.candidates,
                  command_line=job.command_line)
  dependency = []
  if job.per_element is None:
    measure_script = folder / 'measure.sbatch'
    measure_script.write_text(job.measure_script)
    measure_job = sbatch(job.slurm_args, measure_script)
    dependency = [f'--dependency=afterany:{measure_job}']
    say(f'Submitted the measuring job {measure_job} (log: '
        f'{folder}/measure-{measure_job}.out)')
  script = folder / 'sweep.sbatch'
  script.write_text(job.script)
  try:
    return sbatch([job.array, *dependency, *job.slurm_args], script)
  except SweepError:
    if dependency:  # No array waits for it.
      subprocess.run(['scancel', dependency[0].split(':')[1]],
                     capture_output=True)
    raise


def _send_report(plan: Plan, job: Submission, array_job: str) -> None:
  """Submit the report job, to run once the array has ended. A refusal is
  said, not raised: the array is submitted and the table can be made by
  hand."""
  folder = folder_of(plan)
  script = folder / 'report.sbatch'
  script.write_text(job.report_script)
  try:
    report_job = sbatch(
        [f'--dependency=afterany:{array_job}', *job.slurm_args], script)
  except SweepError as e:
    say(f'warning: the score-table job was not submitted ({e}); make the '
        'table by hand once the array has ended (the scores command below).')
    return
  say(f'Submitted the score-table job {report_job}: once the array has '
      f'ended, it writes {plan.logroot / "report"} (log: '
      f'{folder}/report-{report_job}.out)')


def _read_template(path: str | None) -> str | None:
  if path is None:
    return None
  try:
    return pathlib.Path(path).read_text()
  except OSError as e:
    raise SweepError(f'cannot read --slurm-template {path}: {e}') from None


# Inside a job ---------------------------------------------------------------------


def job_main(args: argparse.Namespace, extra: Sequence[str]) -> int:
  """`--plan FILE --slice I` (an array element), `--plan FILE --measure`
  (the measuring job) or `--plan FILE --report` (the score table, once the
  array has ended)."""
  try:
    modes = (args.slice is not None) + bool(args.measure) + bool(args.report)
    if extra or modes != 1:
      raise SweepError('--plan takes exactly one of --slice I, --measure or '
                       '--report (the plan file holds everything else).')
    path = pathlib.Path(args.plan)
    plan, runs, record = read_plan_file(path)
    if args.measure:
      return _measure(plan, record, path)
    if args.report:
      return _report(plan, path)
    return _element(plan, runs, path, args.slice)
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE


def _job_gpus(plan: Plan) -> list[str]:
  """The devices SLURM gave this job; SweepError if it gave no GPU."""
  if plan.cpu:
    return ['cpu']
  gpus = visible_devices(os.environ.get('CUDA_VISIBLE_DEVICES', ''))
  if not gpus:
    raise SweepError('SLURM gave this job no GPU (CUDA_VISIBLE_DEVICES is '
                     'unset or empty): it must ask for --gres=gpu:1.')
  return gpus


def _job_name() -> str:
  job = os.environ.get('SLURM_ARRAY_JOB_ID') or os.environ.get(
      'SLURM_JOB_ID', '?')
  index = os.environ.get('SLURM_ARRAY_TASK_ID')
  restarts = os.environ.get('SLURM_RESTART_COUNT', '0')
  return (f'job {job}' + (f'_{index}' if index else '')
          + (f' (requeued {restarts} time(s))' if restarts != '0' else ''))


def _measure(plan: Plan, record: dict, path: pathlib.Path) -> int:
  """The measuring job: K on this job's GPU, left for the elements."""
  gpu = _job_gpus(plan)[0]
  say(f'SLURM {_job_name()}: runs per GPU for {path.name}')
  try:
    per_gpu = calibrate.measure_or_one(
        gpu, plan.configs, plan.extra, record['candidates'], plan.logroot,
        plan.cache, say)
  except KeyboardInterrupt:
    say('Interrupted: the elements will run 1 run per GPU.')
    return EXIT_INTERRUPTED
  out = measured_path(path)
  write_atomic(out, (json.dumps({'per_gpu': per_gpu}) + '\n').encode())
  say(f'{path.name}: {per_gpu} run(s) per GPU, saved in {out}')
  return EXIT_OK


def _report(plan: Plan, path: pathlib.Path) -> int:
  """The report job: the score table of the whole logroot, as the local
  engine writes it at its end; exit 1 if it failed."""
  from .reporting import report
  runs = plan.runs()
  say(f'SLURM {_job_name()}: score table after the array of {path.name}: '
      + status_counts(runs))
  if not any(r.status == 'done' for r in runs):
    say('No finished runs: no score table.')
    return EXIT_OK
  return EXIT_OK if report(plan.logroot, say, plan.suite) else 1


def _measured(path: pathlib.Path) -> int:
  """K from the measuring job, or 1 if it left none."""
  try:
    return int(json.loads(measured_path(path).read_text())['per_gpu'])
  except (OSError, ValueError, KeyError, TypeError):
    say(f'warning: no runs per GPU from the measuring job '
        f'({measured_path(path)}); using 1 run per GPU.')
    return 1


def _element(plan: Plan, runs: list[Run], path: pathlib.Path,
             index: int) -> int:
  """Array element `index`: the local engine on its slice of the plan."""
  per_element = plan.per_device or _measured(path)
  mine = slice_of(runs, index, per_element)
  say(f'SLURM {_job_name()}: slice {index} of {path.name}, '
      f'{len(mine)} run(s), {per_element} at a time: '
      + (', '.join(r.name for r in mine) or '-'))
  if not mine:
    say(f'Nothing to do: {len(runs)} run(s) at {per_element} per element '
        f'need {math.ceil(len(runs) / per_element)} element(s).')
    return EXIT_OK
  devices = _job_gpus(plan)
  if not plan.cpu and plan.gpu_check:
    problem = check_jax_gpu(devices[0])
    if problem:
      raise SweepError(f'JAX cannot use GPU {devices[0]}: {problem}')
  print(status_counts(mine), flush=True)
  launch = launch_for(plan, per_element)
  sweep = LocalSweep(mine, {d: per_element for d in devices}, launch)
  code = sweep.execute()
  print(sweep.summary(), flush=True)
  return code
