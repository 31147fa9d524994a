"""Which GPUs a sweep may use, whether JAX can use them, and how runs that
share a GPU divide its memory."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Mapping

# Replaces `nvidia-smi` (for tests and odd setups).
NVIDIA_SMI_ENV = 'HARMONY_NVIDIA_SMI'
# Share of a GPU's memory given to the runs on it together; the rest is for
# the CUDA contexts and libraries that live outside XLA's memory pool.
GPU_MEMORY_SHARE = 0.9


def parse_nvidia_smi(text: str) -> list[str]:
  """CUDA_VISIBLE_DEVICES ids from `nvidia-smi -L` output: GPU indices, or
  the MIG instances' UUIDs for GPUs split with MIG."""
  gpus: list[tuple[str, list[str]]] = []
  for line in text.splitlines():
    line = line.strip()
    gpu = re.match(r'GPU (\d+):', line)
    mig = re.match(r'MIG .*\(UUID: (MIG-[^)\s]+)\)', line)
    if gpu:
      gpus.append((gpu.group(1), []))
    elif mig and gpus:
      gpus[-1][1].append(mig.group(1))
  return [dev for index, migs in gpus for dev in (migs or [index])]


def visible_devices(value: str) -> list[str]:
  """The device ids of a CUDA_VISIBLE_DEVICES value (empty or -1: none)."""
  gpus = []
  for dev in (d.strip() for d in value.split(',')):
    if not dev or dev.startswith('-'):
      break  # CUDA ignores everything from the first invalid id on.
    gpus.append(dev)
  return gpus


def detect_gpus(environ: Mapping[str, str] | None = None
                ) -> tuple[list[str], str]:
  """The GPUs this process may use, and where that came from.

  CUDA_VISIBLE_DEVICES wins when set (empty or -1: none); else
  `nvidia-smi -L` (the command can be replaced with $HARMONY_NVIDIA_SMI)."""
  env = os.environ if environ is None else environ
  if 'CUDA_VISIBLE_DEVICES' in env:
    value = env['CUDA_VISIBLE_DEVICES']
    return visible_devices(value), f'CUDA_VISIBLE_DEVICES={value!r}'
  smi = env.get(NVIDIA_SMI_ENV) or 'nvidia-smi'
  try:
    result = subprocess.run([smi, '-L'], capture_output=True, text=True,
                            timeout=60)
  except FileNotFoundError:
    return [], f'no {smi} command'
  except (OSError, subprocess.TimeoutExpired) as e:
    return [], f'{smi} -L failed: {e}'
  if result.returncode != 0:
    why = (result.stderr or result.stdout).strip().splitlines()
    return [], f'{smi} -L failed: {why[-1] if why else result.returncode}'
  return parse_nvidia_smi(result.stdout), f'{smi} -L'


def check_jax_gpu(gpu: str) -> str | None:
  """None if JAX sees GPU `gpu`, else why not. Catches a CPU-only jaxlib,
  which would otherwise make every run fall back to days on the CPU."""
  env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu,
             XLA_PYTHON_CLIENT_PREALLOCATE='false')
  env.pop('JAX_PLATFORMS', None)
  code = 'import jax; print(jax.devices("gpu"))'
  try:
    result = subprocess.run([sys.executable, '-c', code], env=env,
                            capture_output=True, text=True, timeout=300)
  except (OSError, subprocess.TimeoutExpired) as e:
    return str(e)
  if result.returncode == 0:
    return None
  lines = result.stderr.strip().splitlines()
  return lines[-1] if lines else f'exit {result.returncode}'


def default_mem_fraction(per_gpu: int) -> float:
  """XLA_PYTHON_CLIENT_MEM_FRACTION for each of `per_gpu` runs on one GPU."""
  return round(GPU_MEMORY_SHARE / per_gpu, 3)
