"""The cue task (toy_cue) and task dispatch: rewards, episodes, broken modes,
clear errors. No JAX: these run in seconds."""
import numpy as np
import pytest

from harmony_v3 import envs, train
from harmony_v3.envs import toy
from harmony_v3.config import load_config


def _run_episode(env, policy):
  """One episode; `policy(image, cue)` picks the action. Returns the rewards
  and the observations."""
  obs = env.step({'action': 0, 'reset': True})
  observations, rewards = [obs], []
  while not obs['is_last']:
    obs = env.step({'action': policy(obs['image'], env.cue), 'reset': False})
    observations.append(obs)
    rewards.append(float(obs['reward']))
  return rewards, observations


def test_reward_comes_with_the_next_observation():
  env = toy.Cue(length=5, cues=4, seed=0)
  obs = env.step({'action': 0, 'reset': True})
  assert obs['is_first'] and obs['reward'] == 0
  for _ in range(5):
    shown = env.cue
    wrong = (shown + 1) % 4
    obs = env.step({'action': wrong, 'reset': False})
    assert obs['reward'] == 0  # Scored against the image the action saw.
  obs = env.step({'action': 0, 'reset': False})  # After the end: a reset.
  assert obs['is_first']
  shown = env.cue
  assert env.step({'action': shown, 'reset': False})['reward'] == 1


def test_episode_length_maximum_and_chance():
  env = toy.Cue(length=16, cues=4, seed=1)
  rewards, observations = _run_episode(env, lambda image, cue: cue)
  assert len(rewards) == 16 and sum(rewards) == 16  # The maximum.
  assert observations[-1]['is_last'] and not observations[-1]['is_terminal']
  assert not any(o['is_last'] for o in observations[:-1])
  rng = np.random.default_rng(0)
  returns = [sum(_run_episode(env, lambda i, c: rng.integers(4))[0])
             for _ in range(400)]
  assert toy.chance_return(16, 4) == 4.0
  assert np.mean(returns) == pytest.approx(4.0, abs=0.3)


def test_image_shows_the_cue_and_only_the_cue():
  env = toy.Cue(cues=4, size=(16, 16), seed=2)
  images = {}
  obs = env.step({'action': 0, 'reset': True})
  for _ in range(200):
    images.setdefault(env.cue, obs['image'])
    np.testing.assert_array_equal(obs['image'], images[env.cue])
    obs = env.step({'action': 0, 'reset': obs['is_last']})
  assert sorted(images) == [0, 1, 2, 3]
  assert obs['image'].shape == (16, 16, 3) and obs['image'].dtype == np.uint8
  # A policy that reads the image alone scores the maximum.
  decode = {im.tobytes(): cue for cue, im in images.items()}
  rewards, _ = _run_episode(env, lambda image, cue: decode[image.tobytes()])
  assert sum(rewards) == 16


def test_zero_rewards_hides_rewards_from_training_only():
  perfect = lambda image, cue: cue  # noqa: E731
  train_env = toy.Cue(broken='zero_rewards', seed=3)
  eval_env = toy.Cue(broken='zero_rewards', evaluation=True, seed=3)
  assert sum(_run_episode(train_env, perfect)[0]) == 0
  assert sum(_run_episode(eval_env, perfect)[0]) == 16


def test_noise_images_carry_no_cue():
  for evaluation in (False, True):
    env = toy.Cue(broken='noise_images', evaluation=evaluation, seed=4)
    rewards, observations = _run_episode(env, lambda image, cue: cue)
    assert sum(rewards) == 16  # The true reward is still paid...
    images = np.stack([o['image'] for o in observations])
    # ...but every image is fresh noise, not a drawn cue.
    assert len({im.tobytes() for im in images}) == len(images)
    assert 100 < images.mean() < 155 and images.std() > 60


def test_bad_options_are_clear_errors():
  with pytest.raises(ValueError, match='env.toy.broken must be one of'):
    toy.Cue(broken='zeros')
  with pytest.raises(ValueError, match=r'env.toy.cues must be in \[2, 8\]'):
    toy.Cue(cues=1)
  with pytest.raises(ValueError, match='out of range'):
    env = toy.Cue(cues=3)
    env.step({'action': 0, 'reset': True})
    env.step({'action': 3, 'reset': False})


def test_make_env_dispatches_on_the_suite():
  config = load_config(['tiny', 'cue'])
  assert config.task == 'toy_cue' and envs.check_task(config) == 'toy'
  env = envs.make_env(config, seed=0)
  assert env.act_space['action'].shape == (4,)  # One-hot, as for Atari.
  obs = env.step({'action': np.eye(4, dtype=np.float32)[0],
                  'reset': np.bool_(True)})
  assert obs['image'].shape == (16, 16, 3)
  assert envs.check_task(load_config(['tiny'], ['--task', 'atari_pong'])) \
      == 'atari'


def test_cli_unknown_task_lists_valid_tasks(capsys):
  for task in ('toy_maze', 'dmlab_rooms_watermaze', 'pong'):
    assert train.main(['--task', task, '--configs', 'tiny']) == 2
    err = capsys.readouterr().err
    assert f"Unknown task '{task}'" in err
    assert 'atari_<game>' in err and "'toy_cue'" in err and 'ms_pacman' in err
    assert len(err.strip().splitlines()) == 1


def test_cli_bad_toy_option(capsys):
  code = train.main(['--configs', 'tiny', 'cue', '--env.toy.broken', 'nope'])
  assert code == 2
  assert 'env.toy.broken must be one of' in capsys.readouterr().err
