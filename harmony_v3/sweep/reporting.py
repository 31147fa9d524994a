"""What every engine of the sweep shows the user besides the runs: the
dry-run listing and the final score report.

The CLI and the engines (local, SLURM, Ray) import it; it imports none of
them.
"""
from __future__ import annotations

import os
import pathlib
import shlex
import subprocess
import sys
from typing import Callable, Sequence

from .plan import Run, status_counts, status_lines

# A score-table command that replaces `python -m harmony_v3.scores` (tests).
SCORES_CMD_ENV = 'HARMONY_SCORES_CMD'


def print_dry_run(runs: Sequence[Run]) -> None:
  """Every run's status, then the counts (for every engine's --dry-run)."""
  for line in status_lines(runs):
    print(line)
  print(status_counts(runs) + ' (dry run: nothing started)')


def scores_command() -> list[str]:
  """The score-table command ($HARMONY_SCORES_CMD replaces the default)."""
  text = os.environ.get(SCORES_CMD_ENV)
  if text:
    return shlex.split(text)
  return [sys.executable, '-m', 'harmony_v3.scores']


def report(logroot: pathlib.Path, out: Callable[[str], None]) -> None:
  """Write the score table and figures of `logroot`; a failure is said,
  not raised (the runs are unaffected)."""
  command = [*scores_command(), str(logroot), '--out',
             str(logroot / 'report'), '--plots']
  out(f'Score table: {shlex.join(command)}')
  try:
    code = subprocess.call(command, stdin=subprocess.DEVNULL)
  except OSError as e:
    code, why = None, str(e)
  else:
    why = f'exit {code}'
  if code != 0:
    out(f'error: the score table failed ({why}); the runs are unaffected. '
        'Rerun the command above to retry.')
