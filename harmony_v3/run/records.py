"""What a run writes as it goes: one line per training episode
(episodes.jsonl), per evaluation (eval.jsonl) and per log (metrics.jsonl, by
the logger), and TensorBoard events with frames on the x-axis; with
`run.track`, the logger's scalars also go to the tracker (tracking.py).

An env may add `log_*` keys to its observations (Crafter's achievements);
as in DreamerV3's own loop, `run.log_keys_sum`, `_mean` and `_max` pick
which of them each episode sums, averages or takes the maximum of. Those
statistics go into the episode's line of episodes.jsonl (`stats`) and to
the logger as `stats/<sum|mean|max>_<key>`, every episode and every key,
zeros included: unlike the base, `run.log_zeros` is not used, so the
records of a resumed run do not depend on what it saw before the resume.
"""
from __future__ import annotations

import pathlib
import re
import time
from typing import Callable, Iterable

import embodied
import numpy as np

from .logs import JSONLines, make_logger, truncate_tensorboard
from .tracking import make_tracker


STATS = {'sum': np.sum, 'mean': np.mean, 'max': np.max}


def stat_keys(obs_keys: Iterable[str], run: embodied.Config
              ) -> dict[str, tuple[str, ...]]:
  """Which `log_*` observation keys each episode statistic covers: 'sum',
  'mean', 'max' -> the keys that `run.log_keys_<kind>` matches (re.match,
  as the base)."""
  logged = sorted(k for k in obs_keys if k.startswith('log_'))
  return {kind: tuple(k for k in logged
                      if re.match(run[f'log_keys_{kind}'], k))
          for kind in STATS}


def episode_stats(ep: dict, keys: dict[str, tuple[str, ...]]) -> dict:
  """`<kind>_<key>` -> that statistic of the key over the episode's steps,
  as a plain int or float (JSON)."""
  stats = {}
  for kind, names in keys.items():
    for name in names:
      if name in ep:
        value = STATS[kind](np.asarray(ep[name]))
        stats[f'{kind}_{name}'] = value.item()
  return stats


class RunRecords:
  """The log files of one run folder, and cutting them back to a step."""

  def __init__(self, logdir: pathlib.Path, step: embodied.Counter,
               repeat: int, stat_keys: dict[str, tuple[str, ...]] | None
               = None):
    """`step`: the run's agent-step counter; `repeat`: frames per step;
    `stat_keys`: the episode statistics to record (see `stat_keys`)."""
    self.logdir = logdir
    self.step = step
    self.repeat = repeat
    self.stat_keys = stat_keys or {}
    self.evals = JSONLines(logdir / 'eval.jsonl')
    self.episodes = JSONLines(logdir / 'episodes.jsonl')
    self.metrics = JSONLines(logdir / 'metrics.jsonl')
    # The evaluations so far, as in eval.jsonl; checkpoints hold a copy.
    self.eval_records: list[dict] = []
    self.logger = None
    self.tracker = None

  def cut_back(self, step: int, resumed: bool, log: Callable[[str], None],
               evals: list[dict] | None = None) -> None:
    """Drop every record written after agent step `step` (all of them for
    a negative step); `resumed` says whether a checkpoint is behind it.

    `evals`: the evaluations the checkpoint holds. They win over eval.jsonl:
    a file that was deleted, cut or edited is written anew from them.
    """
    for lines in (self.episodes, self.metrics):
      lines.truncate_after(step)
    self._cut_back_evals(step, log, evals)
    dropped = truncate_tensorboard(self.logdir, step * self.repeat)
    if dropped and resumed:
      log(f'Dropped {dropped:,} TensorBoard events logged after the '
          f'checkpoint at step {step:,}.')

  def _cut_back_evals(self, step: int, log: Callable[[str], None],
                      evals: list[dict] | None) -> None:
    if evals is None:  # A fresh run, or a checkpoint older than the field.
      self.evals.truncate_after(step)
      self.eval_records = self.evals.read()
      return
    self.eval_records = [dict(record) for record in evals]
    try:
      logged = [r for r in self.evals.read() if r.get('step', 0) <= step]
    except ValueError:  # A damaged line before the last one.
      logged = None
    if logged == self.eval_records:
      self.evals.truncate_after(step)
      return
    self.evals.rewrite(self.eval_records)
    log(f'{self.evals.path} did not hold the {len(evals)} evaluation(s) of '
        f'the checkpoint (it was missing, cut or changed): written anew '
        'from the checkpoint.')

  def open_logger(self, config: embodied.Config, resuming: bool) -> None:
    """Start the logger (metrics.jsonl, TensorBoard, and the tracker that
    `run.track` asks for); `resuming`: a checkpoint is being resumed."""
    self.tracker = make_tracker(config, self.logdir, self.repeat, resuming)
    extra = [self.tracker] if self.tracker else []
    self.logger = make_logger(self.step, self.logdir, self.repeat, extra)

  def close_logger(self, exit_code: int) -> None:
    """Finish the tracker's run, if any, with the run's exit code."""
    if self.tracker is not None:
      tracker, self.tracker = self.tracker, None
      tracker.close(exit_code)

  def episode(self, ep: dict) -> None:
    """Record a finished training episode."""
    score = float(ep['reward'].astype(np.float64).sum())
    length = len(ep['reward']) - 1
    record = {'step': int(self.step), 'frames': self.frames(),
              'score': score, 'length': length}
    stats = episode_stats(ep, self.stat_keys)
    if stats:
      record['stats'] = stats
    self.episodes.write(record)
    self.logger.add({'score': score, 'length': length}, prefix='episode')
    if stats:
      self.logger.add(stats, prefix='stats')

  def evaluation(self, result) -> None:
    """Record an evaluation (a `evaluation.EvalResult`) at the current step."""
    record = {
        'step': int(self.step), 'frames': self.frames(),
        'episodes': len(result.returns), 'returns': result.returns,
        'lengths': result.lengths, 'mean': result.mean,
        'seconds': round(result.seconds, 2)}
    self.evals.write(record)
    self.eval_records.append(record)
    self.logger.add({'score': result.mean, 'episodes': len(result.returns),
                     'seconds': result.seconds}, prefix='eval')
    self.logger.write()

  def eval_steps(self) -> list[int]:
    """The agent steps of the evaluations recorded so far."""
    return [record['step'] for record in self.eval_records]

  def summary(self, config: embodied.Config, updates: int) -> dict:
    """What done.json says of a finished run."""
    evals = self.eval_records
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
