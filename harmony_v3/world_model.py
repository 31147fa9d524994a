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

Two opt-in variants, NOT the paper's setting, replace the harmonizers (see
`ninjax_harmonizers`): `harmony.lr > 0` gives the `s_i` their own Adam at that
learning rate, and `harmony.mode: closed_form` sets `sigma_i` from a running
mean of `L_i` by App. B. Either one warns when the model is built and logs
`harmony_variant_*` metrics; the defaults (`mode: learned`, `lr: 0`) are the
paper's.
"""
from __future__ import annotations

import warnings

import jax.numpy as jnp
from dreamerv3 import agent as base_agent

from .harmonizer import combine_kl
from .ninjax_harmonizers import (ClosedFormHarmonizers, NinjaxHarmonizers,
                                 OwnLrHarmonizers)

TASKS = ('reward', 'obs', 'dyn')
MODES = ('learned', 'closed_form')


def variant_name(harmony) -> str | None:
  """The opt-in harmonizer variant a `harmony` config selects, or None for the
  paper's setting (learned `s_i` trained by the model optimizer)."""
  if not harmony.enabled:
    return None
  if harmony.mode == 'closed_form':
    warmup = f', warmup {harmony.warmup:g}' if harmony.warmup else ''
    return f'closed_form (ema {harmony.ema:g}{warmup})'
  if harmony.lr > 0:
    return f'own_lr (lr {harmony.lr:g})'
  return None


def harmony_config_problems(harmony) -> list[str]:
  """What is wrong with the `harmony.*` keys, one line each (empty if fine)."""
  problems = []
  if harmony.mode not in MODES:
    problems.append(f"harmony.mode must be learned or closed_form, got "
                    f"'{harmony.mode}'")
  if not harmony.lr >= 0:
    problems.append(f'harmony.lr must be >= 0 (0: the model optimizer), got '
                    f'{harmony.lr}')
  if not 0 <= harmony.ema < 1:
    problems.append(f'harmony.ema must be in [0, 1), got {harmony.ema}')
  if harmony.mode == 'closed_form' and harmony.lr > 0:
    problems.append('harmony.lr applies to harmony.mode learned only; '
                    'closed_form learns no s_i')
  if not (harmony.warmup >= 0 and float(harmony.warmup).is_integer()):
    problems.append(f'harmony.warmup must be a whole number >= 0, got '
                    f'{harmony.warmup}')
  elif harmony.warmup and harmony.mode != 'closed_form':
    problems.append('harmony.warmup applies to harmony.mode closed_form '
                    'only; learned s_i start at 0 anyway')
  return problems


def make_harmonizers(harmony, model_opt, name: str = 'harmonizers'):
  """The harmonizer module a `harmony` config asks for (paper's by default)."""
  rectified = bool(harmony.rectified)
  if harmony.mode == 'closed_form':
    return ClosedFormHarmonizers(
        TASKS, rectified=rectified, ema=float(harmony.ema),
        warmup=int(harmony.warmup), name=name)
  if harmony.lr > 0:
    return OwnLrHarmonizers(TASKS, rectified=rectified, lr=float(harmony.lr),
                            eps=float(model_opt.eps), name=name)
  return NinjaxHarmonizers(TASKS, rectified=rectified, name=name)


class HarmonyWorldModel(base_agent.WorldModel):
  """DreamerV3's WorldModel with reward, observation and dynamics harmonizers."""

  def __init__(self, obs_space, act_space, config):
    super().__init__(obs_space, act_space, config)
    self.enabled = bool(config.harmony.enabled)
    if self.enabled:
      self.harmonizers = make_harmonizers(config.harmony, config.model_opt)
      variant = variant_name(config.harmony)
      if variant:
        warnings.warn(
            f'Harmonizer variant {variant}: NOT the paper\'s setting (learned '
            's_i trained by the model optimizer).', stacklevel=2)

  def train(self, data, state):
    if not self.enabled:
      return super().train(data, state)
    modules = [self.encoder, self.rssm, *self.heads.values()]
    if self.harmonizers.trained_by_model_optimizer:
      modules.append(self.harmonizers)
    mets, (state, outs, metrics) = self.opt(
        modules, self.loss, data, state, has_aux=True)
    metrics.update(mets)
    if isinstance(self.harmonizers, OwnLrHarmonizers):
      metrics.update(self.harmonizers.update(
          {k: metrics[f'harmony_loss_{k}'] for k in TASKS}))
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
    metrics.update(self._variant_metrics())
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

  def _variant_metrics(self) -> dict:
    """Which opt-in variant runs (none for the paper's setting)."""
    if isinstance(self.harmonizers, ClosedFormHarmonizers):
      means = self.harmonizers.current_means()
      return {'harmony_variant_closed_form': jnp.float32(1),
              **{f'harmony_mean_loss_{k}': m for k, m in means.items()}}
    if isinstance(self.harmonizers, OwnLrHarmonizers):
      return {'harmony_variant_own_lr': jnp.float32(self.harmonizers.lr)}
    return {}


def _harmony_metrics(task_losses, log_sigmas):
  metrics = {}
  for key, s in log_sigmas.items():
    metrics[f'harmony_loss_{key}'] = task_losses[key]
    metrics[f'harmony_s_{key}'] = s
    metrics[f'harmony_sigma_{key}'] = jnp.exp(s)
    metrics[f'harmony_weight_{key}'] = jnp.exp(-s)
  return metrics
