"""Building Atari environments from a config, one or a batch of them."""
from __future__ import annotations

from functools import partial

import dreamerv3
import embodied

from .games import game_from_task


def make_env(config: embodied.Config, seed: int) -> embodied.Env:
  """One Atari env for `config.task`, wrapped as DreamerV3 expects."""
  from .atari import Atari  # ale-py loads only when an env is made.
  game = game_from_task(config.task)
  env = Atari(game, seed=seed, **dict(config.env.atari))
  return dreamerv3.wrap_env(env, config)


def _worker_ctor(config: dict, seed: int):
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
  return make_env(embodied.Config(config), seed)


def make_batch_env(config: embodied.Config, count: int, seed: int,
                   processes: bool = False) -> embodied.BatchEnv:
  """`count` envs stepped together; in worker processes if `processes`.

  Env `i` is seeded `seed + i`, so a batch is reproducible.
  """
  if not processes:
    envs = [make_env(config, seed + i) for i in range(count)]
    return embodied.BatchEnv(envs, parallel=False)
  envs = [
      embodied.Parallel(partial(_worker_ctor, dict(config), seed + i),
                        'process')
      for i in range(count)]
  return embodied.BatchEnv(envs, parallel=True)
