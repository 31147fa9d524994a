"""Vectorized training: R runs in one vmapped update learn as they would alone.

The reference is a separately built agent (the base JAXAgent with its own jit)
with seed 1; the group trains seeds 1 and 2 side by side, each on its own data.
"""
import jax
import numpy as np
import pytest

from conftest import random_batch

UPDATES = 3


def _leaves(tree):
  return [np.asarray(x, np.float64) for x in jax.tree_util.tree_leaves(tree)]


@pytest.fixture(scope='module')
def runs(tiny_config, pong_env):
  import embodied
  from harmony_v3.agent import HarmonyAgent
  from harmony_v3.run.vectorized import VectorizedTrain, stack_runs
  config = tiny_config.update({'seed': 1})
  alone = HarmonyAgent(pong_env.obs_space, pong_env.act_space,
                       embodied.Counter(), config)
  initial = jax.device_get(alone.varibs)
  batches = {seed: [random_batch(config, pong_env, seed=10 * seed + u)
                    for u in range(UPDATES)] for seed in (1, 2)}
  alone_losses, carry = [], None
  for batch in batches[1]:
    _, carry, mets = alone.train(jax.device_put(batch), carry)
    alone_losses.append(float(mets['model_loss_mean']))

  group = VectorizedTrain(alone, pong_env.obs_space, pong_env.act_space,
                          seeds=[1, 2])
  group_initial = [group.run_varibs(i) for i in range(2)]
  group_losses, carry = [], None
  for u in range(UPDATES):
    data = stack_runs([batches[1][u], batches[2][u]])
    _, carry, mets = group.train(data, carry)
    group_losses.append(np.asarray(jax.device_get(mets['model_loss_mean'])))
  return {
      'alone_initial': initial,
      'alone_losses': alone_losses,
      'alone_final': jax.device_get(alone.varibs),
      'group_initial': group_initial,
      'group_losses': np.array(group_losses),  # (updates, runs)
      'group_final': [group.run_varibs(i) for i in range(2)],
      'group_metrics': jax.device_get(mets),
  }


def test_a_run_starts_as_the_separately_built_agent(runs):
  alone, grouped = runs['alone_initial'], runs['group_initial'][0]
  assert sorted(alone) == sorted(grouped)
  for a, b in zip(_leaves(alone), _leaves(grouped)):
    np.testing.assert_array_equal(a, b)


def test_runs_have_their_own_initialisation(runs):
  first, second = (_leaves(v) for v in runs['group_initial'])
  assert any(not np.array_equal(a, b) for a, b in zip(first, second))


def test_a_run_follows_the_separate_loss_trajectory(runs):
  np.testing.assert_allclose(runs['group_losses'][:, 0],
                             runs['alone_losses'], rtol=1e-5)
  # The second run learns from its own data and parameters.
  assert not np.allclose(runs['group_losses'][:, 1], runs['alone_losses'])


def test_a_run_ends_with_the_separate_parameters(runs, tiny_config):
  alone, grouped = runs['alone_final'], runs['group_final'][0]
  # Adam moves a parameter by up to about the learning rate per update
  # whatever the gradient's size, so rounding in the batched kernels can
  # change a near-zero gradient's step: allow two such steps per update.
  atol = 2 * UPDATES * tiny_config.model_opt.lr
  for a, b in zip(_leaves(alone), _leaves(grouped)):
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=atol)


def test_metrics_are_per_run(runs):
  mets = runs['group_metrics']
  for key in ('model_loss_mean', 'harmony_weight_obs', 'harmony_s_reward'):
    assert np.shape(mets[key]) == (2,)
    assert np.all(np.isfinite(mets[key]))


def test_rejects_an_empty_group(harmony_agent, pong_env):
  from harmony_v3.run.vectorized import VectorizedTrain
  with pytest.raises(ValueError, match='at least one seed'):
    VectorizedTrain(harmony_agent, pong_env.obs_space, pong_env.act_space,
                    seeds=[])


def test_bench_reports_each_size_and_goes_on_after_a_failure(tmp_path, python):
  """`bench --vectorized 0 1`: R=0 cannot be built, R=1 is still measured."""
  import json
  import subprocess
  out = tmp_path / 'bench.json'
  proc = subprocess.run(
      [python, '-m', 'harmony_v3.bench', '--configs', 'tiny', '--vectorized',
       '0', '1', '--updates', '2', '--rounds', '1', '--json', str(out)],
      capture_output=True, text=True, timeout=900)
  assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
  assert 'R=0: failed: ValueError' in proc.stdout
  results = json.loads(out.read_text())
  assert 'at least one seed' in results['0']['error']
  assert results['1']['aggregate_updates_per_s'] > 0
  assert results['single_updates_per_s'] > 0
