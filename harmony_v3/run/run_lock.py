"""The trainer's lock on its run folder: one trainer per folder at a time.

A trainer holds an exclusive `fcntl.flock` on the run folder itself and on
`<logdir>/.trainer.lock`, from before it reads or writes anything in the
folder until it exits (the kernel drops both when the process ends, however
it ends, kill -9 included). A second trainer on the same folder finds a lock
taken and stops with a clear error before it changes anything.

The lock on the folder is what keeps a second trainer out when the lock file
has been deleted under a running trainer (a cleanup script, a user): a
folder cannot be deleted while it holds a run. Some network filesystems
refuse locks on folders; there the lock file alone keeps trainers apart, and
`RunLock.check` lets a trainer find out before each checkpoint that its lock
file is gone or replaced, and stop rather than write beside another trainer.

This lock is the trainer's own; the sweep's `.sweep.lock` is separate and
only keeps two sweeps apart.
"""
from __future__ import annotations

import errno
import fcntl
import os
import pathlib

from .errors import RunError

LOCK_NAME = '.trainer.lock'
# What flock on a folder raises where the filesystem cannot lock folders.
_NO_FOLDER_LOCKS = (errno.EBADF, errno.EINVAL, errno.ENOLCK, errno.EOPNOTSUPP)


class RunLockedError(RunError):
  """Another trainer is training in this run folder."""


class RunLock:
  """The locks one trainer holds on one run folder."""

  def __init__(self, folder: pathlib.Path, file_fd: int,
               folder_fd: int | None):
    self.folder = pathlib.Path(folder)
    self.path = self.folder / LOCK_NAME
    self.file_fd = file_fd
    self.folder_fd = folder_fd

  def check(self) -> None:
    """Raise RunLockedError if this trainer may no longer hold the folder:
    its folder could not be locked, and the lock file is no longer the one
    it locked (deleted or replaced), so another trainer may train there."""
    if self.folder_fd is not None:
      return  # The folder's own lock keeps every other trainer out.
    try:
      on_disk = os.stat(self.path)
    except FileNotFoundError:
      on_disk = None
    held = os.fstat(self.file_fd)
    if on_disk is None or (on_disk.st_dev, on_disk.st_ino) != (
        held.st_dev, held.st_ino):
      raise RunLockedError(
          f'The lock file {self.path} of this trainer was deleted or '
          'replaced while it trained, so another trainer may be training '
          'in the same folder. This trainer stops without writing a new '
          'checkpoint; run the same command again once no other trainer '
          'uses the folder.')

  def release(self) -> None:
    """Give the locks back (they also go when the process ends)."""
    for fd in (self.file_fd, self.folder_fd):
      if fd is None:
        continue
      try:
        fcntl.flock(fd, fcntl.LOCK_UN)
      finally:
        os.close(fd)
    self.file_fd = self.folder_fd = None


def _refuse(folder: pathlib.Path, what: pathlib.Path) -> RunLockedError:
  return RunLockedError(
      f'Another trainer is training in {folder} (it holds {what}). Wait '
      'for it to end or stop it; two trainers on one folder would mix '
      'their logs and replay.')


def _lock_folder(folder: pathlib.Path, mode: int) -> int | None:
  """An fd of `folder` locked with `mode`, or None where folders cannot be
  locked. Raises BlockingIOError if another process holds it."""
  fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
  try:
    fcntl.flock(fd, mode | fcntl.LOCK_NB)
  except OSError as e:
    os.close(fd)
    if e.errno in _NO_FOLDER_LOCKS:
      return None
    raise
  return fd


def acquire(folder: pathlib.Path) -> RunLock:
  """Lock `folder` for this process.

  Raises RunLockedError if another process holds it.
  """
  folder = pathlib.Path(folder)
  try:
    folder_fd = _lock_folder(folder, fcntl.LOCK_EX)
  except BlockingIOError:
    raise _refuse(folder, folder) from None
  path = folder / LOCK_NAME
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    RunLock(folder, None, folder_fd).release()
    raise _refuse(folder, path) from None
  return RunLock(folder, fd, folder_fd)


def release(lock: RunLock) -> None:
  """Give the lock back (it also goes when the process ends)."""
  lock.release()


def is_locked(folder: pathlib.Path) -> bool:
  """Whether some trainer holds a lock on `folder` now."""
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    return False
  try:
    fd = _lock_folder(folder, fcntl.LOCK_SH)
  except BlockingIOError:
    return True
  if fd is not None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
  path = folder / LOCK_NAME
  try:
    fd = os.open(path, os.O_RDONLY)
  except FileNotFoundError:
    return False
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except BlockingIOError:
    return True
  finally:
    os.close(fd)
  return False
