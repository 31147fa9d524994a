"""HarmonyWorldModel: DreamerV3's world model with the harmonious loss.

A subclass of `dreamerv3.agent.WorldModel`. The base computes every raw loss;
this class recombines them:

  L_obs    = sum of all decoder losses (image, and vectors if any)
  L_reward = reward loss
  L_dyn    = a * L_dyn_kl + (1 - a) * L_rep_kl,  a = dyn_scale / (dyn_scale + rep_scale)
  total    = harmonious_loss({obs, reward, dyn}) + cont_scale * L_cont

The learned weights replace `loss_scales.image`, `.vector` and `.reward`;
`loss_scales.dyn` and `.rep` only set `a`, and `loss_scales.cont` still
scales the continuation loss. The three `s_i` belong to a `NinjaxHarmonizers`
module that is trained by the world model's own optimizer (`model_opt`), so
they share its Adam state and learning rate. With `harmony.enabled: False`
every method defers to the base and the loss is DreamerV3's, including any
fixed `loss_scales`.
"""
from __future__ import annotations

import jax.numpy as jnp
from dreamerv3 import agent as base_agent

from .harmonizer import combine_kl
from .ninjax_harmonizers import NinjaxHarmonizers

TASKS = ('reward', 'obs', 'dyn')


class HarmonyWorldModel(base_agent.WorldModel):
  """DreamerV3's WorldModel with reward, observation and dynamics harmonizers."""

  def __init__(self, obs_space, act_space, config):
    super().__init__(obs_space, act_space, config)
    self.enabled = bool(config.harmony.enabled)
    if self.enabled:
      self.harmonizers = NinjaxHarmonizers(
          TASKS, rectified=bool(config.harmony.rectified), name='harmonizers')

  def train(self, data, state):
    if not self.enabled:
      return super().train(data, state)
    modules = [self.encoder, self.rssm, *self.heads.values(), self.harmonizers]
    mets, (state, outs, metrics) = self.opt(
        modules, self.loss, data, state, has_aux=True)
    metrics.update(mets)
    return state, outs, metrics

  def loss(self, data, state):
    base_loss, (state, out, metrics) = super().loss(data, state)
    if not self.enabled:
      return base_loss, (state, out, metrics)
    task_losses = self.task_losses(out)
    total, log_sigmas = self.harmonizers(task_losses)
    cont = self.scales['cont'] * out['cont_loss'].mean()
    total = total + cont
    metrics.pop('model_loss_std', None)
    metrics['model_loss_mean'] = total
    metrics.update(_harmony_metrics(task_losses, log_sigmas))
    return total, (state, out, metrics)

  def task_losses(self, out: dict) -> dict[str, jnp.ndarray]:
    """Batch-mean raw losses of the three harmonized tasks."""
    decoder = self.heads['decoder']
    obs_keys = [*decoder.cnn_shapes, *decoder.mlp_shapes]
    obs = sum(out[f'{k}_loss'] for k in obs_keys)
    dyn = combine_kl(
        out['dyn_loss'], out['rep_loss'],
        self.config.loss_scales.dyn, self.config.loss_scales.rep)
    return {
        'reward': out['reward_loss'].mean(),
        'obs': obs.mean(),
        'dyn': dyn.mean(),
    }


def _harmony_metrics(task_losses, log_sigmas):
  metrics = {}
  for key, s in log_sigmas.items():
    metrics[f'harmony_loss_{key}'] = task_losses[key]
    metrics[f'harmony_s_{key}'] = s
    metrics[f'harmony_sigma_{key}'] = jnp.exp(s)
    metrics[f'harmony_weight_{key}'] = jnp.exp(-s)
  return metrics
