"""How many runs share each GPU in the sweep, measured on that GPU.

The sweep's default, `--per-gpu auto`, does not guess. Before its first run
it starts `python -m harmony_v3.bench --concurrency K ...` on the first GPU:
K worker processes at once, for each candidate K, each timing train updates
of the sweep's own preset and flags. It then takes the smallest K whose
aggregate updates/s is within 5% of the best one. Fewer runs at once finish
each run sooner and use less host memory, so a larger K must earn its place.

The measurement is saved as `<logroot>/per_gpu.json`, with the bench's log
beside it. A later sweep on the same logroot, with the same presets and
flags, reuses it; delete the file to measure again, or pass `--per-gpu K`.
On SLURM the measurement is one job on one GPU that the array waits for;
on Ray, one task on one GPU (see slurm.py and ray_engine.py).
"""
from __future__ import annotations

import json
import os
import pathlib
import shlex
import signal
import subprocess
import sys
import time
from typing import Callable, Mapping, Sequence

from ..run.atomic_files import write_atomic

CANDIDATES = (1, 2, 4, 8)
TOLERANCE = 0.05          # A larger K must beat the best by more than this.
BENCH_UPDATES = 100       # Timed updates per worker and K (after compiling).
BENCH_ROUNDS = 5
RESULT_NAME = 'per_gpu.json'
LOG_NAME = 'per_gpu.log'
# Replaces `python -m harmony_v3.bench` (for tests and odd setups).
BENCH_CMD_ENV = 'HARMONY_BENCH_CMD'


class CalibrationError(Exception):
  """The measurement gave no usable K; the message says why."""


def available_cores() -> int:
  """CPU cores this process may use (its affinity, not the machine's)."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not on Linux.
    return os.cpu_count() or 1


def candidate_counts(num_gpus: int, cores: int,
                     mem_fraction: float | None = None) -> list[int]:
  """The K of CANDIDATES worth measuring on a machine.

  Every run steps its environment and policy on a CPU core of its own, so
  K runs on each of `num_gpus` GPUs must fit in `cores`. A fixed
  `mem_fraction` per run must also fit K times in one GPU. K = 1 is always
  a candidate.
  """
  counts = []
  for k in CANDIDATES:
    fits_cores = k * max(1, num_gpus) <= cores
    fits_memory = mem_fraction is None or k * mem_fraction <= 1 + 1e-9
    if k == 1 or (fits_cores and fits_memory):
      counts.append(k)
  return counts


def aggregates(results: Mapping) -> dict[int, float | None]:
  """K -> aggregate updates/s (None where that K failed) from the JSON of
  `bench --concurrency` (its K keys are strings once written)."""
  table = {}
  for key, value in results.items():
    if str(key).isdigit() and isinstance(value, Mapping):
      rate = value.get('aggregate_updates_per_s')
      table[int(key)] = float(rate) if rate is not None else None
  return dict(sorted(table.items()))


def choose_per_gpu(results: Mapping, tolerance: float = TOLERANCE) -> int:
  """The smallest K whose aggregate updates/s is within `tolerance` of the
  best K's. Raises CalibrationError if no K was measured."""
  rates = {k: r for k, r in aggregates(results).items() if r}
  if not rates:
    raise CalibrationError('no K was measured successfully')
  best = max(rates.values())
  return min(k for k, r in rates.items() if r >= (1 - tolerance) * best)


def measurement_key(configs: Sequence[str], extra: Sequence[str],
                    candidates: Sequence[int]) -> dict:
  """What a saved measurement must match to be reused."""
  return {'configs': list(configs), 'trainer_flags': list(extra),
          'candidates': list(candidates)}


def load(folder: pathlib.Path, key: Mapping) -> dict | None:
  """The saved measurement in `folder` if it matches `key`, else None."""
  path = pathlib.Path(folder) / RESULT_NAME
  try:
    record = json.loads(path.read_text())
  except (OSError, ValueError):
    return None
  if not isinstance(record, dict) or record.get('key') != dict(key):
    return None
  if not isinstance(record.get('per_gpu'), int):
    return None
  return record


def bench_command(candidates: Sequence[int], configs: Sequence[str],
                  extra: Sequence[str], json_path: pathlib.Path,
                  cache: pathlib.Path | None, updates: int = BENCH_UPDATES,
                  rounds: int = BENCH_ROUNDS) -> list[str]:
  """The bench call that measures each K with the sweep's preset and flags
  ($HARMONY_BENCH_CMD replaces `python -m harmony_v3.bench`)."""
  override = os.environ.get(BENCH_CMD_ENV)
  command = (shlex.split(override) if override
             else [sys.executable, '-m', 'harmony_v3.bench'])
  command += ['--concurrency', *map(str, candidates), '--configs', *configs,
              '--updates', str(updates), '--rounds', str(rounds),
              '--json', str(json_path)]
  if cache:
    command += ['--run.compilation_cache', str(cache)]
  return command + list(extra)


def measure(gpu: str, configs: Sequence[str], extra: Sequence[str],
            candidates: Sequence[int], folder: pathlib.Path,
            cache: pathlib.Path | None = None,
            say: Callable[[str], None] = print,
            updates: int = BENCH_UPDATES,
            rounds: int = BENCH_ROUNDS) -> dict:
  """Run the bench on GPU `gpu`, choose K, save and return the record.

  The bench's output goes to `folder`/per_gpu.log; its per-K lines are
  shown through `say`. Raises CalibrationError if it gave no usable K, and
  KeyboardInterrupt (after stopping the bench) on SIGINT or SIGTERM.
  """
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  json_path = folder / (RESULT_NAME + '.bench')
  json_path.unlink(missing_ok=True)
  command = bench_command(candidates, configs, extra, json_path, cache,
                          updates, rounds)
  env = dict(os.environ, CUDA_VISIBLE_DEVICES=gpu, PYTHONUNBUFFERED='1')
  env.pop('XLA_PYTHON_CLIENT_MEM_FRACTION', None)  # Each worker sets its own.
  log_path = folder / LOG_NAME
  start = time.time()
  with open(log_path, 'a') as log, _interrupts_as_keyboard():
    log.write(f'=== {time.strftime("%Y-%m-%d %H:%M:%S")} '
              f'CUDA_VISIBLE_DEVICES={gpu} {shlex.join(command)}\n')
    log.flush()
    try:
      # A session of its own, so that stopping it reaches its workers too.
      proc = subprocess.Popen(command, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, env=env,
                              stdin=subprocess.DEVNULL,
                              start_new_session=True)
    except OSError as e:
      raise CalibrationError(f'cannot start the bench: {e}') from None
    try:
      for line in proc.stdout:
        log.write(line)
        log.flush()
        if line.startswith('K='):
          say(f'  {line.rstrip()}')
      code = proc.wait()
    except BaseException:
      _stop_group(proc)
      raise
    log.write(f'=== exit {code} after {time.time() - start:.0f} s\n')
  try:
    results = json.loads(json_path.read_text())
  except (OSError, ValueError):
    raise CalibrationError(
        f'the bench exited with {code} and wrote no results; see '
        f'{log_path}') from None
  try:
    per_gpu = choose_per_gpu(results)
  except CalibrationError as e:
    raise CalibrationError(f'{e}; see {log_path}') from None
  record = {
      'per_gpu': per_gpu,
      'key': measurement_key(configs, extra, candidates),
      'aggregate_updates_per_s': {
          str(k): r for k, r in aggregates(results).items()},
      'tolerance': TOLERANCE,
      'device': _device(results),
      'date': time.strftime('%Y-%m-%d %H:%M:%S'),
      'seconds': round(time.time() - start, 1),
      'command': shlex.join(command),
  }
  path = folder / RESULT_NAME
  write_atomic(path, (json.dumps(record, indent=2) + '\n').encode())
  json_path.unlink(missing_ok=True)
  return record


def saved(folder: pathlib.Path, configs: Sequence[str],
          extra: Sequence[str], candidates: Sequence[int],
          say: Callable[[str], None] = print) -> dict | None:
  """The measurement saved in `folder` for this sweep (said through `say`),
  or None if there is none that matches."""
  record = load(folder, measurement_key(configs, extra, candidates))
  if record:
    say(f'Runs per GPU: {record["per_gpu"]}, from '
        f'{pathlib.Path(folder) / RESULT_NAME}: {describe(record)}. '
        'Delete that file to measure again, or pass --per-gpu K.')
  return record


def measure_or_one(gpu: str, configs: Sequence[str], extra: Sequence[str],
                   candidates: Sequence[int], folder: pathlib.Path,
                   cache: pathlib.Path | None = None,
                   say: Callable[[str], None] = print) -> int:
  """K measured on GPU `gpu` (see measure), or 1 with a warning if the
  measurement gave none; progress through `say`."""
  folder = pathlib.Path(folder)
  say(f'Measuring runs per GPU on GPU {gpu}: K = '
      f'{", ".join(map(str, candidates))} bench processes at once with this '
      f'sweep\'s preset (a few minutes; log: {folder / LOG_NAME})')
  try:
    record = measure(gpu, configs, extra, candidates, folder, cache, say=say)
  except CalibrationError as e:
    say(f'warning: could not measure runs per GPU ({e}); using 1 run per '
        'GPU. Pass --per-gpu K to choose.')
    return 1
  say(f'Runs per GPU: {record["per_gpu"]} (the smallest K within '
      f'{TOLERANCE:.0%} of the best; {describe(record)})')
  return record['per_gpu']


def describe(record: Mapping) -> str:
  """One line: each K's aggregate, where and when it was measured."""
  rates = ', '.join(
      f'K={k} ' + (f'{r:.1f}' if r else 'failed')
      for k, r in record['aggregate_updates_per_s'].items())
  return (f'aggregate updates/s {rates} (on {record.get("device") or "?"}, '
          f'{record.get("date", "?")})')


def _device(results: Mapping) -> str | None:
  for value in results.values():
    if isinstance(value, Mapping):
      for run in value.get('runs', []):
        if run.get('device'):
          return run['device']
  return None


def _stop_group(proc: subprocess.Popen) -> None:
  """Stop the bench and its workers; kill them if they linger."""
  try:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
  except subprocess.TimeoutExpired:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
  except ProcessLookupError:
    pass


class _interrupts_as_keyboard:
  """While active, SIGTERM (and SIGHUP) raise KeyboardInterrupt like SIGINT,
  so that the bench is stopped rather than left running."""

  SIGNALS = (signal.SIGTERM, signal.SIGHUP)

  def __enter__(self):
    self.previous = {}
    for signum in self.SIGNALS:
      if signal.getsignal(signum) is not signal.SIG_IGN:
        self.previous[signum] = signal.signal(signum, self._raise)
    return self

  def __exit__(self, *exc):
    for signum, handler in self.previous.items():
      signal.signal(signum, handler)
    return False

  @staticmethod
  def _raise(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')
