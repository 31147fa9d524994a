"""Train Harmony DreamerV3 (or the DreamerV3 baseline) on one task: an Atari
100K game, a MinAtar game, a DeepMind Control task, Crafter, or the cue
task that checks learning on a CPU.

  python -m harmony_v3.train --task atari_pong [--configs atari100k]
      [--seed N] [--logdir DIR] [--harmony.enabled False] [--dotted.key value]

  python -m harmony_v3.train --configs tiny cue    # the cue task, toy_cue
  python -m harmony_v3.train --task dmc_walker_walk --configs dmc_vision
  python -m harmony_v3.train --configs crafter     # Crafter (docs/crafter.md)

Every config key of DreamerV3 1.5.0 and of `configs/` can be set with a
dotted flag. Rerunning the same command with the same --logdir resumes.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from .config import (ConfigError, available_presets, load_config,
                     preset_task, replaced_task_problem)
from .run.stop_signals import StopSignals


def preset_support() -> tuple[dict[str, str | None], dict[str, str]]:
  """(presets that work here -> the task they set, or None for one that
  keeps the task; presets that do not -> why).

  A preset works if its config is valid and its task's suite is registered
  in harmony_v3.envs.SUITES, so a new suite's presets show up by themselves.
  """
  from .envs import SUITES
  usable, unsupported = {}, {}
  for name in available_presets():
    task = preset_task(name)
    suite = task.partition('_')[0] if task else None
    if suite is not None and suite not in SUITES:
      unsupported[name] = f'needs the {suite} environments'
      continue
    try:
      with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        load_config([name])
    except (ConfigError, ValueError) as e:
      problem = str(e).removeprefix('Invalid config:').strip()
      unsupported[name] = problem.split(':')[0]
      continue
    usable[name] = task
  return usable, unsupported


def presets_help() -> str:
  """The --help text on presets: which work, with their task; which not."""
  usable, unsupported = preset_support()
  lines = ['presets (--configs):']
  lines += [f'  {name:<12}task {task}' for name, task in usable.items()
            if task]
  keep = [name for name, task in usable.items() if not task]
  if keep:
    lines.append(f'  {", ".join(keep)}: keep the task of the presets before '
                 'them, or --task')
  if unsupported:
    lines.append('not supported yet:')
    lines += [f'  {name:<12}{why}' for name, why in unsupported.items()]
  return '\n'.join(lines)


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
  from .envs import SUITES
  asks_help = any(arg in ('-h', '--help') for arg in argv)
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.train', description=__doc__,
      epilog=presets_help() if asks_help else None,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--task', default=None,
                      help='<suite>_<name>, e.g. atari_pong or toy_cue; '
                           f'suites: {", ".join(SUITES)} (default: preset)')
  parser.add_argument('--configs', nargs='+', default=['atari100k'],
                      help='presets applied in order (default: atari100k); '
                           'listed below')
  parser.add_argument('--seed', type=int, default=None)
  parser.add_argument('--logdir', default=None,
                      help='run folder (default: ~/logdir/harmony_v3/'
                           '<task>/<method>/seed<seed>)')
  return parser.parse_known_args(argv)


def default_logdir(config) -> str:
  method = 'harmony' if config.harmony.enabled else 'dreamerv3'
  return os.path.expanduser(
      f'~/logdir/harmony_v3/{config.task}/{method}/seed{config.seed}')


ENCODER_DECODER_KEYS = ('encoder.mlp_keys', 'encoder.cnn_keys',
                        'decoder.mlp_keys', 'decoder.cnn_keys')


def check_dmc_order(presets: Sequence[str]) -> None:
  """Refuse a preset of another suite after dmc_proprio or dmc_vision when
  it changes what the model reads: `--configs dmc_proprio tiny` would train
  on images only (tiny applies the base's atari100k, whose encoder reads the
  image alone). `--configs dmc_vision tiny` reads the image either way and
  is accepted."""
  for at, name in enumerate(presets):
    if not (preset_task(name) or '').startswith('dmc_'):
      continue
    others = [later for later in presets[at + 1:]
              if not (preset_task(later) or 'dmc_').startswith('dmc_')]
    if not others:
      continue
    alone, combined = load_config([name]), load_config(list(presets))
    if all(_dotted(alone, key) == _dotted(combined, key)
           for key in ENCODER_DECODER_KEYS):
      continue
    raise ConfigError(
        f"--configs {' '.join(presets)}: '{others[0]}' (which sets task "
        f"{preset_task(others[0])}) after '{name}' puts its own encoder and "
        f"decoder keys back over {name}'s. Give it first; on the CPU: "
        f'--configs tiny {name} dmc_tiny (docs/dmc.md).')


def _dotted(config, key: str):
  for part in key.split('.'):
    config = config[part]
  return config


def build_config(argv: Sequence[str]):
  """The config from presets, our named options and dotted flags."""
  args, rest = parse_args(argv)
  given = args.logdir and os.path.expanduser(args.logdir)
  if given and os.path.exists(given) and not os.path.isdir(given):
    # The base's default logdir is /dev/null, which means "not given" below;
    # given by the user, it (or any other file) cannot hold a run.
    raise ConfigError(
        f'--logdir {args.logdir} is not a folder: a run keeps its checkpoint '
        'and logs in its folder. Leave --logdir out for the default (~/logdir'
        '/harmony_v3/<task>/<method>/seed<seed>) or name a folder.')
  for key in ('task', 'seed', 'logdir'):
    value = getattr(args, key)
    if value is not None:
      rest += [f'--{key}', str(value)]
  check_dmc_order(args.configs)
  if args.task is None and replaced_task_problem(args.configs):
    raise ConfigError(replaced_task_problem(args.configs))
  config = load_config(args.configs, rest)
  from .envs import SUITES, check_task
  suite = str(config.task).partition('_')[0]
  for name in args.configs:
    if suite not in SUITES and preset_task(name) == config.task:
      raise ConfigError(
          f"Preset '{name}' trains {config.task}, but harmony_v3 has no "
          f"{suite} environments yet (--help lists the presets that work).")
  check_task(config)  # Unknown tasks fail here, listing valid ones.
  if args.logdir is None and config.logdir == '/dev/null':  # Not given.
    config = config.update(logdir=default_logdir(config))
  return config


def setup_jax(config):
  """Environment variables and JAX options that must precede JAX's start.

  Returns the config, moved to the CPU with a warning when no GPU is found.
  """
  if not config.jax.prealloc:
    os.environ['XLA_PYTHON_CLIENT_PREALLOCATE'] = 'false'
  os.environ.setdefault(
      'XLA_PYTHON_CLIENT_MEM_FRACTION', str(config.jax.mem_fraction))
  import jax
  if config.run.compilation_cache:
    jax.config.update('jax_compilation_cache_dir', config.run.compilation_cache)
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  platform = config.jax.platform
  if platform in ('gpu', 'cuda', 'tpu'):
    try:
      jax.devices('gpu' if platform == 'cuda' else platform)
    except RuntimeError:
      warnings.warn(
          f'No {platform.upper()} found: training on the CPU, which is '
          'orders of magnitude slower. Pass --jax.platform cpu to silence '
          'this warning.', stacklevel=2)
      config = config.update({'jax.platform': 'cpu'})
  return config


def make_envs(config, seed: int) -> tuple:
  """The training env batch and the evaluation env batch of a run, from
  the base `seed` (see harmony_v3.envs.env_seed)."""
  from .envs import make_batch_env
  train_env = make_batch_env(config, config.envs.amount, seed)
  try:
    eval_env = make_batch_env(
        config, config.run.eval_envs, seed + 1_000_000,
        processes=config.run.eval_processes, evaluation=True)
  except BaseException:
    train_env.close()
    raise
  return train_env, eval_env


def main(argv: Sequence[str] | None = None) -> int:
  # First of all: from here on SIGTERM and Ctrl-C ask for a clean stop
  # (see harmony_v3.run.stop_signals), also during imports and compilation.
  signals = StopSignals().install()
  try:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
      config = build_config(argv)
    except (ConfigError, ValueError) as e:
      print(f'error: {e}', file=sys.stderr)
      return 2
    config = setup_jax(config)
    import harmony_v3  # noqa: F401  (patches)
    from .agent import HarmonyAgent
    from .run.runner import train
    return train(config, HarmonyAgent, make_envs, signals)
  finally:
    signals.restore()


if __name__ == '__main__':
  sys.exit(main())
