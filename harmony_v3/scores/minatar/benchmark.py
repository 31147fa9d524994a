"""The MinAtar benchmark's fixed data: games, methods, seeds, reference returns.

Two per-game returns place a score on a common scale:

- `random`: the measured return of a uniform random policy, from
  `harmony_v3/reference/minatar_random.csv` (made by the MinAtar task suite;
  its `random` column, or `mean` where it has none);
- `reference`: a published return, from
  `harmony_v3/reference/minatar_reference.csv` (the DQN of the MinAtar
  paper, Young & Tian 2019; see docs/minatar_benchmark.md for what is
  filled in and why).

Both files are CSV with `game` and a value column; lines starting with `#`
are comments; an empty value means "not known".
"""
from __future__ import annotations

import csv
import dataclasses
import io
import math
import pathlib
from collections.abc import Sequence

from harmony_v3.envs.games import MINATAR_FRAMES_PER_AGENT_STEP, MINATAR_GAMES
from harmony_v3.scores.benchmark import REFERENCE_DIR

GAMES = MINATAR_GAMES
FRAMES_PER_STEP = MINATAR_FRAMES_PER_AGENT_STEP
METHODS = ('harmony', 'dreamerv3')  # Sweep folder names; Harmony first.
METHOD_LABELS = {'harmony': 'Harmony DreamerV3', 'dreamerv3': 'DreamerV3'}
NUM_SEEDS = 5  # Seeds 0..4 per game and method: 50 runs in all.
RANDOM_CSV = REFERENCE_DIR / 'minatar_random.csv'
REPO_ROOT = REFERENCE_DIR.parent.parent  # Paths in reports are shown from here.
REFERENCE_CSV = REFERENCE_DIR / 'minatar_reference.csv'


class BenchmarkFileError(ValueError):
  """A reference file that cannot be used, with a message naming it."""


@dataclasses.dataclass(frozen=True)
class GameValues:
  """One value per game read from a CSV (None where the file has none)."""
  path: pathlib.Path | None   # None: the file does not exist.
  column: str
  values: dict[str, float | None]

  @property
  def missing(self) -> list[str]:
    """Games without a value, in benchmark order."""
    return [g for g in GAMES if self.values.get(g) is None]

  @property
  def complete(self) -> bool:
    return not self.missing


def read_game_values(path: str | pathlib.Path,
                     columns: Sequence[str]) -> GameValues:
  """The first of `columns` that the CSV at `path` has, per game.

  A missing file gives no values (path None). Raises BenchmarkFileError,
  naming the file, for an unreadable file, no `game` column, none of
  `columns`, an unknown game, a repeated game or a value that is not a
  finite number.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    return GameValues(None, columns[0], {})
  try:
    text = path.read_text()
  except (OSError, UnicodeDecodeError) as e:
    raise BenchmarkFileError(f'{path}: cannot read it ({e})') from None
  lines = [line for line in text.splitlines()
           if line.strip() and not line.lstrip().startswith('#')]
  reader = csv.DictReader(io.StringIO('\n'.join(lines)))
  fields = reader.fieldnames or []
  column = next((c for c in columns if c in fields), None)
  if 'game' not in fields or column is None:
    raise BenchmarkFileError(
        f'{path}: expected a CSV with columns game and '
        f'{" or ".join(columns)}, found {", ".join(fields) or "none"}')
  values: dict[str, float | None] = {}
  for number, row in enumerate(reader, 2):
    game = (row.get('game') or '').strip()
    if game not in GAMES:
      raise BenchmarkFileError(
          f'{path}: unknown game {game!r} (MinAtar games: '
          f'{", ".join(GAMES)})')
    if game in values:
      raise BenchmarkFileError(f'{path}: game {game} appears twice')
    text = (row.get(column) or '').strip()
    if not text:
      values[game] = None
      continue
    try:
      value = float(text)
    except ValueError:
      value = math.nan
    if not math.isfinite(value):
      raise BenchmarkFileError(
          f'{path}: {game}: {column} {text!r} is not a finite number')
    values[game] = value
  return GameValues(path, column, values)


def load_random(path: str | pathlib.Path = RANDOM_CSV) -> GameValues:
  """Measured random-policy returns per game (column `random` or `mean`)."""
  return read_game_values(path, ('random', 'mean'))


def load_reference(path: str | pathlib.Path = REFERENCE_CSV) -> GameValues:
  """Published reference returns per game (column `reference`)."""
  return read_game_values(path, ('reference',))


def pretty_game(game: str) -> str:
  """'space_invaders' -> 'Space Invaders'."""
  return game.replace('_', ' ').title()


def shown_path(path: str | pathlib.Path) -> str:
  """`path` relative to the repository when inside it (reports made on two
  machines then name the same files alike), else as it is."""
  try:
    return str(pathlib.Path(path).resolve().relative_to(REPO_ROOT))
  except ValueError:
    return str(path)
