"""Aggregates: final scores per game, human-normalized scores, bootstrap CIs.

The final score of a run is its evaluation at `frames` environment frames
(the first evaluation at or after it). Runs that have not got there, or
whose final score is NaN or infinite, are left out of the final scores and
reported, as are missing seeds and games. Mean
and median HNS use the unrounded random and human scores; IQM and the
optimality gap come with rliable's 95% stratified-bootstrap intervals.
"""
from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from harmony_v3.scores.benchmark import (DEFAULT_FRAMES, GAMES, RandomHuman,
                                         load_paper_table, load_random_human)
from harmony_v3.scores.runs import MethodData

DEFAULT_REPS = 2000
DEFAULT_BOOTSTRAP_SEED = 0


def human_normalized(score, game: str, random_human: RandomHuman | None = None):
  """(score - random) / (human - random) with the unrounded references."""
  random_human = random_human or load_random_human()
  low, high = random_human[game]
  return (np.asarray(score, dtype=np.float64) - low) / (high - low)


@dataclasses.dataclass
class GameResult:
  """Final scores of one method on one game."""
  scores: dict[int, float]  # seed -> final score, complete runs only.
  expected_seeds: tuple[int, ...]
  incomplete: dict[int, str]  # seed -> why it has no final score.

  @property
  def n_seeds(self) -> int:
    return len(self.scores)

  @property
  def n_expected(self) -> int:
    return len(self.expected_seeds)

  @property
  def complete(self) -> bool:
    return self.n_seeds == self.n_expected

  @property
  def missing_seeds(self) -> list[int]:
    present = set(self.scores) | set(self.incomplete)
    return [s for s in self.expected_seeds if s not in present]

  @property
  def mean(self) -> float | None:
    return float(np.mean(list(self.scores.values()))) if self.scores else None

  @property
  def std(self) -> float | None:
    """Sample standard deviation over seeds (ddof=1); None below 2 seeds."""
    if self.n_seeds < 2:
      return None
    return float(np.std(list(self.scores.values()), ddof=1))


@dataclasses.dataclass
class Interval:
  """A point estimate with its 95% bootstrap confidence interval."""
  value: float
  low: float
  high: float


@dataclasses.dataclass
class MethodSummary:
  """Per-game results and HNS aggregates of one method."""
  method: MethodData
  frames: int
  games: dict[str, GameResult]  # Games with at least one run.
  mean: float | None = None  # HNS aggregates as fractions (1.0 = human).
  median: float | None = None
  iqm: Interval | None = None
  optimality_gap: Interval | None = None
  bootstrap_seeds: int = 0  # Seeds per game in the bootstrap matrix.
  warnings: list[str] = dataclasses.field(default_factory=list)

  @property
  def label(self) -> str:
    return self.method.label

  @property
  def scored_games(self) -> list[str]:
    """Games with at least one complete run, in benchmark order."""
    return [g for g in GAMES if g in self.games and self.games[g].n_seeds]

  @property
  def missing_games(self) -> list[str]:
    return [g for g in GAMES if g not in self.scored_games]

  def aggregate(self, key: str) -> float | Interval | None:
    """One of mean, median, iqm, optimality_gap (HNS fractions)."""
    return getattr(self, key)


def final_scores(method: MethodData, frames: int = DEFAULT_FRAMES
                 ) -> dict[str, GameResult]:
  """Per game: final scores of the runs that reached `frames`."""
  expected = tuple(sorted({s for seeds in method.curves.values()
                           for s in seeds}))
  results = {}
  for game in GAMES:
    if game not in method.curves:
      continue
    scores, incomplete = {}, {}
    for seed, curve in sorted(method.curves[game].items()):
      score = curve.final(frames)
      if score is None:
        state = 'finished' if curve.done else 'not finished'
        incomplete[seed] = (
            f'last evaluation at {curve.last_frames} frames < {frames} '
            f'({state}; {curve.path})' if len(curve.frames) else
            f'no evaluation yet ({state}; {curve.path})')
      elif not np.isfinite(score):  # Never averaged: it would make all nan.
        at = int(curve.frames[np.flatnonzero(curve.frames >= frames)[0]])
        incomplete[seed] = (f'final evaluation score is {score} at {at} '
                            f'frames ({curve.path or method.source})')
      else:
        scores[seed] = score
    results[game] = GameResult(scores, expected, incomplete)
  return results


def hns_matrix(summary: MethodSummary, random_human: RandomHuman | None = None
               ) -> tuple[np.ndarray, list[str]]:
  """(seeds x games) HNS of the complete runs, as fractions.

  Games with differing seed counts are cut to the fewest complete seeds
  (lowest seed ids kept) so that the matrix is rectangular.
  """
  random_human = random_human or load_random_human()
  names = summary.scored_games
  if not names:
    return np.zeros((0, 0)), names
  n = min(summary.games[g].n_seeds for g in names)
  columns = []
  for game in names:
    seeds = sorted(summary.games[game].scores)[:n]
    values = [summary.games[game].scores[s] for s in seeds]
    columns.append(human_normalized(values, game, random_human))
  return np.stack(columns, axis=1), names


@contextlib.contextmanager
def _seeded_global_numpy(seed: int):
  """Seed numpy's global generator for the block, restoring it afterwards.

  rliable 1.2.0 draws its bootstrap indices from `np.random.choice`, so its
  `random_state` argument alone does not make the intervals reproducible.
  """
  state = np.random.get_state()
  np.random.seed(seed)
  try:
    yield
  finally:
    np.random.set_state(state)


def bootstrap_intervals(matrix: np.ndarray, reps: int = DEFAULT_REPS,
                        seed: int = DEFAULT_BOOTSTRAP_SEED
                        ) -> dict[str, Interval]:
  """IQM and optimality gap of a (seeds x games) matrix with 95% CIs.

  Uses rliable's stratified bootstrap (runs resampled within each game).
  """
  from rliable import library as rly
  from rliable import metrics

  def aggregates(scores):
    return np.array([metrics.aggregate_iqm(scores),
                     metrics.aggregate_optimality_gap(scores)])

  with warnings.catch_warnings(), _seeded_global_numpy(seed):
    warnings.simplefilter('ignore', FutureWarning)
    points, intervals = rly.get_interval_estimates(
        {'m': matrix}, aggregates, reps=reps,
        random_state=np.random.RandomState(seed))
  point, interval = points['m'], intervals['m']
  return {key: Interval(float(point[i]), float(interval[0, i]),
                        float(interval[1, i]))
          for i, key in enumerate(('iqm', 'optimality_gap'))}


def summarize(method: MethodData, frames: int = DEFAULT_FRAMES,
              reps: int = DEFAULT_REPS, seed: int = DEFAULT_BOOTSTRAP_SEED,
              random_human: RandomHuman | None = None) -> MethodSummary:
  """Final scores, HNS mean/median and bootstrapped IQM/optimality gap."""
  random_human = random_human or load_random_human()
  summary = MethodSummary(method, frames, final_scores(method, frames))
  names = summary.scored_games
  if names:
    per_game = [human_normalized(summary.games[g].mean, g, random_human)
                for g in names]
    summary.mean = float(np.mean(per_game))
    summary.median = float(np.median(per_game))
    matrix, _ = hns_matrix(summary, random_human)
    intervals = bootstrap_intervals(matrix, reps, seed)
    summary.iqm = intervals['iqm']
    summary.optimality_gap = intervals['optimality_gap']
    summary.bootstrap_seeds = matrix.shape[0]
  summary.warnings = _method_warnings(summary)
  return summary


def _seed_list(seeds: Sequence[int]) -> str:
  return ', '.join(str(s) for s in seeds)


def _method_warnings(summary: MethodSummary) -> list[str]:
  """What is missing or incomplete for one method, in words."""
  out = []
  for game in GAMES:
    result = summary.games.get(game)
    if result is None:
      continue
    if result.missing_seeds:
      seeds = _seed_list(result.missing_seeds)
      out.append(f'{game}: no run for seed(s) {seeds}'
                 f' ({result.n_seeds}/{result.n_expected} seeds scored)')
    for seed, why in result.incomplete.items():
      out.append(f'{game} seed {seed}: incomplete, excluded from final scores'
                 f' — {why}')
  missing = summary.missing_games
  if missing:
    out.append(f'missing games ({len(missing)}): {", ".join(missing)}; '
               f'aggregates are over {len(GAMES) - len(missing)}/{len(GAMES)} '
               'games')
  short = [g for g in summary.scored_games if not summary.games[g].complete]
  if short:
    out.append(f'games with fewer seeds than expected: {", ".join(short)}; '
               'their seed means use the seeds available')
    out.append(f'IQM and optimality gap use {summary.bootstrap_seeds} seed(s) '
               'per game (the fewest of any game; lowest seed ids kept)')
  for curve_game, seeds in summary.method.curves.items():
    for seed, curve in seeds.items():
      if not curve.done and curve.final(summary.frames) is not None:
        out.append(f'{curve_game} seed {seed}: reached {summary.frames} frames '
                   f'but has no done.json ({curve.path})')
  out.extend(summary.method.notes)
  return out


def paper_aggregates(random_human: RandomHuman | None = None
                     ) -> dict[str, dict[str, float]]:
  """Mean/median HNS (fractions) of each Table 2 column, exact references."""
  random_human = random_human or load_random_human()
  table = load_paper_table()
  result = {}
  for column, scores in table.items():
    hns = [human_normalized(scores[g], g, random_human) for g in GAMES]
    result[column] = {'mean': float(np.mean(hns)),
                      'median': float(np.median(hns))}
  return result

