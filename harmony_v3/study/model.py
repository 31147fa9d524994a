"""A world model alone (no actor-critic), trained and evaluated under jit.

`WorldModelArm` builds one `HarmonyWorldModel` (the base's `WorldModel` when
`harmony.enabled` is False) from a config, and compiles its train update and
a held-out evaluation the way DreamerV3's `jaxagent.JAXAgent` does: the
ninjax module's methods become pure functions of the variables with
`nj.pure`, then `jax.jit`. Variables are created by one pass with
`ignore=True` (as ninjax's own `jit` does on its first call), here as a
separate compiled function so that every seed of an arm reuses the compiled
update.

Each function is compiled ahead of time on its first call. The variable
creation runs once per seed, so on the CPU it is compiled with XLA's
expensive optimizations off (a few seconds instead of tens); with
`fast_compile` (the study's --quick mode) the update and the evaluation are
too, trading run time for compile time.
"""
from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from dreamerv3 import jaxutils
from dreamerv3 import ninjax as nj

from ..world_model import HarmonyWorldModel

# The train metrics the study keeps (others of the base are dropped in jit).
KEPT_METRICS = ('model_loss_mean', 'image_loss_mean', 'reward_loss_mean',
                'cont_loss_mean', 'dyn_loss_mean', 'rep_loss_mean',
                'model_opt_grad_norm')

# XLA options that skip its expensive passes (what jax_disable_most_
# optimizations sets), for functions that run rarely.
FAST_COMPILE = {'xla_backend_optimization_level': 0,
                'xla_llvm_disable_expensive_passes': True}


class Compiled:
  """A function jit-compiled ahead of time on its first call."""

  def __init__(self, fun, fast: bool = False, **jit_kwargs):
    self.jitted = jax.jit(fun, **jit_kwargs)
    self.fast = fast
    self.executable = None
    self.compile_s = 0.0

  def __call__(self, *args):
    if self.executable is None:
      start = time.perf_counter()
      options = FAST_COMPILE if self.fast else None
      self.executable = self.jitted.lower(*args).compile(options)
      self.compile_s = time.perf_counter() - start
    return self.executable(*args)


def preprocess(data: dict) -> dict:
  """Images to [0, 1] floats, everything else float32, and `cont`, as the
  base agent's `preprocess` gives the world model its inputs."""
  out = {}
  for key, value in data.items():
    if value.dtype == jnp.uint8:
      out[key] = jaxutils.cast_to_compute(value) / 255.0
    else:
      out[key] = value.astype(jnp.float32)
  out['cont'] = 1.0 - out['is_terminal']
  return out


class WorldModelArm:
  """One arm's world model: `init(seed)`, `train(varibs, ...)`, `evaluate`."""

  def __init__(self, config, obs_space: dict, act_space: dict,
               context: int, fast_compile: bool = False, device=None):
    self.config = config
    self.context = context
    self.device = device or jax.devices(config.jax.platform)[0]
    cpu = self.device.platform == 'cpu'
    jaxutils.COMPUTE_DTYPE = getattr(jnp, config.jax.precision)
    self.wm = HarmonyWorldModel(obs_space, act_space, config, name='wm')
    pure_train = nj.pure(self._train_step)
    pure_eval = nj.pure(self._eval_step)
    self._create = Compiled(
        lambda rng, data: pure_train({}, rng, data, ignore=True)[1],
        fast=cpu)
    # Donating the variables saves memory on accelerators; the CPU cannot.
    self._train = Compiled(
        lambda varibs, rng, data: pure_train(varibs, rng, data, create=False),
        fast=fast_compile and cpu, donate_argnums=() if cpu else (0,))
    self._eval = Compiled(
        lambda varibs, rng, data: pure_eval(
            varibs, rng, data, create=False)[0], fast=fast_compile and cpu)

  @property
  def update_compile_s(self) -> float:
    """Seconds spent compiling the update."""
    return self._train.compile_s

  @property
  def compile_s(self) -> float:
    """Seconds spent compiling so far (variables, update, evaluation)."""
    return sum(f.compile_s for f in (self._create, self._train, self._eval))

  # Impure methods (run inside nj.pure).

  def _train_step(self, data):
    data = preprocess(data)
    state = self.wm.initial(len(data['is_first']))
    _, _, metrics = self.wm.train(data, state)
    kept = {k: metrics[k] for k in KEPT_METRICS}
    kept.update({k: v for k, v in metrics.items() if k.startswith('harmony')})
    return kept

  def _eval_step(self, data):
    """Per-step held-out predictions for steps context..T-1 of each window.

    Teacher-forced: the posterior, which has seen every frame up to t.
    Open-loop: the prior, imagined from the posterior at step context-1 with
    the recorded actions, as the actor sees rewards in imagination. Action
    `a_t` (taken after `o_t`) leads to step t+1, so imagining steps
    context..T-1 takes the actions of steps context-1..T-2.
    """
    wm, c = self.wm, self.context
    data = preprocess(data)
    embed = wm.encoder(data)
    zeros = jnp.zeros_like(data['action'][:, :1])
    prev_actions = jnp.concatenate([zeros, data['action'][:, :-1]], 1)
    post, prior = wm.rssm.observe(embed, prev_actions, data['is_first'])
    start = {k: v[:, c - 1] for k, v in post.items()}
    imagined = wm.rssm.imagine(data['action'][:, c - 1:-1], start)
    post = {k: v[:, c:] for k, v in post.items()}
    prior = {k: v[:, c:] for k, v in prior.items()}
    image = data['image'][:, c:]
    reward = data['reward'][:, c:]
    out = {}
    for name, feats in (('tf', post), ('ol', imagined)):
      reward_dist = wm.heads['reward'](feats)
      # The reward head's mean in symlog space (its bins live there).
      out[f'reward_pred_{name}'] = jaxutils.symlog(reward_dist.mean())
      out[f'reward_nll_{name}'] = -reward_dist.log_prob(reward)
      image_dist = wm.heads['decoder'](feats)['image']
      out[f'obs_loss_{name}'] = -image_dist.log_prob(image)
    # KL(posterior || prior) without DreamerV3's free bits.
    out['kl'] = wm.rssm.dyn_loss(post, prior, impl='kl', free=0.0)
    return out

  # Host-side API.

  def init(self, seed: int, data: dict) -> dict:
    """Fresh variables for `seed` (the same seed gives the same start in
    every arm, harmonizers aside)."""
    rng = jax.device_put(np.uint32(seed), self.device)
    return self._create(rng, jax.device_put(data, self.device))

  def train(self, varibs: dict, rng: int, data: dict) -> tuple[dict, dict]:
    """One update; returns (metrics on the device, new variables)."""
    rng = jax.device_put(np.uint32(rng), self.device)
    metrics, varibs = self._train(varibs, rng, jax.device_put(
        data, self.device))
    return metrics, varibs

  def evaluate(self, varibs: dict, windows: list[dict]) -> dict:
    """Per-step held-out outputs for every chunk of windows, concatenated."""
    rng = jax.device_put(np.uint32(0), self.device)
    chunks = [jax.device_get(self._eval(
        varibs, rng, jax.device_put(w, self.device))) for w in windows]
    return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
