"""Replay chunks saved twice are loaded twice.

`embodied.replay.saver.Saver.save` writes every unfinished chunk to disk, and
the chunk keeps filling; the next save (or the save when it is full) writes it
again under a new file name, since the name contains the length. On restart
`Saver.load` reads every file, so each resumed run duplicates the steps of
every chunk that was saved while unfinished. Here a chunk's save removes the
shorter files of the same chunk, and a save never replaces a longer file.
"""
from __future__ import annotations

import threading

import dreamerv3  # noqa: F401  (makes `embodied` importable)
import embodied
from embodied.replay import chunk as chunklib

_ORIGINAL_SAVE = chunklib.Chunk.save
_LOCK = threading.Lock()


def _length_of(filename) -> int:
  return int(embodied.Path(filename).stem.split('-')[3])


def _save(self, directory):
  with _LOCK:
    directory = embodied.Path(directory)
    versions = list(directory.glob(f'*-{self.uuid}-*.npz'))
    length = self.length  # The chunk may grow while this runs.
    if any(_length_of(f) > length for f in versions):
      return  # A longer save of this chunk already exists.
    _ORIGINAL_SAVE(self, directory)
    saved = sorted(directory.glob(f'*-{self.uuid}-*.npz'), key=_length_of)
    for f in saved[:-1]:  # Keep only the longest version.
      f.remove()


def is_applied() -> bool:
  return chunklib.Chunk.save is _save


def apply() -> None:
  chunklib.Chunk.save = _save
