"""The harmonious loss and its closed-form optimum (paper Sec. 3, App. B)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from harmony_v3.harmonizer import (combine_kl, harmonious_loss,
                                   harmonious_terms, optimal_sigma,
                                   regularizer)


pytestmark = pytest.mark.usefixtures('eager_transfers_allowed')


def test_loss_matches_the_formula():
  losses = {'obs': 300.0, 'reward': 0.2, 'dyn': 3.0}
  s = {'obs': 2.0, 'reward': -1.0, 'dyn': 0.5}
  rect = sum(losses[k] / np.exp(s[k]) + np.log1p(np.exp(s[k])) for k in s)
  plain = sum(losses[k] / np.exp(s[k]) + s[k] for k in s)
  np.testing.assert_allclose(harmonious_loss(losses, s), rect, rtol=1e-6)
  np.testing.assert_allclose(
      harmonious_loss(losses, s, rectified=False), plain, rtol=1e-6)


def test_initial_weights_are_one_and_terms_add_up():
  losses = {'a': 4.0, 'b': 0.5}
  zeros = {'a': 0.0, 'b': 0.0}
  terms = harmonious_terms(losses, zeros)
  np.testing.assert_allclose(terms['a'], 4.0 + np.log(2.0), rtol=1e-6)
  np.testing.assert_allclose(
      sum(terms.values()), harmonious_loss(losses, zeros), rtol=1e-6)


def test_mismatched_keys_are_rejected():
  with pytest.raises(ValueError, match='same keys'):
    harmonious_loss({'a': 1.0}, {'b': 0.0})


def test_regularizer_is_stable_for_large_s():
  assert np.isfinite(regularizer(80.0)) and np.isclose(regularizer(80.0), 80.0)


@pytest.mark.parametrize('rectified', [True, False])
@pytest.mark.parametrize('mean_loss', [0.05, 1.0, 40.0])
def test_adam_converges_to_the_closed_form(rectified, mean_loss):
  """Adam on a noisy constant-mean loss finds log(optimal_sigma)."""
  opt = optax.adam(optax.exponential_decay(0.05, 1000, 0.1))
  grad = jax.grad(lambda s, l: harmonious_loss({'x': l}, {'x': s}, rectified))

  def step(carry, sample):
    s, state = carry
    updates, state = opt.update(grad(s, sample), state)
    return (optax.apply_updates(s, updates), state), None

  rng = np.random.default_rng(0)
  samples = mean_loss * rng.uniform(0.5, 1.5, 3000)  # E[sample] = mean_loss
  s = jnp.zeros(())
  (s, _), _ = jax.lax.scan(step, (s, opt.init(s)), jnp.float32(samples))
  target = np.log(optimal_sigma(mean_loss, rectified))
  assert abs(float(s) - target) < 0.05, (float(s), target)


def test_rectified_weight_is_tamed_for_small_losses():
  m = np.array([1e-4, 1e-3, 0.01, 0.1, 0.5, 2.0, 300.0])
  rect = 1 / optimal_sigma(m, rectified=True)
  plain = 1 / optimal_sigma(m, rectified=False)
  assert np.all(rect < plain)             # Always a smaller weight than Eq. 4.
  assert np.all(m * rect < 1)             # Harmonized loss scale below 1.
  assert np.all(rect < 1 / np.sqrt(m))    # Grows like 1/sqrt(m), not 1/m.
  # The weight itself is below 1 exactly for mean losses above 0.5.
  np.testing.assert_array_equal(rect < 1, m > 0.5)
  # The paper's closed form of the harmonized scale: 2 / (1 + sqrt(1 + 4/m)).
  np.testing.assert_allclose(m * rect, 2 / (1 + np.sqrt(1 + 4 / m)))


def test_optimal_sigma_solves_the_stationarity_condition():
  m = np.array([0.01, 1.0, 250.0])
  sigma = optimal_sigma(m)
  # d/dsigma [m / sigma + log(1 + sigma)] = -m / sigma^2 + 1 / (1 + sigma).
  np.testing.assert_allclose(-m / sigma**2 + 1 / (1 + sigma), 0, atol=1e-12)
  with pytest.raises(ValueError):
    optimal_sigma(0.0)


def test_combine_kl_uses_the_dreamerv3_scales():
  # a = 0.5 / (0.5 + 0.1) = 5/6.
  np.testing.assert_allclose(combine_kl(6.0, 0.0, 0.5, 0.1), 5.0)
  np.testing.assert_allclose(combine_kl(0.0, 6.0, 0.5, 0.1), 1.0)
  with pytest.raises(ValueError):
    combine_kl(1.0, 1.0, 0.0, 0.0)


def test_flax_adapter_trains_its_log_sigmas():
  from harmony_v3.flax_harmonizers import FlaxHarmonizers
  module = FlaxHarmonizers(tasks=('obs', 'reward'))
  losses = {'obs': jnp.float32(100.0), 'reward': jnp.float32(0.1)}
  params = module.init(jax.random.PRNGKey(0), losses)
  leaves = params['params']
  assert set(leaves) == {'s_obs', 's_reward'}
  assert all(float(v) == 0.0 for v in leaves.values())
  value = module.apply(params, losses)
  np.testing.assert_allclose(value, 100.1 + 2 * np.log(2.0), rtol=1e-5)
  grads = jax.grad(lambda p: module.apply(p, losses))(params)['params']
  # A large loss pushes its sigma up (negative gradient), a small one down.
  assert grads['s_obs'] < 0 < grads['s_reward']
