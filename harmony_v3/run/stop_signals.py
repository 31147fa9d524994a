"""How a trainer answers SIGTERM and Ctrl-C.

- SIGTERM, any number of times and at any moment (also during the first
  compilation or while a checkpoint is written), only asks for a clean stop:
  the trainer stops at its next safe point, saves one checkpoint and exits
  with code 130. Schedulers send it before they kill a job, sometimes twice
  within milliseconds (SLURM's `scancel`); a repeated SIGTERM changes nothing.
- Ctrl-C (SIGINT) does the same the first time. A second Ctrl-C ends the
  process at once, without saving (exit code 130), except while a checkpoint
  is being written: then it ends right after that write completes.

The handlers never raise. An exception raised from a handler lands wherever
the main thread happens to be, and that can be inside XLA's compiler: JAX
then unwinds while XLA's compiler threads carry on, and the interpreter's
shutdown frees memory they still use. That is the crash seen with two
SIGTERMs 0.3 s apart during the first compilation ('corrupted size vs.
prev_size', 'LLVM ERROR', segfaults; exit 134 or 139). The immediate stop
uses `os._exit` instead, which ends all threads together. Nothing on disk
depends on a clean exit: checkpoints are written atomically, and whatever a
run wrote after its last checkpoint is discarded when it resumes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Callable

EXIT_INTERRUPTED = 130


def _notice(text: str) -> None:
  """Print from a signal handler without re-entering Python's buffered IO."""
  try:
    sys.stdout.flush()
  except Exception:  # The main thread may be inside a write to stdout.
    pass
  try:
    os.write(sys.stderr.fileno(), (text + '\n').encode())
  except Exception:  # No real stderr (captured): best effort.
    pass


class StopSignals:
  """Installs the trainer's SIGTERM and SIGINT handlers (see module doc)."""

  def __init__(self):
    self.terms = 0
    self.interrupts = 0
    self._critical = 0
    self._exit_deferred = False
    self._previous = {}
    # What to say on an immediate stop; the trainer sets it once it knows
    # its last checkpoint.
    self.stop_now_message: Callable[[], str] = lambda: (
        'Stopped at once without saving.')

  @property
  def requested(self) -> bool:
    """Whether a stop was asked for (by SIGTERM or Ctrl-C)."""
    return bool(self.terms or self.interrupts)

  def install(self) -> 'StopSignals':
    """Take over SIGTERM and SIGINT (main thread only)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
      self._previous[signum] = signal.signal(signum, self._handle)
    return self

  def restore(self) -> None:
    """Give SIGTERM and SIGINT back to the handlers found at install()."""
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)
    self._previous.clear()

  def _handle(self, signum, frame) -> None:
    first = not self.requested
    if signum == signal.SIGINT:
      self.interrupts += 1
      if self.interrupts >= 2:
        self._stop_now()
        return
    else:
      self.terms += 1
    if first:
      again = (' Press Ctrl-C again to stop at once without saving.'
               if signum == signal.SIGINT else '')
      _notice('Stop requested: stopping at the next safe point, then saving '
              'a checkpoint.' + again)

  def _stop_now(self) -> None:
    if self._critical:
      if not self._exit_deferred:
        _notice('Stopping once the checkpoint being written is complete.')
      self._exit_deferred = True
      return
    _notice(self.stop_now_message())
    os._exit(EXIT_INTERRUPTED)

  @contextlib.contextmanager
  def critical(self):
    """A block that an immediate stop must not cut (a checkpoint write)."""
    self._critical += 1
    try:
      yield
    finally:
      self._critical -= 1
      if not self._critical and self._exit_deferred:
        self._exit_deferred = False
        self._stop_now()
