"""The harmonious loss of HarmonyDream (Ma et al., ICML 2024), in pure JAX.

Each task loss `L_i` gets a learnable `s_i` (init 0), `sigma_i = exp(s_i)`:

  rectified (Eq. 5, default):  sum_i L_i / sigma_i + log(1 + sigma_i)
  unrectified (Eq. 4):         sum_i L_i / sigma_i + log(sigma_i)

The functions here know nothing about any framework. Two thin adapters hold
the `s_i` as parameters: `harmony_v3.ninjax_harmonizers.NinjaxHarmonizers` for
DreamerV3's ninjax modules and `harmony_v3.flax_harmonizers.FlaxHarmonizers`
for Flax (linen) models.
"""
from __future__ import annotations

from typing import Mapping

import jax.numpy as jnp
import numpy as np

ArrayLike = jnp.ndarray | float


def regularizer(log_sigma: ArrayLike, rectified: bool = True) -> jnp.ndarray:
  """The harmonizer's regularizer: log(1 + sigma), or log(sigma) unrectified."""
  log_sigma = jnp.asarray(log_sigma, jnp.float32)
  if rectified:
    return jnp.logaddexp(0.0, log_sigma)  # log(1 + exp(s)), stable.
  return log_sigma


def harmonious_terms(
    losses: Mapping[str, ArrayLike], log_sigmas: Mapping[str, ArrayLike],
    rectified: bool = True) -> dict[str, jnp.ndarray]:
  """Per-task harmonized terms `L_i / sigma_i + reg(s_i)`, keyed like `losses`.

  `losses` and `log_sigmas` must have the same keys; losses are scalars
  (already averaged over the batch).
  """
  if set(losses) != set(log_sigmas):
    raise ValueError(
        f'Losses {sorted(losses)} and harmonizers {sorted(log_sigmas)} '
        'must have the same keys.')
  terms = {}
  for key, loss in losses.items():
    s = jnp.asarray(log_sigmas[key], jnp.float32)
    terms[key] = jnp.asarray(loss) * jnp.exp(-s) + regularizer(s, rectified)
  return terms


def harmonious_loss(
    losses: Mapping[str, ArrayLike], log_sigmas: Mapping[str, ArrayLike],
    rectified: bool = True) -> jnp.ndarray:
  """Scalar `sum_i L_i / sigma_i + log(1 + sigma_i)` with `sigma_i = exp(s_i)`.

  With `rectified=False` the regularizer is `log(sigma_i)` (Eq. 4).
  """
  return sum(harmonious_terms(losses, log_sigmas, rectified).values())


def optimal_sigma(mean_loss: ArrayLike, rectified: bool = True):
  """The sigma that minimises the expected harmonized loss (paper, App. B).

  Unrectified: `sigma* = E[L]`. Rectified: `(m + sqrt(m^2 + 4m)) / 2` with
  `m = E[L]`. Rectified, the harmonized loss scale `m / sigma*` stays below 1
  and the weight `1 / sigma*` grows like `1 / sqrt(m)` for small losses
  instead of `1 / m`; the weight itself is below 1 exactly when `m > 0.5`.
  """
  m = np.asarray(mean_loss, np.float64)
  if np.any(m <= 0):
    raise ValueError('The optimum exists for positive mean losses only.')
  if rectified:
    return (m + np.sqrt(m * m + 4 * m)) / 2
  return m


def optimal_log_sigma(mean_loss: ArrayLike, rectified: bool = True,
                      floor: float = 1e-8) -> jnp.ndarray:
  """`log(optimal_sigma(mean_loss))` in JAX, for use inside compiled code.

  The mean loss is floored at `floor` (no check is possible under jit).
  """
  m = jnp.maximum(jnp.asarray(mean_loss, jnp.float32), floor)
  if rectified:
    return jnp.log((m + jnp.sqrt(m * m + 4 * m)) / 2)
  return jnp.log(m)


def combine_kl(dyn: ArrayLike, rep: ArrayLike, dyn_scale: float,
               rep_scale: float) -> jnp.ndarray:
  """`a * L_dyn + (1 - a) * L_rep` with `a = dyn_scale / (dyn_scale + rep_scale)`.

  DreamerV3 scales its two KL terms 0.5 and 0.1; HarmonyDream puts a single
  harmonizer on their convex combination (paper, Eq. 15).
  """
  total = dyn_scale + rep_scale
  if total <= 0:
    raise ValueError('dyn_scale + rep_scale must be positive.')
  alpha = dyn_scale / total
  return alpha * dyn + (1 - alpha) * rep
