"""TensorBoard event files without tensorflow.

`embodied.logger.TensorBoardOutput` imports tensorflow on its first write.
tensorflow is neither needed nor wanted next to current JAX, so any run that
logs to TensorBoard fails with ModuleNotFoundError. The replacement writes the
same kinds of summaries with tensorboardX: scalars, histograms of 1-D values,
images (H, W, C) and videos (T, H, W, C), the latter as a strip of frames.
"""
from __future__ import annotations

import numpy as np

import dreamerv3  # noqa: F401  (makes `embodied` importable)
from embodied.core import logger as embodied_logger

_ORIGINAL = embodied_logger.TensorBoardOutput


class TensorBoardOutput(embodied_logger.AsyncOutput):
  """Drop-in for the base's TensorBoardOutput, backed by tensorboardX."""

  def __init__(self, logdir, fps: int = 20, maxsize: float = 1e9,
               parallel: bool = True, max_video_frames: int = 16):
    super().__init__(self._write, parallel)
    self._logdir = str(logdir)
    self._max_video_frames = max_video_frames
    self._writer = None

  def _write(self, summaries):
    if self._writer is None:
      from tensorboardX import SummaryWriter
      self._writer = SummaryWriter(self._logdir, max_queue=1000)
    for step, name, value in summaries:
      value = np.asarray(value)
      if value.ndim == 0:
        if np.isfinite(value):  # e.g. NaN rates of an empty replay window.
          self._writer.add_scalar(name, float(value), step)
      elif value.ndim == 1:
        value = value[np.isfinite(value)]
        if value.size:
          self._writer.add_histogram(name, value, step)
      elif value.ndim in (2, 3):
        self._writer.add_image(name, _to_uint8(value), step, dataformats=(
            'HW' if value.ndim == 2 else 'HWC'))
      elif value.ndim == 4:
        frames = _to_uint8(value[:self._max_video_frames])
        strip = np.concatenate(list(frames), axis=1)
        self._writer.add_image(name, strip, step, dataformats='HWC')
    self._writer.flush()


def _to_uint8(value: np.ndarray) -> np.ndarray:
  if np.issubdtype(value.dtype, np.floating):
    value = np.clip(255 * value, 0, 255)
  return value.astype(np.uint8)


def is_applied() -> bool:
  return embodied_logger.TensorBoardOutput is TensorBoardOutput


def apply() -> None:
  embodied_logger.TensorBoardOutput = TensorBoardOutput
