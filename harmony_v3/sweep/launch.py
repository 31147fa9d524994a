"""How every engine starts one run and reports on it: the trainer's command
line and environment, the lines it adds to the run's train.log, and the
time-stamped progress lines of the sweep."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shlex
import sys
import time

from .devices import default_mem_fraction
from .plan import METHOD_FLAGS, Plan, Run, SweepError, flag_keys
from .suites import DEFAULT_SUITE, get_suite

# Replaces `python -m harmony_v3.train` (for tests and odd setups).
TRAIN_CMD_ENV = 'HARMONY_TRAIN_CMD'


def train_command(override: str | None = None) -> list[str]:
  """The trainer's command: --train-cmd, $HARMONY_TRAIN_CMD or the default."""
  text = override or os.environ.get(TRAIN_CMD_ENV)
  if text:
    try:
      return shlex.split(text)
    except ValueError as e:  # Unbalanced quotes, a trailing backslash.
      source = '--train-cmd' if override else f'${TRAIN_CMD_ENV}'
      raise SweepError(f'{source} {text!r}: {e} (it is split as a shell '
                       'would)') from None
  return [sys.executable, '-m', 'harmony_v3.train']


@dataclasses.dataclass
class Launch:
  """What every run shares: command, presets, pass-through flags, devices."""
  command: list[str]
  configs: list[str]
  extra: list[str]
  cpu: bool
  mem_fraction: float
  cache: pathlib.Path | None
  suite: str = DEFAULT_SUITE

  def argv(self, run: Run) -> list[str]:
    """The full command line of one run."""
    args = [*self.command, '--task', get_suite(self.suite).task(run.game),
            '--configs', *self.configs, '--seed', str(run.seed),
            '--logdir', str(run.folder), *METHOD_FLAGS[run.method]]
    if self.cpu:
      args += ['--jax.platform', 'cpu']
    else:
      args += ['--jax.mem_fraction', f'{self.mem_fraction:g}']
    if self.cache:
      args += ['--run.compilation_cache', str(self.cache)]
    if 'run.track_group' not in flag_keys(self.extra):  # For --run.track.
      args += ['--run.track_group', f'{run.method}-{run.game}']
    return args + list(self.extra)

  def env_changes(self, device: str | None) -> dict[str, str]:
    """What a run changes in its environment: its GPU (`device`; None
    leaves CUDA_VISIBLE_DEVICES as it is), none on the CPU, its memory
    share, unbuffered output."""
    env = {'PYTHONUNBUFFERED': '1'}
    if self.cpu:
      env['CUDA_VISIBLE_DEVICES'] = ''
      env['JAX_PLATFORMS'] = 'cpu'
    else:
      if device is not None:
        env['CUDA_VISIBLE_DEVICES'] = device
      # The trainer keeps an inherited value over its flag: make them agree.
      env['XLA_PYTHON_CLIENT_MEM_FRACTION'] = f'{self.mem_fraction:g}'
    return env

  def env(self, device: str | None) -> dict[str, str]:
    """The run's environment: this process's, with env_changes(device)."""
    return dict(os.environ, **self.env_changes(device))


def launch_for(plan: Plan, per_device: int) -> Launch:
  """How the runs of `plan` start when `per_device` of them share a GPU."""
  if plan.cpu:
    mem_fraction = 0.0
  elif plan.mem_fraction is not None:
    mem_fraction = plan.mem_fraction
  else:
    mem_fraction = default_mem_fraction(per_device)
  return Launch(list(plan.command), list(plan.configs), list(plan.extra),
                plan.cpu, mem_fraction, plan.cache, plan.suite)


def log_start(log: pathlib.Path, text: str) -> None:
  """Append the '=== sweep <date>: <text>' line that opens an attempt."""
  with open(log, 'ab') as f:
    f.write(f'\n=== sweep {time.strftime("%Y-%m-%d %H:%M:%S")}: '
            f'{text}\n'.encode())


def log_exit(log: pathlib.Path, code: int, took: str) -> None:
  """Append the line that closes an attempt (plan.EXIT_LINE reads it)."""
  with open(log, 'ab') as f:
    f.write(f'=== sweep: exit {code} after {took}\n'.encode())


def last_line(path: pathlib.Path) -> str:
  """The last line of a log that the sweep did not write, shortened."""
  try:
    with open(path, 'rb') as f:
      f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
      lines = f.read().decode(errors='replace').strip().splitlines()
  except OSError:
    return ''
  lines = [l.strip() for l in lines if l.strip() and not l.startswith('===')]
  return lines[-1][:200] if lines else ''


def final_eval(folder: pathlib.Path) -> str:
  """', final eval X' from a finished run's done.json, or ''."""
  try:
    value = json.loads((folder / 'done.json').read_text())['final_eval_mean']
    return f', final eval {float(value):.1f}'
  except Exception:
    return ''


def stamped(text: str) -> str:
  """`text` after the time of day, as every sweep progress line."""
  return f'{time.strftime("%H:%M:%S")} {text}'


def say(text: str) -> None:
  """Print a time-stamped progress line at once."""
  print(stamped(text), flush=True)
