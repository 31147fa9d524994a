"""Crafter (Hafner, 2021) for `embodied`: tasks `crafter_reward` and
`crafter_noreward`.

A thin layer on `crafter.Env` of the `crafter` package (pinned to 1.8.3, see
docs/crafter.md), which steps the game and draws the frames; this module only
translates its gym-style API into DreamerV3's and logs the achievements.

Protocol (Crafter's own defaults, docs/crafter.md):

- One world of 64x64 cells per episode, drawn from the env's seed and the
  episode's number; a local 9x9 view (7x9 of the map, the inventory below)
  rendered as a 64x64 RGB image (`size`).
- 17 discrete actions (Crafter's `constants.actions`, in its order).
- Reward (`crafter_reward`): +1 the first time in an episode each of the 22
  achievements is unlocked, plus the change in health / 10 every step.
  `crafter_noreward` gives 0 to the agent; its evaluation episodes report
  Crafter's reward, so that their scores mean something.
- An episode ends when the player dies (is_last and is_terminal) or after
  `length` steps (10,000; is_last, not is_terminal). No action repeat: one
  Crafter step per agent step.

Observation keys: `image`, `reward`, `is_first`, `is_last`, `is_terminal`,
and, as DreamerV3's own Crafter env names them, `log_reward` (Crafter's
reward whatever the task) and `log_achievement_<name>` (how often the
achievement was unlocked so far in the episode). DreamerV3's networks and
replay leave `log_*` keys out; the runner writes them per episode
(harmony_v3/run/records.py), and `python -m harmony_v3.scores.crafter` turns
them into the Crafter score.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import dreamerv3  # noqa: F401  (makes the vendored `embodied` importable)
import embodied

from .atari import discrete_act_space

TASKS: tuple[str, ...] = ('reward', 'noreward')
# The 22 achievements of Crafter 1.8.3, in its order (constants.achievements).
ACHIEVEMENTS: tuple[str, ...] = (
    'collect_coal', 'collect_diamond', 'collect_drink', 'collect_iron',
    'collect_sapling', 'collect_stone', 'collect_wood', 'defeat_skeleton',
    'defeat_zombie', 'eat_cow', 'eat_plant', 'make_iron_pickaxe',
    'make_iron_sword', 'make_stone_pickaxe', 'make_stone_sword',
    'make_wood_pickaxe', 'make_wood_sword', 'place_furnace', 'place_plant',
    'place_stone', 'place_table', 'wake_up')
ACHIEVEMENT_PREFIX = 'log_achievement_'
NUM_ACTIONS = 17
DEFAULT_LENGTH = 10_000
# Crafter draws 9 tiles per side and fails below 2 pixels a tile (18); the
# CNN needs a power of two: 32 is the smallest side that works.
MIN_SIDE = 32


def check_task(name: str) -> str:
  """Return `name` if it is a Crafter task ('reward', 'noreward'), else
  raise a ValueError naming the valid tasks."""
  if name not in TASKS:
    raise ValueError(
        f"Unknown Crafter task '{name}'. Valid tasks: "
        + ', '.join(f'crafter_{t}' for t in TASKS) + '.')
  return name


def task_from_name(task: str) -> str:
  """'crafter_reward' -> 'reward', checked."""
  suite, _, name = task.partition('_')
  if suite != 'crafter':
    raise ValueError(f"Task '{task}' is not a Crafter task: use "
                     "'crafter_reward' or 'crafter_noreward'.")
  return check_task(name)


def option_problems(size, length) -> list[str]:
  """What is wrong with the `env.crafter` options, one message per problem."""
  problems = []
  try:
    sides = [int(s) for s in size]
    valid = (len(sides) == 2 and sides == [float(s) for s in size]
             and sides[0] == sides[1] and sides[0] >= MIN_SIDE
             and not sides[0] & (sides[0] - 1))
  except (TypeError, ValueError):
    valid = False
  if not valid:
    problems.append(
        f'env.crafter.size must be two equal powers of two >= {MIN_SIDE} '
        f'(e.g. [64, 64], the protocol; DreamerV3\'s CNN halves the image '
        f'down to 4x4), got {size!r}')
  if (isinstance(length, bool) or not isinstance(length, (int, float))
      or int(length) != length or length < 0):
    problems.append(f'env.crafter.length must be a whole number of steps '
                    f'>= 0 (0: no limit; the protocol: {DEFAULT_LENGTH}), '
                    f'got {length!r}')
  return problems


def log_problems(config) -> list[str]:
  """Whether the run records the achievements: `run.log_keys_max` must pick
  the `log_achievement_*` keys, or episodes.jsonl has no achievements and
  the run gets no Crafter score (the `crafter` preset sets it)."""
  import re
  pattern = config.run.log_keys_max
  if all(re.match(pattern, ACHIEVEMENT_PREFIX + name) for name in ACHIEVEMENTS):
    return []
  return [f"run.log_keys_max ('{pattern}') does not select Crafter's "
          f"{ACHIEVEMENT_PREFIX}* keys, so no achievement would be recorded "
          f"and the run would have no Crafter score: use --configs crafter "
          f"(it sets '^{ACHIEVEMENT_PREFIX}.*'), or set --run.log_keys_max "
          f"'^{ACHIEVEMENT_PREFIX}.*'"]


def _import_crafter():
  try:
    import crafter
  except ImportError as error:
    raise ImportError(
        f'Crafter tasks need the `crafter` package ({error}): pip install '
        'crafter==1.8.3 (docs/crafter.md)') from None
  return crafter


class Crafter(embodied.Env):
  """One Crafter game as an `embodied.Env` (see the module docstring)."""

  def __init__(self, reward: bool = True, size=(64, 64),
               length: int = DEFAULT_LENGTH, seed: int | None = None):
    """Create the game.

    Args:
      reward: Give the agent Crafter's reward (task 'reward'), or 0
        ('noreward'; `log_reward` holds Crafter's reward either way).
      size: Height and width of the image, e.g. (64, 64).
      length: Steps after which an episode ends (is_last, not is_terminal);
        0 for no limit.
      seed: Seed of the worlds; None for a random one. Episode k of an env
        always plays the same world for the same seed.
    """
    crafter = _import_crafter()
    problems = option_problems(size, length)
    if problems:
      raise ValueError('; '.join(problems))
    if tuple(crafter.constants.achievements) != ACHIEVEMENTS:
      raise RuntimeError(
          'This crafter package has other achievements than Crafter 1.8.3, '
          'whose 22 the Crafter score is defined on: install crafter==1.8.3.')
    self._size = tuple(int(s) for s in size)
    self._env = crafter.Env(size=self._size, reward=bool(reward),
                            length=int(length), seed=seed)
    self._done = True

  @property
  def environment(self):
    """The underlying `crafter.Env` (for inspection and tests)."""
    return self._env

  @property
  def obs_space(self) -> dict[str, embodied.Space]:
    """The image, reward, episode flags and the logged keys."""
    spaces = {
        'image': embodied.Space(np.uint8, self._size + (3,)),
        'reward': embodied.Space(np.float32),
        'is_first': embodied.Space(bool),
        'is_last': embodied.Space(bool),
        'is_terminal': embodied.Space(bool),
        'log_reward': embodied.Space(np.float32),
    }
    for name in ACHIEVEMENTS:
      spaces[ACHIEVEMENT_PREFIX + name] = embodied.Space(np.int32)
    return spaces

  @property
  def act_space(self) -> dict[str, embodied.Space]:
    """One of the 17 actions, and the reset flag."""
    return discrete_act_space(NUM_ACTIONS)

  def step(self, action: dict[str, Any]) -> dict[str, Any]:
    """Reset if asked or after an episode end, else one Crafter step."""
    if action['reset'] or self._done:
      self._done = False
      return self._observe(self._env.reset(), 0.0, None, is_first=True)
    index = int(action['action'])
    if not 0 <= index < NUM_ACTIONS:
      raise ValueError(f'Action {index} out of range [0, {NUM_ACTIONS}).')
    image, reward, done, info = self._env.step(index)
    self._done = bool(done)
    return self._observe(image, reward, info, is_last=self._done,
                         is_terminal=info['discount'] == 0)

  def _observe(self, image, reward: float, info: dict | None,
               is_first: bool = False, is_last: bool = False,
               is_terminal: bool = False) -> dict[str, Any]:
    counts = info['achievements'] if info else {}
    obs = {
        'image': image,
        'reward': np.float32(reward),
        'is_first': is_first,
        'is_last': is_last,
        'is_terminal': bool(is_terminal),
        'log_reward': np.float32(info['reward'] if info else 0.0),
    }
    for name in ACHIEVEMENTS:
      obs[ACHIEVEMENT_PREFIX + name] = np.int32(counts.get(name, 0))
    return obs


def random_episodes(episodes: int, seed: int, **options
                    ) -> list[tuple[dict[str, int], float, int]]:
  """(achievement -> times unlocked, return, length) of `episodes` episodes
  of the uniform random policy through `Crafter(seed=seed, **options)`,
  actions drawn from `numpy.random.default_rng(seed)`."""
  env = Crafter(seed=seed, **options)
  rng = np.random.default_rng(seed)
  results = []
  for _ in range(episodes):
    obs = env.step({'action': 0, 'reset': True})
    score, length = 0.0, 0
    while not obs['is_last']:
      obs = env.step({'action': int(rng.integers(NUM_ACTIONS)),
                      'reset': False})
      score += float(obs['log_reward'])
      length += 1
    counts = {name: int(obs[ACHIEVEMENT_PREFIX + name])
              for name in ACHIEVEMENTS}
    results.append((counts, score, length))
  return results
