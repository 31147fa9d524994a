"""The sweep's plan: which runs, where their folders are, what state each is in.

Every engine (local, SLURM, Ray) works from the same plan. A run's folder,
{logroot}/{method}/{game}/seed{seed}, holds its whole state:

  done.json         the run has finished          -> status 'done' (skipped)
  .sweep.lock       held by the trainer at work   -> 'running' (left alone)
  .trainer.lock     held by a trainer started by hand (run_lock.py) -> 'running'
  checkpoint.ckpt   an interrupted run            -> 'resume'
  (none of these)                                 -> 'new'

So the status of every run is read from the folders on any engine (no
scheduler accounting needed), and running a sweep again resumes it. The
settings every run shares (presets, trainer flags, runs per GPU, ...) form a
`Plan`; engines that hand work to other machines save it as a plan file.
"""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import pathlib
import re
import signal
from typing import Any, Sequence

from ..run import run_lock
from ..run.atomic_files import write_atomic
from .suites import DEFAULT_SUITE, SUITES, get_suite

DEFAULT_LOGROOT = SUITES[DEFAULT_SUITE].logroot
DEFAULT_NUM_SEEDS = 5
METHODS = ('harmony', 'dreamerv3')
METHOD_FLAGS = {'harmony': (), 'dreamerv3': ('--harmony.enabled', 'False')}
# Trainer flags the sweep sets itself, and the sweep option to use instead.
RESERVED_FLAGS = {
    'task': '--games', 'seed': '--seeds', 'logdir': '--logroot',
    'configs': '--configs', 'harmony.enabled': '--baseline or --both',
    'jax.platform': '--cpu', 'jax.mem_fraction': '--mem-fraction'}
LOCK_NAME = '.sweep.lock'
PLAN_FILE_VERSION = 1
# The line every engine appends to a run's train.log when its trainer exits.
EXIT_LINE = re.compile(r'^=== sweep: exit (-?\d+) after')
# Exit statuses of a trainer stopped by a signal: it saved (or was killed)
# and resumes from its last checkpoint.
STOPPED_CODES = (130, -signal.SIGTERM, -signal.SIGINT, -signal.SIGKILL)


class SweepError(Exception):
  """A bad option or environment, with a message for the user."""


# Runs and their folders -------------------------------------------------------


@dataclasses.dataclass
class Run:
  """One training run of the sweep and, once launched, its process."""
  method: str
  game: str
  seed: int
  folder: pathlib.Path
  status: str = 'new'          # See run_status (read before the sweep).
  ordinal: int = 0             # [ordinal/total] in the progress lines.
  device: str = ''
  process: Any = None          # The local engine's subprocess.Popen.
  started: float = 0.0

  @property
  def name(self) -> str:
    return f'{self.method}/{self.game}/seed{self.seed}'

  @property
  def log(self) -> pathlib.Path:
    return self.folder / 'train.log'


def run_folder(logroot: pathlib.Path, method: str, game: str,
               seed: int) -> pathlib.Path:
  """Where a run keeps everything: {logroot}/{method}/{game}/seed{seed}."""
  return pathlib.Path(logroot) / method / game / f'seed{seed}'


def lock_run(folder: pathlib.Path) -> int | None:
  """An fd holding the run folder's lock, or None if another process holds
  it. The lock lasts while any process (the trainer) keeps the fd open."""
  folder.mkdir(parents=True, exist_ok=True)
  fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    return None
  except OSError as e:
    os.close(fd)
    raise _no_locks(folder, e) from None
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
  except BlockingIOError:
    return True
  except OSError as e:
    raise _no_locks(path.parent, e) from None
  finally:
    os.close(fd)


def _no_locks(folder: pathlib.Path, error: OSError) -> SweepError:
  return SweepError(
      f'cannot lock {folder / LOCK_NAME} ({error}): this filesystem does not '
      'support file locks (e.g. Lustre mounted without flock); see '
      'docs/cluster.md, "Known limits".')


def run_status(folder: pathlib.Path) -> str:
  """'done' (done.json), 'running' (locked by a trainer), 'resume'
  (checkpoint.ckpt) or 'new'."""
  folder = pathlib.Path(folder)
  if (folder / 'done.json').is_file():
    return 'done'
  if is_locked(folder) or run_lock.is_locked(folder):
    return 'running'
  if (folder / 'checkpoint.ckpt').is_file():
    return 'resume'
  return 'new'


def last_exit(folder: pathlib.Path) -> int | None:
  """The trainer's exit status that an engine last logged in the run's
  train.log, or None if it logged none."""
  try:
    with open(pathlib.Path(folder) / 'train.log', 'rb') as f:
      f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
      lines = f.read().decode(errors='replace').splitlines()
  except OSError:
    return None
  for line in reversed(lines):
    match = EXIT_LINE.match(line)
    if match:
      return int(match.group(1))
  return None


def plan_runs(games: Sequence[str], seeds: Sequence[int],
              methods: Sequence[str], logroot: pathlib.Path) -> list[Run]:
  """All runs, seed-major: every game's seed 0 (both methods) comes first,
  so a partial sweep already covers all games and pairs the methods."""
  runs = []
  for seed in seeds:
    for game in games:
      for method in methods:
        runs.append(make_run(logroot, method, game, seed))
  return runs


def make_run(logroot: pathlib.Path, method: str, game: str,
             seed: int) -> Run:
  """One run, with its status read from its folder now."""
  folder = run_folder(logroot, method, game, seed)
  return Run(method, game, seed, folder, run_status(folder))


def pending_first(runs: Sequence[Run]) -> list[Run]:
  """The runs to train, in order: interrupted ones first (they hold trained
  state), then new ones; done and running ones are left out."""
  return ([r for r in runs if r.status == 'resume']
          + [r for r in runs if r.status == 'new'])


def status_counts(runs: Sequence[Run]) -> str:
  """'N runs: D done, R resume, W new[, B running elsewhere]'."""
  counts = {s: sum(r.status == s for r in runs)
            for s in ('done', 'running', 'resume', 'new')}
  return (f'{len(runs)} runs: {counts["done"]} done, {counts["resume"]} '
          f'resume, {counts["new"]} new' + (
              f', {counts["running"]} running elsewhere'
              if counts['running'] else ''))


def status_lines(runs: Sequence[Run]) -> list[str]:
  """One line per run for --dry-run: its status, its name, and the exit
  status of its last attempt if that failed."""
  lines = []
  for run in runs:
    line = f'  {run.status:<7} {run.name}'
    code = last_exit(run.folder) if run.status in ('resume', 'new') else None
    if code is not None and code != 0 and code not in STOPPED_CODES:
      line += f'  (last attempt failed: exit {code}; log: {run.log})'
    lines.append(line)
  return lines


# Options ------------------------------------------------------------------------


def check_games(names: Sequence[str], suite: str = DEFAULT_SUITE) -> list[str]:
  """Game names of `suite` (its task prefix, e.g. 'atari_', allowed),
  deduplicated, in order.

  Raises SweepError listing the valid names if any is unknown."""
  bench = get_suite(suite)
  games, unknown = [], []
  for name in names:
    game = name.strip().lower()
    game = game.removeprefix(f'{bench.prefix}_')
    if game not in bench.games:
      unknown.append(name)
    elif game not in games:
      games.append(game)
  if unknown:
    raise SweepError(
        f'Unknown {bench.title} game(s): ' + ', '.join(map(repr, unknown))
        + '. Valid games: ' + ', '.join(bench.games))
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
                      extra: Sequence[str], task: str = 'atari_pong') -> None:
  """Build one run's config (for `task`), so that a bad preset or flag fails
  here once instead of in every one of the runs."""
  from ..config import ConfigError, load_config
  for method in methods:
    argv = ['--task', task, '--seed', '0', *METHOD_FLAGS[method],
            *extra]
    try:
      load_config(configs, argv)
    except (ConfigError, ValueError) as e:
      which = (f' for the {method} runs' if len(methods) > 1 else '')
      hint = ('\nThe flags after -- go to every method: sweep the '
              'DreamerV3 baseline (--baseline) and the Harmony variant in two '
              'sweeps (same --logroot).' if method == 'dreamerv3'
              and len(methods) > 1 and 'harmony.enabled False' in str(e)
              else '')
      raise SweepError(f'Bad trainer configuration{which}: {e}{hint}') \
          from None


# The plan ---------------------------------------------------------------------


@dataclasses.dataclass
class Plan:
  """What to run, and what every run shares: all an engine needs."""
  logroot: pathlib.Path
  games: list[str]
  seeds: list[int]
  methods: list[str]
  configs: list[str]
  extra: list[str]              # Trainer flags given after `--`.
  command: list[str]            # The trainer, e.g. python -m harmony_v3.train
  cpu: bool = False
  # Runs at a time on each GPU (--per-gpu), or on the CPU with --cpu
  # (--cpu-workers); None: measured before the first run (--per-gpu auto).
  per_device: int | None = None
  mem_fraction: float | None = None  # None: 0.9 / per_device of a GPU each.
  cache: pathlib.Path | None = None  # The shared JAX compilation cache.
  gpu_check: bool = True        # Check that JAX sees the GPU first.
  suite: str = DEFAULT_SUITE    # suites.SUITES: the games' task prefix.

  def runs(self) -> list[Run]:
    """Every run of the plan, with its status read from its folder now."""
    return plan_runs(self.games, self.seeds, self.methods, self.logroot)

  def to_json(self) -> dict:
    """The plan as JSON values (paths as text)."""
    data = dataclasses.asdict(self)
    data['logroot'] = str(self.logroot)
    data['cache'] = str(self.cache) if self.cache else None
    return data

  @classmethod
  def from_json(cls, data: dict) -> 'Plan':
    """The plan that to_json wrote."""
    data = dict(data)
    data['logroot'] = pathlib.Path(data['logroot'])
    data['cache'] = pathlib.Path(data['cache']) if data['cache'] else None
    return cls(**data)


def write_plan_file(path: pathlib.Path, plan: Plan, runs: Sequence[Run],
                    **more) -> None:
  """Save `plan` and the runs it hands out (by name, in order) as JSON,
  with any further fields in `more`; atomically."""
  record = {'version': PLAN_FILE_VERSION, 'plan': plan.to_json(),
            'runs': [[r.method, r.game, r.seed] for r in runs], **more}
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  write_atomic(path, (json.dumps(record, indent=1) + '\n').encode())


def read_plan_file(path: pathlib.Path) -> tuple[Plan, list[Run], dict]:
  """(plan, its runs with their status read now, the whole record) from a
  file that write_plan_file wrote. Raises SweepError if unreadable."""
  try:
    record = json.loads(pathlib.Path(path).read_text())
    if record.get('version') != PLAN_FILE_VERSION:
      raise ValueError(f'version {record.get("version")!r}, expected '
                       f'{PLAN_FILE_VERSION}')
    plan = Plan.from_json(record['plan'])
    runs = [make_run(plan.logroot, m, g, int(s)) for m, g, s in
            record['runs']]
  except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
    raise SweepError(f'cannot read the plan file {path}: {e}') from None
  return plan, runs, record
