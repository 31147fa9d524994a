"""Experiment tracking: `--run.track wandb` sends a run to Weights & Biases.

The W&B run gets the config once, and every scalar that metrics.jsonl gets
(losses, the harmonizer weights `train/harmony_weight_*`, rates, episode and
evaluation scores) with frames as W&B's step, the x-axis of the paper's plots
and of TensorBoard here. Images, videos and histograms stay in TensorBoard.

A resumed run continues the same W&B run: its id is kept in the run folder
(`tracking.json`), and a fresh run in the same folder gets a new one. W&B's
steps only go forward: online, the stretch that a resume redoes is not sent
again where W&B already has it; offline, each attempt is its own
`offline-run-*` folder of the same run id.

W&B's own files go to `<run folder>/wandb` (or $WANDB_DIR); `WANDB_MODE=
offline` writes only there, for `wandb sync` later. `wandb` is an optional
extra: asking for it without it installed is a config error (exit 2).
"""
from __future__ import annotations

import collections
import importlib.util
import json
import os
import pathlib
import secrets

import embodied
import numpy as np

from .atomic_files import write_atomic
from .errors import RunError

TRACKERS = ('wandb',)
ID_FILE = 'tracking.json'
INSTALL = "pip install 'harmony_v3[track]' (or make install-track)"


def tracking_problems(run: embodied.Config) -> list[str]:
  """What is wrong with the `run.track*` keys, for config validation: an
  unknown tracker, or one whose package is not installed."""
  if not run.track:
    return []
  if run.track not in TRACKERS:
    return [f"run.track must be '' (off) or wandb, got '{run.track}'"]
  if not wandb_installed():
    return [f'run.track wandb needs the wandb package, which is not '
            f'installed: {INSTALL}']
  if not str(run.track_project).strip():
    return ['run.track_project must not be empty with run.track wandb']
  return []


def wandb_installed() -> bool:
  """Whether the wandb package can be imported (without importing it)."""
  try:
    return importlib.util.find_spec('wandb') is not None
  except ValueError:  # sys.modules['wandb'] is None: imports are blocked.
    return False


def method_name(config: embodied.Config) -> str:
  """'harmony' or 'dreamerv3', as in run folders and sweeps."""
  return 'harmony' if config.harmony.enabled else 'dreamerv3'


def wandb_run_id(logdir: pathlib.Path, resuming: bool) -> str:
  """The W&B run id of the run in `logdir`: the one kept in tracking.json
  when resuming a checkpoint, a new one (saved there) otherwise."""
  path = pathlib.Path(logdir) / ID_FILE
  if resuming and path.is_file():
    try:
      return str(json.loads(path.read_text())['wandb_id'])
    except (ValueError, KeyError, TypeError):
      pass  # Unreadable: the run goes on as a new W&B run.
  run_id = secrets.token_hex(6)
  write_atomic(path, (json.dumps({'wandb_id': run_id}) + '\n').encode())
  return run_id


class WandbOutput:
  """Logger output: the scalars of each log to one W&B run, frames as step.

  NaN scalars (metrics with no value yet) are left out, as in TensorBoard.
  """

  def __init__(self, config: embodied.Config, logdir: pathlib.Path,
               repeat: int, resuming: bool):
    try:
      import wandb
    except ImportError as e:
      raise RunError(f'run.track wandb: cannot import wandb ({e}); '
                     f'{INSTALL}') from None
    method = method_name(config)
    try:
      self.run = wandb.init(
          project=config.run.track_project,
          group=config.run.track_group or None,
          name=f'{method}/{config.task}/seed{config.seed}',
          tags=[method, config.task],
          config=dict(config),
          id=wandb_run_id(logdir, resuming), resume='allow',
          dir=None if os.environ.get('WANDB_DIR') else str(logdir),
          settings=wandb.Settings(console='off'))  # Leave our output be.
    except wandb.errors.Error as e:
      raise RunError(
          f'W&B could not start the run: {e}. Log in (wandb login), or '
          'track offline with WANDB_MODE=offline.') from None
    self.repeat = repeat

  def __call__(self, summaries) -> None:
    bystep = collections.defaultdict(dict)
    for step, name, value in summaries:
      value = np.asarray(value)
      if value.ndim == 0 and not np.isnan(value):
        bystep[int(step) * self.repeat][name] = float(value)
    for frames, scalars in sorted(bystep.items()):
      if frames >= self.run.step:  # W&B keeps the points it already has.
        self.run.log(scalars, step=frames)

  def close(self, exit_code: int) -> None:
    """Finish the W&B run; a nonzero `exit_code` marks it failed."""
    self.run.finish(exit_code=exit_code)


def make_tracker(config: embodied.Config, logdir: pathlib.Path,
                 repeat: int, resuming: bool) -> WandbOutput | None:
  """The logger output that `run.track` asks for, or None."""
  if config.run.track == 'wandb':
    return WandbOutput(config, logdir, repeat, resuming)
  return None
