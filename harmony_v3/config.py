"""Configs: DreamerV3 1.5.0's defaults, our keys, presets, command-line flags.

Layering, as in the base: defaults <- presets in the order given <- flags.
Our presets live in `configs/*.yaml` (shipped as `harmony_v3.configs`). A
preset may name `base_presets: [...]` from the base's `configs.yaml`; those are
applied first, so `atari100k` here is a small diff on the base's `atari100k`.
"""
from __future__ import annotations

import copy
import importlib.resources
import warnings
from typing import Sequence

import dreamerv3
import embodied
from ruamel.yaml import YAML


class ConfigError(ValueError):
  """A bad preset name, key or value, with a message for the user."""


def _read_yaml(name: str) -> dict:
  text = (importlib.resources.files('harmony_v3.configs') / name).read_text()
  return YAML(typ='safe', pure=True).load(text) or {}


def our_presets() -> dict[str, dict]:
  """Presets shipped in `configs/`, by name (`defaults.yaml` excluded)."""
  presets = {}
  for entry in importlib.resources.files('harmony_v3.configs').iterdir():
    if entry.name.endswith('.yaml') and entry.name != 'defaults.yaml':
      presets.update(_read_yaml(entry.name))
  return presets


def base_presets() -> dict[str, dict]:
  """The base package's presets (`defaults` included)."""
  return dreamerv3.Agent.configs


def available_presets() -> list[str]:
  names = set(our_presets()) | set(base_presets())
  return sorted(names - {'defaults'})


def preset_task(name: str) -> str | None:
  """The task that preset `name` sets (its base_presets' included), or None
  for one that leaves the task alone (a model size, `tiny`, ...)."""
  ours, base = our_presets(), base_presets()
  preset = ours.get(name, base.get(name, {}))
  if 'task' in preset:
    return str(preset['task'])
  tasks = [base[parent]['task'] for parent in preset.get('base_presets', [])
           if 'task' in base.get(parent, {})]
  return str(tasks[-1]) if tasks else None


def _owns_task(name: str) -> bool:
  """Whether preset `name` sets a task of its own: in its own keys, or as an
  overlay of the base's preset of the same name (`atari100k`, `crafter`).
  `tiny` does not: its task is only that of its base preset atari100k."""
  preset = our_presets().get(name)
  if preset is None:
    return 'task' in base_presets().get(name, {})
  return 'task' in preset or (
      name in preset.get('base_presets', [])
      and 'task' in base_presets().get(name, {}))


def replaced_task_problem(presets: Sequence[str]) -> str | None:
  """The message for presets whose last task comes with a model preset that
  only inherits it (`--configs crafter tiny`: tiny's atari_pong replaces
  crafter_reward), which would silently train another task; else None."""
  setters = [(name, preset_task(name)) for name in presets
             if preset_task(name)]
  if not setters or _owns_task(setters[-1][0]):
    return None
  last, task = setters[-1]
  earlier = [(n, t) for n, t in setters[:-1] if _owns_task(n) and t != task]
  if not earlier:
    return None
  name, wanted = earlier[-1]
  return (f"--configs {' '.join(presets)} would train {task}: preset "
          f"'{last}' brings the task {task} of its base preset after "
          f"'{name}' set {wanted}. Add --task {wanted} to train {wanted} "
          f"with '{last}'.")


def _merge(base: dict, extra: dict) -> dict:
  merged = copy.deepcopy(base)
  for key, value in extra.items():
    if isinstance(value, dict) and isinstance(merged.get(key), dict):
      merged[key] = _merge(merged[key], value)
    else:
      merged[key] = copy.deepcopy(value)
  return merged


def defaults() -> embodied.Config:
  """The base's defaults with harmony_v3's keys added."""
  return embodied.Config(_merge(base_presets()['defaults'], _read_yaml(
      'defaults.yaml')))


def _apply_preset(config, name, ours, base):
  if name in ours:
    preset = dict(ours[name])
    for parent in preset.pop('base_presets', []):
      config = _apply_preset(config, parent, {}, base)
  elif name in base and name != 'defaults':
    preset = base[name]
  else:
    raise ConfigError(
        f"Unknown config preset '{name}'. Available: "
        + ', '.join(available_presets()))
  try:
    return config.update(preset)
  except (KeyError, TypeError, ValueError) as e:
    raise ConfigError(f"Preset '{name}': {e}") from None


def load_config(presets: Sequence[str] = ('atari100k',),
                argv: Sequence[str] = ()) -> embodied.Config:
  """Build a config from presets and `--dotted.key value` flags, validated."""
  ours, base = our_presets(), base_presets()
  config = defaults()
  for name in presets:
    config = _apply_preset(config, name, ours, base)
  try:
    config = embodied.Flags(config).parse(list(argv))
  except (KeyError, TypeError, ValueError, AssertionError) as e:
    raise ConfigError(f'Bad command-line flag: {e}') from None
  validate(config)
  return config


def _whole(value) -> bool:
  """Whether a config value is a whole number (1e5 counts, 0.5 does not)."""
  try:
    return float(value).is_integer()
  except (TypeError, ValueError):
    return False


def _moot_harmony_keys(config: embodied.Config) -> list[str]:
  """harmony.* keys set away from their defaults with harmony.enabled False:
  a variant that cannot apply (DreamerV3 has no harmonizers)."""
  if config.harmony.enabled:
    return []
  default = defaults().flat
  return [f'{key} {value} has no effect with harmony.enabled False '
          "(DreamerV3's fixed loss weights): leave it out, or drop "
          '--harmony.enabled False to use it'
          for key, value in config.flat.items()
          if key.startswith('harmony.') and key != 'harmony.enabled'
          and key in default and value != default[key]]


def validate(config: embodied.Config) -> None:
  """Reject values that the base would only fail on much later, or silently."""
  problems = []
  run = config.run
  for key in ('steps', 'eval_every', 'eval_eps', 'eval_envs'):
    if not _whole(run[key]) or run[key] < 1:
      problems.append(f'run.{key} must be a whole number >= 1, got {run[key]}')
  if run.eval_every > run.steps >= 1:
    problems.append(
        f'run.eval_every ({run.eval_every:g}) is larger than run.steps '
        f'({run.steps:g}): the trained agent would never be evaluated and '
        f'the final score would be null; use --run.eval_every {run.steps:g} '
        'or less')
  if not run.train_ratio > 0:
    problems.append(f'run.train_ratio must be positive, got {run.train_ratio}')
  for key in ('save_every', 'log_every'):
    if not run[key] >= 0:
      problems.append(f'run.{key} must be >= 0 seconds (0: never), got '
                      f'{run[key]}')
  for key in ('train_fill', 'expl_until'):
    if not _whole(run[key]) or run[key] < 0:
      problems.append(f'run.{key} must be a whole number >= 0, got {run[key]}')
  if not _whole(config.seed) or config.seed < 0:
    problems.append(f'seed must be a whole number >= 0, got {config.seed}')
  if not _whole(config.envs.amount) or config.envs.amount < 1:
    problems.append(f'envs.amount must be a whole number >= 1, got '
                    f'{config.envs.amount}')
  if not _whole(config.data_loaders) or config.data_loaders < 0:
    problems.append(f'data_loaders must be a whole number >= 0, got '
                    f'{config.data_loaders}')
  fill = max(config.batch_size * config.batch_length, run.train_fill)
  if not _whole(config.replay_size) or config.replay_size < fill:
    problems.append(
        f'replay_size must be a whole number of sequences >= {fill:g} (one '
        'batch, and run.train_fill), got ' + f'{config.replay_size}')
  if not str(config.logdir).strip():
    problems.append("logdir must not be empty (it would train into the "
                    "current folder); leave --logdir out for the default")
  if config.batch_size < 1 or config.batch_length < 2:
    problems.append('batch_size must be >= 1 and batch_length >= 2')
  if config.jax.platform not in ('cpu', 'gpu', 'tpu', 'cuda'):
    problems.append(f"jax.platform must be cpu, gpu or tpu, got "
                    f"'{config.jax.platform}'")
  if len(config.jax.policy_devices) != 1 or len(config.jax.train_devices) != 1:
    problems.append(
        'multi-device training is not supported: jax.policy_devices and '
        'jax.train_devices must name one device each (DreamerV3 1.5.0 '
        'replicates over several with jax.device_put_replicated, which '
        'current JAX no longer has)')
  if config.jax.precision not in ('float32', 'float16', 'bfloat16'):
    problems.append(f"jax.precision must be float32, float16 or bfloat16, got "
                    f"'{config.jax.precision}'")
  atari = config.env.atari
  if atari.actions not in ('needed', 'all'):
    problems.append(f"env.atari.actions must be needed or all, got "
                    f"'{atari.actions}'")
  if atari.lives not in ('unused', 'discount', 'reset'):
    problems.append(f"env.atari.lives must be unused, discount or reset, got "
                    f"'{atari.lives}'")
  if atari.repeat < 1 or atari.noops < 0:
    problems.append('env.atari.repeat must be >= 1 and noops >= 0')
  if run.progress not in ('auto', 'bar', 'lines', 'off'):
    problems.append(f"run.progress must be auto, bar, lines or off, got "
                    f"'{run.progress}'")
  if config.harmony.enabled and (
      config.loss_scales.dyn + config.loss_scales.rep <= 0):
    problems.append('loss_scales.dyn + loss_scales.rep must be positive '
                    'with harmony.enabled')
  from .world_model import harmony_config_problems  # The opt-in variants' keys.
  problems += harmony_config_problems(config.harmony)
  problems += _moot_harmony_keys(config)
  from .run.tracking import tracking_problems  # run.track: wandb installed?
  problems += tracking_problems(run)
  if problems:
    raise ConfigError('Invalid config:\n  ' + '\n  '.join(problems))
  if config.harmony.enabled:
    fixed = {k: config.loss_scales[k] for k in ('image', 'vector', 'reward')
             if config.loss_scales[k] != 1.0}
    if fixed:
      warnings.warn(
          f'loss_scales {fixed} have no effect with harmony.enabled: the '
          'harmonizers learn these weights. Use --harmony.enabled False for '
          'fixed weights.', stacklevel=2)
