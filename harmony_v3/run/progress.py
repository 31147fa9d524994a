"""Progress on the terminal: a live status line on a TTY, plain lines elsewhere."""
from __future__ import annotations

import sys
import time


def format_duration(seconds: float) -> str:
  """1h02m, 3m05s, 42s."""
  seconds = int(round(max(0, seconds)))
  hours, rest = divmod(seconds, 3600)
  minutes, secs = divmod(rest, 60)
  if hours:
    return f'{hours}h{minutes:02d}m'
  if minutes:
    return f'{minutes}m{secs:02d}s'
  return f'{secs}s'


class Progress:
  """Shows steps, frames/s, updates/s, ETA and the last evaluation score.

  mode: 'bar' rewrites one line in place, 'lines' prints a line every
  `every` seconds, 'off' prints nothing, 'auto' picks bar on a TTY.
  """

  def __init__(self, total_steps: int, repeat: int, mode: str = 'auto',
               every: float = 30.0, stream=None, name: str = ''):
    self.stream = stream or sys.stdout
    if mode == 'auto':
      mode = 'bar' if self.stream.isatty() else 'lines'
    self.mode = mode
    self.total = int(total_steps)
    self.repeat = repeat
    self.every = every if mode == 'lines' else 0.5
    self.name = name
    self.last_eval = None
    self._last_print = 0.0
    self._window = None  # (time, step, updates) at the window start.
    self.frames_per_s = 0.0
    self.updates_per_s = 0.0

  def set_eval(self, frames: int, score: float) -> None:
    self.last_eval = (frames, score)

  def rates(self, step: int, updates: int) -> None:
    """Refresh the frames/s and updates/s measured since the last call."""
    now = time.time()
    if self._window:
      t0, s0, u0 = self._window
      if now - t0 > 1e-6:
        self.frames_per_s = (step - s0) * self.repeat / (now - t0)
        self.updates_per_s = (updates - u0) / (now - t0)
    self._window = (now, step, updates)

  def line(self, step: int) -> str:
    pct = 100 * step / max(1, self.total)
    parts = [f'step {step:,}/{self.total:,} ({pct:.0f}%)',
             f'{self.frames_per_s:,.0f} frames/s',
             f'{self.updates_per_s:.1f} updates/s']
    if self.frames_per_s > 0:
      left = (self.total - step) * self.repeat / self.frames_per_s
      parts.append(f'ETA {format_duration(left)}')
    if self.last_eval:
      frames, score = self.last_eval
      parts.append(f'eval {score:.1f} @ {frames / 1000:.0f}K frames')
    prefix = f'[{self.name}] ' if self.name else ''
    return prefix + ' | '.join(parts)

  def update(self, step: int, force: bool = False) -> None:
    if self.mode == 'off':
      return
    now = time.time()
    if not force and now - self._last_print < self.every:
      return
    self._last_print = now
    if self.mode == 'bar':
      self.stream.write('\r\033[K' + self.line(step))
    else:
      self.stream.write(self.line(step) + '\n')
    self.stream.flush()

  def message(self, text: str) -> None:
    """Print a line without breaking the live status line."""
    if self.mode == 'bar':
      self.stream.write('\r\033[K')
    self.stream.write(text + '\n')
    self.stream.flush()

  def close(self) -> None:
    if self.mode == 'bar':
      self.stream.write('\n')
      self.stream.flush()
