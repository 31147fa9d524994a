"""The benchmark's data files: one small JSON per finished run.

  <root>/runs/<method>/<game>/seed<S>.json      method: harmony or dreamerv3

Each file holds one run's evaluation curve in the layout of the published
curves that `python -m harmony_v3.scores` reads
(`{"steps": [frames...], "score": {game: [[one curve per seed]]}}`, here
one seed), and beside it what the report needs and what says where the run
came from:

  format          'harmony_v3.minatar_run/1'
  method, game, seed
  steps           frames of each evaluation (1 frame per agent step)
  score           {game: [[mean evaluation return at each of steps]]}
  episodes        evaluation episodes behind each point
  harmony         Harmony runs: per harmonizer (reward, obs, dyn) its final
                  weight 1/sigma and the App. B optimum 1/sigma* of its
                  running mean loss (see harmony_v3.run.summary); else null
  config_digest   sha256 (first 16 hex) of the run's config without seed,
                  task, logdir and harmony.enabled: equal for runs made with
                  the same settings
  total_steps     the run's budget in agent steps (run.steps)
  wall_time_s     the trainer's time summed over the sweep's attempts (from
                  train.log), null if not known
  finished        when the run finished (done.json)
  machine         the machine that collected it (normally the one that
                  trained it) and the run's JAX platform
  source          the run folder it was collected from

The report is built from these files alone, so the benchmark can be run over
several sittings and machines: collect on each, commit the files.
"""
from __future__ import annotations

import dataclasses
import json
import math
import pathlib
from typing import Any

from harmony_v3.scores.minatar.benchmark import GAMES, METHODS

FORMAT = 'harmony_v3.minatar_run/1'
RUNS_DIR = 'runs'
HARMONIZERS = ('reward', 'obs', 'dyn')


class RecordError(ValueError):
  """A data file or run folder that cannot be used; the message names it."""


@dataclasses.dataclass
class RunRecord:
  """One finished run, as its data file holds it."""
  method: str
  game: str
  seed: int
  steps: list[int]                 # Frames of each evaluation, ascending.
  scores: list[float]              # Mean evaluation return at each.
  episodes: list[int]
  harmony: dict[str, dict[str, float]] | None
  config_digest: str
  total_steps: int
  wall_time_s: float | None
  finished: str | None
  machine: dict[str, Any]
  source: str
  path: pathlib.Path | None = None  # The file it was read from.

  @property
  def final(self) -> float:
    """The final evaluation's mean return (the run's score)."""
    return self.scores[-1]

  @property
  def final_frames(self) -> int:
    return self.steps[-1]

  @property
  def name(self) -> str:
    return f'{self.method}/{self.game}/seed{self.seed}'

  def to_json(self) -> dict:
    """The file's content."""
    return {
        'format': FORMAT, 'method': self.method, 'game': self.game,
        'seed': self.seed, 'steps': list(self.steps),
        'score': {self.game: [list(self.scores)]},
        'episodes': list(self.episodes), 'harmony': self.harmony,
        'config_digest': self.config_digest,
        'total_steps': self.total_steps, 'wall_time_s': self.wall_time_s,
        'finished': self.finished, 'machine': self.machine,
        'source': self.source}


def record_path(root: str | pathlib.Path, method: str, game: str,
                seed: int) -> pathlib.Path:
  """Where the data file of one run goes below `root`."""
  return pathlib.Path(root) / RUNS_DIR / method / game / f'seed{seed}.json'


def dumps(record: RunRecord) -> str:
  """The file's text: sorted keys, one value per line, newline at the end."""
  return json.dumps(record.to_json(), indent=1, sort_keys=True) + '\n'


def _number(value: Any) -> bool:
  return (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value))


def from_json(data: Any, path: pathlib.Path | None = None) -> RunRecord:
  """The record in `data` (a file's parsed JSON); RecordError naming `path`
  if it is not a data file of this benchmark."""
  where = str(path) if path else 'record'

  def bad(why: str) -> RecordError:
    return RecordError(f'{where}: not a MinAtar benchmark data file ({why})')

  if not isinstance(data, dict):
    raise bad('not a JSON object')
  if data.get('format') != FORMAT:
    raise bad(f'format {data.get("format")!r}, expected {FORMAT!r}')
  method, game, seed = data.get('method'), data.get('game'), data.get('seed')
  if method not in METHODS:
    raise bad(f'method {method!r}, expected one of {", ".join(METHODS)}')
  if game not in GAMES:
    raise bad(f'game {game!r}, expected one of {", ".join(GAMES)}')
  if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
    raise bad(f'seed {seed!r}')
  steps, score = data.get('steps'), data.get('score')
  if (not isinstance(steps, list) or not steps
      or not all(isinstance(s, int) and s >= 0 for s in steps)
      or steps != sorted(set(steps))):
    raise bad('steps must be a non-empty ascending list of frame counts')
  if (not isinstance(score, dict) or set(score) != {game}
      or not isinstance(score[game], list) or len(score[game]) != 1):
    raise bad(f'score must be {{"{game}": [[one curve]]}}')
  curve = score[game][0]
  if (not isinstance(curve, list) or len(curve) != len(steps)
      or not all(_number(x) for x in curve)):
    raise bad(f'the {game} curve must hold {len(steps)} finite numbers, one '
              'per step')
  episodes = data.get('episodes', [])
  harmony = data.get('harmony')
  if harmony is not None:
    ok = isinstance(harmony, dict) and all(
        isinstance(v, dict) and _number(v.get('weight'))
        and _number(v.get('optimal_weight')) for v in harmony.values())
    if not ok or not set(harmony) <= set(HARMONIZERS):
      raise bad('harmony must map reward/obs/dyn to {weight, optimal_weight}')
  if path is not None:
    expected = pathlib.PurePath(method, game, f'seed{seed}.json')
    if pathlib.PurePath(*path.parts[-3:]) != expected:
      raise bad(f'it holds {method}/{game}/seed{seed} but is named '
                f'{"/".join(path.parts[-3:])}')
  return RunRecord(
      method, game, seed, list(steps), [float(x) for x in curve],
      list(episodes), harmony, str(data.get('config_digest', '')),
      int(data.get('total_steps') or 0), data.get('wall_time_s'),
      data.get('finished'), dict(data.get('machine') or {}),
      str(data.get('source', '')), path)


def read_record(path: str | pathlib.Path) -> RunRecord:
  """One data file; RecordError naming it if it cannot be used."""
  path = pathlib.Path(path)
  try:
    data = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError) as e:
    raise RecordError(f'{path}: cannot read it ({e})') from None
  except json.JSONDecodeError as e:
    raise RecordError(f'{path}: not JSON ({e})') from None
  return from_json(data, path)


def load_records(root: str | pathlib.Path) -> list[RunRecord]:
  """Every data file below root/runs, sorted by method, game and seed.

  Raises RecordError naming the first file that is not a data file of this
  benchmark (any other *.json under runs/ included), or if `root` holds no
  runs/ folder.
  """
  root = pathlib.Path(root)
  runs = root / RUNS_DIR
  if not runs.is_dir():
    raise RecordError(f'{root}: no {RUNS_DIR}/ folder of MinAtar benchmark '
                      'data files (made by the collect command)')
  records = [read_record(p) for p in sorted(runs.rglob('*.json'))]
  order = {m: i for i, m in enumerate(METHODS)}
  games = {g: i for i, g in enumerate(GAMES)}
  records.sort(key=lambda r: (order[r.method], games[r.game], r.seed))
  return records
