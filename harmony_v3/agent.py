"""DreamerV3's Agent with HarmonyWorldModel installed, without editing the base.

The base `Agent.__init__` builds its world model from the module-level name
`dreamerv3.agent.WorldModel`. `HarmonyAgent` binds that name to
`HarmonyWorldModel` while the base constructor runs, then restores it, so the
actor-critic and everything else are built exactly as in the base.
"""
from __future__ import annotations

import contextlib
import threading

import jax
import numpy as np

from dreamerv3 import agent as base_agent
from dreamerv3 import jaxagent

from .world_model import HarmonyWorldModel

_SWAP_LOCK = threading.Lock()


@contextlib.contextmanager
def _world_model_class(cls):
  with _SWAP_LOCK:
    original = base_agent.WorldModel
    base_agent.WorldModel = cls
    try:
      yield
    finally:
      base_agent.WorldModel = original


class HarmonyAgentModule(base_agent.Agent.inner):
  """The base agent's ninjax module, built with HarmonyWorldModel."""

  def __init__(self, obs_space, act_space, step, config):
    with _world_model_class(HarmonyWorldModel):
      super().__init__(obs_space, act_space, step, config)


class HarmonyAgent(jaxagent.Wrapper(HarmonyAgentModule)):
  """The base's JAX wrapper (jit-compiled policy/train/report, parameters,
  checkpoints) around HarmonyAgentModule.

  It also keeps the optimizer losses of the latest train update, which the
  base returns only every `jax.metrics_every` updates, so that the trainer
  can stop at the first update that diverges (`last_losses`).
  """

  def _transform(self):
    super()._transform()
    train = self._train

    def train_keeping_losses(*args, init_only=False, **kwargs):
      result = train(*args, init_only=init_only, **kwargs)
      if not init_only:
        (_, _, metrics), _ = result
        self._losses = {k: v for k, v in metrics.items()
                        if k.endswith('_opt_loss')}
      return result
    self._train = train_keeping_losses
    self._losses = {}

  def dataset(self, generator):
    """Batches of `batch_size` sequences from `generator`, on the device.

    With `data_loaders` > 0 as in the base: background threads sample ahead,
    so which steps a batch can hold depends on thread timing. With 0 the
    batches are sampled in the caller's thread when asked for, which makes
    training reproducible; the base's own path for 0 fails on JAX's
    transfer guard (its batches stay NumPy arrays).
    """
    if self.data_loaders:
      return super().dataset(generator)
    sources = [generator() for _ in range(self.batch_size)]

    def batches():
      while True:
        seqs = [next(source) for source in sources]
        batch = {k: np.stack([s[k] for s in seqs]) for k in seqs[0]}
        yield jax.device_put(batch, self.train_devices[0])
    return batches()

  def last_losses(self) -> dict[str, float]:
    """The optimizer losses of the latest train update, as floats."""
    return {k: float(v) for k, v in jax.device_get(self._losses).items()}
