"""What a run writes as it goes: one line per training episode
(episodes.jsonl), per evaluation (eval.jsonl) and per log (metrics.jsonl, by
the logger), and TensorBoard events with frames on the x-axis."""
from __future__ import annotations

import pathlib
import time
from typing import Callable

import embodied
import numpy as np

from .logs import JSONLines, make_logger, truncate_tensorboard


class RunRecords:
  """The log files of one run folder, and cutting them back to a step."""

  def __init__(self, logdir: pathlib.Path, step: embodied.Counter,
               repeat: int):
    """`step`: the run's agent-step counter; `repeat`: frames per step."""
    self.logdir = logdir
    self.step = step
    self.repeat = repeat
    self.evals = JSONLines(logdir / 'eval.jsonl')
    self.episodes = JSONLines(logdir / 'episodes.jsonl')
    self.metrics = JSONLines(logdir / 'metrics.jsonl')
    self.logger = None

  def cut_back(self, step: int, resumed: bool,
               log: Callable[[str], None]) -> None:
    """Drop every record written after agent step `step` (all of them for
    a negative step); `resumed` says whether a checkpoint is behind it."""
    for lines in (self.evals, self.episodes, self.metrics):
      lines.truncate_after(step)
    dropped = truncate_tensorboard(self.logdir, step * self.repeat)
    if dropped and resumed:
      log(f'Dropped {dropped:,} TensorBoard events logged after the '
          f'checkpoint at step {step:,}.')

  def open_logger(self) -> None:
    """Start the logger (metrics.jsonl and TensorBoard)."""
    self.logger = make_logger(self.step, self.logdir, self.repeat)

  def episode(self, ep: dict) -> None:
    """Record a finished training episode."""
    score = float(ep['reward'].astype(np.float64).sum())
    length = len(ep['reward']) - 1
    self.episodes.write({
        'step': int(self.step), 'frames': self.frames(),
        'score': score, 'length': length})
    self.logger.add({'score': score, 'length': length}, prefix='episode')

  def evaluation(self, result) -> None:
    """Record an evaluation (a `evaluation.EvalResult`) at the current step."""
    self.evals.write({
        'step': int(self.step), 'frames': self.frames(),
        'episodes': len(result.returns), 'returns': result.returns,
        'lengths': result.lengths, 'mean': result.mean,
        'seconds': round(result.seconds, 2)})
    self.logger.add({'score': result.mean, 'episodes': len(result.returns),
                     'seconds': result.seconds}, prefix='eval')
    self.logger.write()

  def eval_steps(self) -> list[int]:
    """The agent steps of the evaluations recorded so far."""
    return [record['step'] for record in self.evals.read()]

  def summary(self, config: embodied.Config, updates: int) -> dict:
    """What done.json says of a finished run."""
    evals = self.evals.read()
    return {
        'task': config.task, 'seed': config.seed,
        'harmony': bool(config.harmony.enabled),
        'steps': int(self.step), 'frames': self.frames(),
        'updates': updates,
        'final_eval_mean': evals[-1]['mean'] if evals else None,
        'final_eval_frames': evals[-1]['frames'] if evals else None,
        'finished': time.strftime('%Y-%m-%dT%H:%M:%S'),
    }

  def frames(self) -> int:
    return int(self.step) * self.repeat
