"""Batches of envs: in worker processes they behave exactly as in-process."""
import numpy as np

from harmony_v3.envs import make_batch_env


def _rollout(env, steps=30):
  n = len(env)
  num_actions = env.act_space['action'].shape[0]
  rng = np.random.default_rng(0)
  acts = {'action': np.zeros((n, num_actions), np.float32),
          'reset': np.ones(n, bool)}
  images, rewards = [], []
  for _ in range(steps):
    obs = env.step(acts)
    images.append(obs['image'])
    rewards.append(obs['reward'])
    acts = {'action': np.eye(num_actions, dtype=np.float32)[
        rng.integers(0, num_actions, n)], 'reset': obs['is_last'].copy()}
  return np.stack(images), np.stack(rewards)


def test_process_envs_match_in_process_envs(tiny_config):
  local = make_batch_env(tiny_config, 2, seed=5)
  remote = make_batch_env(tiny_config, 2, seed=5, processes=True)
  try:
    images_a, rewards_a = _rollout(local)
    images_b, rewards_b = _rollout(remote)
  finally:
    local.close()
    remote.close()
  assert images_a.shape == (30, 2, 64, 64, 3)
  np.testing.assert_array_equal(images_a, images_b)
  np.testing.assert_array_equal(rewards_a, rewards_b)
  # The two envs of a batch are seeded differently.
  assert not np.array_equal(images_a[:, 0], images_a[:, 1])
