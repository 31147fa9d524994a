"""The benchmark's statistics: bootstrap intervals, normalization, IQM and
probability of improvement.

- Per game: the mean over seeds with a 95% percentile bootstrap interval
  (seeds resampled with replacement; numpy's default_rng(seed)).
- Normalized score, per game: (score - random) / (reference - random).
- IQM of normalized scores over (seeds x games), and the probability of
  improvement of one method over another, both with rliable's 95%
  stratified-bootstrap intervals (runs resampled within each game).

Everything is reproducible: the same data, `reps` and `seed` give the same
numbers.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from harmony_v3.scores.aggregate import _seeded_global_numpy

DEFAULT_REPS = 2000
DEFAULT_SEED = 0
CONFIDENCE = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
  """A point estimate with its 95% bootstrap interval."""
  value: float
  low: float
  high: float


def bootstrap_mean(values: Sequence[float], reps: int = DEFAULT_REPS,
                   seed: int = DEFAULT_SEED) -> Interval:
  """Mean of `values` with a 95% percentile bootstrap interval (one value:
  the interval is that value)."""
  values = np.asarray(values, dtype=np.float64)
  if values.size == 0:
    raise ValueError('no values to average')
  rng = np.random.default_rng(seed)
  samples = values[rng.integers(0, values.size, (reps, values.size))]
  means = samples.mean(axis=1)
  tail = (1 - CONFIDENCE) / 2 * 100
  low, high = np.percentile(means, [tail, 100 - tail])
  return Interval(float(values.mean()), float(low), float(high))


def normalize(scores, random: float, reference: float) -> np.ndarray:
  """(score - random) / (reference - random): 0 is random play, 1 the
  reference."""
  if reference == random:
    raise ValueError('the reference return equals the random return')
  return (np.asarray(scores, dtype=np.float64) - random) / (reference - random)


def _rliable(score_dict: Mapping, func, reps: int, seed: int
             ) -> dict[str, Interval]:
  """rliable's interval estimates, reproducible (rliable 1.2.0 draws from
  numpy's global generator, which is seeded here and restored after)."""
  from rliable import library as rly
  with warnings.catch_warnings(), _seeded_global_numpy(seed):
    warnings.simplefilter('ignore', FutureWarning)
    points, intervals = rly.get_interval_estimates(
        dict(score_dict), func, reps=reps,
        confidence_interval_size=CONFIDENCE,
        random_state=np.random.RandomState(seed))
  return {key: Interval(float(np.ravel(points[key])[0]),
                        float(np.ravel(intervals[key][0])[0]),
                        float(np.ravel(intervals[key][1])[0]))
          for key in points}


def iqm(matrices: Mapping[str, np.ndarray], reps: int = DEFAULT_REPS,
        seed: int = DEFAULT_SEED) -> dict[str, Interval]:
  """IQM of each method's (seeds x games) matrix, with rliable's 95%
  stratified-bootstrap interval."""
  from rliable import metrics
  return _rliable(matrices,
                  lambda x: np.array([metrics.aggregate_iqm(x)]), reps, seed)


def probability_of_improvement(x: np.ndarray, y: np.ndarray,
                               reps: int = DEFAULT_REPS,
                               seed: int = DEFAULT_SEED) -> Interval:
  """P(X > Y) of rliable: per game the probability that a run of X scores
  higher than a run of Y (ties count half), averaged over games; x and y are
  (seeds x games). With its 95% stratified-bootstrap interval.

  It compares runs within each game only, so any increasing per-game
  rescaling (such as normalization) leaves it unchanged."""
  from rliable import metrics
  return _rliable(
      {'x,y': (np.asarray(x, np.float64), np.asarray(y, np.float64))},
      lambda a, b: np.array([metrics.probability_of_improvement(a, b)]),
      reps, seed)['x,y']


def curve_band(curves: Sequence[tuple[Sequence[int], Sequence[float]]],
               reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED):
  """Mean over seeds and its 95% bootstrap band at each frame.

  `curves` are (frames, returns) per seed; a frame's statistics use the seeds
  that evaluated there. Returns (frames, mean, low, high, seeds there).
  """
  grid = np.unique(np.concatenate([np.asarray(f) for f, _ in curves]))
  table = np.full((len(curves), len(grid)), np.nan)
  for i, (frames, values) in enumerate(curves):
    table[i, np.searchsorted(grid, frames)] = values
  mean, low, high = (np.empty(len(grid)) for _ in range(3))
  count = np.sum(~np.isnan(table), axis=0)
  for j in range(len(grid)):
    column = table[:, j][~np.isnan(table[:, j])]
    interval = bootstrap_mean(column, reps, seed)
    mean[j], low[j], high[j] = interval.value, interval.low, interval.high
  return grid, mean, low, high, count
