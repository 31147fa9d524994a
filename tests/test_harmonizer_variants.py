"""The opt-in harmonizer variants (NOT the paper's setting) and the
time-to-optimum measurement; the default stays the paper's."""
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dreamerv3 import ninjax as nj

from harmony_v3 import adaptation
from harmony_v3.config import ConfigError, load_config
from harmony_v3.harmonizer import optimal_sigma
from harmony_v3.ninjax_harmonizers import (ClosedFormHarmonizers,
                                           NinjaxHarmonizers, OwnLrHarmonizers)
from harmony_v3.world_model import make_harmonizers, variant_name

pytestmark = pytest.mark.usefixtures('eager_transfers_allowed')
TASKS = ('reward', 'obs', 'dyn')


def _run(fn, state, *args):
  """One call of the impure `fn` under nj.pure; returns (out, new state)."""
  return nj.pure(lambda *a: fn(*a))(state, jax.random.PRNGKey(0), *args)


@pytest.mark.parametrize('rectified', [True, False])
def test_closed_form_weights_are_the_optimum_of_the_running_mean(rectified):
  module = ClosedFormHarmonizers(TASKS, rectified=rectified, ema=0.9,
                                 name='cf')
  constant = {'reward': 0.3, 'obs': 250.0, 'dyn': 2.0}
  state = {}
  for _ in range(4):  # A constant loss: the debiased mean is that loss.
    (loss, log_sigmas), state = _run(module, state, constant)
  for key, value in constant.items():
    np.testing.assert_allclose(
        np.exp(-log_sigmas[key]), 1 / optimal_sigma(value, rectified),
        rtol=1e-5)
  # Varying losses: the mean is the bias-corrected EMA, computed by hand.
  sequence = [1.0, 3.0, 2.0, 7.0]
  state, raw = {}, 0.0
  for count, value in enumerate(sequence, 1):
    losses = {k: value for k in TASKS}
    (_, log_sigmas), state = _run(module, state, losses)
    raw = 0.9 * raw + 0.1 * value
    expected = raw / (1 - 0.9 ** count)
    np.testing.assert_allclose(
        np.exp(log_sigmas['obs']), optimal_sigma(expected, rectified),
        rtol=1e-5)
  # No learned s_i: the module's only state is the means and their count.
  assert sorted(k.split('/')[-1] for k in state) == [
      'count', 'ema_dyn', 'ema_obs', 'ema_reward']


def test_closed_form_warmup_starts_at_weight_one_and_ramps_to_the_optimum():
  module = ClosedFormHarmonizers(TASKS, ema=0.9, warmup=4, name='cf')
  constant = {'reward': 0.3, 'obs': 250.0, 'dyn': 2.0}
  state = {}
  for update in range(1, 7):
    (_, log_sigmas), state = _run(module, state, constant)
    ramp = min(1.0, update / 4)
    for key, value in constant.items():  # log sigma = ramp * log sigma*.
      np.testing.assert_allclose(
          log_sigmas[key], ramp * np.log(optimal_sigma(value)), rtol=1e-5)
  # Without warmup the first update already divides obs by about 250.
  (_, cold), _ = _run(ClosedFormHarmonizers(TASKS, name='c0'), {}, constant)
  np.testing.assert_allclose(np.exp(cold['obs']), optimal_sigma(250.0),
                             rtol=1e-5)


def test_closed_form_passes_no_gradient_into_its_weights():
  module = ClosedFormHarmonizers(TASKS, ema=0.5, name='cf')

  def loss(x):
    losses = {'reward': x, 'obs': 4.0 * x, 'dyn': 1.0}
    total, log_sigmas = module(losses)
    return total, log_sigmas

  state = {}
  _, state = _run(loss, state, jnp.float32(2.0))
  x = jnp.float32(3.0)
  (total, log_sigmas), _ = _run(loss, state, x)
  grad = jax.grad(lambda x: _run(loss, state, x)[0][0])(x)
  # d total / dx = w_reward + 4 w_obs, with the weights held fixed.
  expected = np.exp(-log_sigmas['reward']) + 4 * np.exp(-log_sigmas['obs'])
  np.testing.assert_allclose(grad, expected, rtol=1e-5)


@pytest.mark.parametrize('lr', [1e-3, 1e-2])
def test_own_lr_moves_s_by_its_learning_rate(lr):
  module = OwnLrHarmonizers(TASKS, lr=lr, name='h')
  losses = {'reward': 0.01, 'obs': 300.0, 'dyn': 1.0}
  _, state = _run(module.log_sigmas, {})
  steps = 5
  for _ in range(steps):
    _, state = _run(module.update, state, losses)
  s = {k: float(state[f'h/s_{k}']) for k in TASKS}
  # Adam's step is about lr per update in the direction of -gradient: a
  # small loss lowers s (weight up), a large one raises it.
  np.testing.assert_allclose(s['obs'], steps * lr, rtol=0.02)
  np.testing.assert_allclose(s['reward'], -steps * lr, rtol=0.02)
  # And it follows the constant-loss trajectory of the measurement exactly.
  trajectory = adaptation.s_trajectory(300.0, lr, steps)
  np.testing.assert_allclose(s['obs'], trajectory[-1], rtol=1e-5)
  assert 'h/opt_state' in state  # Its own optax Adam state.


def test_config_picks_the_variant_and_the_default_is_the_papers():
  default = load_config(['tiny'])
  assert variant_name(default.harmony) is None
  assert (default.harmony.mode, default.harmony.lr) == ('learned', 0.0)
  module = make_harmonizers(default.harmony, default.model_opt, name='a')
  assert type(module) is NinjaxHarmonizers
  assert module.trained_by_model_optimizer
  own = load_config(['tiny'], ['--harmony.lr', '0.01'])
  module = make_harmonizers(own.harmony, own.model_opt, name='b')
  assert isinstance(module, OwnLrHarmonizers) and module.lr == 0.01
  assert not module.trained_by_model_optimizer
  assert 'own_lr' in variant_name(own.harmony)
  closed = load_config(['tiny'], ['--harmony.mode', 'closed_form'])
  module = make_harmonizers(closed.harmony, closed.model_opt, name='c')
  assert isinstance(module, ClosedFormHarmonizers)
  assert 'closed_form' in variant_name(closed.harmony)
  assert module.warmup == 0 and 'warmup' not in variant_name(closed.harmony)
  warm = load_config(['tiny'], ['--harmony.mode', 'closed_form',
                                '--harmony.warmup', '500'])
  module = make_harmonizers(warm.harmony, warm.model_opt, name='w')
  assert module.warmup == 500
  assert 'warmup 500' in variant_name(warm.harmony)
  off = load_config(['tiny'], ['--harmony.enabled', 'False'])
  assert variant_name(off.harmony) is None
  with pytest.raises(ConfigError, match='harmony.lr 0.01 has no effect with '
                                        'harmony.enabled False'):
    load_config(['tiny'], ['--harmony.enabled', 'False', '--harmony.lr',
                           '0.01'])


@pytest.mark.parametrize('flags, message', [
    (['--harmony.mode', 'fixed'], 'harmony.mode must be'),
    (['--harmony.lr', '-1'], 'harmony.lr must be >= 0'),
    (['--harmony.ema', '1'], 'harmony.ema must be in'),
    (['--harmony.mode', 'closed_form', '--harmony.lr', '0.1'],
     'applies to harmony.mode learned only'),
    (['--harmony.warmup', '-1'], 'harmony.warmup must be a whole number'),
    (['--harmony.warmup', '100'], 'applies to harmony.mode closed_form'),
])
def test_bad_variant_keys_are_rejected(flags, message):
  with pytest.raises(ConfigError, match=message):
    load_config(['tiny'], flags)


def test_default_agent_has_no_variant_state(harmony_agent):
  harmonizer_keys = sorted(k for k in harmony_agent.varibs
                           if '/harmonizers/' in k)
  assert harmonizer_keys == [f'agent/wm/harmonizers/s_{k}'
                             for k in ('dyn', 'obs', 'reward')]


def test_updates_to_optimum_is_the_first_update_within_ten_percent():
  target = float(np.log(optimal_sigma(5.0)))
  trajectory = adaptation.s_trajectory(5.0, 1e-2, 2000)
  n = adaptation.updates_to_optimum(5.0, 1e-2, max_updates=2000)
  assert n is not None and 1 < n <= 2000
  assert abs(trajectory[n - 1] - target) <= 0.1 * target
  assert np.all(np.abs(trajectory[:n - 1] - target) > 0.1 * target)
  slow = adaptation.updates_to_optimum(5.0, 1e-3, max_updates=20_000)
  assert slow > 5 * n  # Ten times the step size is several times faster.
  assert adaptation.updates_to_optimum(5.0, 1e-4, max_updates=100) is None


def test_adaptation_cli(tmp_path, python):
  out = tmp_path / 'a.json'
  proc = subprocess.run(
      [python, '-m', 'harmony_v3.adaptation', '--losses', '1', '--lrs',
       '1e-2', '--json', str(out)], capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert '| 1 | 0.481 |' in proc.stdout
  bad = subprocess.run([python, '-m', 'harmony_v3.adaptation', '--lrs', '0'],
                       capture_output=True, text=True, timeout=120)
  assert bad.returncode == 2 and 'must be positive' in bad.stderr
