"""Where a run's metrics go: JSON lines and TensorBoard, keyed by agent steps.

`metrics.jsonl` lines carry both `step` (agent steps) and `frames`
(agent steps x action repeat); TensorBoard's x-axis is frames, as in the
paper's plots. Writing TensorBoard files needs no tensorflow.

Both are written synchronously, so what a checkpoint accounts for is on disk
when it is saved. On resume, `JSONLines.truncate_after` and
`truncate_tensorboard` drop what was logged after the checkpoint: that part
of the run is redone, and its first version must not stay in the logs.
"""
from __future__ import annotations

import collections
import json
import os
import pathlib
import struct
import time
from typing import Sequence

import embodied
import numpy as np

from . import faults
from .atomic_files import name_the_file, write_atomic


class JSONLines:
  """Appends one JSON object per line to a file."""

  def __init__(self, path: pathlib.Path):
    self.path = pathlib.Path(path)

  def write(self, record: dict) -> None:
    try:
      faults.check_write(self.path)
      with self.path.open('a') as f:
        f.write(json.dumps(record) + '\n')
    except OSError as e:
      raise name_the_file(e, self.path) from None

  def read(self) -> list[dict]:
    """The records; a last line cut short by a kill is left out."""
    if not self.path.exists():
      return []
    records = []
    lines = self.path.read_text().splitlines()
    for index, line in enumerate(lines):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        if index < len(lines) - 1:
          raise ValueError(
              f'{self.path}, line {index + 1}: not a JSON record') from None
    return records

  def rewrite(self, records: list[dict]) -> None:
    """Replace the file's content by `records`, in one atomic write."""
    write_atomic(self.path,
                 ''.join(json.dumps(r) + '\n' for r in records).encode())

  def truncate_after(self, step: int) -> None:
    """Drop records past `step` (work redone after resuming a checkpoint)."""
    if not self.path.exists():
      return
    keep = [r for r in self.read() if r.get('step', 0) <= step]
    text = ''.join(json.dumps(r) + '\n' for r in keep)
    if text != self.path.read_text():
      write_atomic(self.path, text.encode())


class MetricsJSONL:
  """Logger output: scalars to `metrics.jsonl` with step and frames.

  A NaN or infinite value is written as null, and named with its value
  under `nonfinite` ('nan', 'inf' or '-inf'): JSON has no such numbers,
  and a metric must not go missing without a word.
  """

  def __init__(self, path: pathlib.Path, repeat: int):
    self.lines = JSONLines(path)
    self.repeat = repeat

  def __call__(self, summaries) -> None:
    bystep = collections.defaultdict(dict)
    nonfinite = collections.defaultdict(dict)
    for step, name, value in summaries:
      value = np.asarray(value)
      if value.ndim != 0:
        continue  # Histograms, images and videos go to TensorBoard only.
      value = float(value)
      if np.isfinite(value):
        bystep[step][name] = value
      else:
        bystep[step][name] = None
        nonfinite[step][name] = str(value)
    for step, scalars in sorted(bystep.items()):
      record = {'step': step, 'frames': step * self.repeat, **scalars}
      if nonfinite[step]:
        record['nonfinite'] = nonfinite[step]
      self.lines.write(record)


# TensorBoard event files are TFRecord files: each record is its length
# (uint64), a checksum of the length (uint32), the data (one Event protocol
# buffer) and a checksum of the data (uint32), little-endian.
_HEADER = struct.Struct('<QI')
_FOOTER = 4


def read_records(path: pathlib.Path) -> list[bytes]:
  """The complete records of a TFRecord file, raw (a torn last one is left
  out)."""
  data = pathlib.Path(path).read_bytes()
  records, offset = [], 0
  while offset + _HEADER.size <= len(data):
    length = _HEADER.unpack_from(data, offset)[0]
    end = offset + _HEADER.size + length + _FOOTER
    if end > len(data):
      break
    records.append(data[offset:end])
    offset = end
  return records


def record_event(record: bytes):
  """The TensorBoard Event held by one raw record of `read_records`."""
  from tensorboardX.proto import event_pb2
  data = record[_HEADER.size:len(record) - _FOOTER]
  return event_pb2.Event.FromString(data)


def truncate_tensorboard(logdir: pathlib.Path, last_step: int) -> int:
  """Drop events past `last_step` (TensorBoard's x-axis unit) from every
  event file in `logdir`; returns how many were dropped."""
  dropped = 0
  for path in sorted(pathlib.Path(logdir).glob('events.out.tfevents.*')):
    records = read_records(path)
    keep = [r for r in records if record_event(r).step <= last_step]
    if not keep:
      path.unlink()
    elif len(keep) != len(records) or sum(map(len, records)) != (
        path.stat().st_size):
      write_atomic(path, b''.join(keep))
    dropped += len(records) - len(keep)
  return dropped


class TensorBoardFrames:
  """Logger output: TensorBoard event files with frames on the x-axis.

  Scalars, histograms of 1-D values, images (H, W) or (H, W, C) and videos
  (T, H, W, C), the latter as a strip of frames. A NaN scalar is a metric
  with no value yet (the accuracy on terminal steps of a batch that holds
  none, say): it gets no point here, where it would only draw a gap and a
  'NaN or Inf found' warning; metrics.jsonl keeps it as null. An infinite
  scalar is written as it is.
  Each process writes its own file; every write is flushed.
  """

  def __init__(self, logdir: pathlib.Path, repeat: int,
               max_video_frames: int = 16):
    self.logdir = pathlib.Path(logdir)
    self.repeat = repeat
    self.max_video_frames = max_video_frames
    self._writer = None

  def __call__(self, summaries) -> None:
    from tensorboardX import summary as tbsummary
    from tensorboardX.event_file_writer import EventsWriter
    from tensorboardX.proto import event_pb2, summary_pb2
    if self._writer is None:
      self._writer = EventsWriter(
          str(self.logdir / 'events'), filename_suffix=f'.{os.getpid()}')
    now = time.time()
    for step, name, value in summaries:
      value = np.asarray(value)
      if value.ndim == 0:
        if np.isnan(value):
          continue  # No value yet (see the class docstring).
        proto = summary_pb2.Summary(value=[summary_pb2.Summary.Value(
            tag=name, simple_value=float(value))])
      elif value.ndim == 1:
        value = value[np.isfinite(value)]
        if not value.size:
          continue
        proto = tbsummary.histogram(name, value, 'auto')
      elif value.ndim in (2, 3):
        proto = tbsummary.image(name, _to_uint8(value), dataformats=(
            'HW' if value.ndim == 2 else 'HWC'))
      else:
        frames = _to_uint8(value[:self.max_video_frames])
        strip = np.concatenate(list(frames), axis=1)
        proto = tbsummary.image(name, strip, dataformats='HWC')
      self._writer.write_event(event_pb2.Event(
          wall_time=now, step=int(step) * self.repeat, summary=proto))
    self._writer.flush()


def _to_uint8(value: np.ndarray) -> np.ndarray:
  if np.issubdtype(value.dtype, np.floating):
    value = np.clip(255 * np.nan_to_num(value), 0, 255)
  return value.astype(np.uint8)


def make_logger(step: embodied.Counter, logdir: pathlib.Path,
                repeat: int, extra: Sequence = ()) -> embodied.Logger:
  """A logger writing `metrics.jsonl` and TensorBoard files into `logdir`,
  and to the `extra` outputs (a tracker, see tracking.py)."""
  return embodied.Logger(step, [
      MetricsJSONL(logdir / 'metrics.jsonl', repeat),
      TensorBoardFrames(logdir, repeat),
      *extra,
  ])
