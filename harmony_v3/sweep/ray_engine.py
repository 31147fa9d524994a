"""The Ray engine: one Ray task per run, 1/K of a GPU each.

  pip install 'harmony_v3[ray]'
  ./run_atari100k.sh --engine ray --ray-address auto --per-gpu 2

This command is the driver. It submits one task per run still to train,
with num_gpus=1/K and num_cpus=1, retried up to --retries times when its
worker or node dies (the retry resumes from the run's last checkpoint; the
logroot must be on a filesystem every node shares). Ray's fractional GPUs
only schedule, they do not limit memory, so each run sets its own share of
the GPU's memory (0.9/K), as on the local engine.

In the worker, a task locks the run folder and starts the trainer as its
child, in the worker's process group: a trainer in a session of its own
(as with setsid) would outlive a killed worker and keep its lock, and the
retry could not train. It waits for the trainer in a polling loop, since a
blocking wait never sees the KeyboardInterrupt that `ray.cancel` raises; on
cancel it sends the trainer exactly one SIGTERM and waits while it saves.

Ctrl-C or SIGTERM of the driver cancels every task: running trainers save a
checkpoint, waiting tasks never start, and the driver exits with 130 once
they are done. A third signal force-cancels: workers and their trainers are
killed and lose their progress since their last checkpoint.
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time
from typing import Callable, Sequence

from ..run.progress import format_duration
from . import calibrate
from .engine import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, SweepEngine
from .launch import Launch, launch_for, log_exit, log_start, say
from .plan import (Plan, Run, lock_run, pending_first, run_status,
                   status_counts)

POLL_SECONDS = 0.2
LOCK_WAIT_SECONDS = 30  # A retry may wait this long for a dying trainer.


# In the worker -----------------------------------------------------------------


def train_run(argv: Sequence[str], env_changes: dict, folder: str,
              cpu: bool, poll: float = POLL_SECONDS) -> dict:
  """The task: train one run in this worker, return how it ended.

  Returns {'busy': True} if another process holds the run's lock, else
  {'code', 'seconds', 'where', 'stopped'}."""
  import ray
  folder = pathlib.Path(folder)
  deadline = time.time() + LOCK_WAIT_SECONDS
  status = run_status(folder)
  lock = lock_run(folder)
  while lock is None and time.time() < deadline:
    time.sleep(1)
    lock = lock_run(folder)
  if lock is None:
    return {'busy': True}
  gpus = [str(g) for g in ray.get_gpu_ids()]
  env = dict(os.environ, **env_changes)
  if not cpu:
    env['CUDA_VISIBLE_DEVICES'] = ','.join(gpus)
  where = (f'node {ray.get_runtime_context().get_node_id()[:8]} '
           + ('CPU' if cpu else f'GPU {",".join(gpus)}'))
  log = folder / 'train.log'
  start = time.time()
  try:
    log_start(log, f'{status} run (Ray) on {where}: {shlex.join(argv)}')
    with open(log, 'ab') as out:
      # Not a session of its own: the trainer dies with its worker.
      trainer = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env,
                                 pass_fds=(lock,))
  finally:
    os.close(lock)  # The trainer's copy holds the lock from now on.
  stopped = False
  while trainer.poll() is None:
    try:
      time.sleep(poll)
    except KeyboardInterrupt:  # ray.cancel: save and stop, asked once.
      if not stopped:
        stopped = True
        trainer.send_signal(signal.SIGTERM)
  seconds = time.time() - start
  log_exit(log, trainer.returncode, format_duration(seconds))
  return {'code': trainer.returncode, 'seconds': seconds, 'where': where,
          'stopped': stopped}


def measure_task(configs: Sequence[str], extra: Sequence[str],
                 candidates: Sequence[int], folder: str,
                 cache: str | None) -> int:
  """The task that measures runs per GPU on its GPU (calibrate.py)."""
  import ray
  gpu = ','.join(str(g) for g in ray.get_gpu_ids())
  return calibrate.measure_or_one(
      gpu, configs, extra, candidates, pathlib.Path(folder),
      pathlib.Path(cache) if cache else None,
      say)


# The driver --------------------------------------------------------------------


def gpu_share(per_gpu: int) -> float:
  """num_gpus of one task, so that exactly `per_gpu` fit on one GPU (Ray
  counts GPU fractions to 4 decimals)."""
  return math.floor(10000 / per_gpu) / 10000


class RayDriver(SweepEngine):
  """Submits one task per pending run and follows them to the end."""

  stop_notice = ('cancelling {count} task(s); running trainers save a '
                 'checkpoint and stop')
  unit = 'task(s)'

  def __init__(self, runs: Sequence[Run], launch: Launch, per_gpu: int,
               retries: int, out: Callable[[str], None] | None = None):
    super().__init__(runs, launch, out)
    self.per_gpu = per_gpu
    self.retries = retries
    self.tasks: dict = {}   # ObjectRef -> Run

  def _left(self) -> str:
    return f'tasks left {len(self.tasks)}'

  def _in_flight(self) -> int:
    return len(self.tasks)

  def submit(self) -> None:
    """One task per queued run."""
    import ray
    task = ray.remote(train_run)
    gpus = 0 if self.launch.cpu else gpu_share(self.per_gpu)
    for run in self.queue:
      ref = task.options(
          num_gpus=gpus, num_cpus=1, max_retries=self.retries,
          retry_exceptions=False, name=f'train {run.name}').remote(
              self.launch.argv(run), self.launch.env_changes(None),
              str(run.folder), self.launch.cpu)
      self.tasks[ref] = run
    share = 'CPU' if self.launch.cpu else f'num_gpus={gpus:g}'
    self.say(f'Submitted {len(self.queue)} task(s) ({share}, num_cpus=1, '
             f'{self.retries} retries each) {self._counts()}')

  def _end(self, ref) -> None:
    import ray
    from ray.exceptions import RayError, TaskCancelledError
    run = self.tasks.pop(ref)
    try:
      result = ray.get(ref)
    except TaskCancelledError:
      result = None
    except RayError as e:
      why = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
      self.failed.append((run, why))
      self.say(f'FAILED {run.name}: {type(e).__name__}: {why} '
               f'{self._counts()}')
      return
    if result is None:
      self.not_started.append(run)
      return
    if result.get('busy'):
      self.busy.append(run)
      self.say(f'skipped {run.name}: another process is training it')
      return
    self._report_exit(run, result['code'], result['seconds'],
                      self.stopping or result['stopped'],
                      where=f' on {result["where"]}')

  def _stop_all(self) -> None:
    """Cancel every task: a running trainer gets one SIGTERM and saves, a
    waiting task never starts."""
    import ray
    for ref in self.tasks:
      ray.cancel(ref)

  def _kill_all(self) -> None:
    """Force-cancel every task: workers and their trainers are killed."""
    import ray
    for ref in self.tasks:
      ray.cancel(ref, force=True)

  def _run(self) -> None:
    """Submit, then wait for every task."""
    import ray
    self.submit()
    while self.tasks:
      self._handle_signals()
      ready, _ = ray.wait(list(self.tasks), num_returns=len(self.tasks),
                          timeout=POLL_SECONDS)
      for ref in ready:
        self._end(ref)


def _gpu_node_size() -> tuple[int, int]:
  """(GPUs, CPUs) of the first live node of the cluster that has GPUs."""
  import ray
  for node in ray.nodes():
    resources = node.get('Resources', {})
    if node.get('Alive') and resources.get('GPU', 0) >= 1:
      return int(resources['GPU']), int(resources.get('CPU', 1))
  return 0, 0


def resolve_per_gpu(plan: Plan) -> int | None:
  """Runs per GPU: --per-gpu, a saved measurement, or one measuring task on
  one GPU; None if the cluster has no GPU."""
  import ray
  if plan.per_device is not None:
    return plan.per_device
  gpus, cpus = _gpu_node_size()
  if not gpus:
    return None
  candidates = calibrate.candidate_counts(gpus, cpus, plan.mem_fraction)
  record = calibrate.saved(plan.logroot, plan.configs, plan.extra,
                           candidates, say)
  if record:
    return record['per_gpu']
  say('Measuring runs per GPU in one Ray task on one GPU.')
  task = ray.remote(measure_task).options(num_gpus=1, num_cpus=1)
  return ray.get(task.remote(plan.configs, plan.extra, candidates,
                             str(plan.logroot),
                             str(plan.cache) if plan.cache else None))


def main(plan: Plan, runs: list[Run], args: argparse.Namespace) -> int:
  """--engine ray: train the pending runs on a Ray cluster (or, with
  --dry-run, show the plan without contacting Ray)."""
  from .reporting import print_dry_run, report
  per = (f'{plan.per_device} run(s) per GPU' if plan.per_device
         else 'runs per GPU measured first' if not plan.cpu else 'CPU')
  address = args.ray_address or "Ray's default address"
  print(f'Engine: Ray at {address}, one task per run ({per}).')
  if args.dry_run:
    print_dry_run(runs)
    return EXIT_OK
  try:
    import ray
  except ImportError:
    print("error: --engine ray needs Ray: pip install 'harmony_v3[ray]' "
          '(the same Ray version as the cluster).', file=sys.stderr)
    return EXIT_USAGE
  print(status_counts(runs), flush=True)
  if not pending_first(runs):
    print('Nothing to train: every run is done or being trained.')
    return EXIT_OK
  started = not ray.is_initialized()
  if started:
    ray.init(address=args.ray_address, logging_level='warning')
  try:
    if plan.cpu:
      per_gpu = 1
    else:
      try:
        per_gpu = resolve_per_gpu(plan)
      except KeyboardInterrupt:
        print('Interrupted while measuring runs per GPU: nothing was '
              'trained.', file=sys.stderr)
        return EXIT_INTERRUPTED
      if per_gpu is None:
        print('error: the Ray cluster has no GPU. Pass --cpu to train on '
              'its CPUs.', file=sys.stderr)
        return EXIT_USAGE
    launch = launch_for(plan, per_gpu)
    driver = RayDriver(runs, launch, per_gpu, args.retries)
    code = driver.execute()
  finally:
    if started:
      ray.shutdown()
  print(driver.summary(), flush=True)
  if code == EXIT_INTERRUPTED:
    print('Interrupted: run the same command again to resume.')
    return code
  if not args.no_report and (driver.skipped or driver.finished):
    report(plan.logroot, driver.say, plan.suite)
  return code
