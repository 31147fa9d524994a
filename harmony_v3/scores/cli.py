"""The score table's command line: `python -m harmony_v3.scores`.

Usage:
  python -m harmony_v3.scores PATH [PATH ...] [--out DIR] [--format md,csv,tex]
      [--plots] [--frames 400000] [--reps 2000] [--bootstrap-seed 0]

Each PATH is a sweep log root or a published-curves JSON (see
`harmony_v3.scores.runs`); `NAME=PATH` sets the column label. It prints the
Markdown table and, with --out, writes the chosen formats (and figures).
Unreadable input stops it with exit code 2 and one line naming the problem.
"""
from __future__ import annotations

import argparse
import pathlib
import sys
from collections.abc import Sequence

from harmony_v3.scores.aggregate import (DEFAULT_BOOTSTRAP_SEED, DEFAULT_REPS,
                                         summarize)
from harmony_v3.scores.benchmark import DEFAULT_FRAMES
from harmony_v3.scores.formats import FORMATS, to_markdown, write_outputs
from harmony_v3.scores.runs import load_paths
from harmony_v3.scores.table import build_table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parse and check the command line; adds `formats` (a list)."""
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.scores',
      description='Atari 100K score table (and plots) from sweep log roots '
                  'and/or published per-seed curve JSONs.')
  parser.add_argument(
      'paths', nargs='+', metavar='PATH',
      help='sweep log root or published-curves .json; NAME=PATH sets a label')
  parser.add_argument('--out', type=pathlib.Path, default=None,
                      help='folder for the table files (and plots)')
  parser.add_argument('--format', default='md,csv,tex',
                      help='comma-separated subset of md,csv,tex written to '
                           '--out (default: all)')
  parser.add_argument('--plots', action='store_true',
                      help='also save learning-curve and harmonizer-weight '
                           'figures (PNG+PDF) into --out')
  parser.add_argument('--frames', type=int, default=DEFAULT_FRAMES,
                      help='frames of the final evaluation (default 400000)')
  parser.add_argument('--reps', type=int, default=DEFAULT_REPS,
                      help='bootstrap replications (default %(default)s)')
  parser.add_argument('--bootstrap-seed', type=int,
                      default=DEFAULT_BOOTSTRAP_SEED,
                      help='seed of the bootstrap (default %(default)s)')
  args = parser.parse_args(argv)
  args.formats = [f.strip() for f in args.format.split(',') if f.strip()]
  unknown = [f for f in args.formats if f not in FORMATS]
  if unknown or not args.formats:
    parser.error(f'--format takes a comma-separated subset of '
                 f'{",".join(FORMATS)}; got {args.format!r}')
  if args.plots and args.out is None:
    parser.error('--plots needs --out DIR')
  if args.reps < 1:
    parser.error('--reps must be positive')
  if args.frames < 1:
    parser.error('--frames must be positive')
  if not 0 <= args.bootstrap_seed < 2 ** 32:
    parser.error('--bootstrap-seed must be in [0, 2**32)')
  if args.out is not None and args.out.exists() and not args.out.is_dir():
    parser.error(f'--out {args.out} is a file, not a folder')
  return args


def main(argv: Sequence[str] | None = None) -> int:
  """CLI entry point: print the markdown table, write files and plots."""
  args = parse_args(argv)
  try:
    methods = load_paths(args.paths)
  except (FileNotFoundError, ValueError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  summaries = [summarize(m, args.frames, args.reps, args.bootstrap_seed)
               for m in methods]
  table = build_table(summaries, args.frames)
  print(to_markdown(table), end='')
  if table.warnings():
    print(f'{len(table.warnings())} warning(s): see the Warnings section.',
          file=sys.stderr)
  if args.out is not None:
    try:
      _write_files(args, table, methods)
    except OSError as error:
      print(f'error: cannot write to --out {args.out}: {error}',
            file=sys.stderr)
      return 2
  return 0


def _write_files(args: argparse.Namespace, table, methods) -> None:
  for path in write_outputs(table, args.out, args.formats):
    print(f'wrote {path}', file=sys.stderr)
  if args.plots:
    from harmony_v3.scores import plots  # Matplotlib only when asked.
    paths = plots.save_all(methods, args.out, args.frames)
    for path in paths:
      print(f'wrote {path}', file=sys.stderr)
    if not any(p.stem == 'harmony_weights' for p in paths):
      print('no run logged harmonizer weights: no harmony_weights figure',
            file=sys.stderr)
