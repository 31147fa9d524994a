"""HarmonyWorldModel against DreamerV3's WorldModel, and the full agent."""
import jax
import numpy as np
import pytest
from dreamerv3 import agent as base_agent
from dreamerv3 import jaxutils
from dreamerv3 import ninjax as nj

from conftest import random_batch
from harmony_v3.world_model import HarmonyWorldModel

pytestmark = pytest.mark.usefixtures('eager_transfers_allowed')


def _preprocess(data):
  # What the base Agent.preprocess does before the world model sees a batch.
  out = {k: (v.astype(np.float32) / 255.0 if v.dtype == np.uint8
             else v.astype(np.float32)) for k, v in data.items()}
  out['cont'] = 1.0 - out['is_terminal']
  return out


def _loss_fn(cls, config, env):
  def loss(data):
    wm = cls(env.obs_space, env.act_space, config, name='wm')
    # A bare WorldModel registers its optimizer in a class-level registry of
    # the base, which the full agent reads later; this one never trains.
    jaxutils.Optimizer.PARAM_COUNTS.pop(wm.opt.path, None)
    total, (_, out, metrics) = wm.loss(data, wm.initial(config.batch_size))
    return total, out, metrics
  return nj.pure(loss)


@pytest.fixture(scope='module')
def batch(tiny_config, pong_env):
  return _preprocess(random_batch(tiny_config, pong_env, seed=1))


@pytest.fixture(scope='module')
def base_params(tiny_config, pong_env, batch):
  rng = jax.random.PRNGKey(0)
  _, params = _loss_fn(base_agent.WorldModel, tiny_config, pong_env)(
      {}, rng, batch)
  return params


def test_disabled_gives_dreamerv3_loss_exactly(
    tiny_config, pong_env, batch, base_params):
  rng = jax.random.PRNGKey(1)
  config = tiny_config.update({'harmony.enabled': False})
  (base, _, _), _ = _loss_fn(base_agent.WorldModel, config, pong_env)(
      base_params, rng, batch)
  (ours, _, _), params = _loss_fn(HarmonyWorldModel, config, pong_env)(
      base_params, rng, batch)
  assert float(ours) == float(base)
  assert not any('harmonizers' in k for k in params)


def test_fixed_loss_scales_still_apply_when_disabled(
    tiny_config, pong_env, batch, base_params):
  rng = jax.random.PRNGKey(1)
  plain = tiny_config.update({'harmony.enabled': False})
  scaled = plain.update({'loss_scales.reward': 100.0})
  (loss1, out, _), _ = _loss_fn(HarmonyWorldModel, plain, pong_env)(
      base_params, rng, batch)
  (loss100, _, _), _ = _loss_fn(HarmonyWorldModel, scaled, pong_env)(
      base_params, rng, batch)
  expected = loss1 + 99.0 * out['reward_loss'].mean()
  np.testing.assert_allclose(loss100, expected, rtol=1e-5)


@pytest.mark.parametrize('rectified', [True, False])
def test_enabled_total_equals_the_hand_computed_loss(
    tiny_config, pong_env, batch, base_params, rectified):
  config = tiny_config.update({'harmony.rectified': rectified})
  s = {'reward': -1.0, 'obs': 3.0, 'dyn': 0.5}
  params = dict(base_params)
  params.update({f'wm/harmonizers/s_{k}': np.float32(v) for k, v in s.items()})
  (total, out, metrics), _ = _loss_fn(HarmonyWorldModel, config, pong_env)(
      params, jax.random.PRNGKey(1), batch)
  a = 0.5 / (0.5 + 0.1)
  raw = {
      'reward': out['reward_loss'].mean(),
      'obs': out['image_loss'].mean(),
      'dyn': (a * out['dyn_loss'] + (1 - a) * out['rep_loss']).mean(),
  }
  reg = (lambda x: np.log1p(np.exp(x))) if rectified else (lambda x: x)
  expected = sum(raw[k] / np.exp(s[k]) + reg(s[k]) for k in s)
  expected += out['cont_loss'].mean()  # loss_scales.cont = 1, not harmonized.
  np.testing.assert_allclose(total, expected, rtol=1e-5)
  for k in s:
    np.testing.assert_allclose(metrics[f'harmony_loss_{k}'], raw[k], rtol=1e-6)
    np.testing.assert_allclose(metrics[f'harmony_s_{k}'], s[k])
    np.testing.assert_allclose(
        metrics[f'harmony_weight_{k}'], np.exp(-s[k]), rtol=1e-6)
    np.testing.assert_allclose(
        metrics[f'harmony_sigma_{k}'], np.exp(s[k]), rtol=1e-6)
  np.testing.assert_allclose(metrics['model_loss_mean'], total)


def _optimizer_leaves_named(state, name):
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return [(jax.tree_util.keystr(p), v) for p, v in leaves if name in
          jax.tree_util.keystr(p)]


def test_full_agent_trains_harmonizers_with_the_model_optimizer(
    harmony_agent, tiny_config, pong_env):
  agent = harmony_agent
  keys = [f'agent/wm/harmonizers/s_{k}' for k in ('reward', 'obs', 'dyn')]
  before = {k: float(agent.varibs[k]) for k in keys}
  assert before == {k: 0.0 for k in keys}
  data = jax.device_put(random_batch(tiny_config, pong_env, seed=2))
  state, all_metrics = None, []
  for _ in range(3):
    _, state, metrics = agent.train(data, state)
    all_metrics.append(metrics)
  after = {k: float(agent.varibs[k]) for k in keys}
  assert all(after[k] != before[k] for k in keys), after
  # Their Adam moments live in the world model optimizer's optax state.
  opt_state = agent.varibs['agent/wm/model_opt/state']
  for k in ('s_reward', 's_obs', 's_dyn'):
    found = _optimizer_leaves_named(opt_state, f'harmonizers/{k}')
    assert len(found) >= 2, (k, [p for p, _ in found])  # mu and nu.
    assert any(np.any(np.asarray(v) != 0) for _, v in found)
  for name in ('actor_opt', 'critic_opt'):
    for path in agent.varibs:
      if name in path:
        assert not _optimizer_leaves_named(agent.varibs[path], 'harmonizers')
  # Every metric of every update is finite, and the harmony ones are logged.
  for metrics in all_metrics:
    scalars = {k: v for k, v in metrics.items() if np.ndim(v) == 0}
    bad = [k for k, v in scalars.items() if not np.isfinite(v)]
    assert not bad, bad
    for k in ('reward', 'obs', 'dyn'):
      for what in ('loss', 's', 'sigma', 'weight'):
        assert f'train/harmony_{what}_{k}' in metrics or \
            f'harmony_{what}_{k}' in metrics
    assert 'dyn_loss_mean' in metrics and 'rep_loss_mean' in metrics


def test_full_agent_policy_runs_on_real_pong(harmony_agent, pong_env):
  obs = pong_env.step({'action': np.zeros(pong_env.act_space['action'].shape,
                                          np.float32), 'reset': True})
  batch = {k: np.asarray(v)[None] for k, v in obs.items()}
  outs, state = harmony_agent.policy(batch, None, mode='eval')
  action = outs['action']
  assert action.shape == (1, pong_env.act_space['action'].shape[0])
  np.testing.assert_allclose(action.sum(-1), 1.0)  # One-hot.
