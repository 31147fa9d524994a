"""The replay chunk files that a checkpoint accounts for.

The replay buffer lives in `replay/*.npz`, one file per chunk of steps (the
base's `Saver`, 1024 steps a chunk). Chunk files are written at two moments:
when a chunk is full, at any time between checkpoints, and at each
checkpoint, for the unfinished chunks, each under a new name that holds its
length. So the folder can hold steps that no checkpoint accounts for, and
several saves of one chunk.

Each checkpoint therefore records a manifest: the chunk files it accounts
for, each with its step count and size in bytes. Before a run resumes,
`reconcile` makes the folder hold exactly those files: any other chunk file
was written after the checkpoint, or is an older save of a chunk, and is
deleted, with a message; a file of the manifest that is missing or has
another size stops the resume with an error that names it. After each
checkpoint, `collect_garbage` deletes the saves it superseded.

Only files named as the base names chunks (`CHUNK_NAME`) are chunk files.
The base's loader reads every `*.npz` in the folder as a chunk and fails on
any other name (`Chunk.scan` takes the step count from the fourth part of the
name), so `reconcile` refuses a run whose replay folder holds another
`*.npz` (a user's `notes.npz`), naming it, before it changes anything; it
never deletes such a file.
"""
from __future__ import annotations

import os
import pathlib
import re
from typing import Callable

from .atomic_files import TMP_SUFFIX
from .checkpoint import CheckpointError


class ReplayError(CheckpointError):
  """The replay files do not match the checkpoint that should account for
  them."""


# `<time>-<uuid>-<successor>-<steps>.npz` (embodied.replay.chunk.Chunk.save;
# times and uuids are letters and digits).
CHUNK_NAME = re.compile(r'[0-9A-Za-z]+-[0-9A-Za-z]+-[0-9A-Za-z]+-[0-9]+\.npz')


def is_chunk_name(name: str) -> bool:
  """Whether `name` is a replay chunk file's name."""
  return CHUNK_NAME.fullmatch(name) is not None


def foreign_files(directory: pathlib.Path) -> list[pathlib.Path]:
  """The `*.npz` entries of `directory` that are not chunk files: the
  base's loader would read them as chunks and fail."""
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  return sorted(p for p in directory.glob('*.npz')
                if not is_chunk_name(p.name))


def chunk_steps(name: str) -> int:
  """Steps in a chunk file, from its name (`<time>-<uuid>-<next>-<steps>`)."""
  return int(pathlib.Path(name).stem.split('-')[3])


def _chunk_uuid(name: str) -> str:
  return pathlib.Path(name).stem.split('-')[1]


def _chunk_files(directory: pathlib.Path) -> list[pathlib.Path]:
  if not directory.is_dir():
    return []
  return sorted(p for p in directory.glob('*.npz')
                if p.is_file() and is_chunk_name(p.name))


def make_manifest(directory: pathlib.Path) -> dict[str, dict]:
  """The latest save of each chunk in `directory`: name -> steps, bytes.

  Call it once the replay has saved every chunk (`replay.save(wait=True)`).
  """
  latest = {}
  for path in _chunk_files(pathlib.Path(directory)):
    uuid = _chunk_uuid(path.name)
    if uuid not in latest or chunk_steps(path.name) > chunk_steps(
        latest[uuid].name):
      latest[uuid] = path
  return {p.name: {'steps': chunk_steps(p.name), 'bytes': p.stat().st_size}
          for p in sorted(latest.values())}


def manifest_steps(manifest: dict[str, dict]) -> int:
  """Steps of replay that a manifest accounts for."""
  return sum(entry['steps'] for entry in manifest.values())


def reconcile(directory: pathlib.Path, manifest: dict[str, dict],
              step: int, checkpoint: pathlib.Path | None,
              log: Callable[[str], None] = print) -> None:
  """Make `directory` hold exactly the manifest's chunk files.

  `step` and `checkpoint` describe the checkpoint the manifest belongs to
  (None for a fresh start, whose manifest is empty). Raises ReplayError,
  naming the file, if a manifest file is missing or has another size, or
  if the folder holds a `*.npz` file that is not a chunk; then nothing has
  been changed.
  """
  directory = pathlib.Path(directory)
  where = (f'the checkpoint {checkpoint} (step {step:,})' if checkpoint
           else 'a fresh start')
  advice = ('Restore it, or move the checkpoint away to start this run '
            'from scratch (or use a new --logdir).')
  if manifest and not directory.is_dir():
    raise ReplayError(
        f'The replay folder {directory} is missing, but {where} accounts for '
        f'{len(manifest)} chunk files ({manifest_steps(manifest):,} steps) '
        f'in it. {advice}')
  foreign = foreign_files(directory)
  if foreign:
    others = f' (and {len(foreign) - 1} more)' if len(foreign) > 1 else ''
    raise ReplayError(
        f'{foreign[0]}{others} is not a replay chunk file (chunks are named '
        '<time>-<uuid>-<successor>-<steps>.npz), and the replay would try '
        'to load every .npz file in that folder. Move it out of '
        f'{directory}, then run the same command again; nothing was changed.')
  present = {p.name: p for p in _chunk_files(directory)}
  missing = sorted(set(manifest) - set(present))
  if missing:
    raise ReplayError(
        f'{len(missing)} replay chunk files that {where} accounts for are '
        f'missing from {directory}, e.g. {missing[0]}. {advice}')
  for name, entry in manifest.items():
    size = present[name].stat().st_size
    if size != entry['bytes']:
      raise ReplayError(
          f'Replay chunk {present[name]} is damaged: {size:,} bytes, but '
          f'{where} recorded {entry["bytes"]:,}. {advice}')
  extra = sorted(set(present) - set(manifest))
  kept = {_chunk_uuid(n): chunk_steps(n) for n in manifest}
  newer = {}  # Steps per chunk beyond what the checkpoint accounts for.
  for name in extra:
    uuid = _chunk_uuid(name)
    beyond = chunk_steps(name) - kept.get(uuid, 0)
    newer[uuid] = max(newer.get(uuid, 0), beyond)
  for name in extra:
    present[name].unlink()
  for tmp in (directory.glob('*' + TMP_SUFFIX) if directory.is_dir() else ()):
    tmp.unlink()
  steps = sum(newer.values())
  if steps and checkpoint:
    log(f'Discarded {steps:,} replay steps ({len(extra)} chunk files) '
        f'written after {where}: that part of the run is redone.')
  elif steps:
    log(f'Discarded {steps:,} replay steps ({len(extra)} chunk files) '
        'that no checkpoint accounts for: the run starts from scratch.')


def collect_garbage(directory: pathlib.Path,
                    manifest: dict[str, dict]) -> None:
  """Delete chunk files that a committed manifest superseded."""
  for path in _chunk_files(pathlib.Path(directory)):
    if path.name not in manifest:
      try:
        os.remove(path)
      except FileNotFoundError:
        pass
