"""Fault injection for the crash-safety tests; does nothing unless asked.

The environment variable HARMONY_FAULT names one fault:

- `<point>` or `<point>@N`: the process kills itself with SIGKILL the N-th
  time (default: the first) it passes the named point, as a preemption
  would. The points are placed at the moments where a kill is most likely
  to leave a run folder inconsistent:
    after_full_chunk_write   a full replay chunk file was just written
    after_replay_save        a checkpoint's replay chunks are on disk, the
                             checkpoint itself not yet
    during_checkpoint_write  the checkpoint's temporary file is complete,
                             not yet renamed
    after_checkpoint         a checkpoint was committed
    during_eval              an evaluation has finished its first episode
    after_update             a train update was done
    after_final_save         the last checkpoint was written, done.json not
- `pause:<point>:<seconds>`: each pass at the point sleeps that long (to
  send signals while, say, a checkpoint is being written).
- `enospc:<glob>` or `enospc:<glob>@N`: from the N-th matching write on,
  writing a file whose name matches `<glob>` fails with ENOSPC, as on a full
  disk (for machines where the tests cannot mount a small filesystem).
- `oserror:<ERRNO>:<glob>[@N]`: the same with another error of a failing
  disk, e.g. `oserror:EIO:metrics.jsonl@3` or `oserror:EROFS:*.npz.tmp`.
"""
from __future__ import annotations

import collections
import errno
import fnmatch
import os
import pathlib
import signal
import sys
import time

_passes = collections.Counter()


def _parse() -> tuple[str, int]:
  spec = os.environ.get('HARMONY_FAULT', '')
  name, _, nth = spec.partition('@')
  return name, int(nth) if nth else 1


def point(name: str) -> None:
  """Kill this process here if HARMONY_FAULT names this point (and pass),
  or pause here."""
  wanted, nth = _parse()
  if wanted.startswith('pause:'):
    _, where, seconds = wanted.split(':')
    if where == name:
      time.sleep(float(seconds))
    return
  if wanted != name:
    return
  _passes[name] += 1
  if _passes[name] == nth:
    print(f'FAULT: SIGKILL at {name} (pass {nth})', file=sys.stderr,
          flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def check_write(path: pathlib.Path) -> None:
  """Raise the OSError that HARMONY_FAULT asks for when writing `path`
  (ENOSPC for `enospc:`, any errno for `oserror:`)."""
  wanted, nth = _parse()
  if wanted.startswith('enospc:'):
    code, pattern = errno.ENOSPC, wanted[len('enospc:'):]
  elif wanted.startswith('oserror:'):
    name, _, pattern = wanted[len('oserror:'):].partition(':')
    code = getattr(errno, name)
  else:
    return
  if not fnmatch.fnmatch(pathlib.Path(path).name, pattern):
    return
  _passes[wanted] += 1
  if _passes[wanted] >= nth:
    raise OSError(code, os.strerror(code), str(path))
