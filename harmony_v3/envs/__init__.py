"""Building environments from a config, one or a batch of them.

A task is named `<suite>_<name>`: `atari_<game>` for the 26 Atari 100K games
(harmony_v3.envs.atari), `minatar_<game>` for the five MinAtar games
(harmony_v3.envs.minatar), `dmc_<domain>_<task>` for the DeepMind Control
Suite (harmony_v3.envs.dmc), `crafter_reward` and `crafter_noreward`
(harmony_v3.envs.crafter) and `toy_cue` for the cue task
(harmony_v3.envs.toy). `SUITES`
maps each suite to its env constructor; `check_task` tells the user the
valid names.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

import dreamerv3
import embodied

from . import crafter, minatar, toy
from .games import ATARI100K_GAMES, game_from_task


def _make_atari(config: embodied.Config, seed: int,
                evaluation: bool) -> embodied.Env:
  from .atari import Atari  # ale-py loads only when an env is made.
  game = game_from_task(config.task)
  return Atari(game, seed=seed, **dict(config.env.atari))


def _make_minatar(config: embodied.Config, seed: int,
                  evaluation: bool) -> embodied.Env:
  game = minatar.game_from_task(config.task)
  return minatar.MinAtar(game, seed=seed, **dict(config.env.minatar))


def _make_dmc(config: embodied.Config, seed: int,
              evaluation: bool) -> embodied.Env:
  from . import dmc  # dm_control loads only when an env is made.
  return dmc.DMC(str(config.task), **dict(config.env.dmc),
                 render=dmc.reads_image(config), seed=seed)


def _make_crafter(config: embodied.Config, seed: int,
                  evaluation: bool) -> embodied.Env:
  # crafter_noreward's evaluation episodes are scored with Crafter's reward.
  reward = crafter.task_from_name(config.task) == 'reward' or evaluation
  return crafter.Crafter(reward, seed=seed, **dict(config.env.crafter))


def _make_toy(config: embodied.Config, seed: int,
              evaluation: bool) -> embodied.Env:
  return toy.Cue(**dict(config.env.toy), evaluation=evaluation, seed=seed)


# Task suite -> constructor(config, seed, evaluation) of the raw env.
SUITES: dict[str, Callable[..., embodied.Env]] = {
    'atari': _make_atari,
    'minatar': _make_minatar,
    'dmc': _make_dmc,
    'crafter': _make_crafter,
    'toy': _make_toy,
}


def valid_tasks() -> str:
  """The valid task names, in words, for error messages."""
  return ("atari_<game> for the 26 Atari 100K games (e.g. 'atari_pong'; "
          f"games: {', '.join(ATARI100K_GAMES)}), "
          "minatar_<game> for the five MinAtar games (e.g. 'minatar_breakout'; "
          f"games: {', '.join(minatar.GAMES)}), "
          "dmc_<domain>_<task> for the DeepMind Control Suite (e.g. "
          "'dmc_walker_walk'; needs the dmc extra, docs/dmc.md), "
          + ', '.join(f"'crafter_{name}'" for name in crafter.TASKS) + ', '
          + ', '.join(f"'toy_{name}'" for name in toy.TASK_NAMES))


def check_task(config: embodied.Config) -> str:
  """Return the suite of `config.task` after checking the task and its env
  options; raise ValueError with one clear message otherwise."""
  task = str(config.task)
  suite, _, name = task.partition('_')
  if suite == 'atari':
    game_from_task(task)  # Unknown games fail here, listing valid ones.
  elif suite == 'minatar':
    minatar.game_from_task(task)  # Unknown games fail here, listing the five.
    problems = minatar.option_problems(**dict(config.env.minatar))
    problems += minatar.encoder_problems(config)
    if problems:
      raise ValueError('Invalid config: ' + '; '.join(problems))
  elif suite == 'dmc':
    from . import dmc
    try:
      dmc.split_task(task)  # Unknown tasks fail here, listing valid ones.
    except ImportError as e:  # No dm-control, or no OpenGL: say what to do.
      raise ValueError(str(e)) from None
    problems = dmc.option_problems(**dict(config.env.dmc))
    problems += dmc.encoder_problems(config, dmc.reads_image(config))
    if problems:
      raise ValueError('Invalid config: ' + '; '.join(problems))
  elif suite == 'crafter':
    crafter.task_from_name(task)  # Unknown tasks fail here, listing both.
    problems = crafter.option_problems(**dict(config.env.crafter))
    problems += crafter.log_problems(config)
    if problems:
      raise ValueError('Invalid config: ' + '; '.join(problems))
  elif suite == 'toy' and name in toy.TASK_NAMES:
    problems = toy.option_problems(**dict(config.env.toy))
    if problems:
      raise ValueError('Invalid config: ' + '; '.join(problems))
  else:
    raise ValueError(f"Unknown task '{task}'. Valid tasks: {valid_tasks()}.")
  return suite


def action_repeat(config: embodied.Config) -> int:
  """Frames (Atari) or control steps (DMC) per agent step of
  `config.task`: what the logs' `frames` count."""
  suite = str(config.task).partition('_')[0]
  if suite in ('atari', 'dmc'):
    return int(config.env[suite].repeat)
  return 1


def make_env(config: embodied.Config, seed: int,
             evaluation: bool = False) -> embodied.Env:
  """One env for `config.task`, wrapped as DreamerV3 expects.

  `evaluation` marks an env whose episodes only score the agent; a task may
  then report its true reward where its training env does not (toy.Cue's
  broken='zero_rewards', Crafter's crafter_noreward). Atari envs are the
  same either way.
  """
  suite = check_task(config)
  env = SUITES[suite](config, seed, evaluation)
  return dreamerv3.wrap_env(env, config)


def _worker_ctor(config: dict, seed: int, evaluation: bool):
  # Runs in the worker process (spawned): importing harmony_v3 applies the
  # patches. The worker never computes with JAX; keeping JAX on the CPU makes
  # sure no worker ever claims GPU memory. Ctrl-C and SIGTERM reach the whole
  # process group, but only the trainer decides when to stop: a worker
  # quits when the trainer closes it or goes away.
  import signal
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  import jax
  jax.config.update('jax_platforms', 'cpu')
  import harmony_v3  # noqa: F401
  return make_env(embodied.Config(config), seed, evaluation)


def env_seed(seed: int, resume_step: int) -> int:
  """The base seed of a run's envs when it starts at `resume_step`.

  A fresh run (step 0) uses the run's seed. A resumed run draws its envs'
  seed from (seed, resume_step), so that they do not replay the episodes the
  run began with: Crafter's worlds and MinAtar's and ALE's random draws
  follow from the seed alone, and would start again from episode 0 at every
  resume. The value leaves room for the batch's `seed + i` and the
  evaluation envs' `+ 1_000_000` below 2**31 (ALE takes a 32-bit seed).
  """
  if resume_step == 0:
    return int(seed)
  import numpy as np
  state = np.random.SeedSequence([int(seed), int(resume_step)])
  return int(state.generate_state(1)[0]) % 2 ** 30


def make_batch_env(config: embodied.Config, count: int, seed: int,
                   processes: bool = False,
                   evaluation: bool = False) -> embodied.BatchEnv:
  """`count` envs stepped together; in worker processes if `processes`.

  Env `i` is seeded `seed + i`, so a batch is reproducible. `evaluation` as
  in `make_env`.
  """
  if not processes:
    envs = [make_env(config, seed + i, evaluation) for i in range(count)]
    return embodied.BatchEnv(envs, parallel=False)
  envs = [
      embodied.Parallel(
          partial(_worker_ctor, dict(config), seed + i, evaluation),
          'process')
      for i in range(count)]
  return embodied.BatchEnv(envs, parallel=True)
