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
import textwrap
import time
from typing import Callable, Mapping, Sequence

from ..progress import format_duration
from . import calibrate
from .devices import detect_gpus
from .launch import (Launch, final_eval, last_line, log_exit, log_start,
                     stamped)
from .plan import STOPPED_CODES, Run, SweepError, lock_run, pending_first

POLL_SECONDS = 0.2
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class LocalSweep:
  """Runs the pending runs on the devices' slots, one process per run."""

  def __init__(self, runs: Sequence[Run], slots: Mapping[str, int],
               launch: Launch, out: Callable[[str], None] | None = None):
    self.runs = list(runs)
    self.total = len(self.runs)
    self.slots = dict(slots)
    self.launch = launch
    self.out = out or (lambda text: print(text, flush=True))
    self.running: list[Run] = []
    self.finished: list[Run] = []
    self.failed: list[Run] = []
    self.interrupted: list[Run] = []
    self.busy: list[Run] = [r for r in self.runs if r.status == 'running']
    self.skipped = [r for r in self.runs if r.status == 'done']
    self.started = len(self.skipped)
    self.queue = pending_first(self.runs)
    self.signals = 0
    self.forwarded = 0

  def say(self, text: str) -> None:
    self.out(stamped(text))

  @property
  def stopping(self) -> bool:
    return self.signals > 0

  def _device_name(self, device: str) -> str:
    return 'CPU' if self.launch.cpu else f'GPU {device}'

  def _free_device(self) -> str | None:
    """The least busy device with a free slot (first one on ties)."""
    load = {d: 0 for d in self.slots}
    for run in self.running:
      load[run.device] += 1
    free = [d for d in self.slots if load[d] < self.slots[d]]
    return min(free, key=lambda d: load[d]) if free else None

  def _counts(self) -> str:
    return (f'(running {len(self.running)}, waiting {len(self.queue)}, '
            f'done {len(self.skipped) + len(self.finished)}/{self.total}, '
            f'failed {len(self.failed)})')

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
        run.returncode = 127
        self.failed.append(run)
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
    run.returncode = code
    run.seconds = time.time() - run.started
    took = format_duration(run.seconds)
    done = (run.folder / 'done.json').is_file()
    log_exit(run.log, code, took)
    head = f'[{run.ordinal}/{self.total}]'
    if code == 0 and done:
      self.finished.append(run)
      self.say(f'{head} finished {run.name} in {took}'
               f'{final_eval(run.folder)} {self._counts()}')
    elif self.stopping and code in STOPPED_CODES:
      self.interrupted.append(run)
      self.say(f'{head} stopped {run.name} after {took} (exit {code}; '
               f'rerun to resume) {self._counts()}')
    else:
      self.failed.append(run)
      why = f'exit {code}' + ('' if code else ', no done.json')
      self.say(f'{head} FAILED {run.name} ({why}) after {took}, log: '
               f'{run.log} {self._counts()}')
      last = last_line(run.log)
      if last:
        self.out(f'           last log line: {last}')

  def _on_signal(self, signum, frame) -> None:
    self.signals += 1  # Acted on by the loop: no output from a handler.

  def _handle_signals(self) -> None:
    if self.signals == self.forwarded:
      return
    if self.forwarded == 0:
      self.say(f'Interrupted: asking {len(self.running)} running run(s) to '
               'save a checkpoint and stop (signal again twice to kill '
               'them).')
      self._kill_all(signal.SIGTERM)
    elif self.signals >= 3:
      self.say(f'Killing {len(self.running)} run(s): their progress since '
               'their last checkpoint is lost.')
      self._kill_all(signal.SIGKILL)
    else:
      self.say(f'Waiting for {len(self.running)} run(s) to save their '
               'checkpoints; signal once more to kill them.')
    self.forwarded = self.signals

  def _kill_all(self, signum: int) -> None:
    for run in self.running:
      try:
        run.process.send_signal(signum)
      except (OSError, ProcessLookupError):
        pass

  def execute(self) -> int:
    """Run everything pending; the exit status of the sweep."""
    # SIGHUP too (a closed terminal), unless ignored as under nohup.
    handled = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
      handled.append(signal.SIGHUP)
    previous = {s: signal.signal(s, self._on_signal) for s in handled}
    try:
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
    except BaseException:
      self._kill_all(signal.SIGTERM)  # Never leave runs behind unawares.
      raise
    finally:
      for signum, handler in previous.items():
        signal.signal(signum, handler)
    if self.stopping:
      return EXIT_INTERRUPTED
    return EXIT_FAILED if self.failed else EXIT_OK

  def summary(self) -> str:
    """The end summary: finished, failed (exit, log), stopped, skipped."""
    def names(runs):
      text = ', '.join(r.name for r in runs) or '-'
      return textwrap.indent(textwrap.fill(text, 76), '    ')
    lines = [f'Sweep summary ({self.total} runs):',
             f'  finished now: {len(self.finished)}', names(self.finished),
             f'  failed: {len(self.failed)}']
    for run in self.failed:
      lines.append(f'    {run.name}: exit {run.returncode}, log: {run.log}')
    if self.interrupted:
      lines += [f'  stopped (rerun the same command to resume): '
                f'{len(self.interrupted)}', names(self.interrupted)]
    if self.stopping and self.queue:
      lines.append(f'  not started: {len(self.queue)}')
    if self.busy:
      lines += [f'  busy (trained by another process, left alone): '
                f'{len(self.busy)}', names(self.busy)]
    lines += [f'  skipped (already done): {len(self.skipped)}',
              names(self.skipped)]
    return '\n'.join(lines)


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


def resolve_per_gpu(per_gpu: int | str, gpus: Sequence[str],
                    configs: Sequence[str], extra: Sequence[str],
                    mem_fraction: float | None, logroot,
                    cache, say: Callable[[str], None]) -> int:
  """--per-gpu's count: as given, or for 'auto' the saved measurement in
  `logroot` if it matches this sweep, else a new one on the first GPU."""
  if per_gpu != 'auto':
    return per_gpu
  candidates = calibrate.candidate_counts(
      len(gpus), calibrate.available_cores(), mem_fraction)
  record = calibrate.saved(logroot, configs, extra, candidates, say)
  if record:
    return record['per_gpu']
  return calibrate.measure_or_one(gpus[0], configs, extra, candidates,
                                  logroot, cache, say)
