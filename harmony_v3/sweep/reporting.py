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
from .suites import DEFAULT_SUITE, get_suite

# A score-table command that replaces `python -m harmony_v3.scores` (tests).
SCORES_CMD_ENV = 'HARMONY_SCORES_CMD'
# The same for `python -m harmony_v3.scores.minatar` (--suite minatar).
MINATAR_SCORES_CMD_ENV = 'HARMONY_MINATAR_SCORES_CMD'
# The same for `python -m harmony_v3.scores.crafter` (--suite crafter).
CRAFTER_SCORES_CMD_ENV = 'HARMONY_CRAFTER_SCORES_CMD'


def print_dry_run(runs: Sequence[Run]) -> None:
  """Every run's status, then the counts (for every engine's --dry-run)."""
  for line in status_lines(runs):
    print(line)
  print(status_counts(runs) + ' (dry run: nothing started)')


def scores_command(suite: str = DEFAULT_SUITE) -> list[str]:
  """The score-table command of `suite` ($HARMONY_SCORES_CMD, or for
  MinAtar $HARMONY_MINATAR_SCORES_CMD, for Crafter
  $HARMONY_CRAFTER_SCORES_CMD, replaces the default)."""
  env, module = SCORES_CMD_ENV, 'harmony_v3.scores'
  if suite == 'minatar':
    env, module = MINATAR_SCORES_CMD_ENV, 'harmony_v3.scores.minatar'
  elif suite == 'crafter':
    env, module = CRAFTER_SCORES_CMD_ENV, 'harmony_v3.scores.crafter'
  text = os.environ.get(env)
  if text:
    return shlex.split(text)
  return [sys.executable, '-m', module]


def report_commands(logroot: pathlib.Path,
                    suite: str = DEFAULT_SUITE) -> list[list[str]]:
  """The commands that write `logroot`'s score report into logroot/report.

  Atari 100K: the score table and figures of the run folders. MinAtar: the
  finished runs' data files into logroot/benchmark (see docs/
  minatar_benchmark.md), then the report built from those files alone.
  Crafter: the Crafter score table, with every run in report/crafter.json.
  """
  if not get_suite(suite).scores:
    return []
  command = scores_command(suite)
  if suite == 'crafter':
    return [[*command, str(logroot), '--achievements', '--json',
             str(logroot / 'report' / 'crafter.json')]]
  if suite == 'minatar':
    files = logroot / 'benchmark'
    return [[*command, 'collect', str(logroot), '--out', str(files)],
            [*command, 'report', str(files), '--out',
             str(logroot / 'report')]]
  return [[*command, str(logroot), '--out', str(logroot / 'report'),
           '--plots']]


def report(logroot: pathlib.Path, out: Callable[[str], None],
           suite: str = DEFAULT_SUITE) -> bool:
  """Write the score report of `logroot`; a failure is said, not raised
  (the runs are unaffected). Whether it succeeded."""
  if not get_suite(suite).scores:
    out(f'No score table for {get_suite(suite).title} yet: each run\'s '
        'eval.jsonl holds its evaluation returns.')
    return True
  for command in report_commands(logroot, suite):
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
      return False
  return True
