"""A ninjax adapter: harmonizers as variables of a DreamerV3 module."""
from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
from dreamerv3 import ninjax as nj

from .harmonizer import harmonious_loss


class NinjaxHarmonizers(nj.Module):
  """One `s_i` per task as ninjax variables, initialised to 0.

  Hand this module to the optimizer together with the model's modules, so the
  `s_i` are trained by the same optimizer (and live in its optax state).
  """

  def __init__(self, tasks: tuple[str, ...], rectified: bool = True):
    self.tasks = tuple(tasks)
    self.rectified = rectified

  def log_sigmas(self) -> dict[str, jnp.ndarray]:
    """The current `s_i`, created as 0 on first use."""
    return {k: self.get(f's_{k}', jnp.zeros, (), jnp.float32)
            for k in self.tasks}

  def __call__(self, losses: Mapping[str, jnp.ndarray]):
    """Return the harmonious loss of `losses` and the `s_i` used."""
    log_sigmas = self.log_sigmas()
    return harmonious_loss(losses, log_sigmas, self.rectified), log_sigmas
