"""Where a run's metrics go: JSON lines and TensorBoard, keyed by agent steps.

`metrics.jsonl` lines carry both `step` (agent steps) and `frames`
(agent steps x action repeat); TensorBoard's x-axis is frames, as in the
paper's plots. Writing TensorBoard files needs no tensorflow.
"""
from __future__ import annotations

import collections
import json
import pathlib

import embodied
import numpy as np


class JSONLines:
  """Appends one JSON object per line to a file."""

  def __init__(self, path: pathlib.Path):
    self.path = pathlib.Path(path)

  def write(self, record: dict) -> None:
    with self.path.open('a') as f:
      f.write(json.dumps(record) + '\n')

  def read(self) -> list[dict]:
    if not self.path.exists():
      return []
    lines = self.path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]

  def truncate_after(self, step: int) -> None:
    """Drop records past `step` (work redone after resuming a checkpoint)."""
    if not self.path.exists():
      return
    keep = [r for r in self.read() if r.get('step', 0) <= step]
    self.path.write_text(''.join(json.dumps(r) + '\n' for r in keep))


class MetricsJSONL:
  """Logger output: scalars to `metrics.jsonl` with step and frames."""

  def __init__(self, path: pathlib.Path, repeat: int):
    self.lines = JSONLines(path)
    self.repeat = repeat

  def __call__(self, summaries) -> None:
    bystep = collections.defaultdict(dict)
    for step, name, value in summaries:
      value = np.asarray(value)
      if value.ndim == 0 and np.isfinite(value):
        bystep[step][name] = float(value)
    for step, scalars in sorted(bystep.items()):
      self.lines.write({'step': step, 'frames': step * self.repeat, **scalars})


class TensorBoardFrames:
  """Logger output: TensorBoard event files with frames on the x-axis."""

  def __init__(self, logdir: pathlib.Path, repeat: int):
    self.output = embodied.logger.TensorBoardOutput(str(logdir))
    self.repeat = repeat

  def __call__(self, summaries) -> None:
    self.output(tuple((s * self.repeat, n, v) for s, n, v in summaries))


def make_logger(step: embodied.Counter, logdir: pathlib.Path,
                repeat: int) -> embodied.Logger:
  """A logger writing `metrics.jsonl` and TensorBoard files into `logdir`."""
  return embodied.Logger(step, [
      MetricsJSONL(logdir / 'metrics.jsonl', repeat),
      TensorBoardFrames(logdir, repeat),
  ])
