"""MinAtar (Young & Tian, 2019) for `embodied`: `minatar_<game>` tasks.

Built on `minatar.Environment` of the `minatar` package (pinned to 1.0.15,
see docs/minatar.md), used directly rather than through its gym(nasium)
wrapper: the wrapper has to be registered explicitly under gymnasium 1.x,
imports seaborn, and adds nothing that this env does not do itself; going
through `Environment` also makes the lock-step test against MinAtar exact.

Protocol (MinAtar's own defaults, docs/minatar.md):

- Games: asterix, breakout, freeway, seaquest, space_invaders.
- Sticky actions with probability 0.1 (MinAtar's `sticky_action_prob`), as
  MinAtar implements them: the previous raw action, kept across episodes.
- Difficulty ramping on (asterix, seaquest, space_invaders ramp).
- The minimal action set of each game (3 to 6 actions); action index `i`
  is MinAtar action `minimal_action_set()[i]`.
- One MinAtar frame per agent step (no action repeat).
- Episodes end where MinAtar ends them (`terminal`: is_last and
  is_terminal; Freeway's own end after 2,500 frames included). A time limit
  of `max_steps` agent steps (10,000 by default, 0 for none) ends an episode
  with is_last and not is_terminal; MinAtar has none, and a policy that
  never loses Breakout would otherwise never end an evaluation.

Observation, under one key chosen by `obs`:

- 'grid' (default): the 10x10xC binary frame flattened in C order
  (row, column, channel) to a uint8 vector of 0/1, for DreamerV3's MLP
  encoder and decoder (`minatar` preset: encoder.mlp_keys 'grid',
  decoder.vector_dist 'binary', a Bernoulli per cell).
- 'image': the frame as a uint8 image of 0/255, zero-padded at the bottom
  and right to `size` x `size` (16 by default) with its C channels kept,
  for DreamerV3's CNN (which halves the resolution per stage down to 4x4, so
  a side must be 4 * 2^k; 16 is the smallest such side that holds 10).

Seeding: one `numpy.random.RandomState(seed)` drives the game and the sticky
actions (MinAtar's `Environment.seed`), for the whole life of the env: the
same seed gives the same episodes.
"""
from __future__ import annotations

import argparse
import csv
import pathlib
import sys
import time
from typing import Any, Sequence

import numpy as np

import dreamerv3  # noqa: F401  (makes the vendored `embodied` importable)
import embodied

from .atari import discrete_act_space
from .games import MINATAR_GAMES

GAMES: tuple[str, ...] = MINATAR_GAMES
CHANNELS = {'asterix': 4, 'breakout': 4, 'freeway': 7, 'seaquest': 10,
            'space_invaders': 6}
OBS_KINDS = ('grid', 'image')
GRID = 10  # MinAtar's frames are GRID x GRID x channels.
DEFAULT_MAX_STEPS = 10_000


def check_game(game: str) -> str:
  """Return `game` if it is one of the five MinAtar games, else raise."""
  if game not in GAMES:
    raise ValueError(
        f"Unknown MinAtar game '{game}'. Valid games: " + ', '.join(GAMES)
        + " (tasks 'minatar_<game>', e.g. 'minatar_breakout').")
  return game


def game_from_task(task: str) -> str:
  """'minatar_space_invaders' -> 'space_invaders', checked."""
  suite, _, game = task.partition('_')
  if suite != 'minatar':
    raise ValueError(f"Task '{task}' is not a MinAtar task: use "
                     "'minatar_<game>', e.g. 'minatar_breakout'.")
  return check_game(game)


def option_problems(sticky: float, ramping: bool, max_steps: int, obs: str,
                    size: int) -> list[str]:
  """What is wrong with the MinAtar options, one message per problem."""
  problems = []
  if not 0.0 <= float(sticky) <= 1.0:
    problems.append(f'env.minatar.sticky must be in [0, 1], got {sticky}')
  if not isinstance(ramping, (bool, np.bool_)):
    problems.append(f'env.minatar.ramping must be True or False, got '
                    f'{ramping!r}')
  if int(max_steps) != max_steps or max_steps < 0:
    problems.append(f'env.minatar.max_steps must be a whole number >= 0 '
                    f'(0: no time limit), got {max_steps}')
  if obs not in OBS_KINDS:
    problems.append(f"env.minatar.obs must be one of "
                    f"{', '.join(map(repr, OBS_KINDS))}, got {obs!r}")
  side = int(size)
  if side != size or side < GRID or side & (side - 1) or side < 4:
    problems.append(f'env.minatar.size must be a power of two >= {GRID} '
                    f'(16, 32, ...), got {size}')
  return problems


def encoder_problems(config) -> list[str]:
  """Whether DreamerV3's encoder and decoder read the MinAtar frame: 'grid'
  needs the MLP key regexes to select it, 'image' the CNN ones. Without
  this, a frame no regex selects leaves the world model without input."""
  import re
  key = config.env.minatar.obs
  kind = 'mlp_keys' if key == 'grid' else 'cnn_keys'
  problems = []
  for part in ('encoder', 'decoder'):
    pattern = config[part][kind]
    if not re.match(pattern, key):
      problems.append(
          f"env.minatar.obs is '{key}' but {part}.{kind} ('{pattern}') does "
          f"not select it: use --configs tiny minatar (its {part}.{kind} "
          f"select '{key}'), or set --{part}.{kind} {key}")
  return problems


class MinAtar(embodied.Env):
  """One MinAtar game as an `embodied.Env` (see the module docstring)."""

  def __init__(self, game: str, sticky: float = 0.1, ramping: bool = True,
               max_steps: int = DEFAULT_MAX_STEPS, obs: str = 'grid',
               size: int = 16, seed: int | None = None):
    """Create the game.

    Args:
      game: One of GAMES.
      sticky: Probability that MinAtar repeats the previous action.
      ramping: MinAtar's difficulty ramping.
      max_steps: Agent steps after which an episode is cut (is_last, not
        is_terminal); 0 for no limit.
      obs: 'grid' (flat 0/1 vector) or 'image' (padded 0/255 image).
      size: Side of the padded image (obs='image').
      seed: Seed of MinAtar's random state; None for random.
    """
    import minatar
    check_game(game)
    problems = option_problems(sticky, ramping, max_steps, obs, size)
    if problems:
      raise ValueError('; '.join(problems))
    self.game = game
    self._env = minatar.Environment(
        game, sticky_action_prob=float(sticky),
        difficulty_ramping=bool(ramping))
    if seed is not None:
      self._env.seed(int(seed))
    self.action_set = list(self._env.minimal_action_set())
    self.num_actions = len(self.action_set)
    self.channels = int(self._env.state_shape()[2])
    self._max_steps = int(max_steps)
    self._obs_kind = obs
    self._size = int(size)
    self.steps = 0  # Agent steps in the current episode.
    self._done = True

  @property
  def environment(self):
    """The underlying `minatar.Environment` (for inspection and tests)."""
    return self._env

  @property
  def obs_key(self) -> str:
    """The key of the frame in the observations: 'grid' or 'image'."""
    return self._obs_kind

  @property
  def obs_space(self) -> dict[str, embodied.Space]:
    """The frame, reward and episode flags."""
    if self._obs_kind == 'grid':
      frame = embodied.Space(np.uint8, (GRID * GRID * self.channels,), 0, 2)
    else:
      frame = embodied.Space(np.uint8, (self._size, self._size, self.channels))
    return {
        self._obs_kind: frame,
        'reward': embodied.Space(np.float32),
        'is_first': embodied.Space(bool),
        'is_last': embodied.Space(bool),
        'is_terminal': embodied.Space(bool),
    }

  @property
  def act_space(self) -> dict[str, embodied.Space]:
    """Index into the minimal action set, and the reset flag."""
    return discrete_act_space(self.num_actions)

  def step(self, action: dict[str, Any]) -> dict[str, Any]:
    """Reset if asked or after an episode end, else one MinAtar frame."""
    if action['reset'] or self._done:
      self._env.reset()
      self.steps = 0
      self._done = False
      return self._observe(0.0, is_first=True)
    index = int(action['action'])
    if not 0 <= index < self.num_actions:
      raise ValueError(
          f'Action {index} out of range [0, {self.num_actions}).')
    reward, terminal = self._env.act(self.action_set[index])
    self.steps += 1
    capped = bool(self._max_steps) and self.steps >= self._max_steps
    self._done = bool(terminal) or capped
    return self._observe(
        float(reward), is_last=self._done, is_terminal=bool(terminal))

  def frame(self) -> np.ndarray:
    """MinAtar's current 10x10xC bool frame."""
    return self._env.state()

  def _observe(self, reward: float, is_first: bool = False,
               is_last: bool = False,
               is_terminal: bool = False) -> dict[str, Any]:
    state = self._env.state()
    if self._obs_kind == 'grid':
      frame = state.reshape(-1).astype(np.uint8)
    else:
      frame = np.zeros((self._size, self._size, self.channels), np.uint8)
      frame[:GRID, :GRID] = state.astype(np.uint8) * 255
    return {
        self._obs_kind: frame,
        'reward': np.float32(reward),
        'is_first': is_first,
        'is_last': is_last,
        'is_terminal': is_terminal,
    }


def unpack(obs: dict[str, Any], channels: int) -> np.ndarray:
  """The 10x10xC bool frame inside an observation of either kind."""
  if 'grid' in obs:
    return np.asarray(obs['grid']).reshape(GRID, GRID, channels).astype(bool)
  return np.asarray(obs['image'])[:GRID, :GRID].astype(bool)


def random_returns(game: str, episodes: int, seed: int,
                   **options) -> tuple[list[float], list[int]]:
  """Returns and lengths of `episodes` episodes of the uniform random policy
  over the minimal action set, through `MinAtar(game, seed=seed, **options)`
  (sticky actions, ramping and time limit as given)."""
  env = MinAtar(game, seed=seed, **options)
  rng = np.random.default_rng(seed)
  returns, lengths = [], []
  for _ in range(episodes):
    obs = env.step({'action': 0, 'reset': True})
    score = 0.0
    while not obs['is_last']:
      obs = env.step({'action': int(rng.integers(env.num_actions)),
                      'reset': False})
      score += float(obs['reward'])
    returns.append(score)
    lengths.append(env.steps)
  return returns, lengths


def random_returns_text(path: str | pathlib.Path | None = None) -> str:
  """The reference CSV of random returns (harmony_v3/reference/), or `path`."""
  if path is None:
    import importlib.resources
    return (importlib.resources.files('harmony_v3') / 'reference' /
            'minatar_random.csv').read_text()
  return pathlib.Path(path).read_text()


def read_random_returns(path: str | pathlib.Path | None = None
                        ) -> dict[str, float]:
  """Mean random return per game from the reference CSV."""
  lines = [l for l in random_returns_text(path).splitlines()
           if l and not l.startswith('#')]
  return {row['game']: float(row['mean'])
          for row in csv.DictReader(lines)}


def main(argv: Sequence[str] | None = None) -> int:
  """Measure random returns per game and write them as CSV."""
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.envs.minatar',
      description='Returns of the uniform random policy on the MinAtar '
                  'games (MinAtar protocol of docs/minatar.md).')
  parser.add_argument('--episodes', type=int, default=1000)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--games', nargs='+', default=list(GAMES))
  parser.add_argument('--out', default='-', help="CSV file, '-' for stdout")
  args = parser.parse_args(argv)
  command = 'python -m harmony_v3.envs.minatar ' + ' '.join(
      sys.argv[1:] if argv is None else argv)
  rows = []
  for game in args.games:
    start = time.time()
    returns, lengths = random_returns(game, args.episodes, args.seed)
    returns = np.asarray(returns)
    rows.append(dict(
        game=game, episodes=len(returns), mean=f'{returns.mean():.4f}',
        std=f'{returns.std(ddof=1):.4f}',
        sem=f'{returns.std(ddof=1) / np.sqrt(len(returns)):.4f}',
        min=f'{returns.min():g}', max=f'{returns.max():g}',
        mean_length=f'{np.mean(lengths):.1f}'))
    print(f'{game}: mean {returns.mean():.3f} over {len(returns)} episodes, '
          f'mean length {np.mean(lengths):.1f} ({time.time() - start:.0f} s)',
          file=sys.stderr)
  import minatar  # noqa: F401
  from importlib.metadata import version
  header = [
      f'# Uniform random policy over the minimal action set, MinAtar '
      f'{version("minatar")}, sticky 0.1, ramping on, time limit '
      f'{DEFAULT_MAX_STEPS} steps; seed {args.seed} (env and policy).',
      f'# Made by: {command}']
  out = sys.stdout if args.out == '-' else open(args.out, 'w', newline='')
  try:
    out.write('\n'.join(header) + '\n')
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
  finally:
    if out is not sys.stdout:
      out.close()
  return 0


if __name__ == '__main__':
  sys.exit(main())
