"""Atari 100K score tables: load runs or published curves, aggregate, report.

Usage:
  python -m harmony_v3.scores PATH [PATH ...] [--out DIR] [--format md,csv,tex]
      [--plots] [--frames 400000] [--reps 2000] [--bootstrap-seed 0]

Each PATH is a sweep log root (searched recursively for run folders, i.e.
directories holding `config.yaml` and `eval.jsonl`) or a JSON file of published
per-seed curves ({"steps": [frames...], "score": {game: [[...] per seed]}}).
`NAME=PATH` sets the column label. Both kinds of input become the same
`MethodData` (game -> seed -> `Curve`) and go through the same code.

The final score of a run is its evaluation at `--frames` environment frames
(the first evaluation at or after it). Runs that have not got there are left
out of the final scores and reported, as are missing seeds and games.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import json
import math
import pathlib
import sys
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from harmony_v3 import games as games_lib

REFERENCE_DIR = pathlib.Path(__file__).parent / 'reference'
GAMES = games_lib.ATARI100K_GAMES
DEFAULT_FRAMES = 400_000
DEFAULT_REPS = 2000
DEFAULT_BOOTSTRAP_SEED = 0
BOLD_TOLERANCE = 0.05  # Bold entries within 5% of the best of their row.

# Columns of the paper's Table 2: csv column -> printed header.
PAPER_COLUMNS = {
    'random': 'Random',
    'human': 'Human',
    'simple': 'SimPLe',
    'twm': 'TWM',
    'iris': 'IRIS',
    'dreamerv3_original': 'DreamerV3 (original)',
    'dreamerv3_reproduced': 'DreamerV3 (reproduced)',
    'harmony_dreamerv3': 'Harmony DreamerV3',
}
PAPER_AGENT_COLUMNS = tuple(c for c in PAPER_COLUMNS
                            if c not in ('random', 'human'))

# Aggregate rows: key -> (printed name, higher is better).
AGGREGATE_ROWS = {
    'mean': ('Mean HNS', True),
    'median': ('Median HNS', True),
    'iqm': ('IQM HNS', True),
    'optimality_gap': ('Optimality gap', False),
}
MISSING = '—'


# ----------------------------------------------------------------------------
# Common representation.


@dataclasses.dataclass(frozen=True)
class Curve:
  """Evaluation scores of one run (one method, game and seed) over frames."""
  frames: np.ndarray  # Environment frames, ascending.
  scores: np.ndarray  # Mean evaluation return at those frames.
  done: bool = True  # Whether the run says it has finished.
  path: str | None = None  # Run folder; None for published curves.

  def final(self, frames: int) -> float | None:
    """Score of the first evaluation at or after `frames`, None if none."""
    idx = np.flatnonzero(self.frames >= frames)
    return float(self.scores[idx[0]]) if len(idx) else None

  @property
  def last_frames(self) -> int:
    """Frames of the latest evaluation (0 if none)."""
    return int(self.frames[-1]) if len(self.frames) else 0


@dataclasses.dataclass
class MethodData:
  """All curves of one method: game -> seed -> Curve."""
  label: str
  source: str
  published: bool
  curves: dict[str, dict[int, Curve]] = dataclasses.field(default_factory=dict)
  notes: list[str] = dataclasses.field(default_factory=list)

  def add(self, game: str, seed: int, curve: Curve) -> None:
    """Add a run; on a duplicate (game, seed) keep the further one and note."""
    seeds = self.curves.setdefault(game, {})
    old = seeds.get(seed)
    if old is not None:
      keep, drop = sorted(
          [old, curve], key=lambda c: (c.done, c.last_frames), reverse=True)
      self.notes.append(
          f'{game} seed {seed}: duplicate runs, using {keep.path} and '
          f'ignoring {drop.path}')
      curve = keep
    seeds[seed] = curve


# ----------------------------------------------------------------------------
# Loading.


def method_label(config: dict) -> str:
  """'harmony_dreamerv3' if the run used the harmonizers, else 'dreamerv3'."""
  harmony = config.get('harmony') or {}
  return 'harmony_dreamerv3' if harmony.get('enabled') else 'dreamerv3'


def published_label(path: str | pathlib.Path) -> str:
  """Label of a published-curves file: its stem without '_atari100k'."""
  stem = pathlib.Path(path).stem
  return stem.removesuffix('_atari100k')


def load_published(path: str | pathlib.Path,
                   label: str | None = None) -> MethodData:
  """Read a JSON of published per-seed curves into a MethodData."""
  path = pathlib.Path(path)
  data = json.loads(path.read_text())
  frames = np.asarray(data['steps'], dtype=np.int64)
  method = MethodData(label or published_label(path), str(path), True)
  for game, per_seed in data['score'].items():
    if game not in GAMES:
      method.notes.append(f'ignoring unknown game {game!r} in {path}')
      continue
    for seed, scores in enumerate(per_seed):
      scores = np.asarray(scores, dtype=np.float64)
      if len(scores) != len(frames):
        raise ValueError(
            f'{path}: {game} seed {seed} has {len(scores)} scores for '
            f'{len(frames)} steps')
      method.add(game, seed, Curve(frames, scores, True, None))
  return method


def find_run_dirs(root: str | pathlib.Path) -> list[pathlib.Path]:
  """Run folders (with config.yaml and eval.jsonl or metrics.jsonl) below root.

  Folders with a config but no eval.jsonl are returned too, so that runs that
  have not evaluated yet count as incomplete rather than missing.
  """
  root = pathlib.Path(root)
  found = []
  for config in sorted(root.rglob('config.yaml')):
    folder = config.parent
    logs = [folder / 'eval.jsonl', folder / 'metrics.jsonl']
    if any(p.is_file() for p in logs):
      found.append(folder)
  return found


def read_jsonl(path: pathlib.Path, notes: list[str]) -> list[dict]:
  """Parse a JSON-lines file, noting (not raising on) unreadable lines."""
  rows = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        notes.append(f'{path}:{number}: unreadable line skipped')
  return rows


def read_config(folder: pathlib.Path) -> dict:
  """The run's config.yaml as plain Python objects."""
  from ruamel.yaml import YAML
  return YAML(typ='safe').load((folder / 'config.yaml').read_text()) or {}


def read_eval_curve(folder: pathlib.Path, notes: list[str]) -> Curve:
  """The evaluation curve of one run folder (empty if it has not evaluated)."""
  points = {}
  path = folder / 'eval.jsonl'
  if path.is_file():
    for row in read_jsonl(path, notes):
      frames = row.get('frames')
      if frames is None and 'step' in row:
        frames = row['step'] * games_lib.FRAMES_PER_AGENT_STEP
      score = row.get('mean')
      if score is None and row.get('returns'):
        score = float(np.mean(row['returns']))
      if frames is None or score is None:
        notes.append(f'{path}: evaluation without frames or score skipped')
        continue
      points[int(frames)] = float(score)  # A rewritten point replaces the old.
  frames = np.asarray(sorted(points), dtype=np.int64)
  scores = np.asarray([points[f] for f in frames], dtype=np.float64)
  done = (folder / 'done.json').exists()
  return Curve(frames, scores, done, str(folder))


def load_sweep(root: str | pathlib.Path,
               name: str | None = None) -> list[MethodData]:
  """All methods found under a sweep log root, one MethodData per method.

  Labels are '<method> (ours)', or `name` ('name/<method>' when the root
  holds several methods).
  """
  root = pathlib.Path(root)
  methods: dict[str, MethodData] = {}
  skipped = []
  for folder in find_run_dirs(root):
    notes: list[str] = []
    try:
      config = read_config(folder)
      game = games_lib.game_from_task(str(config['task']))
      seed = int(config['seed'])
    except (KeyError, TypeError, ValueError) as error:
      skipped.append(f'{folder}: not an Atari 100K run ({error}), skipped')
      continue
    label = method_label(config)
    if label not in methods:
      methods[label] = MethodData(label, str(root), False)
    methods[label].add(game, seed, read_eval_curve(folder, notes))
    methods[label].notes.extend(notes)
  result = []
  for label in sorted(methods, reverse=True):  # Harmony first.
    method = methods[label]
    if name:
      method.label = name if len(methods) == 1 else f'{name}/{label}'
    else:
      method.label = f'{label} (ours)'
    method.notes[:0] = skipped
    result.append(method)
  if not result:
    raise ValueError(f'No Atari 100K run folders found under {root}')
  return result


def load_path(spec: str) -> list[MethodData]:
  """Load one CLI PATH argument ('PATH' or 'NAME=PATH')."""
  name, path = None, spec
  if '=' in spec and not pathlib.Path(spec).exists():
    name, path = spec.split('=', 1)
  path = pathlib.Path(path)
  if path.is_dir():
    return load_sweep(path, name)
  if path.is_file() and path.suffix == '.json':
    return [load_published(path, name)]
  raise FileNotFoundError(
      f'{path} is neither a sweep log directory nor a published-curves .json')


def load_paths(specs: Iterable[str]) -> list[MethodData]:
  """Load all PATH arguments, making the column labels unique."""
  methods = []
  seen: dict[str, int] = {}
  for spec in specs:
    for method in load_path(spec):
      count = seen.get(method.label, 0) + 1
      seen[method.label] = count
      if count > 1:
        method.label = f'{method.label} #{count}'
      methods.append(method)
  return methods


def load_random_human() -> dict[str, tuple[float, float]]:
  """Unrounded random and human scores per game."""
  path = REFERENCE_DIR / 'atari_random_human_exact.csv'
  with open(path) as f:
    return {row['game']: (float(row['random']), float(row['human']))
            for row in csv.DictReader(f)}


def load_paper_table() -> dict[str, dict[str, float]]:
  """The paper's Table 2 (rounded): column -> game -> score."""
  path = REFERENCE_DIR / 'atari100k_table2.csv'
  table: dict[str, dict[str, float]] = {c: {} for c in PAPER_COLUMNS}
  with open(path) as f:
    for row in csv.DictReader(f):
      for column in PAPER_COLUMNS:
        table[column][row['game']] = float(row[column])
  return table


# ----------------------------------------------------------------------------
# Aggregation.


RandomHuman = dict[str, tuple[float, float]]


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


# ----------------------------------------------------------------------------
# Table.


@dataclasses.dataclass
class Cell:
  """One table entry: a value to rank by, and what to print."""
  value: float | None = None  # Ranking value (score or HNS %); None if empty.
  text: str = ''
  std: float | None = None
  n_seeds: int | None = None
  low: float | None = None  # CI bounds (aggregate rows).
  high: float | None = None
  note: str = ''  # Why the cell is marked ('' when complete).
  bold: bool = False  # Applies to `text`, not to the incompleteness mark.
  missing: bool = False  # No data at all: printed as MISSING, unmarked.

  @property
  def marked(self) -> bool:
    return bool(self.note)

  @property
  def mark(self) -> str:
    """' (note)*' for an incomplete entry, '' otherwise or when missing."""
    return f' ({self.note})*' if self.note and not self.missing else ''

  @property
  def display(self) -> str:
    return self.text + self.mark


@dataclasses.dataclass
class Table:
  """Rows of games and aggregates; paper columns then one per method."""
  columns: list[tuple[str, str]]  # paper_key()s, then method_key()s.
  headers: list[str]
  agent_columns: list[tuple[str, str]]  # Columns taking part in bolding.
  rows: list[str]  # Keys: game names, then aggregate keys.
  row_names: list[str]
  cells: dict[tuple[str, tuple[str, str]], Cell]  # (row, column) -> Cell.

  def cell(self, row: str, column: str, paper: bool = False) -> Cell:
    """Cell of a row for a method label (or a Table 2 column if paper)."""
    return self.cells[row, paper_key(column) if paper else method_key(column)]
  summaries: list[MethodSummary]
  frames: int

  def warnings(self) -> list[str]:
    """All warnings, each prefixed with its method's label."""
    return [f'{s.label}: {w}' for s in self.summaries for w in s.warnings]


def _fmt_score(x: float) -> str:
  return f'{x:.0f}' if abs(x) >= 100 else f'{x:.1f}'


def _fmt_pct(x: float) -> str:
  text = f'{100 * x:.1f}'
  return ('0.0' if text == '-0.0' else text) + '%'


def _score_cell(result: GameResult | None) -> Cell:
  if result is None:
    return Cell(None, MISSING, note='no runs', missing=True)
  n = f'{result.n_seeds}/{result.n_expected} seeds'
  if not result.n_seeds:
    return Cell(None, MISSING, n_seeds=0, note=n)
  std = '' if result.std is None else f' ± {_fmt_score(result.std)}'
  text = _fmt_score(result.mean) + std
  note = '' if result.complete else n
  return Cell(result.mean, text, result.std, result.n_seeds, note=note)


def _aggregate_cell(summary: MethodSummary, key: str) -> Cell:
  value = summary.aggregate(key)
  if value is None:
    return Cell(None, MISSING, note='no complete games', missing=True)
  n_games = len(summary.scored_games)
  notes = []
  if summary.missing_games:
    notes.append(f'over {n_games}/{len(GAMES)} games')
  if any(not summary.games[g].complete for g in summary.scored_games):
    notes.append('some games short of seeds')
  note = '; '.join(notes)
  if isinstance(value, Interval):
    text = (f'{_fmt_pct(value.value)} [{_fmt_pct(value.low)[:-1]}, '
            f'{_fmt_pct(value.high)}]')
    return Cell(100 * value.value, text, low=100 * value.low,
                high=100 * value.high, n_seeds=summary.bootstrap_seeds,
                note=note)
  return Cell(100 * value, _fmt_pct(value), note=note)


def apply_bold(cells: dict, row: str, columns: Sequence,
               higher_is_better: bool = True) -> None:
  """Bold the cells of a row within 5% of the row's best value.

  Higher is better: value >= best - 0.05 * |best|; lower is better:
  value <= best + 0.05 * |best|. Empty cells are never bold.
  """
  values = [cells[row, c].value for c in columns
            if (row, c) in cells and cells[row, c].value is not None]
  if not values:
    return
  best = max(values) if higher_is_better else min(values)
  margin = BOLD_TOLERANCE * abs(best)
  for column in columns:
    cell = cells.get((row, column))
    if cell is None or cell.value is None:
      continue
    if higher_is_better:
      cell.bold = cell.value >= best - margin
    else:
      cell.bold = cell.value <= best + margin


def pretty_game(game: str) -> str:
  """'bank_heist' -> 'Bank Heist'."""
  return game.replace('_', ' ').title()


def paper_key(column: str) -> tuple[str, str]:
  """Table column key of a Table 2 column, e.g. ('paper', 'iris')."""
  return ('paper', column)


def method_key(label: str) -> tuple[str, str]:
  """Table column key of a given method (kept apart from paper columns)."""
  return ('method', label)


def build_table(summaries: Sequence[MethodSummary],
                frames: int = DEFAULT_FRAMES) -> Table:
  """The comparison table: paper's Table 2 columns then one per method."""
  random_human = load_random_human()
  paper = load_paper_table()
  paper_agg = paper_aggregates(random_human)
  ours = [method_key(s.label) for s in summaries]
  columns = [paper_key(c) for c in PAPER_COLUMNS] + ours
  headers = list(PAPER_COLUMNS.values()) + [s.label for s in summaries]
  agent_columns = [paper_key(c) for c in PAPER_AGENT_COLUMNS] + ours
  rows = list(GAMES) + ['mean', 'median']
  if summaries:
    rows += ['iqm', 'optimality_gap']
  row_names = [pretty_game(g) for g in GAMES] + [
      AGGREGATE_ROWS[r][0] for r in rows[len(GAMES):]]
  cells: dict[tuple[str, tuple[str, str]], Cell] = {}
  for column in PAPER_COLUMNS:
    key = paper_key(column)
    for game in GAMES:
      value = paper[column][game]
      cells[game, key] = Cell(value, f'{value:.0f}')
    for row in ('mean', 'median'):
      value = paper_agg[column][row]
      cells[row, key] = Cell(100 * value, _fmt_pct(value))
    for row in ('iqm', 'optimality_gap'):
      cells[row, key] = Cell(None, '')
  for summary, key in zip(summaries, ours):
    for game in GAMES:
      cells[game, key] = _score_cell(summary.games.get(game))
    for row in AGGREGATE_ROWS:
      cells[row, key] = _aggregate_cell(summary, row)
  for row in rows:
    higher = AGGREGATE_ROWS[row][1] if row in AGGREGATE_ROWS else True
    apply_bold(cells, row, agent_columns, higher)
  return Table(columns, headers, agent_columns, rows, row_names, cells,
               list(summaries), frames)


# ----------------------------------------------------------------------------
# Output formats.


def _source_lines(table: Table) -> list[str]:
  lines = [
      'Random … Harmony DreamerV3: Table 2 of the paper (rounded scores); '
      'their mean/median HNS are recomputed from those scores with the '
      'unrounded random/human references.']
  for s in table.summaries:
    kind = 'published per-seed curves' if s.method.published else 'our runs'
    lines.append(
        f'{s.label}: {kind} from {s.method.source}; final score at '
        f'{table.frames} frames, mean ± sample std over seeds; IQM and '
        'optimality gap (γ = 100%) with 95% stratified-bootstrap CIs over '
        f'{s.bootstrap_seeds} seed(s) x {len(s.scored_games)} games.')
  lines.append(
      f'Bold: within {100 * BOLD_TOLERANCE:.0f}% of the best agent of the row '
      '(Random and Human excluded); lower is better for the optimality gap. '
      '* marks incomplete entries (see warnings); '
      f'{MISSING} marks missing ones.')
  return lines


def to_markdown(table: Table) -> str:
  """GitHub markdown: the table, its sources and a warnings section."""
  def esc(text):
    return text.replace('|', '\\|')

  out = [f'# Atari 100K scores at {table.frames} frames', '']
  out.append('| Game | ' + ' | '.join(esc(h) for h in table.headers) + ' |')
  out.append('|:--|' + '--:|' * len(table.headers))
  for row, name in zip(table.rows, table.row_names):
    texts = []
    for column in table.columns:
      cell = table.cells[row, column]
      text = f'**{esc(cell.text)}**' if cell.bold else esc(cell.text)
      texts.append(text + esc(cell.mark))
    out.append(f'| {name} | ' + ' | '.join(texts) + ' |')
  out.append('')
  out.extend(f'- {line}' for line in _source_lines(table))
  out.append('')
  out.append('## Warnings')
  out.append('')
  warns = table.warnings()
  out.extend(f'- {esc(w)}' for w in warns)
  if not warns:
    out.append('None: every method has all games, seeds and runs complete.')
  return '\n'.join(out) + '\n'


def _num(x: float | None) -> str:
  return '' if x is None or (isinstance(x, float) and math.isnan(x)) else repr(
      round(float(x), 6))


def to_csv(table: Table) -> str:
  """Plain numbers: one row per game/aggregate; HNS rows in percent.

  Paper columns hold one number each; each method has mean, std, n_seeds,
  ci_low, ci_high and note columns (`mean` is the point estimate on
  aggregate rows).
  """
  methods = [s.label for s in table.summaries]
  header = ['row'] + [f'paper:{c}' for c in PAPER_COLUMNS]
  for label in methods:
    header += [f'{label}:{k}' for k in
               ('mean', 'std', 'n_seeds', 'ci_low', 'ci_high', 'note')]
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator='\n')
  writer.writerow(header)
  for row in table.rows:
    name = row if row in GAMES else f'{row}_hns_pct'
    line = [name] + [_num(table.cell(row, c, paper=True).value)
                     for c in PAPER_COLUMNS]
    for label in methods:
      cell = table.cell(row, label)
      n = '' if cell.n_seeds is None else str(cell.n_seeds)
      line += [_num(cell.value), _num(cell.std), n, _num(cell.low),
               _num(cell.high), cell.note]
    writer.writerow(line)
  return buffer.getvalue()


def _tex(text: str) -> str:
  replacements = {
      '\\': r'\textbackslash{}', '&': r'\&', '%': r'\%', '_': r'\_',
      '#': r'\#', '$': r'\$', '{': r'\{', '}': r'\}', '±': r'$\pm$',
      '—': '---', '…': r'\dots{}', 'γ': r'$\gamma$',
      '~': r'\textasciitilde{}', '^': r'\textasciicircum{}'}
  return ''.join(replacements.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
  """A LaTeX tabular (needs the booktabs package); warnings as comments."""
  out = [f'% Atari 100K scores at {table.frames} frames; generated by '
         'harmony_v3.scores.']
  out += [f'% {line}' for line in _source_lines(table)]
  out += [f'% WARNING {w}' for w in table.warnings()]
  out.append(r'\begin{tabular}{l' + 'r' * len(table.columns) + '}')
  out.append(r'\toprule')
  out.append('Game & ' + ' & '.join(_tex(h) for h in table.headers) + r' \\')
  out.append(r'\midrule')
  for row, name in zip(table.rows, table.row_names):
    if row == 'mean':
      out.append(r'\midrule')
    texts = []
    for column in table.columns:
      cell = table.cells[row, column]
      text = _tex(cell.text)
      if cell.bold and text:
        text = rf'\textbf{{{text}}}'
      texts.append(text + _tex(cell.mark))
    out.append(_tex(name) + ' & ' + ' & '.join(texts) + r' \\')
  out.append(r'\bottomrule')
  out.append(r'\end{tabular}')
  return '\n'.join(out) + '\n'


FORMATS = {'md': to_markdown, 'csv': to_csv, 'tex': to_latex}
TABLE_STEM = 'atari100k_scores'


def write_outputs(table: Table, out: pathlib.Path,
                  formats: Sequence[str]) -> list[pathlib.Path]:
  """Write the table in the given formats into `out`; return the paths."""
  out.mkdir(parents=True, exist_ok=True)
  paths = []
  for fmt in formats:
    path = out / f'{TABLE_STEM}.{fmt}'
    path.write_text(FORMATS[fmt](table))
    paths.append(path)
  return paths


# ----------------------------------------------------------------------------
# Command line.


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parse and check the command line; adds `formats` (a list)."""
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.scores',
      description='Atari 100K score table (and plots) from sweep log roots '
                  'and/or published per-seed curve JSONs.')
  parser.add_argument(
      'paths', nargs='+', metavar='PATH',
      help='sweep log root or published-curves .json; NAME=PATH sets a label')
  parser.add_argument('--out', type=pathlib.Path, default=None,
                      help='folder for the table files (and plots)')
  parser.add_argument('--format', default='md,csv,tex',
                      help='comma-separated subset of md,csv,tex written to '
                           '--out (default: all)')
  parser.add_argument('--plots', action='store_true',
                      help='also save learning-curve and harmonizer-weight '
                           'figures (PNG+PDF) into --out')
  parser.add_argument('--frames', type=int, default=DEFAULT_FRAMES,
                      help='frames of the final evaluation (default 400000)')
  parser.add_argument('--reps', type=int, default=DEFAULT_REPS,
                      help='bootstrap replications (default %(default)s)')
  parser.add_argument('--bootstrap-seed', type=int,
                      default=DEFAULT_BOOTSTRAP_SEED,
                      help='seed of the bootstrap (default %(default)s)')
  args = parser.parse_args(argv)
  args.formats = [f.strip() for f in args.format.split(',') if f.strip()]
  unknown = [f for f in args.formats if f not in FORMATS]
  if unknown or not args.formats:
    parser.error(f'--format takes a comma-separated subset of '
                 f'{",".join(FORMATS)}; got {args.format!r}')
  if args.plots and args.out is None:
    parser.error('--plots needs --out DIR')
  if args.reps < 1:
    parser.error('--reps must be positive')
  return args


def main(argv: Sequence[str] | None = None) -> int:
  """CLI entry point: print the markdown table, write files and plots."""
  args = parse_args(argv)
  try:
    methods = load_paths(args.paths)
  except (FileNotFoundError, ValueError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  summaries = [summarize(m, args.frames, args.reps, args.bootstrap_seed)
               for m in methods]
  table = build_table(summaries, args.frames)
  print(to_markdown(table), end='')
  if table.warnings():
    print(f'{len(table.warnings())} warning(s): see the Warnings section.',
          file=sys.stderr)
  if args.out is not None:
    for path in write_outputs(table, args.out, args.formats):
      print(f'wrote {path}', file=sys.stderr)
    if args.plots:
      from harmony_v3 import plots
      paths = plots.save_all(methods, args.out, args.frames)
      for path in paths:
        print(f'wrote {path}', file=sys.stderr)
      if not any(p.stem == 'harmony_weights' for p in paths):
        print('no run logged harmonizer weights: no harmony_weights figure',
              file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
