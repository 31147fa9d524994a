"""Errors that end a run with a clear message and exit code 2.

Each is raised where the problem is found, with a message that names the
file or value at fault and says what the user can do. `train.main` prints
the message (no traceback) and exits with code 2.
"""
from __future__ import annotations

import errno
import pathlib
import shutil


class RunError(RuntimeError):
  """A problem that ends a run with a one-line message and exit code 2."""


class NonFiniteError(RunError):
  """A training loss, an action or a parameter became NaN or infinite."""


class DiskFullError(RunError):
  """No space left on the device while writing a run file."""


class DiskError(RunError):
  """The disk failed while writing a run file (I/O error, read-only...)."""


# Errors of a failing disk or filesystem, besides a full one: I/O errors,
# a filesystem remounted read-only, a stale network file handle, lost
# permissions.
DISK_ERRNOS = (errno.EIO, errno.EROFS, errno.ESTALE, errno.EACCES,
               errno.EPERM)


def is_disk_error(error: BaseException) -> bool:
  """Whether `error` is an OSError of a full or failing disk."""
  return is_disk_full(error) or (
      isinstance(error, OSError) and error.errno in DISK_ERRNOS)


def is_disk_full(error: BaseException) -> bool:
  """Whether `error` is an OSError for a full device (or a quota)."""
  return isinstance(error, OSError) and error.errno in (
      errno.ENOSPC, errno.EDQUOT)


def free_space(path: pathlib.Path) -> str:
  """The free space on the device holding `path`, for messages: '1.2 MB'."""
  path = pathlib.Path(path)
  while not path.exists() and path != path.parent:
    path = path.parent
  try:
    free = shutil.disk_usage(path).free
  except OSError:
    return 'unknown'
  units = ('bytes', 'KB', 'MB', 'GB', 'TB')
  for unit in units:
    if free < 1000 or unit == units[-1]:
      return f'{free:.0f} {unit}' if unit == 'bytes' else f'{free:.1f} {unit}'
    free /= 1000
