"""The trainer's lock on its run folder: one trainer per folder at a time.

A trainer holds an exclusive `fcntl.flock` on `<logdir>/.trainer.lock` from
before it reads or writes anything in the folder until it exits (the kernel
drops the lock when the process ends, however it ends, kill -9 included).
A second trainer on the same folder finds the lock taken and stops with a
clear error before it changes anything. This lock is the trainer's own; the
sweep's `.sweep.lock` is separate and only keeps two sweeps apart.
"""
from __future__ import annotations

import fcntl
import os
import pathlib

from .errors import RunError

LOCK_NAME = '.trainer.lock'


class RunLockedError(RunError):
  """Another trainer is training in this run folder."""


def acquire(folder: pathlib.Path) -> int:
  """Lock `folder` for this process; the returned fd holds the lock.

  Raises RunLockedError if another process holds it.
  """
  path = pathlib.Path(folder) / LOCK_NAME
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    raise RunLockedError(
        f'Another trainer is training in {folder} (it holds {path}). Wait '
        'for it to end or stop it; two trainers on one folder would mix '
        'their logs and replay.') from None
  return fd


def release(fd: int) -> None:
  """Give the lock back (it also goes when the process ends)."""
  try:
    fcntl.flock(fd, fcntl.LOCK_UN)
  finally:
    os.close(fd)


def is_locked(folder: pathlib.Path) -> bool:
  """Whether some trainer holds the lock on `folder` now."""
  path = pathlib.Path(folder) / LOCK_NAME
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
