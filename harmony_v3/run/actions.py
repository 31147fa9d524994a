"""Actions outside the agent's policy: the seeded random prefill, and the
check that a policy's actions are finite."""
from __future__ import annotations

import embodied
import numpy as np


def random_actions(act_space: dict[str, embodied.Space], seed: int,
                   step: int, count: int) -> dict[str, np.ndarray]:
  """Uniform random actions for `count` envs, drawn from the seed and the
  step only.

  (The base's RandomAgent draws from unseeded generators, so two runs of
  one seed began with different data.)
  """
  rng = np.random.default_rng([seed, step])
  acts = {}
  for key, space in act_space.items():
    if key == 'reset':
      continue
    shape = (count,) + space.shape
    if space.discrete and np.issubdtype(space.dtype, np.floating):
      index = rng.integers(0, space.shape[-1], shape[:-1])  # One-hot.
      acts[key] = np.eye(space.shape[-1], dtype=space.dtype)[index]
    elif space.discrete:
      acts[key] = rng.integers(space.low, space.high, shape).astype(
          space.dtype)
    else:
      acts[key] = rng.uniform(space.low, space.high, shape).astype(
          space.dtype)
  return acts


def first_nonfinite(outs: dict) -> str | None:
  """The first policy output (not a log_ entry) with NaN or inf, or None."""
  for key, value in outs.items():
    if key.startswith('log_'):
      continue
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(
        value).all():
      return key
  return None
