"""python -m harmony_v3.study: the command line, resume and progress.

Layout of OUT (default ~/logdir/harmony_v3_study, or ..._quick for --quick):

  study.json            the settings; a rerun must match (arms and seeds may grow)
  data/                 the dataset (train.npz, heldout.npz, dataset.json)
  reference.json        held-out errors of the mean-reward reference
  results/ARM__seedN.json  one finished (arm, seed), written atomically
  table.md, table.csv, runs.csv, figures/*.png, adaptation.md
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import time
from typing import Sequence

from ..run.progress import format_duration
from . import settings as study_settings

USAGE = """python -m harmony_v3.study [--out DIR] [--preset default|equilibrium]
    [--quick] [--arms ARM ...]
    [--seeds N] [--updates N] [--games GAME ...] [--platform auto|cpu|gpu]
    [--progress auto|bar|lines|off] [--workers N] [--json FILE]"""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.study', usage=USAGE,
      description=sys.modules['harmony_v3.study'].__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--out', default=None, help='study folder')
  parser.add_argument('--preset', default='default',
                      choices=list(study_settings.PRESETS),
                      help='default: 2,000 updates, six arms, 2 seeds; '
                           "equilibrium: until the harmony arm's "
                           'harmonizers reach their optimum')
  parser.add_argument('--quick', action='store_true',
                      help="a tiny study in about a minute (tests, GPU "
                           "check): the preset's arms and seeds, tiny sizes")
  parser.add_argument('--arms', nargs='+', default=None,
                      help="arms to run (default: the preset's): "
                           + ', '.join(study_settings.ARMS))
  parser.add_argument('--seeds', type=int, default=None,
                      help="number of seeds per arm (default: the preset's)")
  parser.add_argument('--updates', type=int, default=None)
  parser.add_argument('--eval-every', type=int, default=None)
  parser.add_argument('--games', nargs='+', default=None)
  parser.add_argument('--platform', default='auto',
                      choices=['auto', 'cpu', 'gpu'])
  parser.add_argument('--progress', default='auto',
                      choices=['auto', 'bar', 'lines', 'off'])
  parser.add_argument('--workers', type=int, default=None,
                      help='processes training arms at once (default: 2 on '
                           'a CPU with 2 or more cores, 1 on a GPU)')
  parser.add_argument('--json', default=None,
                      help='also write the table, reference and timing here')
  return parser.parse_args(argv)


def build_settings(args) -> study_settings.Settings:
  base = study_settings.preset(args.preset, args.quick)
  seeds = None if args.seeds is None else tuple(range(args.seeds))
  return study_settings.with_overrides(
      base, arms=args.arms, seeds=seeds, updates=args.updates,
      eval_every=args.eval_every, games=args.games)


class StudyProgress:
  """One status line (in place on a TTY, else a line every 30 s) with the
  runs in progress, the study's updates and ETA, and the last held-out
  error."""

  def __init__(self, total_updates: int, mode: str = 'auto', stream=None):
    self.stream = stream or sys.stdout
    if mode == 'auto':
      mode = 'bar' if self.stream.isatty() else 'lines'
    self.mode = mode
    self.every = 0.5 if mode == 'bar' else 30.0
    self.total = total_updates
    self.finished = 0      # updates of finished runs
    self.active = {}       # label -> updates done
    self.resumed = {}      # label -> the update it resumed from (0 if new)
    self.resumed_total = 0  # of finished runs; not counted in the rate
    self.start = time.time()
    self._last = 0.0
    self.text = ''

  def update(self, label: str, update: int, of: int,
             metrics: dict | None) -> None:
    """Record run `label` at `update` of `of`; print if it is time."""
    self.active[label] = update
    self.resumed.setdefault(label, update)
    if metrics:
      self.text = (f"{label}: held-out reward error "
                   f"{metrics['reward_mse_tf']:.4f} tf / "
                   f"{metrics['reward_mse_ol']:.4f} ol, obs "
                   f"{metrics['obs_loss_tf']:.1f}")
    now = time.time()
    if self.mode == 'off' or (now - self._last < self.every and not metrics):
      return
    self._last = now
    done = self.finished + sum(self.active.values())
    done_here = done - self.resumed_total - sum(self.resumed.values())
    elapsed = now - self.start
    eta = (self.total - done) * elapsed / done_here if done_here > 0 else 0
    runs = ', '.join(f'{k} {v:,}/{of:,}' for k, v in self.active.items())
    line = (f'[{runs}] study {done:,}/{self.total:,} updates, ETA '
            f'{format_duration(eta)} | {self.text}')
    if self.mode == 'bar':
      self.stream.write('\r\033[K' + line)
    else:
      self.stream.write(line + '\n')
    self.stream.flush()

  def finish_run(self, label: str) -> None:
    self.finished += self.active.pop(label, 0)
    self.resumed_total += self.resumed.pop(label, 0)

  def message(self, text: str) -> None:
    if self.mode == 'bar':
      self.stream.write('\r\033[K')
    self.stream.write(text + '\n')
    self.stream.flush()


def _check_study_file(out: pathlib.Path, settings) -> str | None:
  """A message if OUT holds a study with other settings (arms and seeds may
  differ: results are per (arm, seed)), or files the study cannot read
  (study.json, results/*.json, data/dataset.json), or is not a folder."""
  from .data import read_json
  from .report import read_results
  path = out / 'study.json'
  mine = dataclasses.asdict(settings)
  if out.exists() and not out.is_dir():
    return f'--out {out} is a file, not a folder'
  advice = ('Use another --out; or delete it, and results/ there count as '
            "made with this command's settings.")
  try:
    if (out / 'results').is_dir():
      read_results(out / 'results')
    dataset = out / 'data' / 'dataset.json'
    if dataset.exists():
      again = f"Delete {dataset.parent} to collect the dataset again."
      info = read_json(dataset, "the dataset's description", again)
      if not isinstance(info, dict) or 'settings' not in info:
        return f"{dataset} is not the dataset's description. {again}"
    if not path.exists():
      return None
    saved = read_json(path, "the study's settings", advice)
  except study_settings.StudyError as e:
    return str(e)
  if not isinstance(saved, dict) or not isinstance(saved.get('settings'),
                                                   dict):
    return f"{path} is not the study's settings (no \"settings\"). {advice}"
  saved = saved['settings']
  differ = [k for k in mine if k not in ('arms', 'seeds')
            and json.loads(json.dumps(mine[k])) != saved.get(k)]
  if differ:
    return (f'{out} holds a study with other settings ({", ".join(differ)}); '
            'use another --out or delete it')
  return None


def _setup_platform(platform: str) -> str:
  import jax
  if platform == 'auto':
    return 'gpu' if jax.default_backend() in ('gpu', 'cuda') else 'cpu'
  if platform == 'gpu':
    try:
      jax.devices('gpu')
    except RuntimeError:
      raise study_settings.StudyError('--platform gpu: no GPU found') from None
  return platform


def run(settings, out: pathlib.Path, platform: str,
        progress_mode: str = 'auto', workers: int = 1
        ) -> tuple[dict[str, pathlib.Path], list[dict]]:
  """Run (or resume) the study in `out`; returns the report's paths and the
  table's rows."""
  import harmony_v3  # noqa: F401  (patches)
  from .. import adaptation
  from . import data as study_data
  from . import jobs as study_jobs
  from . import report, runs
  from .data import write_json_atomic

  out.mkdir(parents=True, exist_ok=True)
  (out / 'results').mkdir(exist_ok=True)
  write_json_atomic(out / 'study.json', {
      'settings': dataclasses.asdict(settings),
      'command': 'python -m harmony_v3.study ' + ' '.join(sys.argv[1:])})
  todo = [(arm, [s for s in settings.seeds if not study_jobs.result_path(
      out, arm, s).exists()]) for arm in settings.arms]
  todo = [(arm, seeds) for arm, seeds in todo if seeds]
  runs_left = sum(len(seeds) for _, seeds in todo)
  progress = StudyProgress(runs_left * settings.updates, progress_mode)
  say = progress.message
  train, heldout_split, info = study_data.load_or_collect(
      out / 'data', settings.games, settings.train_steps_per_game,
      settings.heldout_steps_per_game, settings.data_seed, say)
  del train  # The training processes load it themselves.
  heldout = runs.HeldOut(heldout_split, settings,
                         max(info['action_sets'].values()))
  del heldout_split
  reference = study_data_reference(info, heldout)
  write_json_atomic(out / 'reference.json', reference)
  say('Reference (the training set\'s mean symlog reward of each game): '
      f"held-out reward error {reference['reward_mse_tf']:.4f}")
  total = len(settings.arms) * len(settings.seeds)
  if runs_left < total:
    say(f'Resuming: {total - runs_left} of {total} (arm, seed) results '
        'already in results/, skipped')
  if runs_left and workers > 1:
    say(f'Training {runs_left} (arm, seed) runs in {min(workers, len(todo))} '
        'worker processes, one arm per worker at a time.')

  def handle(event):
    kind = event[0]
    if kind == 'progress':
      progress.update(*event[1:])
    elif kind == 'message':
      say(event[1])
    elif kind == 'done':
      label, result = event[1:]
      progress.finish_run(label)
      timing = result['timing']
      say(f"Done {label}: {timing['updates_per_s']:.2f} updates/s, compile "
          f"{timing['compile_s']:.0f} s; held-out reward error "
          f"{result['final']['reward_mse_tf']:.4f} (reference "
          f"{reference['reward_mse_tf']:.4f})")

  errors = study_jobs.run_jobs(out, settings, platform, todo, workers, handle)
  if errors:
    raise RuntimeError('study worker failed:\n' + '\n'.join(errors))
  paths, rows = report.write(out, reference)
  measured = adaptation.measure([1, 5, 150, 1500],
                                [adaptation.PAPER_LR, 1e-3, 1e-2])
  (out / 'adaptation.md').write_text(
      'Adam updates until s is within 10% of log sigma* under a constant '
      'loss L (python -m harmony_v3.adaptation):\n\n'
      + adaptation.markdown(measured) + '\n')
  paths['adaptation'] = out / 'adaptation.md'
  return paths, rows


def study_data_reference(info: dict, heldout) -> dict:
  """The reference's held-out errors (see evaluate.reference_metrics)."""
  from . import evaluate
  means = [info['train']['games'][g]['mean_symlog_reward']
           for g in heldout.game_names]
  reference = evaluate.reference_metrics(
      means, heldout.targets, heldout.games, heldout.game_names)
  reference['train_mean_symlog_reward'] = dict(zip(heldout.game_names, means))
  return reference


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(list(sys.argv[1:] if argv is None else argv))
  settings = build_settings(args)
  problems = study_settings.check(settings)
  if problems:
    print('error: ' + '; '.join(problems), file=sys.stderr)
    return 2
  default = ('~/logdir/harmony_v3_study'
             + ('' if args.preset == 'default' else f'_{args.preset}')
             + ('_quick' if args.quick else ''))
  out = pathlib.Path(os.path.expanduser(args.out or default)).resolve()
  message = _check_study_file(out, settings)
  json_folder = pathlib.Path(args.json).parent if args.json else None
  if json_folder and not json_folder.is_dir():
    message = f'--json {args.json}: the folder {json_folder} does not exist'
  if message:
    print(f'error: {message}', file=sys.stderr)
    return 2
  from .data import DatasetError
  try:
    platform = _setup_platform(args.platform)
    # One process on an accelerator: a second would not get its memory.
    workers = 1 if platform != 'cpu' else args.workers or min(
        2, os.cpu_count() or 1)
    start = time.time()
    paths, rows = run(settings, out, platform, args.progress, workers)
  except (DatasetError, study_settings.StudyError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except KeyboardInterrupt:
    print('\nInterrupted: finished (arm, seed) results are kept; rerun the '
          'same command to resume.', file=sys.stderr)
    return 130
  seconds = time.time() - start
  print(f'Study done in {format_duration(seconds)} ({os.cpu_count()} CPUs, '
        f'load {os.getloadavg()[0]:.1f}). Table: {paths["table_md"]}')
  print(paths['table_md'].read_text())
  for name, path in paths.items():
    if name != 'table_md':
      print(f'  {name}: {path}')
  if args.json:
    from .data import write_json_atomic
    write_json_atomic(pathlib.Path(args.json), {
        'command': 'python -m harmony_v3.study ' + ' '.join(
            sys.argv[1:] if argv is None else argv),
        'settings': dataclasses.asdict(settings), 'platform': platform,
        'seconds': round(seconds, 1), 'date': time.strftime('%Y-%m-%d'),
        'loadavg': os.getloadavg(), 'rows': rows,
        'reference': json.loads((out / 'reference.json').read_text()),
        'paths': {k: str(v) for k, v in paths.items()}})
  return 0
