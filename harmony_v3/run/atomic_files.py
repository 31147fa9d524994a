"""Files written whole or not at all, for anything a kill must not tear.

`write_atomic` writes to a temporary file next to the target, syncs it,
renames it over the target and syncs the folder: after a kill, a crash or a
full disk the target holds either its old content or the new one. Used for
checkpoints, logs, replay chunks, the study's files and the sweep's plans.
"""
from __future__ import annotations

import os
import pathlib
from typing import Callable

from . import faults

TMP_SUFFIX = '.tmp'


def name_the_file(error: OSError, path: pathlib.Path) -> OSError:
  """`error` again, its message naming `path` (the file being written)."""
  return type(error)(error.errno, f'{error.strerror} (writing {path})',
                     str(path))


def _fsync_dir(directory: pathlib.Path) -> None:
  fd = os.open(directory, os.O_RDONLY)
  try:
    os.fsync(fd)
  finally:
    os.close(fd)


def write_atomic(path: pathlib.Path, data: bytes,
                 before_rename: Callable[[], None] | None = None) -> None:
  """Write `data` to `path` through a synced temporary file and a rename.

  On failure the temporary file is removed and the OSError names `path`;
  whatever was at `path` before is left as it was. `before_rename` runs
  between the write and the rename (the fault-injection tests use it).
  """
  path = pathlib.Path(path)
  tmp = path.with_name(path.name + TMP_SUFFIX)
  try:
    faults.check_write(tmp)
    with open(tmp, 'wb') as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    if before_rename:
      before_rename()
    os.replace(tmp, path)
  except OSError as e:
    tmp.unlink(missing_ok=True)
    raise name_the_file(e, path) from None
  _fsync_dir(path.parent)
