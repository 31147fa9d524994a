"""Batched evaluation: many episodes in parallel envs, one policy call a step."""
from __future__ import annotations

import dataclasses
import time

import embodied
import numpy as np

from . import faults


@dataclasses.dataclass
class EvalResult:
  """Returns and lengths (agent steps) of the evaluation episodes."""
  returns: list[float]
  lengths: list[int]
  seconds: float

  @property
  def mean(self) -> float:
    return float(np.mean(self.returns))


def episode_quotas(episodes: int, num_envs: int) -> list[int]:
  """Split `episodes` over envs as evenly as possible (env i runs quota[i]).

  Fixing each env's share up front avoids the bias of keeping whichever
  episodes finish first, which would favour short episodes.
  """
  return [episodes // num_envs + (i < episodes % num_envs)
          for i in range(num_envs)]


def evaluate(agent: embodied.Agent, env: embodied.Env, episodes: int,
             mode: str = 'eval') -> EvalResult:
  """Run `episodes` full episodes with `agent.policy(..., mode)` on `env`.

  `env` is a batch env; all its envs step together and the policy is called
  once per step for the whole batch. Every env starts a fresh episode.
  """
  start = time.time()
  num_envs = len(env)
  quotas = episode_quotas(episodes, num_envs)
  finished = [0] * num_envs
  returns, lengths = [], []
  score = np.zeros(num_envs, np.float64)
  length = np.zeros(num_envs, np.int64)
  acts = {k: np.zeros((num_envs,) + v.shape, v.dtype)
          for k, v in env.act_space.items()}
  acts['reset'] = np.ones(num_envs, bool)
  state = None
  while any(f < q for f, q in zip(finished, quotas)):
    obs = env.step(acts)
    first = obs['is_first']
    score = np.where(first, 0.0, score + obs['reward'])
    length = np.where(first, 0, length + 1)
    outs, state = agent.policy(obs, state, mode=mode)
    acts = {k: v for k, v in outs.items() if not k.startswith('log_')}
    acts['reset'] = obs['is_last'].copy()
    for i in np.flatnonzero(obs['is_last']):
      if finished[i] < quotas[i]:
        finished[i] += 1
        returns.append(float(score[i]))
        lengths.append(int(length[i]))
        if len(returns) == 1:
          faults.point('during_eval')
  return EvalResult(returns, lengths, time.time() - start)
