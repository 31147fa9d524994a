"""The Atari 100K benchmark's fixed data: games, protocol, reference scores.

The 26 games and their printed names, the frames of the final evaluation,
the unrounded random and human scores, and the paper's Table 2 (rounded, as
printed), read from `harmony_v3/reference/`.
"""
from __future__ import annotations

import csv
import pathlib

from harmony_v3.envs import games as games_lib

REFERENCE_DIR = pathlib.Path(__file__).parent.parent / 'reference'
GAMES = games_lib.ATARI100K_GAMES
DEFAULT_FRAMES = 400_000  # The final evaluation: 100K agent steps.

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

RandomHuman = dict[str, tuple[float, float]]  # game -> (random, human)


def load_random_human() -> RandomHuman:
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


def pretty_game(game: str) -> str:
  """'bank_heist' -> 'Bank Heist'."""
  return game.replace('_', ' ').title()

