"""Checkpoints: written atomically, checked before anything is loaded.

A checkpoint holds the agent's variables (parameters, optimizer states and
the harmonizers), the step counter and the run's own counters. The replay
buffer is saved beside it by the replay itself (`replay/*.npz`).
"""
from __future__ import annotations

import os
import pathlib
import pickle
import time

import jax
import numpy as np

FORMAT = 'harmony_v3/checkpoint/1'


class CheckpointError(RuntimeError):
  """A checkpoint that cannot be read or does not fit the current run."""


def save_checkpoint(path: pathlib.Path, payload: dict) -> None:
  """Pickle `payload` to `path` via a temporary file and an atomic rename."""
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + '.tmp')
  with tmp.open('wb') as f:
    pickle.dump({'format': FORMAT, 'time': time.time(), **payload}, f,
                protocol=pickle.HIGHEST_PROTOCOL)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


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
  if not isinstance(payload, dict) or payload.get('format') != FORMAT:
    raise CheckpointError(
        f'{path} is not a harmony_v3 checkpoint (format '
        f'{payload.get("format") if isinstance(payload, dict) else "?"}).')
  for key in ('step', 'agent', 'run'):
    if key not in payload:
      raise CheckpointError(f'Checkpoint {path} lacks its {key!r} entry.')
  return payload


def _signature(tree) -> dict[str, tuple]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(p): (np.shape(v), np.asarray(v).dtype.str)
          for p, v in leaves}


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
