"""The MinAtar benchmark's command line: `python -m harmony_v3.scores.minatar`.

  python -m harmony_v3.scores.minatar collect RUNROOT [RUNROOT ...] \\
      --out benchmarks/minatar [--replace]
  python -m harmony_v3.scores.minatar report benchmarks/minatar \\
      [--out benchmarks/minatar/report] [--random CSV] [--reference CSV]
      [--num-seeds 5] [--reps 2000] [--bootstrap-seed 0] [--no-plots]

collect: one data file per finished MinAtar run (collect.py, records.py).
report:  the report from those files alone: report.md (also printed),
         scores.csv, summary.json, learning_curves.png/.pdf and
         harmony_weights.png/.pdf (summary.py, formats.py, plots.py).

Bad input stops either command with exit code 2 and one message naming the
file.
"""
from __future__ import annotations

import argparse
import pathlib
import shlex
import sys
from collections.abc import Sequence

from harmony_v3.run.atomic_files import write_atomic
from harmony_v3.scores.minatar import stats
from harmony_v3.scores.minatar.benchmark import (NUM_SEEDS, RANDOM_CSV,
                                                 REFERENCE_CSV,
                                                 BenchmarkFileError,
                                                 load_random, load_reference)
from harmony_v3.scores.minatar.collect import collect
from harmony_v3.scores.minatar.records import RecordError, load_records

PROG = 'python -m harmony_v3.scores.minatar'
EXIT_USAGE = 2


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  """Parse and check the command line."""
  parser = argparse.ArgumentParser(
      prog=PROG, description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = parser.add_subparsers(dest='command', required=True)
  gather = commands.add_parser(
      'collect', help='finished run folders -> one data file per run')
  gather.add_argument('roots', nargs='+', type=pathlib.Path,
                      metavar='RUNROOT', help='sweep log roots or run folders')
  gather.add_argument('--out', type=pathlib.Path, required=True,
                      help='the benchmark folder (data files go to '
                           'OUT/runs/<method>/<game>/seed<S>.json)')
  gather.add_argument('--replace', action='store_true',
                      help='overwrite data files that hold a different run')
  build = commands.add_parser(
      'report', help='the report, from the data files alone')
  build.add_argument('root', type=pathlib.Path, metavar='BENCHMARK',
                     help='the folder collect wrote to')
  build.add_argument('--out', type=pathlib.Path,
                     help='where the report goes (default: BENCHMARK/report)')
  build.add_argument('--random', type=pathlib.Path, default=RANDOM_CSV,
                     help='random-policy returns per game (default: '
                          '%(default)s, used if it exists)')
  build.add_argument('--reference', type=pathlib.Path, default=REFERENCE_CSV,
                     help='published reference returns per game (default: '
                          '%(default)s)')
  build.add_argument('--num-seeds', type=int, default=NUM_SEEDS,
                     help='seeds 0..N-1 per game and method (default '
                          '%(default)s)')
  build.add_argument('--reps', type=int, default=stats.DEFAULT_REPS,
                     help='bootstrap replications (default %(default)s)')
  build.add_argument('--bootstrap-seed', type=int, default=stats.DEFAULT_SEED,
                     help='seed of every bootstrap (default %(default)s)')
  build.add_argument('--no-plots', action='store_true',
                     help='write no figures')
  args = parser.parse_args(argv)
  if args.command == 'report':
    if args.reps < 1 or args.num_seeds < 1:
      parser.error('--reps and --num-seeds must be at least 1')
    if args.out is None:
      args.out = args.root / 'report'
  return args


def run_collect(args: argparse.Namespace) -> int:
  """The collect command."""
  result = collect(args.roots, args.out, args.replace)
  for path in result.written:
    print(f'wrote {path}')
  print(f'{len(result.written)} data file(s) written, '
        f'{len(result.unchanged)} already there, '
        f'{len(result.not_finished)} MinAtar run(s) not finished, '
        f'{len(result.foreign)} other run folder(s) skipped; in {args.out}')
  for folder in result.not_finished:
    print(f'  not finished (no done.json): {folder}')
  return 0


def run_report(args: argparse.Namespace, argv: Sequence[str]) -> int:
  """The report command."""
  from harmony_v3.scores.minatar.formats import to_csv, to_json, to_markdown
  from harmony_v3.scores.minatar.summary import summarize
  records = load_records(args.root)
  summary = summarize(records, load_random(args.random),
                      load_reference(args.reference), args.num_seeds,
                      args.reps, args.bootstrap_seed)
  out = args.out
  if out.exists() and not out.is_dir():
    raise RecordError(f'{out}: --out must be a folder, not a file')
  out.mkdir(parents=True, exist_ok=True)
  figures = []
  if not args.no_plots:
    from harmony_v3.scores.minatar import plots
    paths = plots.save_all(records, out, args.num_seeds, args.reps,
                           args.bootstrap_seed)
    figures = list(dict.fromkeys(p.stem for p in paths))
  markdown = to_markdown(summary, f'{PROG} {shlex.join(argv)}', figures)
  files = {'report.md': markdown, 'scores.csv': to_csv(summary),
           'summary.json': to_json(summary)}
  for name, text in files.items():
    write_atomic(out / name, text.encode())
  print(markdown)
  for name in [*files, *(f'{s}.png' for s in figures)]:
    print(f'wrote {out / name}', file=sys.stderr)
  if summary.warnings:
    print(f'{len(summary.warnings)} warning(s): see the Warnings section.',
          file=sys.stderr)
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status."""
  argv = list(sys.argv[1:] if argv is None else argv)
  args = parse_args(argv)
  try:
    if args.command == 'collect':
      return run_collect(args)
    return run_report(args, argv)
  except (RecordError, BenchmarkFileError) as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  except OSError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
