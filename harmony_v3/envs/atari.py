"""Atari 100K environment for `embodied`, built on ale-py's ALEInterface.

Protocol (as used by DreamerV3 and HarmonyDream on Atari 100K):

- Observation: RGB uint8 image, resized from 210x160 to `size` (64x64) with
  OpenCV area interpolation. With `repeat` >= 2 the image of an agent step is
  the pixelwise maximum of the last two raw frames emulated in that step.
- Action repeat: each agent action is emulated for `repeat` raw frames (4);
  the reward is the sum of the raw rewards of those frames.
- No sticky actions by default; minimal action set by default.
- Reset: the game is reset and NOOP is emulated for a number of raw frames
  drawn uniformly from [0, noops] by the env's own seeded generator.
- Episode end: game over ends the episode with is_last=True and
  is_terminal=True. Episodes are also capped at a number of raw frames
  (`max_frames`, 108,000 by default; `chopper_command_max_frames`, 5,400 by
  default, for Chopper Command); reaching the cap ends the episode with
  is_last=True and is_terminal=False.

Exact frame-cap rule: `frames` counts the raw frames emulated for agent
actions since the last reset; the no-op frames of the reset are not counted.
The cap is checked after every raw frame, and the agent step stops as soon as
`frames` reaches the cap. An episode that is not ended by game over thus lasts
exactly `episode_frame_limit` agent frames, i.e. ceil(limit / repeat) agent
steps, the last of which may emulate fewer than `repeat` frames.

Early stops: when an agent step ends before its last repeat frame (game over,
frame cap, or life loss with lives='reset'), its second to last frame was not
captured, and the image is the final raw frame alone, without max-pooling. The
first observation after a reset is the current raw frame alone as well.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import dreamerv3  # noqa: F401  (makes the vendored `embodied` importable)
import embodied

from harmony_v3.envs import games


def image_obs_space(shape: tuple[int, ...]) -> dict[str, embodied.Space]:
  """The observation space of an image env: uint8 image, reward, flags."""
  return {
      'image': embodied.Space(np.uint8, tuple(shape)),
      'reward': embodied.Space(np.float32),
      'is_first': embodied.Space(bool),
      'is_last': embodied.Space(bool),
      'is_terminal': embodied.Space(bool),
  }


def discrete_act_space(num_actions: int) -> dict[str, embodied.Space]:
  """The action space of a discrete env: an action index and the reset flag."""
  return {
      'action': embodied.Space(np.int32, (), 0, num_actions),
      'reset': embodied.Space(bool),
  }

ACTION_SETS = ('needed', 'all')
LIVES_MODES = ('unused', 'discount', 'reset')
RESIZE_MODES = ('area', 'bilinear', 'nearest')

DEFAULT_MAX_FRAMES = 108_000
CHOPPER_COMMAND_MAX_FRAMES = 5_400


def _choice(name: str, value: Any, options: tuple[str, ...]) -> str:
  if value not in options:
    raise ValueError(
        f"Invalid {name}={value!r}: expected one of "
        + ', '.join(repr(x) for x in options))
  return value


class Atari(embodied.Env):
  """One Atari 100K game as an `embodied.Env` (see the module docstring)."""

  def __init__(
      self, game: str, size: tuple[int, int] = (64, 64), repeat: int = 4,
      noops: int = 30, sticky: bool = False, actions: str = 'needed',
      lives: str = 'unused', gray: bool = False,
      max_frames: int = DEFAULT_MAX_FRAMES,
      chopper_command_max_frames: int = CHOPPER_COMMAND_MAX_FRAMES,
      resize: str = 'area', seed: int | None = None):
    """Create the emulator for `game`, one of games.ATARI100K_GAMES.

    Args:
      game: Benchmark game name, e.g. 'pong' or 'james_bond'.
      size: Output image (height, width).
      repeat: Raw frames per agent step (action repeat).
      noops: Maximum number of no-op frames at reset (uniform in [0, noops]).
      sticky: Use ALE sticky actions (repeat_action_probability 0.25).
      actions: 'needed' for the game's minimal action set, 'all' for all 18.
      lives: 'unused' ignores lives; 'discount' sets is_terminal on a life
        loss without ending the episode; 'reset' ends the episode (is_last
        and is_terminal) on a life loss.
      gray: Output a single luminance channel instead of RGB.
      max_frames: Raw-frame cap of an episode (0 or None: no cap).
      chopper_command_max_frames: The cap used instead for 'chopper_command'.
      resize: OpenCV interpolation: 'area', 'bilinear' or 'nearest'.
      seed: Seed of the no-op draws and of the emulator; None for random.
    """
    import ale_py
    import cv2
    from ale_py import roms

    games.check_game(game)
    _choice('actions', actions, ACTION_SETS)
    _choice('lives', lives, LIVES_MODES)
    _choice('resize', resize, RESIZE_MODES)
    size = tuple(int(x) for x in size)
    if len(size) != 2 or min(size) < 1:
      raise ValueError(f'Invalid size={size!r}: expected (height, width).')
    if int(repeat) < 1:
      raise ValueError(f'Invalid repeat={repeat!r}: expected at least 1.')
    if int(noops) < 0:
      raise ValueError(f'Invalid noops={noops!r}: expected at least 0.')

    self.game = game
    self._size = size
    self._repeat = int(repeat)
    self._noops = int(noops)
    self._lives_mode = lives
    self._gray = bool(gray)
    self._cv2 = cv2
    self._interp = {
        'area': cv2.INTER_AREA,
        'bilinear': cv2.INTER_LINEAR,
        'nearest': cv2.INTER_NEAREST,
    }[resize]
    limit = chopper_command_max_frames if game == 'chopper_command' else (
        max_frames)
    self._limit = int(limit) if limit else 0
    self._rng = np.random.default_rng(seed)

    ale = ale_py.ALEInterface()
    ale.setLoggerMode(ale_py.LoggerMode.Error)
    ale.setInt('random_seed', int(self._rng.integers(0, 2 ** 31 - 1)))
    ale.setFloat('repeat_action_probability', 0.25 if sticky else 0.0)
    ale.loadROM(roms.get_rom_path(games.ale_rom_id(game)))
    self._ale = ale
    self._noop = ale_py.Action.NOOP
    if actions == 'all':
      self._action_set = list(ale.getLegalActionSet())
    else:
      self._action_set = list(ale.getMinimalActionSet())
    self.num_actions = len(self._action_set)

    height, width = ale.getScreenDims()
    # Raw frames: second to last and last frame of the current agent step.
    self._prev = np.zeros((height, width, 3), np.uint8)
    self._last = np.zeros((height, width, 3), np.uint8)
    self._pool = np.zeros((height, width, 3), np.uint8)

    self.frames = 0  # Raw agent frames this episode (no-ops not counted).
    self.noops_done = 0  # No-op frames emulated at the last reset.
    self._lives = 0
    self._done = True

  @property
  def ale(self):
    """The underlying ale_py.ALEInterface (for inspection and tests)."""
    return self._ale

  @property
  def action_set(self) -> list:
    """The ALE actions that the action indices map to."""
    return list(self._action_set)

  @property
  def episode_frame_limit(self) -> int:
    """Raw-frame cap of an episode for this game (0 means no cap)."""
    return self._limit

  @property
  def obs_space(self) -> dict[str, embodied.Space]:
    """Image, reward and episode flags."""
    return image_obs_space((*self._size, 1 if self._gray else 3))

  @property
  def act_space(self) -> dict[str, embodied.Space]:
    """Discrete action index and the reset flag."""
    return discrete_act_space(self.num_actions)

  def step(self, action: dict[str, Any]) -> dict[str, Any]:
    """Reset if asked or after an episode end, else act for `repeat` frames."""
    if action['reset'] or self._done:
      return self._reset()
    index = int(action['action'])
    if not 0 <= index < self.num_actions:
      raise ValueError(
          f'Action {index} out of range [0, {self.num_actions}).')
    ale = self._ale
    ale_action = self._action_set[index]
    use_lives = self._lives_mode != 'unused'
    end_on_life = self._lives_mode == 'reset'
    second_last = self._repeat - 2
    reward = 0
    over = capped = lost = stop = False
    i = 0
    for i in range(self._repeat):
      reward += ale.act(ale_action)
      self.frames += 1
      over = ale.game_over(with_truncation=False)
      capped = bool(self._limit) and self.frames >= self._limit
      if use_lives:
        lives = ale.lives()
        lost = lost or lives < self._lives
        self._lives = lives
      stop = over or capped or (lost and end_on_life)
      if stop:
        break
      if i == second_last:
        ale.getScreenRGB(self._prev)
    ale.getScreenRGB(self._last)
    pooled = self._repeat >= 2 and i == self._repeat - 1
    is_last = stop
    self._done = is_last
    return self._obs(
        float(reward), pooled, is_last=is_last, is_terminal=over or lost)

  def render(self) -> np.ndarray:
    """Copy of the last raw RGB frame (210x160x3)."""
    return self._last.copy()

  def close(self) -> None:
    """Release the emulator."""
    self._ale = None

  def _reset(self) -> dict[str, Any]:
    ale = self._ale
    ale.reset_game()
    count = int(self._rng.integers(0, self._noops + 1)) if self._noops else 0
    for _ in range(count):
      ale.act(self._noop)
      if ale.game_over(with_truncation=False):
        ale.reset_game()
    self.noops_done = count
    self.frames = 0
    self._lives = ale.lives()
    self._done = False
    ale.getScreenRGB(self._last)
    return self._obs(0.0, False, is_first=True)

  def _obs(
      self, reward: float, pooled: bool, is_first: bool = False,
      is_last: bool = False, is_terminal: bool = False) -> dict[str, Any]:
    if pooled:
      np.maximum(self._prev, self._last, out=self._pool)
      frame = self._pool
    else:
      frame = self._last
    height, width = self._size
    if frame.shape[:2] == (height, width):
      image = frame.copy()
    else:
      image = self._cv2.resize(
          frame, (width, height), interpolation=self._interp)
    if self._gray:
      image = self._cv2.cvtColor(image, self._cv2.COLOR_RGB2GRAY)[..., None]
    return {
        'image': image,
        'reward': np.float32(reward),
        'is_first': is_first,
        'is_last': is_last,
        'is_terminal': is_terminal,
    }
