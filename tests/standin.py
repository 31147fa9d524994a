"""A fast stand-in trainer for the crash-safety tests: the real runner, with a
tiny deterministic env and a NumPy agent in place of Atari and DreamerV3.

  python tests/standin.py --logdir DIR [--dotted.key value ...]

runs exactly what `python -m harmony_v3.train` runs after building its envs
and agent (the same signal handling, lock, checkpoints, replay files and
logs), at hundreds of steps per second and without JAX. Replay chunks hold 64
steps (the base's 1024) so that full chunks are written between checkpoints.

Environment variables (besides HARMONY_FAULT, see harmony_v3.run.faults):
  STANDIN_NAN=W@N      from the N-th train update on, W is NaN: 'loss' (the
                       update's loss), 'action' (the policy's actions) or
                       'params' (the parameters, while the loss stays finite)
  STANDIN_COMPILE=W    compile a JAX function (a few seconds, printing
                       'Compiling for ...' and 'Compiled for ...') where
                       DreamerV3 compiles: W is 'construction' (when the
                       agent is built) or 'update' (at the first update)
  STANDIN_PARAM_MB=M   M megabytes of parameters (slow checkpoint writes)
  STANDIN_STEP_SLEEP=S sleep S seconds each env step (a slow run)
"""
from __future__ import annotations

import functools
import os
import pathlib
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harmony_v3  # noqa: E402,F401  (patches; makes embodied importable)
import embodied  # noqa: E402
from harmony_v3.run import runner  # noqa: E402
from harmony_v3.envs.atari import discrete_act_space, image_obs_space  # noqa: E402
from harmony_v3.config import ConfigError, load_config  # noqa: E402
from harmony_v3.run.stop_signals import StopSignals  # noqa: E402

CHUNK_STEPS = 64
STANDIN_CHAIN = 80  # Operations in the compiled stand-in function.
embodied.replay.Uniform = functools.partial(
    embodied.replay.Uniform, chunks=CHUNK_STEPS)
PRESET = ['--task', 'atari_pong', '--run.steps', '600', '--run.eval_every',
          '200', '--run.eval_eps', '2', '--run.eval_envs', '2',
          '--run.log_every', '0', '--run.save_every', '1e9',
          '--run.progress', 'off', '--batch_size', '2', '--batch_length', '8',
          '--run.train_ratio', '8']


class CountingEnv:
  """Episodes of 20 to 60 steps; reward 1 when the action matches the step
  index modulo 3; an 8x8 image that encodes the step."""

  def __init__(self, seed: int):
    self._rng = np.random.default_rng(seed)
    self._t = 0
    self._length = 0
    self._done = True
    self.obs_space = image_obs_space((8, 8, 3))
    self.act_space = discrete_act_space(3)

  def step(self, action):
    delay = float(os.environ.get('STANDIN_STEP_SLEEP', 0))
    if delay:
      time.sleep(delay)
    if action['reset'] or self._done:
      self._t, self._done = 0, False
      self._length = int(self._rng.integers(20, 61))
      return self._obs(0.0, first=True)
    self._t += 1
    reward = float(int(action['action']) == self._t % 3)
    self._done = self._t >= self._length
    return self._obs(reward, last=self._done)

  def _obs(self, reward, first=False, last=False):
    image = np.full((8, 8, 3), self._t % 256, np.uint8)
    return {'image': image, 'reward': np.float32(reward),
            'is_first': first, 'is_last': last, 'is_terminal': last}

  def close(self):
    pass


def make_envs(config, seed):
  """A training batch of one env and an evaluation batch, as train.py's
  (it says which base seed it got)."""
  print(f'Stand-in envs seeded {seed}.', flush=True)

  def batch(count, seed):
    envs = []
    for i in range(count):
      env = _Wrapped(CountingEnv(seed + i))
      envs.append(embodied.wrappers.OneHotAction(env))
    return embodied.BatchEnv(envs, parallel=False)
  return (batch(config.envs.amount, seed),
          batch(config.run.eval_envs, seed + 1_000_000))


def _Wrapped(env):
  class Env(embodied.Env):
    obs_space = env.obs_space
    act_space = env.act_space

    def step(self, action):
      return env.step(action)

    def close(self):
      env.close()
  return Env()


class StandInAgent:
  """A deterministic agent in NumPy with the interface the trainer uses."""

  def __init__(self, obs_space, act_space, step, config):
    self.rng = np.random.default_rng(config.seed)
    self.actions = act_space['action'].shape[0]
    size = int(float(os.environ.get('STANDIN_PARAM_MB', 0)) * 2 ** 18)
    self.params = {'w': np.zeros(max(size, 8), np.float32),
                   'updates': np.zeros((), np.int64)}
    self._loss = 0.0
    what, _, nth = os.environ.get('STANDIN_NAN', '@0').partition('@')
    self._nan, self._nan_at = what, int(nth)
    self._compile = os.environ.get('STANDIN_COMPILE', '')
    if self._compile == 'construction':
      _compile('agent construction')

  def policy(self, obs, state=None, mode='train'):
    index = self.rng.integers(0, self.actions, len(obs['is_first']))
    action = np.eye(self.actions, dtype=np.float32)[index]
    if self._diverged('action'):
      action[:] = np.nan
    return {'action': action}, state

  def _diverged(self, what: str) -> bool:
    return self._nan == what and 0 < self._nan_at <= int(
        self.params['updates'])

  def train(self, data, state=None):
    if self._compile == 'update' and not int(self.params['updates']):
      _compile('the first train update')
    self.params['updates'] += 1
    self.params['w'][:4] += data['reward'].mean(0)[:4]
    self._loss = float(self.params['w'][:4].sum())
    if self._diverged('loss'):
      self._loss = float('nan')
    if self._diverged('params'):
      self.params['w'][-1] = np.nan
    return {}, state, {'model_loss': self._loss}

  def last_losses(self):
    return {'model_opt_loss': self._loss}

  def report(self, data):
    return {}

  def dataset(self, generator):
    sources = [generator() for _ in range(2)]
    while True:
      seqs = [next(source) for source in sources]
      yield {k: np.stack([s[k] for s in seqs]) for k in seqs[0]}

  def save(self):
    return {k: v.copy() for k, v in self.params.items()}

  def load(self, params):
    self.params = {k: np.array(v) for k, v in params.items()}


def _compile(when: str) -> None:
  """A real XLA compilation of a few seconds, as the agent's first ones."""
  import jax
  import jax.numpy as jnp
  print(f'Compiling for {when}.', flush=True)

  def chain(x):
    for i in range(STANDIN_CHAIN):
      x = jnp.tanh(x @ x.T + i) * jnp.sin(x)
    return x.sum()
  with jax.transfer_guard('allow'):
    jax.jit(chain).lower(jnp.ones((8, 8))).compile()
  print(f'Compiled for {when}.', flush=True)


def main(argv) -> int:
  signals = StopSignals().install()
  try:
    try:
      config = load_config(['tiny'], PRESET + list(argv))
    except ConfigError as e:
      print(f'error: {e}', file=sys.stderr)
      return 2
    return runner.train(config, StandInAgent, make_envs, signals)
  finally:
    signals.restore()


def run_child(argv, env: dict, log_path: str) -> None:
  """Entry of a trainer process forked by the tests (multiprocessing's
  forkserver with this module preloaded starts one in milliseconds)."""
  fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
  os.dup2(fd, 1)
  os.dup2(fd, 2)
  os.close(fd)
  sys.stdout = open(1, 'w', buffering=1, closefd=False)
  sys.stderr = open(2, 'w', buffering=1, closefd=False)
  os.environ.update(env)
  sys.exit(main(argv))


if __name__ == '__main__':
  sys.exit(main(sys.argv[1:]))
