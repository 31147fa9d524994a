"""What the report says, computed from the data files (no formatting here).

- A run's score is its final evaluation (the mean return of the evaluation
  at the end of its step budget).
- A game is complete when both methods have every expected seed (0..N-1,
  N = 5). Incomplete games are shown with their seed counts and marked; the
  aggregates (IQM, probability of improvement) use complete games only.
- Normalization (for the IQM): with random and reference returns for every
  game, (score - random) / (reference - random); with random returns only,
  the fallback score - random (return above random play, in reward units,
  not comparable across games: said in a warning); without random returns,
  no IQM.
"""
from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import numpy as np

from harmony_v3.scores.minatar import stats
from harmony_v3.scores.minatar.benchmark import (GAMES, METHOD_LABELS,
                                                 METHODS, NUM_SEEDS,
                                                 RANDOM_CSV,
                                                 BenchmarkFileError,
                                                 GameValues, shown_path)
from harmony_v3.scores.minatar.records import HARMONIZERS, RunRecord

NORMALIZATIONS = {
    'reference': '(score - random) / (reference - random)',
    'random': 'score - random (fallback: no reference returns)',
    'none': 'none (no random returns)',
}


@dataclasses.dataclass
class MethodGame:
  """One method on one game: final scores of its expected seeds."""
  scores: dict[int, float]                 # seed -> final score
  mean: stats.Interval | None = None       # over seeds, 95% bootstrap
  normalized: stats.Interval | None = None

  @property
  def n(self) -> int:
    return len(self.scores)


@dataclasses.dataclass
class Summary:
  """Everything the report shows."""
  records: list[RunRecord]
  num_seeds: int
  random: GameValues
  reference: GameValues
  normalization: str                          # a key of NORMALIZATIONS
  results: dict[str, dict[str, MethodGame]]   # game -> method -> result
  complete_games: list[str]
  missing: list[tuple[str, str, list[int]]]   # (method, game, seeds)
  iqm: dict[str, stats.Interval] | None = None
  improvement: stats.Interval | None = None   # P(Harmony > DreamerV3)
  weights: dict[str, dict[str, dict[str, list[float]]]] = dataclasses.field(
      default_factory=dict)  # game -> harmonizer -> weight/optimal per seed
  warnings: list[str] = dataclasses.field(default_factory=list)
  reps: int = stats.DEFAULT_REPS
  seed: int = stats.DEFAULT_SEED

  @property
  def expected_runs(self) -> int:
    return len(METHODS) * len(GAMES) * self.num_seeds

  @property
  def counted_runs(self) -> int:
    return sum(r.n for game in self.results.values()
               for r in game.values())

  def complete(self, game: str) -> bool:
    return game in self.complete_games


def choose_normalization(random: GameValues, reference: GameValues) -> str:
  """'reference', 'random' or 'none' (see the module docstring)."""
  if not random.complete:
    return 'none'
  if not reference.complete:
    return 'random'
  same = [g for g in GAMES if reference.values[g] == random.values[g]]
  if same:
    raise BenchmarkFileError(
        f'{reference.path}: the reference return of {", ".join(same)} '
        'equals its random return: no scale to normalize by')
  return 'reference'


def _normalizer(kind: str, random: GameValues, reference: GameValues):
  def apply(values, game: str):
    values = np.asarray(values, np.float64)
    if kind == 'reference':
      return stats.normalize(values, random.values[game],
                             reference.values[game])
    return values - random.values[game]
  return None if kind == 'none' else apply


def summarize(records: Sequence[RunRecord], random: GameValues,
              reference: GameValues, num_seeds: int = NUM_SEEDS,
              reps: int = stats.DEFAULT_REPS,
              seed: int = stats.DEFAULT_SEED) -> Summary:
  """The report's content from the data files' records."""
  kind = choose_normalization(random, reference)
  normalizer = _normalizer(kind, random, reference)
  warnings = []
  counted = []
  for record in records:
    if record.seed >= num_seeds:
      warnings.append(f'{record.name}: seed outside 0..{num_seeds - 1}, not '
                      f'counted ({record.path})')
    else:
      counted.append(record)
  results = {g: {m: MethodGame({}) for m in METHODS} for g in GAMES}
  for record in counted:
    results[record.game][record.method].scores[record.seed] = record.final
  for game in GAMES:
    for method in METHODS:
      result = results[game][method]
      if not result.scores:
        continue
      values = [result.scores[s] for s in sorted(result.scores)]
      result.mean = stats.bootstrap_mean(values, reps, seed)
      if normalizer is not None:
        scaled = [float(normalizer(v, game))
                  for v in (result.mean.value, result.mean.low,
                            result.mean.high)]
        low, high = sorted(scaled[1:])  # A reference below random flips.
        result.normalized = stats.Interval(scaled[0], low, high)
  missing = [(m, g, [s for s in range(num_seeds)
                     if s not in results[g][m].scores])
             for m in METHODS for g in GAMES]
  missing = [(m, g, seeds) for m, g, seeds in missing if seeds]
  complete = [g for g in GAMES
              if all(results[g][m].n == num_seeds for m in METHODS)]
  summary = Summary(list(records), num_seeds, random, reference, kind,
                    results, complete, missing, reps=reps, seed=seed)
  summary.warnings = warnings + _warnings(summary, counted)
  if complete:
    raw = {m: _matrix(results, complete, m, num_seeds) for m in METHODS}
    if normalizer is not None:
      normalized = {m: np.stack([normalizer(raw[m][:, i], g)
                                 for i, g in enumerate(complete)], axis=1)
                    for m in METHODS}
      summary.iqm = stats.iqm(normalized, reps, seed)
    summary.improvement = stats.probability_of_improvement(
        raw['harmony'], raw['dreamerv3'], reps, seed)
  summary.weights = _weights(counted)
  return summary


def _matrix(results, games: Sequence[str], method: str,
            num_seeds: int) -> np.ndarray:
  """(seeds x games) final scores of complete games."""
  return np.array([[results[g][method].scores[s] for g in games]
                   for s in range(num_seeds)], dtype=np.float64)


def _weights(records: Sequence[RunRecord]):
  """game -> harmonizer -> {'weight': [...], 'optimal': [...], 'seeds'}."""
  out: dict = {}
  for record in records:
    if record.method != 'harmony' or not record.harmony:
      continue
    for name in HARMONIZERS:
      value = record.harmony.get(name)
      if value is None:
        continue
      entry = out.setdefault(record.game, {}).setdefault(
          name, {'weight': [], 'optimal': [], 'seeds': []})
      entry['weight'].append(float(value['weight']))
      entry['optimal'].append(float(value['optimal_weight']))
      entry['seeds'].append(record.seed)
  return out


def _warnings(summary: Summary, records: Sequence[RunRecord]) -> list[str]:
  """What is missing, incomplete or inconsistent, in words."""
  out = []
  if summary.missing:
    runs = sum(len(seeds) for _, _, seeds in summary.missing)
    out.append(f'{runs} of {summary.expected_runs} runs are missing (listed '
               'under "Missing runs"); incomplete games are excluded from '
               'the aggregates')
  if not summary.complete_games:
    out.append('no game has all its seeds for both methods: no aggregate '
               '(IQM, probability of improvement) yet')
  if summary.normalization == 'random':
    missing = ', '.join(summary.reference.missing)
    out.append(
        'NO REFERENCE RETURNS for ' + missing + ' in '
        + (shown_path(summary.reference.path) if summary.reference.path
           else 'the reference file (absent)')
        + ': the IQM is of score - random (return above random play, in '
        'reward units), NOT reference-normalized; games with large returns '
        'weigh more. Fill in the published returns to normalize '
        '(docs/minatar_benchmark.md)')
  if summary.normalization == 'none':
    where = shown_path(summary.random.path or RANDOM_CSV)
    out.append(f'no random returns for {", ".join(summary.random.missing)} '
               f'({where}): no normalized scores and no IQM')
  digests = Counter(r.config_digest for r in records)
  if len(digests) > 1:
    parts = []
    for digest, count in digests.most_common():
      names = [r.name for r in records if r.config_digest == digest]
      parts.append(f'{digest} ({count} run(s), e.g. {names[0]})')
    out.append('runs made with different settings (config digests): '
               + '; '.join(parts))
  finals = Counter(r.final_frames for r in records)
  if len(finals) > 1:
    common = finals.most_common(1)[0][0]
    odd = [f'{r.name} ({r.final_frames:,})' for r in records
           if r.final_frames != common]
    out.append(f'final evaluations at different frames: most at '
               f'{common:,}, but ' + ', '.join(odd))
  no_weights = [r.name for r in records
                if r.method == 'harmony' and not r.harmony]
  if no_weights:
    out.append('Harmony runs without harmonizer logs: '
               + ', '.join(no_weights))
  return out


def method_label(method: str) -> str:
  """'harmony' -> 'Harmony DreamerV3'."""
  return METHOD_LABELS[method]
