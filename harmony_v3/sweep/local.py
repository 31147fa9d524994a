"""The local engine: the sweep's runs on this machine's GPUs (or its CPU),
K trainer processes per GPU at a time.

Each trainer is started in a session of its own and holds its run folder's
lock through an inherited fd, so that a second sweep on the same logroot
leaves it alone. A terminal's Ctrl-C, or SIGTERM, reaches the sweep only;
the sweep sends each running trainer exactly one SIGTERM (it saves a
checkpoint and exits), waits for them and exits with 130. A second signal
says what is being waited for; a third kills the trainers.

A SLURM array element is this engine on its slice of the plan (slurm.py).
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import time
from typing import Callable, Mapping, Sequence

from ..run.progress import format_duration
from . import calibrate
from .devices import detect_gpus
from .engine import SweepEngine
from .launch import Launch, log_exit, log_start
from .plan import Run, SweepError, lock_run

POLL_SECONDS = 0.2


class LocalSweep(SweepEngine):
  """Runs the pending runs on the devices' slots, one process per run."""

  def __init__(self, runs: Sequence[Run], slots: Mapping[str, int],
               launch: Launch, out: Callable[[str], None] | None = None):
    super().__init__(runs, launch, out)
    self.slots = dict(slots)
    self.running: list[Run] = []
    self.started = len(self.skipped)

  def _device_name(self, device: str) -> str:
    return 'CPU' if self.launch.cpu else f'GPU {device}'

  def _free_device(self) -> str | None:
    """The least busy device with a free slot (first one on ties)."""
    load = {d: 0 for d in self.slots}
    for run in self.running:
      load[run.device] += 1
    free = [d for d in self.slots if load[d] < self.slots[d]]
    return min(free, key=lambda d: load[d]) if free else None

  def _left(self) -> str:
    return f'running {len(self.running)}, waiting {len(self.queue)}'

  def _in_flight(self) -> int:
    return len(self.running)

  def _start(self, run: Run, device: str) -> None:
    lock = lock_run(run.folder)
    if lock is None:
      self.busy.append(run)
      self.say(f'skipped {run.name}: another process is training it')
      return
    self.started += 1
    run.ordinal, run.device = self.started, device
    argv = self.launch.argv(run)
    run.started = time.time()
    log_start(run.log, f'{run.status} run on {self._device_name(device)}: '
                       f'{shlex.join(argv)}')
    with open(run.log, 'ab') as log:
      try:
        # A session of its own: a terminal's Ctrl-C reaches the sweep only,
        # which sends each run exactly one SIGTERM.
        run.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, env=self.launch.env(device),
            start_new_session=True, pass_fds=(lock,))
      except OSError as e:
        log.write(f'=== sweep: cannot start the trainer: {e}\n'.encode())
        self.failed.append((run, 'exit 127'))
        self.say(f'[{run.ordinal}/{self.total}] FAILED {run.name} (cannot '
                 f'start: {e}), log: {run.log} {self._counts()}')
        return
      finally:
        os.close(lock)  # The trainer's copy holds the lock from now on.
    self.running.append(run)
    verb = 'resumed' if run.status == 'resume' else 'started'
    self.say(f'[{run.ordinal}/{self.total}] {verb} {run.name} on '
             f'{self._device_name(device)} {self._counts()}')

  def _end(self, run: Run, code: int) -> None:
    self.running.remove(run)
    seconds = time.time() - run.started
    log_exit(run.log, code, format_duration(seconds))
    self._report_exit(run, code, seconds, self.stopping,
                      head=f'[{run.ordinal}/{self.total}] ')

  def _send_all(self, signum: int) -> None:
    for run in self.running:
      try:
        run.process.send_signal(signum)
      except (OSError, ProcessLookupError):
        pass

  def _stop_all(self) -> None:
    """One SIGTERM to each running trainer: it saves and exits."""
    self._send_all(signal.SIGTERM)

  def _kill_all(self) -> None:
    """SIGKILL to each running trainer."""
    self._send_all(signal.SIGKILL)

  def _run(self) -> None:
    """Start runs on free slots and poll them until all have ended (or,
    once signalled, until the running ones have)."""
    while self.running or (self.queue and not self.stopping):
      self._handle_signals()
      while self.queue and not self.stopping:
        device = self._free_device()
        if device is None:
          break
        self._start(self.queue.pop(0), device)
      for run in list(self.running):
        code = run.process.poll()
        if code is not None:
          self._end(run, code)
      if self.running:
        time.sleep(POLL_SECONDS)
    self.not_started = list(self.queue)


# Devices and runs per GPU ------------------------------------------------------


def choose_devices(args: argparse.Namespace) -> tuple[list[str], str]:
  """The GPU ids to use (['cpu'] with --cpu) and where they came from; an
  empty list if no GPU was found."""
  if args.cpu:
    return ['cpu'], '--cpu'
  if args.gpus is not None:
    gpus = [g for g in re.split(r'[,\s]+', args.gpus) if g]
    if not gpus:
      raise SweepError('--gpus needs GPU ids, e.g. --gpus 0,1')
    return gpus, '--gpus'
  return detect_gpus()


def resolve_per_gpu(gpus: Sequence[str], configs: Sequence[str],
                    extra: Sequence[str], mem_fraction: float | None, logroot,
                    cache, say: Callable[[str], None]) -> int:
  """Runs per GPU for --per-gpu auto: the saved measurement in `logroot` if
  it matches this sweep, else a new one on the first GPU."""
  candidates = calibrate.candidate_counts(
      len(gpus), calibrate.available_cores(), mem_fraction)
  record = calibrate.saved(logroot, configs, extra, candidates, say)
  if record:
    return record['per_gpu']
  return calibrate.measure_or_one(gpus[0], configs, extra, candidates,
                                  logroot, cache, say)
