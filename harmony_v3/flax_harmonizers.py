"""A Flax (linen) adapter: harmonizers for any Flax world model."""
from __future__ import annotations

from typing import Mapping, Sequence

import flax.linen as nn
import jax.numpy as jnp

from .harmonizer import harmonious_loss


class FlaxHarmonizers(nn.Module):
  """One learnable `s_i` (init 0) per task; returns the harmonious loss.

  Example:
    harm = FlaxHarmonizers(tasks=('obs', 'reward', 'dyn'))
    loss = harm({'obs': l_obs, 'reward': l_rew, 'dyn': l_dyn})
  The `s_i` are ordinary params, so the model's optimizer trains them.
  """
  tasks: Sequence[str]
  rectified: bool = True

  @nn.compact
  def __call__(self, losses: Mapping[str, jnp.ndarray]) -> jnp.ndarray:
    log_sigmas = {
        k: self.param(f's_{k}', nn.initializers.zeros, (), jnp.float32)
        for k in self.tasks}
    return harmonious_loss(losses, log_sigmas, self.rectified)
