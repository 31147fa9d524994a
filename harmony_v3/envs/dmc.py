"""DeepMind Control Suite for `embodied`: `dmc_<domain>_<task>` tasks.

A thin env on `dm_control.suite.load` (pinned with MuJoCo, docs/dmc.md),
following DreamerV3's DMC protocol:

- Tasks: every (domain, task) of `dm_control.suite.ALL_TASKS`, named
  `dmc_<domain>_<task>` (e.g. 'dmc_walker_walk', 'dmc_point_mass_easy');
  'dmc_cup_catch' is DreamerV3's name for 'dmc_ball_in_cup_catch'.
- Action repeat 2 (`env.dmc.repeat`): one agent step is two control steps
  with the same action; the reward is their sum; the repeat stops early at
  the end of an episode.
- Episodes end where the suite ends them: its time limit, 1,000 control
  steps (500 agent steps) on every task, with discount 1, so is_last and
  not is_terminal. A discount of 0 (no suite task has one) is is_terminal.
- Camera `env.dmc.camera`: -1 picks DreamerV3's per domain, 2 for
  quadruped and 0 for every other domain.
- Observations: each of the suite's observations as a flat float32 vector
  under its own key (scalars become length 1, manipulator's 8x2 `arm_pos`
  length 16); with `render`, also 'image', the camera's `size` (64x64) RGB
  frame as uint8, rendered after the last control step of an agent step.
- Actions: the suite's bounded float vector (every suite task: [-1, 1]).

Rendering is headless: MUJOCO_GL defaults to 'egl' (Mesa's software EGL
on a CPU machine, the GPU's EGL where there is one); MUJOCO_GL=osmesa also
works. It is set before dm_control is first imported, because dm_control
reads it once, at import.

Seeding: `seed` is the suite's `task_kwargs['random']`, which draws every
episode's initial state: the same seed gives the same episodes.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

import dreamerv3  # noqa: F401  (makes the vendored `embodied` importable)
import embodied

# DreamerV3's camera per domain (its embodied/envs/dmc.py); 0 elsewhere.
CAMERAS = {'quadruped': 2}
# DreamerV3's short names of domains, used in its task names.
ALIASES = {'cup': 'ball_in_cup'}
RESERVED = ('reward', 'is_first', 'is_last', 'is_terminal', 'image')
INSTALL = ("pip install 'harmony_v3[dmc]' (or `make install-dmc`, which "
           'also installs the EGL libraries that rendering needs)')


def suite():
  """`dm_control.suite`, imported with MUJOCO_GL set (default 'egl')."""
  os.environ.setdefault('MUJOCO_GL', 'egl')
  try:
    from dm_control import suite as dm_suite
  except ImportError as e:
    if (getattr(e, 'name', None) or '').split('.')[0] in ('dm_control',
                                                          'mujoco'):
      raise ImportError(
          f'The dmc_* tasks need dm-control and MuJoCo: {INSTALL}.') from e
    raise ImportError(_gl_message(e)) from e
  except (OSError, AttributeError, RuntimeError) as e:
    raise ImportError(_gl_message(e)) from e
  return dm_suite


def _gl_message(error: Exception) -> str:
  return (f"dm_control failed to load its OpenGL backend MUJOCO_GL="
          f"{os.environ['MUJOCO_GL']!r} ({type(error).__name__}: {error}). "
          'On Debian/Ubuntu: apt-get install libegl1 libopengl0 '
          'libegl-mesa0 libgl1-mesa-dri (`make install-dmc` does it), or '
          'set MUJOCO_GL=osmesa with libosmesa6 installed.')


@functools.cache
def all_tasks() -> dict[str, tuple[str, str]]:
  """Task name after 'dmc_' -> (domain, task), every suite task plus
  DreamerV3's aliases ('cup_catch')."""
  names = {f'{domain}_{task}': (domain, task)
           for domain, task in suite().ALL_TASKS}
  for short, domain in ALIASES.items():
    names.update({f'{short}_{task}': (domain, task)
                  for name, (d, task) in list(names.items()) if d == domain})
  return names


def valid_names() -> str:
  """The valid tasks in words, grouped by domain."""
  by_domain: dict[str, list[str]] = {}
  for domain, task in suite().ALL_TASKS:
    by_domain.setdefault(domain, []).append(task)
  return '; '.join(f"{domain}: {', '.join(tasks)}"
                   for domain, tasks in by_domain.items())


def split_task(task: str) -> tuple[str, str]:
  """'dmc_walker_walk' -> ('walker', 'walk'), 'dmc_cup_catch' ->
  ('ball_in_cup', 'catch'); ValueError listing the valid tasks otherwise."""
  prefix, _, name = task.partition('_')
  if prefix != 'dmc' or not name:
    raise ValueError(f"Task '{task}' is not a DeepMind Control task: use "
                     "'dmc_<domain>_<task>', e.g. 'dmc_walker_walk'.")
  try:
    return all_tasks()[name]
  except KeyError:
    raise ValueError(
        f"Unknown DeepMind Control task '{task}'. Valid tasks are "
        "'dmc_<domain>_<task>' with (domain: tasks) "
        f"{valid_names()} (and 'dmc_cup_catch' for ball_in_cup catch)."
    ) from None


def default_camera(domain: str) -> int:
  """DreamerV3's camera for `domain`."""
  return CAMERAS.get(domain, 0)


def option_problems(size, repeat, camera) -> list[str]:
  """What is wrong with the env.dmc options, one message per problem."""
  problems = []
  size = list(size) if isinstance(size, (list, tuple)) else [size]
  if len(size) != 2 or not all(int(s) == s and s >= 1 for s in size):
    problems.append(f'env.dmc.size must be two whole numbers >= 1 (height, '
                    f'width), got {size}')
  if int(repeat) != repeat or repeat < 1:
    problems.append(f'env.dmc.repeat must be a whole number >= 1, got '
                    f'{repeat}')
  if int(camera) != camera or camera < -1:
    problems.append(f'env.dmc.camera must be a camera index >= 0, or -1 '
                    f"for DreamerV3's per domain, got {camera}")
  return problems


def reads_image(config) -> bool:
  """Whether DreamerV3's encoder or decoder reads the 'image' key: the
  env renders only then (dmc_vision does, dmc_proprio does not)."""
  import re
  return any(re.match(config[part].cnn_keys, 'image')
             for part in ('encoder', 'decoder'))


def encoder_problems(config, render: bool) -> list[str]:
  """A config whose encoder reads none of the task's observations (no
  proprio key selected by encoder.mlp_keys, no image) has no input."""
  import re
  domain, task = split_task(str(config.task))
  keys = proprio_keys(domain, task)
  if render or any(re.match(config.encoder.mlp_keys, k) for k in keys):
    return []
  return [f"the encoder reads no observation of {config.task}: "
          f"encoder.mlp_keys ('{config.encoder.mlp_keys}') selects none of "
          f"{', '.join(keys)} and encoder.cnn_keys "
          f"('{config.encoder.cnn_keys}') not 'image'; use --configs "
          'dmc_proprio or dmc_vision (on the CPU: --configs tiny dmc_proprio '
          'dmc_tiny)']


@functools.cache
def proprio_keys(domain: str, task: str) -> tuple[str, ...]:
  """The suite's observation keys of a task."""
  return tuple(suite().load(domain, task).observation_spec())


class DMC(embodied.Env):
  """One DeepMind Control Suite task as an `embodied.Env` (see the module
  docstring)."""

  def __init__(self, task: str, repeat: int = 2, size=(64, 64),
               camera: int = -1, render: bool = True,
               seed: int | None = None):
    """Load the task.

    Args:
      task: 'dmc_<domain>_<task>' (or the part after 'dmc_').
      repeat: Control steps per agent step.
      size: (height, width) of the rendered image.
      camera: Camera index; -1 for DreamerV3's per domain.
      render: Whether to add the 'image' observation.
      seed: The suite's task random seed; None for random.
    """
    if not task.startswith('dmc_'):
      task = 'dmc_' + task
    self.domain, self.task = split_task(task)
    problems = option_problems(size, repeat, camera)
    if problems:
      raise ValueError('; '.join(problems))
    self._env = suite().load(
        self.domain, self.task,
        task_kwargs={'random': None if seed is None else int(seed)})
    self._repeat = int(repeat)
    self._size = tuple(int(s) for s in size)
    self._camera = default_camera(self.domain) if camera == -1 else int(camera)
    self._render = bool(render)
    clash = [k for k in self._env.observation_spec() if k in RESERVED]
    if clash:
      raise ValueError(f'{task}: observation keys {clash} clash with '
                       "embodied's own")
    self._done = True

  @property
  def environment(self):
    """The underlying dm_control environment (for inspection and tests)."""
    return self._env

  @property
  def camera(self) -> int:
    return self._camera

  @functools.cached_property
  def obs_space(self) -> dict[str, embodied.Space]:
    """Flat float32 proprio vectors, the image if rendered, reward, flags."""
    spaces = {
        key: embodied.Space(np.float32, (max(1, int(np.prod(spec.shape))),))
        for key, spec in self._env.observation_spec().items()}
    if self._render:
      spaces['image'] = embodied.Space(np.uint8, self._size + (3,))
    return {
        **spaces,
        'reward': embodied.Space(np.float32),
        'is_first': embodied.Space(bool),
        'is_last': embodied.Space(bool),
        'is_terminal': embodied.Space(bool),
    }

  @functools.cached_property
  def act_space(self) -> dict[str, embodied.Space]:
    """The suite's bounded action vector, and the reset flag."""
    spec = self._env.action_spec()
    return {
        'action': embodied.Space(np.float32, spec.shape, spec.minimum,
                                 spec.maximum),
        'reset': embodied.Space(bool),
    }

  def step(self, action: dict[str, Any]) -> dict[str, Any]:
    """Reset if asked or after an episode end, else `repeat` control
    steps with `action['action']`."""
    if action['reset'] or self._done:
      self._done = False
      return self._observe(self._env.reset(), 0.0)
    act = np.asarray(action['action'])
    if not np.isfinite(act).all():
      raise ValueError(f'Non-finite action {act} for {self.domain} '
                       f'{self.task}.')
    reward = 0.0
    for _ in range(self._repeat):
      time_step = self._env.step(act)
      reward += time_step.reward or 0.0
      if time_step.last():
        break
    self._done = time_step.last()
    return self._observe(time_step, reward)

  def render(self) -> np.ndarray:
    """The camera's current RGB frame, `size`, uint8."""
    return self._env.physics.render(*self._size, camera_id=self._camera)

  def _observe(self, time_step, reward: float) -> dict[str, Any]:
    obs = {key: np.asarray(value, np.float32).reshape(-1)
           for key, value in time_step.observation.items()}
    if self._render:
      obs['image'] = self.render()
    last = time_step.last()
    return {
        **obs,
        'reward': np.float32(reward),
        'is_first': time_step.first(),
        'is_last': last,
        'is_terminal': bool(last and time_step.discount == 0),
    }

  def close(self):
    self._env.close()


def random_returns(task: str, episodes: int, seed: int,
                   **options) -> list[float]:
  """Returns of `episodes` episodes of the uniform random policy over the
  action bounds, through `DMC(task, seed=seed, render=False, **options)`
  (the policy drawn from numpy's generator seeded `seed`)."""
  env = DMC(task, seed=seed, render=False, **options)
  space = env.act_space['action']
  rng = np.random.default_rng(seed)
  returns = []
  for _ in range(episodes):
    obs = env.step({'action': np.zeros(space.shape, np.float32),
                    'reset': True})
    score = 0.0
    while not obs['is_last']:
      action = rng.uniform(space.low, space.high).astype(np.float32)
      obs = env.step({'action': action, 'reset': False})
      score += float(obs['reward'])
    returns.append(score)
  return returns
