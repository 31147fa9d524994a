"""Reading runs: sweep folders and published curves, as one representation.

A sweep log root is searched recursively for run folders (directories with
`config.yaml` and `eval.jsonl` or `metrics.jsonl`); a JSON file of published
per-seed curves holds {"steps": [frames...], "score": {game: [[...] per
seed]}}. Both become a `MethodData` (game -> seed -> `Curve`), so the rest
of the report treats our runs and published results alike.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Iterable

import numpy as np

from harmony_v3.envs import games as games_lib
from harmony_v3.scores.benchmark import GAMES

# Harmonizer weights in metrics.jsonl: short name -> metric key.
WEIGHT_KEYS = {
    'reward': 'train/harmony_weight_reward',
    'obs': 'train/harmony_weight_obs',
    'dyn': 'train/harmony_weight_dyn',
}


@dataclasses.dataclass(frozen=True)
class Curve:
  """Evaluation scores of one run (one method, game and seed) over frames."""
  frames: np.ndarray  # Environment frames, ascending.
  scores: np.ndarray  # Mean evaluation return at those frames.
  done: bool = True  # Whether the run says it has finished.
  path: str | None = None  # Run folder; None for published curves.

  def final(self, frames: int) -> float | None:
    """Score of the first evaluation at or after `frames`, None if none."""
    idx = np.flatnonzero(self.frames >= frames)
    return float(self.scores[idx[0]]) if len(idx) else None

  @property
  def last_frames(self) -> int:
    """Frames of the latest evaluation (0 if none)."""
    return int(self.frames[-1]) if len(self.frames) else 0


@dataclasses.dataclass
class MethodData:
  """All curves of one method: game -> seed -> Curve."""
  label: str
  source: str
  published: bool
  curves: dict[str, dict[int, Curve]] = dataclasses.field(default_factory=dict)
  notes: list[str] = dataclasses.field(default_factory=list)

  def add(self, game: str, seed: int, curve: Curve) -> None:
    """Add a run; on a duplicate (game, seed) keep the further one and note."""
    seeds = self.curves.setdefault(game, {})
    old = seeds.get(seed)
    if old is not None:
      keep, drop = sorted(
          [old, curve], key=lambda c: (c.done, c.last_frames), reverse=True)
      self.notes.append(
          f'{game} seed {seed}: duplicate runs, using {keep.path} and '
          f'ignoring {drop.path}')
      curve = keep
    seeds[seed] = curve



def method_label(config: dict) -> str:
  """'harmony_dreamerv3' if the run used the harmonizers, else 'dreamerv3'."""
  harmony = config.get('harmony') or {}
  return 'harmony_dreamerv3' if harmony.get('enabled') else 'dreamerv3'


def published_label(path: str | pathlib.Path) -> str:
  """Label of a published-curves file: its stem without '_atari100k'."""
  stem = pathlib.Path(path).stem
  return stem.removesuffix('_atari100k')


CURVES_FORMAT = ('{"steps": [frames, ...], "score": {game: [[score per step] '
                 'per seed]}}')


def _read_curves_file(path: pathlib.Path) -> dict:
  """A published-curves file's JSON, checked to have its shape; ValueError
  naming the file otherwise."""
  try:
    data = json.loads(path.read_text())
  except (OSError, ValueError) as error:  # UnicodeDecodeError included.
    raise ValueError(f'{path} is not a readable JSON file of published '
                     f'curves ({error})') from None
  def numbers(value, depth):
    if depth == 0:
      return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, list) and all(numbers(v, depth - 1)
                                           for v in value)
  problem = None
  if not isinstance(data, dict):
    problem = f'it holds a JSON {type(data).__name__}'
  elif 'steps' not in data or 'score' not in data:
    problem = 'it lacks ' + ' and '.join(
        repr(k) for k in ('steps', 'score') if k not in data)
  elif not numbers(data['steps'], 1):
    problem = '"steps" is not a list of frame counts'
  elif not isinstance(data['score'], dict):
    problem = '"score" is not an object of games'
  else:
    bad = [g for g, v in data['score'].items() if not numbers(v, 2)]
    if bad:
      problem = f'"score" of {bad[0]!r} is not a list of per-seed score lists'
  if problem:
    raise ValueError(f'{path} is not a published-curves file: {problem}; '
                     f'expected {CURVES_FORMAT}')
  return data


def load_published(path: str | pathlib.Path,
                   label: str | None = None) -> MethodData:
  """Read a JSON of published per-seed curves into a MethodData."""
  path = pathlib.Path(path)
  data = _read_curves_file(path)
  frames = np.asarray(data['steps'], dtype=np.int64)
  method = MethodData(label or published_label(path), str(path), True)
  for game, per_seed in data['score'].items():
    if game not in GAMES:
      method.notes.append(f'ignoring unknown game {game!r} in {path}')
      continue
    for seed, scores in enumerate(per_seed):
      scores = np.asarray(scores, dtype=np.float64)
      if len(scores) != len(frames):
        raise ValueError(
            f'{path}: {game} seed {seed} has {len(scores)} scores for '
            f'{len(frames)} steps')
      method.add(game, seed, Curve(frames, scores, True, None))
  return method


def find_run_dirs(root: str | pathlib.Path) -> list[pathlib.Path]:
  """Run folders (with config.yaml and eval.jsonl or metrics.jsonl) below root.

  Folders with a config but no eval.jsonl are returned too, so that runs that
  have not evaluated yet count as incomplete rather than missing.
  """
  root = pathlib.Path(root)
  found = []
  for config in sorted(root.rglob('config.yaml')):
    folder = config.parent
    logs = [folder / 'eval.jsonl', folder / 'metrics.jsonl']
    if any(p.is_file() for p in logs):
      found.append(folder)
  return found


def read_jsonl(path: pathlib.Path, notes: list[str]) -> list[dict]:
  """Parse a JSON-lines file, noting (not raising on) unreadable lines."""
  rows = []
  with open(path, errors='replace') as f:  # Garbled bytes: unreadable lines.
    for number, line in enumerate(f, 1):
      line = line.strip()
      if not line:
        continue
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        notes.append(f'{path}:{number}: unreadable line skipped')
  return rows


def read_config(folder: pathlib.Path) -> dict:
  """The run's config.yaml as plain Python objects."""
  from ruamel.yaml import YAML
  from ruamel.yaml.error import YAMLError
  path = folder / 'config.yaml'
  try:
    config = YAML(typ='safe').load(path.read_text()) or {}
  except (OSError, ValueError, YAMLError) as error:
    raise ValueError(f'{path} is not readable YAML '
                     f'({type(error).__name__})') from None
  if not isinstance(config, dict):
    raise ValueError(f'{path} is not a YAML mapping of config keys')
  return config


def read_eval_curve(folder: pathlib.Path, notes: list[str]) -> Curve:
  """The evaluation curve of one run folder (empty if it has not evaluated)."""
  points = {}
  path = folder / 'eval.jsonl'
  if path.is_file():
    for row in read_jsonl(path, notes):
      try:
        frames = row.get('frames')
        if frames is None and 'step' in row:
          frames = row['step'] * games_lib.FRAMES_PER_AGENT_STEP
        score = row.get('mean')
        if score is None and row.get('returns'):
          score = float(np.mean(row['returns']))
        if frames is None or score is None:
          notes.append(f'{path}: evaluation without frames or score skipped')
          continue
        frames, score = int(frames), float(score)
      except (AttributeError, TypeError, ValueError):
        notes.append(f'{path}: unreadable evaluation record skipped')
        continue
      points[frames] = score  # A rewritten point replaces the old.
  frames = np.asarray(sorted(points), dtype=np.int64)
  scores = np.asarray([points[f] for f in frames], dtype=np.float64)
  done = (folder / 'done.json').exists()
  return Curve(frames, scores, done, str(folder))


def load_sweep(root: str | pathlib.Path,
               name: str | None = None) -> list[MethodData]:
  """All methods found under a sweep log root, one MethodData per method.

  Labels are '<method> (ours)', or `name` ('name/<method>' when the root
  holds several methods).
  """
  root = pathlib.Path(root)
  methods: dict[str, MethodData] = {}
  skipped, crafter = [], False
  for folder in find_run_dirs(root):
    notes: list[str] = []
    try:
      config = read_config(folder)
      crafter |= str(config.get('task', '')).startswith('crafter_')
      game = games_lib.game_from_task(str(config['task']))
      seed = int(config['seed'])
    except (KeyError, TypeError, ValueError) as error:
      skipped.append(f'{folder}: not an Atari 100K run ({error}), skipped')
      continue
    label = method_label(config)
    if label not in methods:
      methods[label] = MethodData(label, str(root), False)
    methods[label].add(game, seed, read_eval_curve(folder, notes))
    methods[label].notes.extend(notes)
  result = []
  for label in sorted(methods, reverse=True):  # Harmony first.
    method = methods[label]
    if name:
      method.label = name if len(methods) == 1 else f'{name}/{label}'
    else:
      method.label = f'{label} (ours)'
    method.notes[:0] = skipped
    result.append(method)
  if not result and crafter:
    raise ValueError(f'No Atari 100K run folders found under {root}, but '
                     'Crafter runs: score them with python -m '
                     f'harmony_v3.scores.crafter {root}')
  if not result:
    why = f' ({len(skipped)} skipped: {skipped[0]})' if skipped else ''
    raise ValueError(f'No Atari 100K run folders found under {root}{why}')
  return result


def load_path(spec: str) -> list[MethodData]:
  """Load one CLI PATH argument ('PATH' or 'NAME=PATH')."""
  name, path = None, spec
  if '=' in spec and not pathlib.Path(spec).exists():
    name, path = spec.split('=', 1)
  path = pathlib.Path(path)
  if path.is_dir():
    return load_sweep(path, name)
  if path.is_file() and path.suffix == '.json':
    return [load_published(path, name)]
  raise FileNotFoundError(
      f'{path} is neither a sweep log directory nor a published-curves .json')


def load_paths(specs: Iterable[str]) -> list[MethodData]:
  """Load all PATH arguments, making the column labels unique."""
  methods = []
  seen: dict[str, int] = {}
  for spec in specs:
    for method in load_path(spec):
      count = seen.get(method.label, 0) + 1
      seen[method.label] = count
      if count > 1:
        method.label = f'{method.label} #{count}'
      methods.append(method)
  return methods


def read_harmony_weights(run_dir: str | pathlib.Path
                         ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Harmonizer weights of one run from metrics.jsonl: name -> (frames, w).

  Lines without the weight keys are skipped; names are reward, obs, dyn.
  """
  path = pathlib.Path(run_dir) / 'metrics.jsonl'
  series: dict[str, list[tuple[int, float]]] = {k: [] for k in WEIGHT_KEYS}
  if not path.is_file():
    return {}
  with open(path) as f:
    for line in f:
      if 'harmony_weight' not in line:
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        continue
      frames = row.get('frames')
      if frames is None and 'step' in row:
        frames = row['step'] * games_lib.FRAMES_PER_AGENT_STEP
      if frames is None:
        continue
      for name, key in WEIGHT_KEYS.items():
        if row.get(key) is not None:
          series[name].append((int(frames), float(row[key])))
  out = {}
  for name, points in series.items():
    if points:
      points.sort()
      out[name] = (np.array([p[0] for p in points]),
                   np.array([p[1] for p in points]))
  return out
