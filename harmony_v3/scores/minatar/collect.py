"""From finished run folders to the benchmark's data files (records.py).

  python -m harmony_v3.scores.minatar collect RUNROOT [RUNROOT ...] --out DIR

Every run folder below each RUNROOT (a folder with config.yaml) whose task is
`minatar_<game>` is looked at; only finished ones (done.json) are collected,
the others are listed as not finished. Folders of other tasks are skipped.
Nothing is written unless every finished run can be read: a finished run
without evaluations, a broken config.yaml, eval.jsonl or done.json stops the
command with one message naming the file.

Collecting again is safe: a data file that already holds the same run (same
curve and settings) is left as it is. One that holds a different run (e.g.
the run was trained again) is an error naming both, unless --replace.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import platform
import re
from collections.abc import Iterable, Sequence

from harmony_v3.run.atomic_files import write_atomic
from harmony_v3.run.logs import JSONLines
from harmony_v3.run.summary import adaptation
from harmony_v3.scores.minatar.benchmark import FRAMES_PER_STEP, GAMES
from harmony_v3.scores.minatar.records import (HARMONIZERS, RecordError,
                                               RunRecord, dumps, read_record,
                                               record_path)
from harmony_v3.scores.runs import read_config

TASK_PREFIX = 'minatar_'
# Config keys that differ between the runs of one benchmark by design.
PER_RUN_KEYS = ('seed', 'task', 'logdir')
EXIT_LINE = re.compile(r'^=== sweep: exit -?\d+ after (\S+)\s*$')
DURATION = re.compile(r'^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$')


@dataclasses.dataclass
class CollectResult:
  """What a collect did: files written, left as they were, runs skipped."""
  written: list[pathlib.Path] = dataclasses.field(default_factory=list)
  unchanged: list[pathlib.Path] = dataclasses.field(default_factory=list)
  not_finished: list[pathlib.Path] = dataclasses.field(default_factory=list)
  foreign: list[pathlib.Path] = dataclasses.field(default_factory=list)


# Keys that never change what a run trains: where its scalars are sent.
BOOKKEEPING_KEYS = {'run': ('track', 'track_group', 'track_project')}
# Keys added after runs were made, at a value that trains as their absence
# did (harmony.warmup 0: no warm-up, the only behaviour before the key).
NEUTRAL_VALUES = {('harmony', 'warmup'): 0}


def config_digest(config: dict) -> str:
  """sha256 (16 hex) of a run's training settings: its config without the
  keys that differ between runs by design (seed, task, logdir,
  harmony.enabled), without the tracking keys, and without keys that hold
  the neutral value of a setting added later (so a run made before the key
  existed has the digest of one made after)."""
  settings = {k: v for k, v in config.items() if k not in PER_RUN_KEYS}
  drop = {section: set(keys) for section, keys in BOOKKEEPING_KEYS.items()}
  drop.setdefault('harmony', set()).add('enabled')
  for (section, key), neutral in NEUTRAL_VALUES.items():
    if isinstance(settings.get(section), dict) and (
        settings[section].get(key, neutral) == neutral):
      drop.setdefault(section, set()).add(key)
  for section, keys in drop.items():
    if isinstance(settings.get(section), dict):
      settings[section] = {k: v for k, v in settings[section].items()
                           if k not in keys}
  text = json.dumps(settings, sort_keys=True, default=str)
  return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_duration(text: str) -> float | None:
  """Seconds of a duration as the sweep logs it ('1h02m', '3m05s', '42s')."""
  match = DURATION.match(text)
  if not match or not text:
    return None
  hours, minutes, seconds = (int(g or 0) for g in match.groups())
  return float(hours * 3600 + minutes * 60 + seconds)


def wall_time(folder: pathlib.Path) -> float | None:
  """The trainer's time summed over the sweep's attempts, from train.log
  ('=== sweep: exit N after 1h02m' lines); None without such lines."""
  try:
    lines = (folder / 'train.log').read_text(errors='replace').splitlines()
  except OSError:
    return None
  total, found = 0.0, False
  for line in lines:
    match = EXIT_LINE.match(line)
    seconds = parse_duration(match.group(1)) if match else None
    if seconds is not None:
      total, found = total + seconds, True
  return total if found else None


def machine(config: dict) -> dict:
  """This machine's CPU and cores, and the run's JAX platform."""
  cpu = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path('/proc/cpuinfo').read_text().splitlines():
      if line.startswith('model name'):
        cpu = line.split(':', 1)[1].strip()
        break
  except OSError:
    pass
  jax = config.get('jax') if isinstance(config.get('jax'), dict) else {}
  return {'cpu': cpu, 'cores': os.cpu_count(), 'system': platform.system(),
          'jax_platform': jax.get('platform')}


def evaluation_curve(folder: pathlib.Path
                     ) -> tuple[list[int], list[float], list[int]]:
  """(frames, mean returns, episodes) of a run's eval.jsonl; a rewritten
  point replaces the earlier one. RecordError naming the file if broken."""
  path = folder / 'eval.jsonl'
  try:
    rows = JSONLines(path).read()
  except (OSError, ValueError, UnicodeDecodeError) as e:
    raise RecordError(f'{path}: cannot read it ({e})') from None
  points = {}
  for number, row in enumerate(rows, 1):
    if not isinstance(row, dict):
      raise RecordError(f'{path}: record {number} is not a JSON object')
    frames = row.get('frames')
    if frames is None and row.get('step') is not None:
      frames = row['step'] * FRAMES_PER_STEP
    score = row.get('mean')
    if score is None and row.get('returns'):
      score = sum(row['returns']) / len(row['returns'])
    try:
      frames, score = int(frames), float(score)
    except (TypeError, ValueError):
      raise RecordError(f'{path}: record {number} has no frames or no mean '
                        'return') from None
    if not math.isfinite(score):
      raise RecordError(f'{path}: record {number}: mean return {score}')
    points[frames] = (score, int(row.get('episodes') or 0))
  if not points:
    raise RecordError(f'{folder}: finished (done.json) but has no '
                      'evaluation in eval.jsonl')
  frames = sorted(points)
  return (frames, [points[f][0] for f in frames],
          [points[f][1] for f in frames])


def harmonizer_weights(folder: pathlib.Path, config: dict
                       ) -> dict[str, dict[str, float]] | None:
  """Each harmonizer's weight 1/sigma at the last log and the App. B
  optimum 1/sigma* of its running mean loss (harmony_v3.run.summary); None
  for a run without harmonizer logs."""
  path = folder / 'metrics.jsonl'
  try:
    metrics = JSONLines(path).read()
  except (OSError, ValueError, UnicodeDecodeError) as e:
    raise RecordError(f'{path}: cannot read it ({e})') from None
  harmony = config.get('harmony') or {}
  rectified = bool(harmony.get('rectified', True))
  out = {}
  for name in HARMONIZERS:
    try:
      found = adaptation(metrics, name, rectified)
    except ValueError as e:  # A non-positive mean loss has no optimum.
      raise RecordError(f'{path}: harmonizer {name}: {e}') from None
    if found is None:
      continue
    out[name] = {'weight': math.exp(-float(found['s'])),
                 'optimal_weight': math.exp(-float(found['target'])),
                 'mean_loss': float(found['mean_loss']),
                 's': float(found['s']),
                 'log_sigma_star': float(found['target'])}
  return out or None


def read_run(folder: pathlib.Path) -> RunRecord | None:
  """The record of a finished MinAtar run folder; None if it is not a
  MinAtar run. RecordError naming the file that cannot be read."""
  folder = pathlib.Path(folder)
  try:
    config = read_config(folder)
  except Exception as e:  # ruamel's errors have no common base.
    raise RecordError(f'{folder / "config.yaml"}: cannot read it ({e})'
                      ) from None
  if not isinstance(config, dict):
    raise RecordError(f'{folder / "config.yaml"}: not a config')
  task = str(config.get('task', ''))
  if not task.startswith(TASK_PREFIX):
    return None
  game = task[len(TASK_PREFIX):]
  if game not in GAMES:
    raise RecordError(f'{folder}: unknown MinAtar task {task!r} (games: '
                      f'{", ".join(GAMES)})')
  try:
    done = json.loads((folder / 'done.json').read_text())
    seed = int(config['seed'])
    total_steps = int(float(config['run']['steps']))
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise RecordError(f'{folder}: cannot read done.json, seed or run.steps '
                      f'({e!r})') from None
  harmony = config.get('harmony') or {}
  method = 'harmony' if harmony.get('enabled') else 'dreamerv3'
  frames, scores, episodes = evaluation_curve(folder)
  weights = harmonizer_weights(folder, config) if method == 'harmony' else None
  return RunRecord(
      method, game, seed, frames, scores, episodes, weights,
      config_digest(config), total_steps, wall_time(folder),
      done.get('finished') if isinstance(done, dict) else None,
      machine(config), str(folder.absolute()))


def find_runs(roots: Iterable[str | pathlib.Path]) -> list[pathlib.Path]:
  """Run folders (with config.yaml) below each root, in order."""
  found = []
  for root in roots:
    root = pathlib.Path(root)
    if not root.is_dir():
      raise RecordError(f'{root}: no such folder')
    found += sorted(p.parent for p in root.rglob('config.yaml'))
  return list(dict.fromkeys(found))


def same_run(a: RunRecord, b: RunRecord) -> bool:
  """Whether two records hold the same run (curve and settings)."""
  return ((a.method, a.game, a.seed, a.steps, a.scores, a.config_digest)
          == (b.method, b.game, b.seed, b.steps, b.scores, b.config_digest))


def collect(roots: Sequence[str | pathlib.Path], out: str | pathlib.Path,
            replace: bool = False) -> CollectResult:
  """Write the data file of every finished MinAtar run below `roots` into
  `out` (see the module docstring). Raises RecordError, having written
  nothing, if a finished run or an existing data file cannot be used."""
  result = CollectResult()
  chosen: dict[pathlib.Path, RunRecord] = {}
  for folder in find_runs(roots):
    if not (folder / 'done.json').is_file():
      try:
        task = str(read_config(folder).get('task', ''))
      except Exception:
        task = ''
      if task.startswith(TASK_PREFIX):
        result.not_finished.append(folder)
      else:
        result.foreign.append(folder)
      continue
    record = read_run(folder)
    if record is None:
      result.foreign.append(folder)
      continue
    path = record_path(out, record.method, record.game, record.seed)
    if path in chosen:
      raise RecordError(f'two finished runs of {record.name}: '
                        f'{chosen[path].source} and {record.source}')
    chosen[path] = record
  if not chosen and not result.not_finished:
    raise RecordError('no MinAtar run folders (config.yaml with task '
                      f'minatar_<game>) under {", ".join(map(str, roots))}')
  to_write = []
  for path, record in chosen.items():
    if path.exists():
      try:
        old = read_record(path)
      except RecordError:
        if not replace:
          raise
        old = None
      if old is not None and same_run(old, record):
        result.unchanged.append(path)
        continue
      if not replace:
        raise RecordError(
            f'{path} already holds a different run of {record.name} (from '
            f'{old.source}) than {record.source}; rerun with --replace to '
            'overwrite it')
    to_write.append((path, record))
  for path, record in to_write:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, dumps(record).encode())
    result.written.append(path)
  return result
