"""Cue: a small image task that an agent solves only by learning (`toy_cue`).

Each observation is an RGB image (64x64 by default; the `cue` preset, made
for CPUs, uses 16x16) showing one of `cues` cues, drawn uniformly at random
every step: the cue's vertical stripe of the image is filled with the cue's
colour, the rest is black. The actions are the cue
indices. The reward that arrives with the next observation is 1 if the
action matched the cue of the image it was taken on, else 0. As in DreamerV3,
the reward `r_t` comes with `o_t` after `a_{t-1}`, so the world model has to
carry the cue of one image into the next step to predict rewards.

An episode is `length` actions long (fixed, ends with is_last=True and
is_terminal=False: a time limit). Its return counts the matched actions:

  maximum  = length                 (16 with the defaults)
  chance   = length / cues          (4 with the defaults: any policy that
                                     does not see the cue scores this on
                                     average, e.g. uniform random actions)

`broken` breaks learning on purpose, for tests that show a learning check
can fail: 'zero_rewards' reports reward 0 in the episodes the agent learns
from (evaluation episodes keep the true reward, which the agent's policy never
reads); 'noise_images' replaces every image with uniform noise drawn
independently of the cue, in training and evaluation alike, so no policy can
beat chance.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import dreamerv3  # noqa: F401  (makes the vendored `embodied` importable)
import embodied

from .atari import discrete_act_space, image_obs_space

BROKEN_MODES = ('', 'zero_rewards', 'noise_images')
TASK_NAMES = ('cue',)

# One distinct colour per cue: red, green, blue, yellow, magenta, cyan, white,
# orange.
PALETTE = np.array([
    [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0],
    [255, 0, 255], [0, 255, 255], [255, 255, 255], [255, 128, 0]], np.uint8)


def option_problems(length: int, cues: int, size, broken: str) -> list[str]:
  """What is wrong with the Cue options, one message per problem."""
  problems = []
  if int(length) < 1:
    problems.append(f'env.toy.length must be >= 1, got {length}')
  if not 2 <= int(cues) <= len(PALETTE):
    problems.append(
        f'env.toy.cues must be in [2, {len(PALETTE)}], got {cues}')
  size = tuple(size)
  if len(size) != 2 or min(int(x) for x in size) < int(cues):
    problems.append(
        f'env.toy.size must be (height, width), each at least env.toy.cues, '
        f'got {size}')
  if broken not in BROKEN_MODES:
    problems.append(
        f"env.toy.broken must be one of {', '.join(map(repr, BROKEN_MODES))}"
        f", got {broken!r}")
  return problems


def chance_return(length: int, cues: int) -> float:
  """Expected return of any policy that does not see the cue."""
  return length / cues


class Cue(embodied.Env):
  """The cue task as an `embodied.Env` (see the module docstring)."""

  def __init__(self, length: int = 16, cues: int = 4,
               size: tuple[int, int] = (64, 64), broken: str = '',
               evaluation: bool = False, seed: int | None = None):
    """Create the task.

    Args:
      length: Actions per episode.
      cues: Number of cues, and of actions.
      size: Image (height, width).
      broken: '', 'zero_rewards' or 'noise_images' (module docstring).
      evaluation: True for an evaluation env, which reports the true reward
        even with broken='zero_rewards'.
      seed: Seed of the cue (and noise) draws; None for random.
    """
    problems = option_problems(length, cues, size, broken)
    if problems:
      raise ValueError('; '.join(problems))
    self.length = int(length)
    self.cues = int(cues)
    self._size = tuple(int(x) for x in size)
    self._zero_rewards = broken == 'zero_rewards' and not evaluation
    self._noise_images = broken == 'noise_images'
    self._rng = np.random.default_rng(seed)
    self._cue = 0
    self._steps = 0
    self._done = True

  @property
  def cue(self) -> int:
    """The cue shown in the last observation."""
    return self._cue

  @property
  def obs_space(self) -> dict[str, embodied.Space]:
    """Image, reward and episode flags."""
    return image_obs_space((*self._size, 3))

  @property
  def act_space(self) -> dict[str, embodied.Space]:
    """Discrete action (a cue index) and the reset flag."""
    return discrete_act_space(self.cues)

  def step(self, action: dict[str, Any]) -> dict[str, Any]:
    """Reset if asked or after an episode end, else score the action."""
    if action['reset'] or self._done:
      self._steps = 0
      self._done = False
      return self._observe(0.0, is_first=True)
    index = int(action['action'])
    if not 0 <= index < self.cues:
      raise ValueError(f'Action {index} out of range [0, {self.cues}).')
    reward = float(index == self._cue)
    if self._zero_rewards:
      reward = 0.0
    self._steps += 1
    self._done = self._steps >= self.length
    return self._observe(reward, is_last=self._done)

  def render(self) -> np.ndarray:
    """The image of the current cue (never noise)."""
    return self._draw(self._cue)

  def _draw(self, cue: int) -> np.ndarray:
    height, width = self._size
    image = np.zeros((height, width, 3), np.uint8)
    left, right = cue * width // self.cues, (cue + 1) * width // self.cues
    image[:, left:right] = PALETTE[cue]
    return image

  def _observe(self, reward: float, is_first: bool = False,
               is_last: bool = False) -> dict[str, Any]:
    self._cue = int(self._rng.integers(self.cues))
    if self._noise_images:
      image = self._rng.integers(0, 256, (*self._size, 3), dtype=np.uint8)
    else:
      image = self._draw(self._cue)
    return {
        'image': image,
        'reward': np.float32(reward),
        'is_first': is_first,
        'is_last': is_last,
        'is_terminal': False,
    }
