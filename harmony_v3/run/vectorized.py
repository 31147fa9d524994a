"""Train updates of several runs as one vmapped, jit-compiled call.

One run of the atari100k preset leaves most of a GPU idle: its update is a
long chain of small kernels. `VectorizedTrain` stacks R runs' variables
(parameters, optimizer states, harmonizers) and batches along a new leading
axis and maps the base's pure train function over that axis with `jax.vmap`:
one chain of R-times-larger kernels updates all R runs.

Each run keeps its own seed, initial parameters, random stream and data, so
its updates are those it would get trained alone by the base `JAXAgent`: the
same initialisation (`JAXAgent._init_varibs` with the run's seed) and the same
sequence of random keys. Only float rounding of the batched kernels can
differ; `tests/test_vectorized.py` checks the trajectories on the tiny preset.

This covers train updates only; `python -m harmony_v3.bench --vectorized`
measures it against separate processes.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np

from dreamerv3 import ninjax as nj

_HIGH = 2 ** 63 - 1  # The base's range for per-call seeds.


def stack_runs(trees: Sequence[Any]) -> Any:
  """Stack pytrees of equal structure along a new leading (run) axis."""
  return jax.tree_util.tree_map(lambda *xs: np.stack(xs), *trees)


def unstack_run(tree: Any, index: int) -> Any:
  """The pytree of run `index` from a stacked pytree."""
  return jax.tree_util.tree_map(lambda x: x[index], tree)


class VectorizedTrain:
  """R runs of one agent configuration, updated together.

  `agent` is a built single-device `JAXAgent` (e.g. `HarmonyAgent`); its
  module definitions are shared, its own variables and random generator are
  left untouched. Run i starts exactly as `JAXAgent(..., seed=seeds[i])`.
  """

  def __init__(self, agent, obs_space: dict, act_space: dict,
               seeds: Sequence[int]):
    if not agent.single_device:
      raise ValueError('VectorizedTrain needs a single-device agent '
                       '(one train and policy device).')
    if len(seeds) < 1:
      raise ValueError('VectorizedTrain needs at least one seed.')
    self.agent = agent
    self.seeds = list(seeds)
    self.device = agent.train_devices[0]
    self.rngs = [np.random.default_rng(seed) for seed in self.seeds]

    inner = agent.agent
    pure_train = nj.pure(inner.train)
    pure_initial = nj.pure(lambda is_first: inner.train_initial(len(is_first)))

    def initial(varibs, rng, is_first):
      return pure_initial(varibs, rng, is_first, create=False)

    def train(varibs, rng, data, carry):
      return pure_train(varibs, rng, data, carry, create=False)

    def create(rng, data):
      # What JAXAgent._init_varibs does through ninjax's jit on its first
      # calls: create the carry's variables, then every train variable from
      # an empty state, the carry's own taking precedence.
      _, carry_varibs = pure_initial({}, rng, data['is_first'], ignore=True)
      carry, carry_varibs = initial(carry_varibs, rng, data['is_first'])
      _, train_varibs = pure_train({}, rng, data, carry, ignore=True)
      return {**train_varibs, **carry_varibs}

    dummy = agent._dummy_batch(
        {**obs_space, **act_space}, (agent.batch_size, agent.batch_length))
    # One draw from each run's generator, as JAXAgent._init_varibs makes.
    self.varibs = jax.jit(jax.vmap(create, in_axes=(0, None)))(
        self._next_rngs(), jax.device_put(dummy, self.device))

    # Donating the stacked variables halves peak memory on accelerators; the
    # CPU backend cannot use donations and would only warn.
    donate = () if self.device.platform == 'cpu' else (0,)
    self._initial = jax.jit(jax.vmap(initial), donate_argnums=donate)
    self._train = jax.jit(jax.vmap(train), donate_argnums=donate)

  @property
  def num_runs(self) -> int:
    return len(self.seeds)

  def _next_rngs(self):
    # One draw per run and call, as JAXAgent._next_rngs does for one device.
    draws = np.array([rng.integers(_HIGH) for rng in self.rngs])
    return jax.device_put(draws, self.device)

  def train(self, data: dict, carry: Any = None) -> tuple[Any, Any, dict]:
    """One update of every run; `data` leaves have shape (R, B, T, ...).

    Returns the stacked outputs, the stacked model carry for the next call,
    and the metrics, each of shape (R,) and still on the device.
    """
    data = jax.device_put(data, self.device)
    rng = self._next_rngs()
    if carry is None:
      carry, self.varibs = self._initial(self.varibs, rng, data['is_first'])
    (outs, carry, mets), self.varibs = self._train(
        self.varibs, rng, data, carry)
    return outs, carry, mets

  def run_varibs(self, index: int) -> dict:
    """Host copy of run `index`'s variables, as `JAXAgent.save` gives them."""
    return unstack_run(jax.device_get(self.varibs), index)
