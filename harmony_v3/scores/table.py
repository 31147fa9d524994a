"""The comparison table: the paper's Table 2 columns, then one per method.

Rows are the 26 games, then the HNS aggregates. Each entry is a `Cell` that
holds the value it is ranked by and the text it prints; entries within 5% of
the best agent of their row are bold. `harmony_v3.scores.formats` prints it.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from harmony_v3.scores.aggregate import (GameResult, Interval, MethodSummary,
                                         paper_aggregates)
from harmony_v3.scores.benchmark import (DEFAULT_FRAMES, GAMES,
                                         PAPER_AGENT_COLUMNS, PAPER_COLUMNS,
                                         load_paper_table, load_random_human,
                                         pretty_game)

BOLD_TOLERANCE = 0.05  # Bold entries within 5% of the best of their row.
# Aggregate rows: key -> (printed name, higher is better).
AGGREGATE_ROWS = {
    'mean': ('Mean HNS', True),
    'median': ('Median HNS', True),
    'iqm': ('IQM HNS', True),
    'optimality_gap': ('Optimality gap', False),
}
MISSING = '—'


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
  summaries: list[MethodSummary]
  frames: int

  def cell(self, row: str, column: str, paper: bool = False) -> Cell:
    """Cell of a row for a method label (or a Table 2 column if paper)."""
    return self.cells[row, paper_key(column) if paper else method_key(column)]

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

