"""Atari 100K sweep: every game x seed (x method), one trainer process each.

  ./run_atari100k.sh                              # 26 games x 5 seeds, Harmony
  ./run_atari100k.sh --both --games pong --seeds 0 1
  ./run_atari100k.sh --dry-run                    # the plan, with each status
  ./run_atari100k.sh --per-gpu 2 -- --run.log_every 600
  ./run_atari100k.sh --cpu --configs tiny --games pong --seeds 0

Runs go to {logroot}/{method}/{game}/seed{seed} (method: harmony or
dreamerv3), each with its own train.log. Running the same command again skips
finished runs (done.json) and resumes interrupted ones (checkpoint.ckpt).
Every visible GPU trains --per-gpu runs at a time. Its default, auto,
measures the fastest count on the first GPU before the first run and saves
it in {logroot}/per_gpu.json (calibrate.py). Without a GPU the sweep stops
unless --cpu is given. Ctrl-C or SIGTERM asks every run to save a
checkpoint, waits for them and exits with 130. Arguments after `--` go to
every `python -m harmony_v3.train` call.

Each trainer holds a lock on its run folder (.sweep.lock), so a second sweep
on the same logroot skips runs that are being trained instead of training
them twice.

Exit status: 0 no run failed, 1 some run failed, 2 bad options or no GPU,
130 interrupted.
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from typing import Callable, Mapping, Sequence

from . import calibrate
from .games import ATARI100K_GAMES
from .progress import format_duration

DEFAULT_LOGROOT = '~/logdir/harmony_v3_atari100k'
DEFAULT_NUM_SEEDS = 5
METHODS = ('harmony', 'dreamerv3')
METHOD_FLAGS = {'harmony': (), 'dreamerv3': ('--harmony.enabled', 'False')}
# Share of a GPU's memory given to the runs on it together; the rest is for
# the CUDA contexts and libraries that live outside XLA's memory pool.
GPU_MEMORY_SHARE = 0.9
# Trainer flags the sweep sets itself, and the sweep option to use instead.
RESERVED_FLAGS = {
    'task': '--games', 'seed': '--seeds', 'logdir': '--logroot',
    'configs': '--configs', 'harmony.enabled': '--baseline or --both',
    'jax.platform': '--cpu', 'jax.mem_fraction': '--mem-fraction'}
# Environment variables that replace external commands (for tests and odd
# setups): the trainer, the score table and `nvidia-smi`.
TRAIN_CMD_ENV = 'HARMONY_TRAIN_CMD'
SCORES_CMD_ENV = 'HARMONY_SCORES_CMD'
NVIDIA_SMI_ENV = 'HARMONY_NVIDIA_SMI'
POLL_SECONDS = 0.2
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# Exit statuses of a trainer stopped by the sweep's own SIGTERM.
_STOPPED_CODES = (130, -signal.SIGTERM, -signal.SIGINT, -signal.SIGKILL)


class SweepError(Exception):
  """A bad option or environment, with a message for the user."""


# Plan ------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
  """One training run of the sweep and, once launched, its process."""
  method: str
  game: str
  seed: int
  folder: pathlib.Path
  status: str = 'new'          # See run_status (before the sweep).
  ordinal: int = 0             # [ordinal/total] in the progress lines.
  device: str = ''
  process: subprocess.Popen | None = None
  started: float = 0.0
  seconds: float = 0.0
  returncode: int | None = None

  @property
  def name(self) -> str:
    return f'{self.method}/{self.game}/seed{self.seed}'

  @property
  def log(self) -> pathlib.Path:
    return self.folder / 'train.log'


LOCK_NAME = '.sweep.lock'


def lock_run(folder: pathlib.Path) -> int | None:
  """An fd holding the run folder's lock, or None if another process holds
  it. The lock lasts while any process (the trainer) keeps the fd open."""
  folder.mkdir(parents=True, exist_ok=True)
  fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    os.close(fd)
    return None
  return fd


def is_locked(folder: pathlib.Path) -> bool:
  """Whether some process is training in `folder` (holds its lock)."""
  path = pathlib.Path(folder) / LOCK_NAME
  if not path.is_file():
    return False
  fd = os.open(path, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    return False
  except OSError:
    return True
  finally:
    os.close(fd)


def run_status(folder: pathlib.Path) -> str:
  """'done' (done.json), 'running' (locked by a trainer), 'resume'
  (checkpoint.ckpt) or 'new'."""
  folder = pathlib.Path(folder)
  if (folder / 'done.json').is_file():
    return 'done'
  if is_locked(folder):
    return 'running'
  if (folder / 'checkpoint.ckpt').is_file():
    return 'resume'
  return 'new'


def plan_runs(games: Sequence[str], seeds: Sequence[int],
              methods: Sequence[str], logroot: pathlib.Path) -> list[Run]:
  """All runs, seed-major: every game's seed 0 (both methods) comes first,
  so a partial sweep already covers all games and pairs the methods."""
  runs = []
  for seed in seeds:
    for game in games:
      for method in methods:
        folder = pathlib.Path(logroot) / method / game / f'seed{seed}'
        runs.append(Run(method, game, seed, folder, run_status(folder)))
  return runs


def check_games(names: Sequence[str]) -> list[str]:
  """Benchmark names ('atari_' prefix allowed), deduplicated, in order.

  Raises SweepError listing the valid names if any is unknown."""
  games, unknown = [], []
  for name in names:
    game = name.strip().lower()
    game = game[len('atari_'):] if game.startswith('atari_') else game
    if game not in ATARI100K_GAMES:
      unknown.append(name)
    elif game not in games:
      games.append(game)
  if unknown:
    raise SweepError(
        'Unknown Atari 100K game(s): ' + ', '.join(map(repr, unknown))
        + '. Valid games: ' + ', '.join(ATARI100K_GAMES))
  return games


def flag_keys(args: Sequence[str]) -> list[str]:
  """Dotted keys named by `--key value` or `--key=value` arguments."""
  return [a[2:].split('=', 1)[0] for a in args if a.startswith('--')]


def check_extra_args(extra: Sequence[str]) -> None:
  """Refuse pass-through flags that the sweep sets for every run itself."""
  for key in flag_keys(extra):
    if key in RESERVED_FLAGS:
      raise SweepError(
          f"'--{key}' is set by the sweep for each run; use the sweep's "
          f'{RESERVED_FLAGS[key]} option instead of passing it after --.')


def check_train_flags(configs: Sequence[str], methods: Sequence[str],
                      extra: Sequence[str]) -> None:
  """Build one run's config, so that a bad preset or flag fails here once
  instead of in every one of the runs."""
  from .config import ConfigError, load_config
  for method in methods:
    argv = ['--task', 'atari_pong', '--seed', '0', *METHOD_FLAGS[method],
            *extra]
    try:
      load_config(configs, argv)
    except (ConfigError, ValueError) as e:
      raise SweepError(f'Bad trainer configuration: {e}') from None


# Devices ---------------------------------------------------------------------


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


def detect_gpus(environ: Mapping[str, str] | None = None
                ) -> tuple[list[str], str]:
  """The GPUs this process may use, and where that came from.

  CUDA_VISIBLE_DEVICES wins when set (empty or -1: none); else
  `nvidia-smi -L` (the command can be replaced with $HARMONY_NVIDIA_SMI)."""
  env = os.environ if environ is None else environ
  if 'CUDA_VISIBLE_DEVICES' in env:
    value = env['CUDA_VISIBLE_DEVICES']
    gpus = []
    for dev in (d.strip() for d in value.split(',')):
      if not dev or dev.startswith('-'):
        break  # CUDA ignores everything from the first invalid id on.
      gpus.append(dev)
    return gpus, f'CUDA_VISIBLE_DEVICES={value!r}'
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


# Commands --------------------------------------------------------------------


def train_command(override: str | None = None) -> list[str]:
  """The trainer's command: --train-cmd, $HARMONY_TRAIN_CMD or the default."""
  text = override or os.environ.get(TRAIN_CMD_ENV)
  if text:
    return shlex.split(text)
  return [sys.executable, '-m', 'harmony_v3.train']


def scores_command() -> list[str]:
  """The score-table command ($HARMONY_SCORES_CMD replaces the default)."""
  text = os.environ.get(SCORES_CMD_ENV)
  if text:
    return shlex.split(text)
  return [sys.executable, '-m', 'harmony_v3.scores']


@dataclasses.dataclass
class Launch:
  """What every run shares: command, presets, pass-through flags, devices."""
  command: list[str]
  configs: list[str]
  extra: list[str]
  cpu: bool
  mem_fraction: float
  cache: pathlib.Path | None

  def argv(self, run: Run) -> list[str]:
    """The full command line of one run."""
    args = [*self.command, '--task', f'atari_{run.game}',
            '--configs', *self.configs, '--seed', str(run.seed),
            '--logdir', str(run.folder), *METHOD_FLAGS[run.method]]
    if self.cpu:
      args += ['--jax.platform', 'cpu']
    else:
      args += ['--jax.mem_fraction', f'{self.mem_fraction:g}']
    if self.cache:
      args += ['--run.compilation_cache', str(self.cache)]
    return args + list(self.extra)

  def env(self, device: str) -> dict[str, str]:
    """The run's environment: its GPU only (none on the CPU), unbuffered."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    if self.cpu:
      env['CUDA_VISIBLE_DEVICES'] = ''
      env['JAX_PLATFORMS'] = 'cpu'
    else:
      env['CUDA_VISIBLE_DEVICES'] = device
      # The trainer keeps an inherited value over its flag: make them agree.
      env['XLA_PYTHON_CLIENT_MEM_FRACTION'] = f'{self.mem_fraction:g}'
    return env


def _last_line(path: pathlib.Path) -> str:
  try:
    with open(path, 'rb') as f:
      f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
      lines = f.read().decode(errors='replace').strip().splitlines()
  except OSError:
    return ''
  lines = [l.strip() for l in lines if l.strip() and not l.startswith('===')]
  return lines[-1][:200] if lines else ''


def _final_eval(folder: pathlib.Path) -> str:
  try:
    value = json.loads((folder / 'done.json').read_text())['final_eval_mean']
    return f', final eval {float(value):.1f}'
  except Exception:
    return ''


# Scheduling ------------------------------------------------------------------


class Sweep:
  """Runs the pending runs on the devices' slots, one process per run."""

  def __init__(self, runs: Sequence[Run], slots: Mapping[str, int],
               launch: Launch, out: Callable[[str], None] | None = None):
    self.runs = list(runs)
    self.total = len(self.runs)
    self.slots = dict(slots)
    self.launch = launch
    self.out = out or (lambda text: print(text, flush=True))
    self.running: list[Run] = []
    self.finished: list[Run] = []
    self.failed: list[Run] = []
    self.interrupted: list[Run] = []
    self.busy: list[Run] = [r for r in self.runs if r.status == 'running']
    self.skipped = [r for r in self.runs if r.status == 'done']
    self.started = len(self.skipped)
    # Unfinished runs first: they hold trained state.
    self.queue = ([r for r in self.runs if r.status == 'resume']
                  + [r for r in self.runs if r.status == 'new'])
    self.signals = 0
    self.forwarded = 0

  def say(self, text: str) -> None:
    self.out(_stamped(text))

  @property
  def stopping(self) -> bool:
    return self.signals > 0

  def _device_name(self, device: str) -> str:
    return 'CPU' if self.launch.cpu else f'GPU {device}'

  def _free_device(self) -> str | None:
    """The least busy device with a free slot (first one on ties)."""
    load = {d: 0 for d in self.slots}
    for run in self.running:
      load[run.device] += 1
    free = [d for d in self.slots if load[d] < self.slots[d]]
    return min(free, key=lambda d: load[d]) if free else None

  def _counts(self) -> str:
    return (f'(running {len(self.running)}, waiting {len(self.queue)}, '
            f'done {len(self.skipped) + len(self.finished)}/{self.total}, '
            f'failed {len(self.failed)})')

  def _start(self, run: Run, device: str) -> None:
    lock = lock_run(run.folder)
    if lock is None:
      self.busy.append(run)
      self.say(f'skipped {run.name}: another process is training it')
      return
    self.started += 1
    run.ordinal, run.device = self.started, device
    argv = self.launch.argv(run)
    run.started = time.time()
    with open(run.log, 'ab') as log:
      log.write(
          f'\n=== sweep {time.strftime("%Y-%m-%d %H:%M:%S")}: '
          f'{run.status} run on {self._device_name(device)}: '
          f'{shlex.join(argv)}\n'.encode())
      log.flush()
      try:
        # A session of its own: a terminal's Ctrl-C reaches the sweep only,
        # which sends each run exactly one SIGTERM (a second signal could
        # interrupt the run while it saves its checkpoint).
        run.process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, env=self.launch.env(device),
            start_new_session=True, pass_fds=(lock,))
      except OSError as e:
        log.write(f'=== sweep: cannot start the trainer: {e}\n'.encode())
        run.returncode = 127
        self.failed.append(run)
        self.say(f'[{run.ordinal}/{self.total}] FAILED {run.name} (cannot '
                 f'start: {e}), log: {run.log} {self._counts()}')
        return
      finally:
        os.close(lock)  # The trainer's copy holds the lock from now on.
    self.running.append(run)
    verb = 'resumed' if run.status == 'resume' else 'started'
    self.say(f'[{run.ordinal}/{self.total}] {verb} {run.name} on '
             f'{self._device_name(device)} {self._counts()}')

  def _end(self, run: Run, code: int) -> None:
    self.running.remove(run)
    run.returncode = code
    run.seconds = time.time() - run.started
    took = format_duration(run.seconds)
    done = (run.folder / 'done.json').is_file()
    with open(run.log, 'ab') as log:
      log.write(f'=== sweep: exit {code} after {took}\n'.encode())
    head = f'[{run.ordinal}/{self.total}]'
    if code == 0 and done:
      self.finished.append(run)
      self.say(f'{head} finished {run.name} in {took}'
               f'{_final_eval(run.folder)} {self._counts()}')
    elif self.stopping and code in _STOPPED_CODES:
      self.interrupted.append(run)
      self.say(f'{head} stopped {run.name} after {took} (exit {code}; '
               f'rerun to resume) {self._counts()}')
    else:
      self.failed.append(run)
      why = f'exit {code}' + ('' if code else ', no done.json')
      self.say(f'{head} FAILED {run.name} ({why}) after {took}, log: '
               f'{run.log} {self._counts()}')
      last = _last_line(run.log)
      if last:
        self.out(f'           last log line: {last}')

  def _on_signal(self, signum, frame) -> None:
    self.signals += 1  # Acted on by the loop: no output from a handler.

  def _handle_signals(self) -> None:
    if self.signals == self.forwarded:
      return
    if self.forwarded == 0:
      self.say(f'Interrupted: asking {len(self.running)} running run(s) to '
               'save a checkpoint and stop (signal again twice to kill '
               'them).')
      self._kill_all(signal.SIGTERM)
    elif self.signals >= 3:
      self.say(f'Killing {len(self.running)} run(s): their progress since '
               'their last checkpoint is lost.')
      self._kill_all(signal.SIGKILL)
    else:
      self.say(f'Waiting for {len(self.running)} run(s) to save their '
               'checkpoints; signal once more to kill them.')
    self.forwarded = self.signals

  def _kill_all(self, signum: int) -> None:
    for run in self.running:
      try:
        run.process.send_signal(signum)
      except (OSError, ProcessLookupError):
        pass

  def execute(self) -> int:
    """Run everything pending; the exit status of the sweep."""
    # SIGHUP too (a closed terminal), unless ignored as under nohup.
    handled = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
      handled.append(signal.SIGHUP)
    previous = {s: signal.signal(s, self._on_signal) for s in handled}
    try:
      while self.running or (self.queue and not self.stopping):
        self._handle_signals()
        while self.queue and not self.stopping:
          device = self._free_device()
          if device is None:
            break
          self._start(self.queue.pop(0), device)
        for run in list(self.running):
          code = run.process.poll()
          if code is not None:
            self._end(run, code)
        if self.running:
          time.sleep(POLL_SECONDS)
    except BaseException:
      self._kill_all(signal.SIGTERM)  # Never leave runs behind unawares.
      raise
    finally:
      for signum, handler in previous.items():
        signal.signal(signum, handler)
    if self.stopping:
      return EXIT_INTERRUPTED
    return EXIT_FAILED if self.failed else EXIT_OK

  def summary(self) -> str:
    """The end summary: finished, failed (exit, log), stopped, skipped."""
    def names(runs):
      text = ', '.join(r.name for r in runs) or '-'
      return textwrap.indent(textwrap.fill(text, 76), '    ')
    lines = [f'Sweep summary ({self.total} runs):',
             f'  finished now: {len(self.finished)}', names(self.finished),
             f'  failed: {len(self.failed)}']
    for run in self.failed:
      lines.append(f'    {run.name}: exit {run.returncode}, log: {run.log}')
    if self.interrupted:
      lines += [f'  stopped (rerun the same command to resume): '
                f'{len(self.interrupted)}', names(self.interrupted)]
    if self.stopping and self.queue:
      lines.append(f'  not started: {len(self.queue)}')
    if self.busy:
      lines += [f'  busy (trained by another process, left alone): '
                f'{len(self.busy)}', names(self.busy)]
    lines += [f'  skipped (already done): {len(self.skipped)}',
              names(self.skipped)]
    return '\n'.join(lines)


# Command line ----------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  """Parse the sweep's own options (what precedes `--`)."""
  parser = argparse.ArgumentParser(
      prog='run_atari100k.sh', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  what = parser.add_argument_group('what to run')
  what.add_argument('--games', nargs='+', metavar='GAME',
                    help='default: all 26 Atari 100K games')
  seeds = what.add_mutually_exclusive_group()
  seeds.add_argument('--seeds', nargs='+', type=int, metavar='N',
                     help='seeds to run (default: 0 1 2 3 4)')
  seeds.add_argument('--num-seeds', type=int, metavar='N',
                     help='seeds 0..N-1')
  method = what.add_mutually_exclusive_group()
  method.add_argument('--baseline', action='store_true',
                      help='DreamerV3 only (--harmony.enabled False)')
  method.add_argument('--both', action='store_true',
                      help='Harmony and the DreamerV3 baseline')
  what.add_argument('--configs', nargs='+', default=['atari100k'],
                    metavar='PRESET',
                    help='trainer presets (default: atari100k)')
  what.add_argument('--logroot', default=DEFAULT_LOGROOT,
                    help='default: %(default)s')
  how = parser.add_argument_group('where to run')
  how.add_argument('--gpus', metavar='IDS',
                   help='GPUs to use, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES'
                        ' if set, else every GPU that nvidia-smi -L lists)')
  how.add_argument('--per-gpu', type=_per_gpu, default='auto', metavar='K',
                   help='runs at a time on each GPU, or "auto" (default): '
                        'measure K = 1, 2, 4, 8 with the bench on the first '
                        f'GPU and take the fastest (saved in <logroot>/'
                        f'{calibrate.RESULT_NAME}; see harmony_v3/'
                        'calibrate.py)')
  how.add_argument('--mem-fraction', type=float, metavar='F',
                   help=f'GPU memory share of each run (default: '
                        f'{GPU_MEMORY_SHARE}/K)')
  how.add_argument('--no-gpu-check', action='store_true',
                   help='skip checking that JAX can use the first GPU')
  how.add_argument('--cpu', action='store_true',
                   help='train on the CPU (slow; for smoke tests)')
  how.add_argument('--cpu-workers', type=int, default=1, metavar='N',
                   help='runs at a time with --cpu (default: 1)')
  how.add_argument('--no-compilation-cache', action='store_true',
                   help='do not share a JAX compilation cache between runs')
  other = parser.add_argument_group('other')
  other.add_argument('--dry-run', action='store_true',
                     help='print the plan with each run\'s status and exit')
  other.add_argument('--no-report', action='store_true',
                     help='skip the score table at the end')
  other.add_argument('--train-cmd', metavar='CMD',
                     help=f'trainer command (default: ${TRAIN_CMD_ENV} or '
                          f'"python -m harmony_v3.train")')
  return parser.parse_args(argv)


def _per_gpu(text: str) -> int | str:
  """--per-gpu's value: 'auto' or a count of at least 1."""
  if text == 'auto':
    return text
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(
        f'expected "auto" or a count of at least 1, got {text!r}')
  return value


def split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """(sweep options, trainer flags after the first `--`)."""
  argv = list(argv)
  if '--' in argv:
    at = argv.index('--')
    return argv[:at], argv[at + 1:]
  return argv, []


def choose_devices(args: argparse.Namespace) -> tuple[list[str], str]:
  """The GPU ids to use (['cpu'] with --cpu) and where they came from; an
  empty list if no GPU was found."""
  if args.cpu:
    return ['cpu'], '--cpu'
  if args.gpus is not None:
    gpus = [g for g in re.split(r'[,\s]+', args.gpus) if g]
    if not gpus:
      raise SweepError('--gpus needs GPU ids, e.g. --gpus 0,1')
    return gpus, '--gpus'
  return detect_gpus()


def resolve_per_gpu(args: argparse.Namespace, gpus: Sequence[str],
                    extra: Sequence[str], logroot: pathlib.Path,
                    cache: pathlib.Path | None,
                    say: Callable[[str], None]) -> int:
  """--per-gpu's count: as given, or for 'auto' the saved measurement in
  `logroot` if it matches this sweep, else a new one on the first GPU."""
  if args.per_gpu != 'auto':
    return args.per_gpu
  candidates = calibrate.candidate_counts(
      len(gpus), calibrate.available_cores(), args.mem_fraction)
  key = calibrate.measurement_key(args.configs, extra, candidates)
  record = calibrate.load(logroot, key)
  if record:
    say(f'Runs per GPU: {record["per_gpu"]}, from '
        f'{logroot / calibrate.RESULT_NAME}: {calibrate.describe(record)}. '
        'Delete that file to measure again, or pass --per-gpu K.')
    return record['per_gpu']
  say(f'Measuring runs per GPU on GPU {gpus[0]}: K = '
      f'{", ".join(map(str, candidates))} bench processes at once with this '
      f'sweep\'s preset (a few minutes; log: '
      f'{logroot / calibrate.LOG_NAME})')
  try:
    record = calibrate.measure(gpus[0], args.configs, extra, candidates,
                               logroot, cache, say=say)
  except calibrate.CalibrationError as e:
    say(f'warning: could not measure runs per GPU ({e}); using 1 run per '
        'GPU. Pass --per-gpu K to choose.')
    return 1
  say(f'Runs per GPU: {record["per_gpu"]} (the smallest K within '
      f'{calibrate.TOLERANCE:.0%} of the best; {calibrate.describe(record)})')
  return record['per_gpu']


def _stamped(text: str) -> str:
  """`text` after the time of day, as every sweep progress line."""
  return f'{time.strftime("%H:%M:%S")} {text}'


def _say(text: str) -> None:
  print(_stamped(text), flush=True)


def _report(logroot: pathlib.Path, say: Callable[[str], None]) -> None:
  command = [*scores_command(), str(logroot), '--out',
             str(logroot / 'report'), '--plots']
  say(f'Score table: {shlex.join(command)}')
  try:
    code = subprocess.call(command, stdin=subprocess.DEVNULL)
  except OSError as e:
    code, why = None, str(e)
  else:
    why = f'exit {code}'
  if code != 0:
    say(f'error: the score table failed ({why}); the runs are unaffected. '
        'Rerun the command above to retry.')


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status."""
  own, extra = split_extra(sys.argv[1:] if argv is None else argv)
  args = parse_args(own)
  try:
    games = check_games(args.games or ATARI100K_GAMES)
    if args.num_seeds is not None:
      if args.num_seeds < 1:
        raise SweepError('--num-seeds must be at least 1')
      seeds = list(range(args.num_seeds))
    else:
      seeds = list(dict.fromkeys(
          args.seeds if args.seeds else range(DEFAULT_NUM_SEEDS)))
    if any(s < 0 for s in seeds):
      raise SweepError('Seeds must be non-negative.')
    if args.cpu_workers < 1:
      raise SweepError('--cpu-workers must be at least 1')
    if args.mem_fraction is not None and not 0 < args.mem_fraction <= 1:
      raise SweepError('--mem-fraction must be in (0, 1].')
    if args.per_gpu != 'auto' and args.mem_fraction is not None and (
        args.mem_fraction * args.per_gpu > 1 + 1e-9):
      raise SweepError(
          f'--per-gpu {args.per_gpu} runs x --mem-fraction '
          f'{args.mem_fraction} must fit in one GPU (product at most 1).')
    methods = (list(METHODS) if args.both
               else ['dreamerv3'] if args.baseline else ['harmony'])
    check_extra_args(extra)
    check_train_flags(args.configs, methods, extra)
    devices, source = choose_devices(args)
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE

  logroot = pathlib.Path(args.logroot).expanduser().absolute()
  runs = plan_runs(games, seeds, methods, logroot)
  counts = {s: sum(r.status == s for r in runs)
            for s in ('done', 'running', 'resume', 'new')}
  count_line = (f'{len(runs)} runs: {counts["done"]} done, '
                f'{counts["resume"]} resume, {counts["new"]} new' + (
                    f', {counts["running"]} running elsewhere'
                    if counts['running'] else ''))
  # One cache for every run and the runs-per-GPU bench, unless turned off or
  # named by the user after `--` (then that flag reaches each of them).
  cache = (None if args.no_compilation_cache
           or 'run.compilation_cache' in flag_keys(extra)
           else logroot / '.jax_cache')
  command = train_command(args.train_cmd)
  print(f'Atari 100K sweep: {len(games)} game(s) x {len(seeds)} seed(s) x '
        f'{"+".join(methods)} in {logroot}')
  if args.cpu:
    print(f'Devices: CPU, {args.cpu_workers} run(s) at a time')
  elif devices:
    per_gpu = ('auto (measured before the first run)'
               if args.per_gpu == 'auto' else args.per_gpu)
    print(f'Devices: GPUs {",".join(devices)} (from {source}), runs per '
          f'GPU: {per_gpu}')
  print(f'Per run: {shlex.join(command)} --task atari_<game> '
        f'--configs {" ".join(args.configs)} --seed <seed> --logdir '
        f'{logroot}/<method>/<game>/seed<seed> ...')
  if args.dry_run:
    for run in runs:
      print(f'  {run.status:<7} {run.name}')
    print(count_line + ' (dry run: nothing started)')
    return EXIT_OK

  if not devices:
    print(f'error: no GPU found ({source}). Atari 100K needs a GPU (~1.5 h '
          'per run on an H100; days on a CPU). Use --gpus IDS to name GPUs, '
          'or --cpu to train on the CPU anyway (--cpu-workers N at a time).',
          file=sys.stderr)
    return EXIT_USAGE
  pending = counts['done'] < len(runs)
  if not args.cpu and not args.no_gpu_check and pending:
    problem = check_jax_gpu(devices[0])
    if problem:
      print(f'error: JAX cannot use GPU {devices[0]}: {problem}\n'
            'Install a CUDA jaxlib (pip install "jax[cuda12]"), pass --cpu '
            'to train on the CPU, or --no-gpu-check to skip this check.',
            file=sys.stderr)
      return EXIT_USAGE

  print(count_line + (f'; skipping the {counts["done"]} done'
                      if counts['done'] else ''), flush=True)
  if args.cpu:
    slots, mem_fraction = {'cpu': args.cpu_workers}, 0.0
  else:
    per_gpu = 1
    if pending:
      try:
        per_gpu = resolve_per_gpu(args, devices, extra, logroot, cache,
                                  _say)
      except KeyboardInterrupt:
        print('Interrupted while measuring runs per GPU: nothing was '
              'trained.', file=sys.stderr)
        return EXIT_INTERRUPTED
    slots = {gpu: per_gpu for gpu in devices}
    mem_fraction = (default_mem_fraction(per_gpu)
                    if args.mem_fraction is None else args.mem_fraction)
    _say(f'{per_gpu} run(s) per GPU, memory fraction {mem_fraction:g} each')
  launch = Launch(command, list(args.configs), extra, args.cpu, mem_fraction,
                  cache)
  sweep = Sweep(runs, slots, launch)
  code = sweep.execute()
  print(sweep.summary(), flush=True)
  if code == EXIT_INTERRUPTED:
    print('Interrupted: run the same command again to resume.')
    return code
  if not args.no_report:
    if sweep.skipped or sweep.finished:
      _report(logroot, sweep.say)
    else:
      sweep.say('No finished runs: no score table.')
  return code


if __name__ == '__main__':
  sys.exit(main())
