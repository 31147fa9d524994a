"""Shared fixtures: one tiny config and one compiled agent for the session.

JIT compilation on a 2-core CPU takes tens of seconds per function, so the
agent is built and compiled once and shared by every test that needs it.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

_SESSION_CACHE = None


def pytest_configure(config):
  """One persistent JAX compilation cache for the whole test session.

  JAX reads JAX_COMPILATION_CACHE_DIR, so this process and every trainer,
  bench and sweep it starts reuse what another test compiled with the same
  shapes and config (the tiny agent is compiled by many tests). A user's
  own JAX_COMPILATION_CACHE_DIR is kept; tests that pass
  --run.compilation_cache use their own folder.
  """
  global _SESSION_CACHE
  if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
    _SESSION_CACHE = tempfile.mkdtemp(prefix='harmony_v3_test_jax_cache_')
    os.environ['JAX_COMPILATION_CACHE_DIR'] = _SESSION_CACHE


def pytest_unconfigure(config):
  if _SESSION_CACHE:
    shutil.rmtree(_SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope='session')
def tiny_config():
  from harmony_v3.config import load_config
  # Metrics every update, so a single update reports its losses.
  return load_config(['tiny'], ['--task', 'atari_pong',
                                '--jax.metrics_every', '1'])


@pytest.fixture(scope='session')
def pong_env(tiny_config):
  from harmony_v3.envs import make_env
  env = make_env(tiny_config, seed=0)
  yield env
  env.close()


@pytest.fixture(scope='module')
def eager_transfers_allowed():
  """Lets a test run JAX eagerly after an agent was built in this process.

  Building a JAXAgent sets `jax_transfer_guard` to 'disallow' for the whole
  process, and from JAX 0.11 on, eager operations on Python or NumPy values
  count as transfers. Test modules of loss math that run eagerly opt out
  with this (module-wide, so their module fixtures are covered too); tests
  of the trainer's own code keep the guard, as production does.
  """
  import jax
  with jax.transfer_guard('allow'):
    yield


def random_batch(config, env, seed=0):
  """A (batch_size, batch_length) batch in the env's spaces, random content."""
  rng = np.random.default_rng(seed)
  shape = (config.batch_size, config.batch_length)
  data = {}
  for key, space in {**env.obs_space, **env.act_space}.items():
    if key == 'reset':
      continue
    if space.dtype == np.uint8:
      data[key] = rng.integers(0, 256, shape + space.shape).astype(np.uint8)
    elif key == 'action':
      index = rng.integers(0, space.shape[-1], shape)
      data[key] = np.eye(space.shape[-1], dtype=np.float32)[index]
    elif space.dtype == bool:
      data[key] = np.zeros(shape + space.shape, bool)
    else:
      data[key] = rng.normal(size=shape + space.shape).astype(space.dtype)
  data['is_first'][:, 0] = True
  # Some episode ends, so that the continuation statistics are defined.
  data['is_terminal'][:, -1] = True
  data['is_last'][:, -1] = True
  return data


@pytest.fixture(scope='session')
def harmony_agent(tiny_config, pong_env):
  import embodied
  from harmony_v3.agent import HarmonyAgent
  return HarmonyAgent(pong_env.obs_space, pong_env.act_space,
                      embodied.Counter(), tiny_config)


@pytest.fixture(scope='session')
def python():
  return sys.executable


def train_smoke(logdir, task: str, configs, *flags: str) -> str:
  """Run `python -m harmony_v3.train` for a smoke test with progress lines,
  assert that it ended well, and return what it printed."""
  command = [sys.executable, '-m', 'harmony_v3.train', '--task', task,
             '--configs', *configs, '--logdir', str(logdir), *flags,
             '--run.progress', 'lines']
  done = subprocess.run(
      command, capture_output=True, text=True, timeout=600,
      env={**os.environ, 'PYTHONUNBUFFERED': '1'})
  out = done.stdout + done.stderr
  assert done.returncode == 0, out[-3000:]
  return out


@pytest.fixture
def fake(tmp_path, monkeypatch):
  """Sweeps with the stand-in trainer (tests/stand_in_trainer.py), no GPU
  (no nvidia-smi, CUDA_VISIBLE_DEVICES unset) and fast polling; returns
  tmp_path."""
  from harmony_v3.sweep import devices, launch, local
  stand_in = ROOT / 'tests' / 'stand_in_trainer.py'
  monkeypatch.setenv(launch.TRAIN_CMD_ENV, f'{sys.executable} {stand_in}')
  monkeypatch.setenv(devices.NVIDIA_SMI_ENV, str(tmp_path / 'no-nvidia-smi'))
  monkeypatch.delenv('CUDA_VISIBLE_DEVICES', raising=False)
  monkeypatch.delenv('FAKE_FAIL_GAME', raising=False)
  monkeypatch.delenv('FAKE_NO_DONE_GAME', raising=False)
  monkeypatch.setenv('FAKE_SLEEP', '0')
  monkeypatch.setattr(local, 'POLL_SECONDS', 0.05)
  return tmp_path
