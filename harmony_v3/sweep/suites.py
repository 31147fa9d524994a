"""The benchmarks the sweep runs: which games, which task names, which presets.

  atari100k  (default) the 26 Atari 100K games, tasks atari_<game>, preset
             atari100k, runs in ~/logdir/harmony_v3_atari100k, one GPU each
  minatar    the 5 MinAtar games (Young & Tian, 2019), tasks minatar_<game>,
             presets tiny minatar, runs in ~/logdir/harmony_v3_minatar, on the CPU
             (scripts/run_minatar.sh), all cores at once by default
  dmc        20 DeepMind Control tasks (DreamerV3's visual control set), tasks
             dmc_<domain>_<task>, preset dmc_vision, runs in
             ~/logdir/harmony_v3_dmc, one GPU each; no score table yet
  crafter    Crafter (Hafner, 2021), task crafter_reward (game 'reward'),
             preset crafter, runs in ~/logdir/harmony_v3_crafter, a GPU per
             run: a sweep over seeds (and methods)

Each run's step budget is its preset's `run.steps`; the sweep passes none.
"""
from __future__ import annotations

import dataclasses
import os

from ..envs.crafter import TASKS as CRAFTER_TASKS
from ..envs.games import ATARI100K_GAMES, DMC_TASKS, MINATAR_GAMES


@dataclasses.dataclass(frozen=True)
class Suite:
  """One benchmark: its games and how the sweep runs them."""
  name: str                  # --suite NAME
  title: str                 # in messages, e.g. 'Atari 100K'
  prefix: str                # task prefix: task = f'{prefix}_{game}'
  games: tuple[str, ...]
  configs: tuple[str, ...]   # default --configs
  logroot: str               # default --logroot
  cpu: bool                  # meant for the CPU (all cores at once)
  scores: bool = True        # has a score table at the end of a sweep

  def task(self, game: str) -> str:
    """The trainer's --task for `game`."""
    return f'{self.prefix}_{game}'


SUITES: dict[str, Suite] = {
    'atari100k': Suite('atari100k', 'Atari 100K', 'atari', ATARI100K_GAMES,
                       ('atari100k',), '~/logdir/harmony_v3_atari100k',
                       cpu=False),
    'minatar': Suite('minatar', 'MinAtar', 'minatar', MINATAR_GAMES,
                     ('tiny', 'minatar'), '~/logdir/harmony_v3_minatar',
                     cpu=True),
    'dmc': Suite('dmc', 'DeepMind Control', 'dmc', DMC_TASKS,
                 ('dmc_vision',), '~/logdir/harmony_v3_dmc', cpu=False,
                 scores=False),
    'crafter': Suite('crafter', 'Crafter', 'crafter', CRAFTER_TASKS[:1],
                     ('crafter',), '~/logdir/harmony_v3_crafter', cpu=False),
}
DEFAULT_SUITE = 'atari100k'


def get_suite(name: str) -> Suite:
  """The suite called `name`; KeyError listing the valid ones otherwise."""
  try:
    return SUITES[name]
  except KeyError:
    raise KeyError(f'unknown suite {name!r}; valid suites: '
                   + ', '.join(SUITES)) from None


def usable_cores() -> int:
  """CPU cores this process may run on (its affinity), at least 1."""
  try:
    return max(1, len(os.sched_getaffinity(0)))
  except (AttributeError, OSError):
    return max(1, os.cpu_count() or 1)
