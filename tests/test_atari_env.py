"""Tests of harmony_v3.envs.atari.Atari, the Atari 100K embodied environment."""
import math

import cv2
import numpy as np
import pytest

from harmony_v3.envs import games
from harmony_v3.envs.atari import Atari

ale_py = pytest.importorskip('ale_py')


def _fresh_ale(game):
  """A separate raw emulator for the game, to compare against."""
  from ale_py import roms
  ale = ale_py.ALEInterface()
  ale.setLoggerMode(ale_py.LoggerMode.Error)
  ale.setFloat('repeat_action_probability', 0.0)
  ale.loadROM(roms.get_rom_path(games.ale_rom_id(game)))
  return ale


def _reset(env):
  return env.step({'action': 0, 'reset': True})


def _act(env, action):
  return env.step({'action': action, 'reset': False})


def _resize(frame):
  return cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize('game', games.ATARI100K_GAMES)
def test_every_game_constructs_resets_and_steps(game):
  env = Atari(game, seed=1)
  minimal = _fresh_ale(game).getMinimalActionSet()
  assert env.num_actions == len(minimal)
  assert env.action_set == list(minimal)
  assert env.act_space['action'].high == len(minimal)
  obs = _reset(env)
  assert obs['image'].shape == (64, 64, 3)
  assert obs['image'].dtype == np.uint8
  assert obs['is_first'] and not obs['is_last'] and not obs['is_terminal']
  rng = np.random.default_rng(0)
  for _ in range(3):
    obs = _act(env, int(rng.integers(env.num_actions)))
    assert not obs['is_first']
    for key, space in env.obs_space.items():
      assert obs[key] in space, key
  assert env.frames == 3 * 4
  env.close()


def test_spaces_and_options():
  env = Atari('pong', gray=True, actions='all', seed=0)
  assert env.obs_space['image'].shape == (64, 64, 1)
  assert env.num_actions == 18
  obs = _reset(env)
  assert obs['image'].shape == (64, 64, 1)
  assert obs['reward'].dtype == np.float32
  for resize in ('nearest', 'bilinear'):
    env = Atari('pong', resize=resize, size=(32, 48), seed=0)
    assert _act(env, 0)['image'].shape == (32, 48, 3)  # First call resets.
  env = Atari('pong', sticky=True, seed=0)
  assert env.ale.getFloat('repeat_action_probability') == pytest.approx(0.25)
  env = Atari('pong', seed=0)
  assert env.ale.getFloat('repeat_action_probability') == 0.0


def test_unknown_game_and_bad_options():
  with pytest.raises(ValueError, match='Valid games') as info:
    Atari('pongg')
  assert 'pong' in str(info.value) and 'james_bond' in str(info.value)
  with pytest.raises(ValueError, match='actions'):
    Atari('pong', actions='some')
  with pytest.raises(ValueError, match='lives'):
    Atari('pong', lives='sometimes')
  with pytest.raises(ValueError, match='resize'):
    Atari('pong', resize='pillow')
  env = Atari('pong', seed=0)
  _reset(env)
  with pytest.raises(ValueError, match='out of range'):
    _act(env, env.num_actions)


def test_noop_starts_vary_within_range_and_are_seeded():
  counts = []
  for seed in range(12):
    env = Atari('pong', noops=30, seed=seed)
    for _ in range(2):
      _reset(env)
      assert 0 <= env.noops_done <= 30
      # The emulator really ran that many frames since its game reset.
      assert env.ale.getEpisodeFrameNumber() == env.noops_done
      counts.append(env.noops_done)
  assert len(set(counts)) > 3
  a, b = Atari('pong', seed=7), Atari('pong', seed=7)
  for _ in range(3):
    obs_a, obs_b = _reset(a), _reset(b)
    assert a.noops_done == b.noops_done
    np.testing.assert_array_equal(obs_a['image'], obs_b['image'])
  env = Atari('pong', noops=0, seed=0)
  for _ in range(3):
    _reset(env)
    assert env.noops_done == 0
    assert env.ale.getEpisodeFrameNumber() == 0


@pytest.mark.parametrize('max_frames', [40, 42])
def test_frame_cap_ends_episode_without_terminal(max_frames):
  env = Atari('pong', max_frames=max_frames, seed=0)
  assert env.episode_frame_limit == max_frames
  _reset(env)
  steps = math.ceil(max_frames / 4)
  for step in range(1, steps + 1):
    obs = _act(env, 0)
    assert obs['is_last'] == (step == steps)
    assert not obs['is_terminal']
  assert env.frames == max_frames  # Stops exactly at the cap.
  assert env.ale.getEpisodeFrameNumber() == env.noops_done + max_frames
  obs = _act(env, 0)  # The step after the end resets.
  assert obs['is_first'] and env.frames == 0


def test_default_caps():
  assert Atari('pong').episode_frame_limit == 108_000
  assert Atari('chopper_command').episode_frame_limit == 5_400
  assert Atari(
      'chopper_command', chopper_command_max_frames=800,
  ).episode_frame_limit == 800
  assert Atari('pong', max_frames=None).episode_frame_limit == 0
  # NOOP survives in Chopper Command, so the cap ends the episode.
  env = Atari('chopper_command', seed=0)
  _reset(env)
  steps = 0
  while True:
    obs = _act(env, 0)
    steps += 1
    if obs['is_last']:
      break
  assert not obs['is_terminal']
  assert env.frames == 5_400 and steps == 1_350


def test_observation_is_max_of_last_two_frames():
  env = Atari('pong', noops=5, seed=3)
  ref = _fresh_ale('pong')
  frames = [np.zeros((210, 160, 3), np.uint8) for _ in range(4)]
  obs = _reset(env)
  ref.restoreState(env.ale.cloneState(include_rng=True))
  ref.getScreenRGB(frames[0])
  np.testing.assert_array_equal(obs['image'], _resize(frames[0]))
  rng = np.random.default_rng(0)
  pooling_mattered = 0
  rewards = 0
  for _ in range(200):
    action = int(rng.integers(env.num_actions))
    ref.restoreState(env.ale.cloneState(include_rng=True))
    obs = _act(env, action)
    reward = 0
    for frame in frames:
      reward += ref.act(env.action_set[action])
      ref.getScreenRGB(frame)
    expected = _resize(np.maximum(frames[2], frames[3]))
    np.testing.assert_array_equal(obs['image'], expected)
    assert obs['reward'] == reward
    rewards += reward != 0
    pooling_mattered += not np.array_equal(expected, _resize(frames[3]))
  # Without max-pooling the check above would have failed on these steps.
  assert pooling_mattered > 10
  assert rewards > 0


def test_early_stop_uses_final_frame_alone():
  env = Atari('pong', max_frames=42, seed=0)  # Last step emulates 2 frames.
  _reset(env)
  for _ in range(10):
    _act(env, 0)
  ref = _fresh_ale('pong')
  ref.restoreState(env.ale.cloneState(include_rng=True))
  obs = _act(env, 0)
  assert obs['is_last']
  final = np.zeros((210, 160, 3), np.uint8)
  ref.act(env.action_set[0])
  ref.act(env.action_set[0])
  ref.getScreenRGB(final)
  np.testing.assert_array_equal(obs['image'], _resize(final))
  np.testing.assert_array_equal(env.render(), final)


class _RewardEveryFrame:
  """Proxy emulator that adds a reward of 1 to every raw frame."""

  def __init__(self, ale):
    self._inner = ale
    self.acts = 0

  def act(self, action):
    self.acts += 1
    return self._inner.act(action) + 1

  def __getattr__(self, name):
    return getattr(self._inner, name)


def test_reset_semantics_and_reward_sum():
  env = Atari('pong', seed=0)
  obs = _act(env, 1)  # The very first call resets even without the flag.
  assert obs['is_first'] and obs['reward'] == 0.0
  assert not obs['is_last'] and not obs['is_terminal']
  proxy = _RewardEveryFrame(env.ale)
  env._ale = proxy
  obs = _act(env, 1)
  assert not obs['is_first']
  assert obs['reward'] == 4.0 and proxy.acts == 4
  for _ in range(3):
    _act(env, 2)
  obs = env.step({'action': 0, 'reset': True})  # Explicit reset mid-episode.
  assert obs['is_first'] and obs['reward'] == 0.0 and env.frames == 0
  assert proxy.acts == 16 + env.noops_done
  env = Atari('pong', repeat=3, seed=0, noops=0)
  env._ale = proxy = _RewardEveryFrame(env.ale)
  _reset(env)
  assert _act(env, 0)['reward'] == 3.0 and proxy.acts == 3


def test_game_over_is_terminal_and_next_step_resets():
  env = Atari('breakout', seed=0)
  _reset(env)
  rng = np.random.default_rng(0)
  for _ in range(5000):
    obs = _act(env, int(rng.integers(env.num_actions)))
    if obs['is_last']:
      break
  assert obs['is_last'] and obs['is_terminal']
  assert env.ale.game_over()
  assert env.frames < env.episode_frame_limit
  obs = _act(env, 0)
  assert obs['is_first'] and obs['reward'] == 0.0
  assert not env.ale.game_over()


def test_lives_modes():
  rng = np.random.default_rng(0)
  env = Atari('breakout', lives='reset', seed=0)
  _reset(env)
  start = env.ale.lives()
  for _ in range(2000):
    obs = _act(env, int(rng.integers(env.num_actions)))
    if obs['is_last']:
      break
  assert obs['is_last'] and obs['is_terminal']
  assert env.ale.lives() < start and not env.ale.game_over()
  assert _act(env, 0)['is_first']
  assert env.ale.lives() == start

  env = Atari('breakout', lives='discount', seed=0)
  _reset(env)
  for _ in range(2000):
    obs = _act(env, int(rng.integers(env.num_actions)))
    if obs['is_terminal']:
      break
  assert obs['is_terminal'] and not obs['is_last']
  assert not _act(env, 0)['is_first']  # The episode goes on.
