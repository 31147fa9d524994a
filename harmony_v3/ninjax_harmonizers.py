"""Ninjax adapters: harmonizers as variables of a DreamerV3 module.

`NinjaxHarmonizers` is the paper's setting: learned `s_i` that the model's
own optimizer trains. The two other classes are opt-in variants that are NOT
the paper's setting (see `harmony.lr` and `harmony.mode` in
configs/defaults.yaml):

- `OwnLrHarmonizers`: learned `s_i` with their own Adam and learning rate;
- `ClosedFormHarmonizers`: no learned `s_i`; `sigma_i` is the App. B optimum
  of a running mean of `L_i`.

All three return `(loss, log_sigmas)` from `__call__`, so a world model uses
them alike.
"""
from __future__ import annotations

from typing import Mapping

import jax
import jax.numpy as jnp
import optax
from dreamerv3 import ninjax as nj

from .harmonizer import harmonious_loss, optimal_log_sigma

sg = jax.lax.stop_gradient


class NinjaxHarmonizers(nj.Module):
  """One `s_i` per task as ninjax variables, initialised to 0.

  Hand this module to the optimizer together with the model's modules, so the
  `s_i` are trained by the same optimizer (and live in its optax state).
  """

  trained_by_model_optimizer = True

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


class OwnLrHarmonizers(NinjaxHarmonizers):
  """Learned `s_i` with their own Adam at learning rate `lr` (NOT the paper's
  setting, where the model optimizer trains them at its own rate).

  Why a separate optimizer: Adam's step does not depend on the gradient's
  scale, so scaling the `s_i` gradients would not change their speed. A
  reparameterisation `s = k * u` inside the model optimizer would, but it
  multiplies the `u` gradients by `k`; at the start the observation
  harmonizer's gradient is about `-L_obs` (hundreds), so with `k` = 100 it
  would exceed the model optimizer's global-norm clip (1000) and shrink every
  model gradient. A separate optax Adam leaves the model's update alone.

  The model optimizer skips this module; after its update, `update` takes one
  Adam step of the `s_i` on the harmonious loss of the same batch's losses
  (stop-gradient), so the `s_i` move with the gradient they would get from
  the joint loss. The Adam moments live in this module's optax state.
  """

  trained_by_model_optimizer = False

  def __init__(self, tasks: tuple[str, ...], rectified: bool = True,
               lr: float = 1e-3, eps: float = 1e-8):
    super().__init__(tasks, rectified)
    if lr <= 0:
      raise ValueError(f'OwnLrHarmonizers needs lr > 0, got {lr}.')
    self.lr = lr
    self.opt = optax.adam(lr, eps=eps)

  def update(self, losses: Mapping[str, jnp.ndarray]) -> dict:
    """One Adam step of the `s_i` on the (stop-gradient) batch losses."""
    losses = {k: sg(jnp.asarray(v, jnp.float32)) for k, v in losses.items()}
    log_sigmas = self.log_sigmas()
    grads = jax.grad(
        lambda s: harmonious_loss(losses, s, self.rectified))(log_sigmas)
    state = self.get('opt_state', self.opt.init, log_sigmas)
    updates, state = self.opt.update(grads, state)
    self.put('opt_state', state)
    for key, value in optax.apply_updates(log_sigmas, updates).items():
      self.put(f's_{key}', value)
    return {f'harmony_grad_{k}': g for k, g in grads.items()}


class ClosedFormHarmonizers(nj.Module):
  """`sigma_i = optimal_sigma(running mean of L_i)` by App. B, nothing
  learned (NOT the paper's setting).

  Each call updates a bias-corrected exponential moving average of each batch
  loss (decay `ema`), a non-trainable variable outside every optimizer, and
  weights the losses by the optimum of that mean. Gradients flow neither into
  the mean nor into `sigma_i`, so the model's gradient is `L_i' / sigma_i`.
  Under a constant loss `L` the mean equals `L` from the first update on.

  `warmup > 0` (also NOT the paper's setting) starts from the paper's
  initial weights instead: `log sigma_i` is the closed form's times
  `min(1, update / warmup)`, so every weight starts at 1 (`s_i = 0`, as the
  learned harmonizers do) and reaches the closed form after `warmup`
  updates. Without it the first update divides the image loss by about its
  own size (thousands), before the model has learned anything from images.
  """

  trained_by_model_optimizer = False

  def __init__(self, tasks: tuple[str, ...], rectified: bool = True,
               ema: float = 0.99, warmup: int = 0):
    if not 0 <= ema < 1:
      raise ValueError(f'ema must be in [0, 1), got {ema}.')
    if warmup < 0:
      raise ValueError(f'warmup must be >= 0, got {warmup}.')
    self.tasks = tuple(tasks)
    self.rectified = rectified
    self.ema = ema
    self.warmup = int(warmup)

  def means(self, losses: Mapping[str, jnp.ndarray]) -> dict[str, jnp.ndarray]:
    """Update the running means with `losses` and return them (debiased)."""
    count = self.get('count', jnp.zeros, (), jnp.float32) + 1
    self.put('count', count)
    debias = 1 - self.ema ** count
    means = {}
    for key in self.tasks:
      raw = self.get(f'ema_{key}', jnp.zeros, (), jnp.float32)
      raw = self.ema * raw + (1 - self.ema) * sg(
          jnp.asarray(losses[key], jnp.float32))
      self.put(f'ema_{key}', raw)
      means[key] = raw / debias
    return means

  def current_means(self) -> dict[str, jnp.ndarray]:
    """The running means as of the last update, without updating them."""
    count = self.get('count', jnp.zeros, (), jnp.float32)
    debias = jnp.maximum(1 - self.ema ** count, 1e-12)
    return {k: self.get(f'ema_{k}', jnp.zeros, (), jnp.float32) / debias
            for k in self.tasks}

  def __call__(self, losses: Mapping[str, jnp.ndarray]):
    """Return the harmonious loss of `losses` and the `log sigma_i` used."""
    means = self.means(losses)
    ramp = 1.0
    if self.warmup:
      ramp = jnp.minimum(1.0, self.get('count', jnp.zeros, (), jnp.float32)
                         / self.warmup)
    log_sigmas = {k: sg(ramp * optimal_log_sigma(m, self.rectified))
                  for k, m in means.items()}
    return harmonious_loss(losses, log_sigmas, self.rectified), log_sigmas
