"""Replay chunk files are written in place, and a bad one is never named.

`embodied.replay.chunk.Chunk.save` writes a chunk straight to its final name
(`<time>-<uuid>-<successor>-<length>.npz`). A kill or a full disk during the
write leaves a truncated file under that name; every later load reads it,
and `Chunk.load` fails with `BadZipFile` (or `EOFError`), naming no file.

Here a chunk is written with `harmony_v3.run.atomic_files.write_atomic` (to
`<name>.tmp` in the same folder, flushed to disk, renamed), so a file under
a chunk's final name is always complete. A failed write removes the
temporary file and raises an OSError that names the chunk file. A chunk file that cannot be read raises `ChunkReadError`, which
names it. File names, contents and the `Saved chunk:` line are as before.
"""
from __future__ import annotations

import io
import pathlib

import numpy as np

import dreamerv3  # noqa: F401  (makes `embodied` importable)
import embodied
from embodied.replay import chunk as chunklib

from harmony_v3.run import faults
from harmony_v3.run.atomic_files import write_atomic

_ORIGINAL_LOAD = chunklib.Chunk.load.__func__


class ChunkReadError(OSError):
  """A replay chunk file that is truncated, garbled or unreadable."""


def _save(self, directory):
  succ = self.successor or str(embodied.uuid(0))
  succ = succ.uuid if isinstance(succ, type(self)) else succ
  path = embodied.Path(directory) / (
      f'{self.time}-{self.uuid}-{succ}-{self.length}.npz')
  data = {k: embodied.convert(v) for k, v in self.data.items()}
  with io.BytesIO() as stream:
    np.savez_compressed(stream, **data)
    write_atomic(pathlib.Path(str(path)), stream.getvalue())
  print(f'Saved chunk: {path.name}')
  if self.length == self.size:
    faults.point('after_full_chunk_write')


def _load(cls, filename):
  try:
    return _ORIGINAL_LOAD(cls, filename)
  except Exception as e:  # Truncated, garbled, unreadable.
    raise ChunkReadError(
        f'Replay chunk {filename} is corrupt or unreadable '
        f'({type(e).__name__}: {e})') from None


def is_applied() -> bool:
  return chunklib.Chunk.save is _save


def apply() -> None:
  chunklib.Chunk.save = _save
  chunklib.Chunk.load = classmethod(_load)
