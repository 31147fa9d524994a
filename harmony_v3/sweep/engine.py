"""What the local and the Ray engine share: the sweep's bookkeeping, how a
trainer's exit is reported, the three-step answer to signals, and the end
summary.

An engine supplies only what differs: how its runs are started and waited
for (`_run`), how they are asked to save and stop (`_stop_all`), how they
are killed (`_kill_all`), and how it counts and names its runs in flight.

Signals: the first SIGINT, SIGTERM or SIGHUP asks every run to save a
checkpoint and stop, the second says what is being waited for, the third
kills the runs (their progress since their last checkpoint is lost). The
handler only counts; the engine's loop acts (`_handle_signals`).
"""
from __future__ import annotations

import signal
import textwrap
from typing import Callable, Sequence

from ..run.progress import format_duration
from .launch import Launch, final_eval, last_line, stamped
from .plan import STOPPED_CODES, Run, pending_first

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class SweepEngine:
  """Runs a sweep's pending runs; subclasses say how to start, stop, kill
  and wait for them."""

  # What the first signal does, and what the later ones count, in words.
  stop_notice = 'asking {count} running run(s) to save a checkpoint and stop'
  unit = 'run(s)'

  def __init__(self, runs: Sequence[Run], launch: Launch,
               out: Callable[[str], None] | None = None):
    self.runs = list(runs)
    self.total = len(self.runs)
    self.launch = launch
    self.out = out or (lambda text: print(text, flush=True))
    self.skipped = [r for r in self.runs if r.status == 'done']
    self.busy = [r for r in self.runs if r.status == 'running']
    self.queue = pending_first(self.runs)
    self.finished: list[Run] = []
    self.failed: list[tuple[Run, str]] = []  # (run, why)
    self.interrupted: list[Run] = []
    self.not_started: list[Run] = []  # Kept from starting by a signal.
    self.signals = 0
    self.forwarded = 0

  # What each engine supplies.

  def _run(self) -> None:
    """Start the runs and wait for them all, acting on signals."""
    raise NotImplementedError

  def _stop_all(self) -> None:
    """Ask every run in flight to save a checkpoint and stop."""
    raise NotImplementedError

  def _kill_all(self) -> None:
    """Kill every run in flight."""
    raise NotImplementedError

  def _in_flight(self) -> int:
    """How many runs (or tasks) the signals act on."""
    raise NotImplementedError

  def _left(self) -> str:
    """The progress counts of the runs not ended yet."""
    raise NotImplementedError

  # Shared.

  def say(self, text: str) -> None:
    self.out(stamped(text))

  @property
  def stopping(self) -> bool:
    return self.signals > 0

  def _counts(self) -> str:
    return (f'({self._left()}, done '
            f'{len(self.skipped) + len(self.finished)}/{self.total}, '
            f'failed {len(self.failed)})')

  def _report_exit(self, run: Run, code: int, seconds: float, stopped: bool,
                   head: str = '', where: str = '') -> None:
    """File a trainer's exit as finished (it wrote done.json), stopped (it
    was asked to and exited as a stopped trainer does) or FAILED, and say
    so; `head` and `where` go before and after the run's name."""
    took = format_duration(seconds)
    if code == 0 and (run.folder / 'done.json').is_file():
      self.finished.append(run)
      self.say(f'{head}finished {run.name}{where} in {took}'
               f'{final_eval(run.folder)} {self._counts()}')
    elif stopped and code in STOPPED_CODES:
      self.interrupted.append(run)
      self.say(f'{head}stopped {run.name}{where} after {took} (exit {code}; '
               f'rerun to resume) {self._counts()}')
    else:
      why = f'exit {code}' + ('' if code else ', no done.json')
      self.failed.append((run, why))
      self.say(f'{head}FAILED {run.name}{where} ({why}) after {took}, log: '
               f'{run.log} {self._counts()}')
      last = last_line(run.log)
      if last:
        self.out(f'           last log line: {last}')

  def _on_signal(self, signum, frame) -> None:
    self.signals += 1  # Acted on by the loop: no output from a handler.

  def _handle_signals(self) -> None:
    """Act on the signals counted since the last call."""
    if self.signals == self.forwarded:
      return
    count = self._in_flight()
    if self.forwarded == 0:
      self.say(f'Interrupted: {self.stop_notice.format(count=count)} (signal '
               'again twice to kill them).')
      self._stop_all()
    elif self.signals >= 3:
      self.say(f'Killing {count} {self.unit}: their progress since their '
               'last checkpoint is lost.')
      self._kill_all()
    else:
      self.say(f'Waiting for {count} {self.unit} to save their checkpoints; '
               'signal once more to kill them.')
    self.forwarded = self.signals

  def execute(self) -> int:
    """Run everything pending; the exit status of the sweep."""
    # SIGHUP too (a closed terminal), unless ignored as under nohup.
    handled = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
      handled.append(signal.SIGHUP)
    previous = {s: signal.signal(s, self._on_signal) for s in handled}
    try:
      self._run()
    except BaseException:
      self._stop_all()  # Never leave runs behind unawares.
      raise
    finally:
      for signum, handler in previous.items():
        signal.signal(signum, handler)
    if self.stopping:
      return EXIT_INTERRUPTED
    return EXIT_FAILED if self.failed else EXIT_OK

  def summary(self) -> str:
    """The end summary: finished, failed (why, log), stopped, not started,
    busy, skipped."""
    def names(runs):
      text = ', '.join(r.name for r in runs) or '-'
      return textwrap.indent(textwrap.fill(text, 76), '    ')
    lines = [f'Sweep summary ({self.total} runs):',
             f'  finished now: {len(self.finished)}', names(self.finished),
             f'  failed: {len(self.failed)}']
    for run, why in self.failed:
      lines.append(f'    {run.name}: {why}, log: {run.log}')
    if self.interrupted:
      lines += [f'  stopped (rerun the same command to resume): '
                f'{len(self.interrupted)}', names(self.interrupted)]
    if self.not_started:
      lines.append(f'  not started: {len(self.not_started)}')
    if self.busy:
      lines += [f'  busy (trained by another process, left alone): '
                f'{len(self.busy)}', names(self.busy)]
    lines += [f'  skipped (already done): {len(self.skipped)}',
              names(self.skipped)]
    return '\n'.join(lines)
