"""Checkpoints: written atomically, checked before anything is loaded.

A checkpoint holds the agent's variables (parameters, optimizer states and
the harmonizers), the step counter, the run's own counters, the run's config
and the manifest of the replay chunk files it accounts for (see
`replay_files`). It is the one record of where a run is: on resume, the
logs and the replay folder are brought back to it.
"""
from __future__ import annotations

import pathlib
import pickle
import time

import jax
import numpy as np

from . import faults
from .atomic_files import write_atomic
from .errors import RunError

FORMAT = 'harmony_v3/checkpoint/2'
# Version 1 had no config and no replay manifest; such checkpoints resume
# with the replay folder as found and the config checked against config.yaml.
OLD_FORMATS = ('harmony_v3/checkpoint/1',)


class CheckpointError(RunError):
  """A checkpoint that cannot be read or does not fit the current run."""


def save_checkpoint(path: pathlib.Path, payload: dict) -> None:
  """Pickle `payload` to `path` atomically (see `write_atomic`)."""
  data = pickle.dumps({'format': FORMAT, 'time': time.time(), **payload},
                      protocol=pickle.HIGHEST_PROTOCOL)
  write_atomic(path, data, before_rename=lambda: faults.point(
      'during_checkpoint_write'))


def load_checkpoint(path: pathlib.Path) -> dict:
  """Read a checkpoint, raising CheckpointError if it is not a valid one."""
  path = pathlib.Path(path)
  try:
    with path.open('rb') as f:
      payload = pickle.load(f)
  except Exception as e:  # Truncated, garbled or foreign file.
    raise CheckpointError(
        f'Checkpoint {path} is corrupt or unreadable ({type(e).__name__}: '
        f'{e}). Move it away to start this run from scratch.') from None
  if not isinstance(payload, dict) or payload.get('format') not in (
      FORMAT, *OLD_FORMATS):
    raise CheckpointError(
        f'{path} is not a harmony_v3 checkpoint (format '
        f'{payload.get("format") if isinstance(payload, dict) else "?"}).')
  needed = ('step', 'agent', 'run') + (
      ('config', 'replay') if payload['format'] == FORMAT else ())
  for key in needed:
    if key not in payload:
      raise CheckpointError(f'Checkpoint {path} lacks its {key!r} entry.')
  return payload


def _signature(tree) -> dict[str, tuple]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): (np.shape(v), np.asarray(v).dtype.str)
          for p, v in leaves}


def nonfinite_leaves(tree) -> list[str]:
  """Names of the floating-point leaves of `tree` holding NaN or inf."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  bad = []
  for keys, value in leaves:
    value = np.asarray(value)
    if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(
        value).all():
      bad.append(jax.tree_util.keystr(keys))
  return bad


def check_compatible(saved, current, path: pathlib.Path) -> None:
  """Raise CheckpointError unless both variable trees match in keys and shapes."""
  saved, current = _signature(saved), _signature(current)
  missing = sorted(set(current) - set(saved))
  extra = sorted(set(saved) - set(current))
  changed = sorted(k for k in set(saved) & set(current)
                   if saved[k] != current[k])
  if not (missing or extra or changed):
    return
  lines = [f'Checkpoint {path} does not fit this model:']
  for title, keys in (('missing', missing), ('unexpected', extra)):
    if keys:
      lines.append(f'  {len(keys)} {title} variables, e.g. {keys[:3]}')
  for key in changed[:3]:
    lines.append(f'  {key}: saved {saved[key]}, now {current[key]}')
  lines.append('Was it written with another config (model size, '
               'harmony.enabled)? Use a new --logdir for a new config.')
  raise CheckpointError('\n'.join(lines))
