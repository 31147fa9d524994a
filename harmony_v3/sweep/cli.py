"""The sweep's command line: `run_atari100k.sh` (= `python -m harmony_v3.sweep`).

  ./run_atari100k.sh                              # 26 games x 5 seeds, Harmony
  ./run_atari100k.sh --both --games pong --seeds 0 1
  ./run_atari100k.sh --dry-run                    # the plan, with each status
  ./run_atari100k.sh --per-gpu 2 -- --run.log_every 600
  ./run_atari100k.sh --cpu --configs tiny --games pong --seeds 0
  ./run_atari100k.sh --engine slurm --per-gpu 2 --slurm-args "--partition gpu --account myproj --time 8:00:00"
  ./run_atari100k.sh --engine ray --ray-address auto --per-gpu 2
  ./run_atari100k.sh --suite minatar --cpu --both   # = scripts/run_minatar.sh --both
  ./run_atari100k.sh --suite crafter --both --seeds 0 1 2

Suites (--suite): atari100k (default: 26 games, preset atari100k, a GPU per
run), minatar (5 MinAtar games, tasks minatar_<game>, preset minatar, on
the CPU with --cpu, as many runs at a time as there are cores), dmc (20
DeepMind Control tasks, tasks dmc_<domain>_<task>, preset dmc_vision, a GPU
per run with --per-gpu K; no score table yet) or crafter (task
crafter_reward, preset crafter, a GPU per run: seeds and methods only). Each
run's step budget is its preset's. See harmony_v3/sweep/suites.py.

Runs go to {logroot}/{method}/{game}/seed{seed} (method: harmony or
dreamerv3), each with its own train.log. Running the same command again skips
finished runs (done.json) and resumes interrupted ones (checkpoint.ckpt), on
every engine. --dry-run shows each run's status, read from the run folders.

Engines (--engine):
  local  (default) every visible GPU of this machine trains --per-gpu runs
         at a time. Its default, auto, measures the fastest count on the
         first GPU before the first run and saves it in
         {logroot}/per_gpu.json. Without a GPU the sweep stops unless --cpu
         is given. Ctrl-C or SIGTERM asks every run to save a checkpoint,
         waits for them and exits with 130.
  slurm  submits one job array and exits: each element is one GPU training
         K runs (--per-gpu K) with the local engine. Resubmitting the same
         command is the retry. See docs/cluster.md.
  ray    one Ray task per run with 1/K of a GPU, on the cluster at
         --ray-address; Ctrl-C cancels and every run saves. Needs
         pip install 'harmony_v3[ray]'. See docs/cluster.md.
Arguments after `--` go to every `python -m harmony_v3.train` call.

Each trainer holds a lock on its run folder (.sweep.lock), so a second sweep
on the same logroot skips runs that are being trained instead of training
them twice.

Exit status: 0 no run failed (slurm: submitted), 1 some run failed, 2 bad
options or no GPU, 130 interrupted.
"""
from __future__ import annotations

import argparse
import pathlib
import shlex
import sys
from typing import Sequence

from . import calibrate, local
from .devices import GPU_MEMORY_SHARE, check_jax_gpu
from .engine import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from .launch import launch_for, say, train_command
from .plan import (DEFAULT_NUM_SEEDS, METHODS, Plan, Run, SweepError,
                   check_extra_args, check_games, check_train_flags,
                   flag_keys, status_counts)
from .reporting import print_dry_run, report
from .suites import DEFAULT_SUITE, SUITES, get_suite, usable_cores

ENGINES = ('local', 'slurm', 'ray')


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  """Parse the sweep's own options (what precedes `--`)."""
  parser = argparse.ArgumentParser(
      prog='run_atari100k.sh', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  what = parser.add_argument_group('what to run')
  what.add_argument('--suite', choices=tuple(SUITES), default=DEFAULT_SUITE,
                    help='the benchmark: atari100k (default), minatar, '
                         'dmc or crafter')
  what.add_argument('--games', nargs='+', metavar='GAME',
                    help="default: every game of the suite (Atari 100K's "
                         "26, MinAtar's 5, DMC's 20 tasks, e.g. "
                         'walker_walk)')
  seeds = what.add_mutually_exclusive_group()
  seeds.add_argument('--seeds', nargs='+', type=int, metavar='N',
                     help='seeds to run (default: 0 1 2 3 4)')
  seeds.add_argument('--num-seeds', type=int, metavar='N',
                     help='seeds 0..N-1')
  method = what.add_mutually_exclusive_group()
  method.add_argument('--baseline', action='store_true',
                      help='DreamerV3 only (--harmony.enabled False)')
  method.add_argument('--both', action='store_true',
                      help='Harmony and the DreamerV3 baseline')
  what.add_argument('--configs', nargs='+', metavar='PRESET',
                    help="trainer presets (default: the suite's, atari100k, "
                         'tiny minatar or dmc_vision)')
  what.add_argument('--logroot',
                    help=f'default: {SUITES["atari100k"].logroot}, or '
                         f'{SUITES["minatar"].logroot} with --suite minatar, '
                         f'{SUITES["dmc"].logroot} with --suite dmc')
  how = parser.add_argument_group('where to run')
  how.add_argument('--engine', choices=ENGINES, default='local',
                   help='this machine (default), a SLURM job array, or a '
                        'Ray cluster')
  how.add_argument('--gpus', metavar='IDS',
                   help='local: GPUs to use, e.g. 0,1 (default: '
                        'CUDA_VISIBLE_DEVICES if set, else every GPU that '
                        'nvidia-smi -L lists)')
  how.add_argument('--per-gpu', type=_per_gpu, default='auto', metavar='K',
                   help='runs at a time on each GPU, or "auto" (default): '
                        'measure K = 1, 2, 4, 8 with the bench on one GPU '
                        f'and take the fastest (saved in <logroot>/'
                        f'{calibrate.RESULT_NAME}; see harmony_v3/sweep/'
                        'calibrate.py)')
  how.add_argument('--mem-fraction', type=float, metavar='F',
                   help=f'GPU memory share of each run (default: '
                        f'{GPU_MEMORY_SHARE}/K)')
  how.add_argument('--no-gpu-check', action='store_true',
                   help='skip checking that JAX can use the GPU')
  how.add_argument('--cpu', action='store_true',
                   help='train on the CPU (slow; for smoke tests)')
  how.add_argument('--cpu-workers', type=int, metavar='N',
                   help='runs at a time with --cpu (slurm: per array '
                        'element; default: 1, or with --suite minatar one '
                        "per core this process may use)")
  how.add_argument('--no-compilation-cache', action='store_true',
                   help='do not share a JAX compilation cache between runs')
  slurm = parser.add_argument_group('SLURM (--engine slurm)')
  slurm.add_argument('--slurm-args', default='', metavar='ARGS',
                     help='sbatch options for every job, e.g. "--partition '
                          'gpu --account proj --time 8:00:00"')
  slurm.add_argument('--slurm-template', metavar='FILE',
                     help='your batch-script header: its #SBATCH lines and '
                          'set-up commands (module load, source venv) go '
                          'into the generated script')
  slurm.add_argument('--slurm-max-running', type=int, metavar='N',
                     help='at most N array elements (GPUs) at once')
  ray = parser.add_argument_group('Ray (--engine ray)')
  ray.add_argument('--ray-address', metavar='ADDR',
                   help='"auto", HOST:PORT or "local" (default: Ray\'s own: '
                        '$RAY_ADDRESS, else a cluster started on this '
                        'machine, else a new local one)')
  ray.add_argument('--retries', type=int, default=3, metavar='N',
                   help='times a run is retried when its worker or node '
                        'dies (default: 3)')
  element = parser.add_argument_group(
      'inside a SLURM job (written into the batch script by --engine slurm)')
  element.add_argument('--plan', metavar='FILE',
                       help='a plan file written by --engine slurm')
  element.add_argument('--slice', type=int, metavar='I',
                       help='train slice I of --plan (one array element)')
  element.add_argument('--measure', action='store_true',
                       help="measure --plan's runs per GPU on this job's GPU")
  element.add_argument('--report', action='store_true',
                       help="write the score table of --plan's logroot "
                            '(the job that waits for the array)')
  other = parser.add_argument_group('other')
  other.add_argument('--dry-run', action='store_true',
                     help='print the plan with each run\'s status and exit '
                          '(no scheduler is contacted)')
  other.add_argument('--no-report', action='store_true',
                     help='skip the score table at the end')
  other.add_argument('--train-cmd', metavar='CMD',
                     help='trainer command (default: $HARMONY_TRAIN_CMD or '
                          '"python -m harmony_v3.train")')
  args = parser.parse_args(argv)
  suite = get_suite(args.suite)
  if args.configs is None:
    args.configs = list(suite.configs)
  if args.logroot is None:
    args.logroot = suite.logroot
  if args.cpu_workers is None:
    args.cpu_workers = usable_cores() if suite.cpu else 1
  return args


def _per_gpu(text: str) -> int | str:
  """--per-gpu's value: 'auto' or a count of at least 1."""
  if text == 'auto':
    return text
  try:
    value = int(text)
  except ValueError:
    value = 0
  if value < 1:
    raise argparse.ArgumentTypeError(
        f'expected "auto" or a count of at least 1, got {text!r}')
  return value


def split_extra(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """(sweep options, trainer flags after the first `--`)."""
  argv = list(argv)
  if '--' in argv:
    at = argv.index('--')
    return argv[:at], argv[at + 1:]
  return argv, []


def build_plan(args: argparse.Namespace, extra: list[str]) -> Plan:
  """The plan from the options; raises SweepError for a bad one."""
  suite = get_suite(args.suite)
  games = check_games(args.games or suite.games, suite.name)
  if args.num_seeds is not None:
    if args.num_seeds < 1:
      raise SweepError('--num-seeds must be at least 1')
    seeds = list(range(args.num_seeds))
  else:
    seeds = list(dict.fromkeys(
        args.seeds if args.seeds else range(DEFAULT_NUM_SEEDS)))
  if any(s < 0 for s in seeds):
    raise SweepError('Seeds must be non-negative.')
  if args.cpu_workers < 1:
    raise SweepError('--cpu-workers must be at least 1')
  if args.mem_fraction is not None and not 0 < args.mem_fraction <= 1:
    raise SweepError('--mem-fraction must be in (0, 1].')
  if args.per_gpu != 'auto' and args.mem_fraction is not None and (
      args.mem_fraction * args.per_gpu > 1 + 1e-9):
    raise SweepError(
        f'--per-gpu {args.per_gpu} runs x --mem-fraction '
        f'{args.mem_fraction} must fit in one GPU (product at most 1).')
  methods = (list(METHODS) if args.both
             else ['dreamerv3'] if args.baseline else ['harmony'])
  check_extra_args(extra)
  check_engine_options(args)
  if (suite.name != DEFAULT_SUITE and not args.cpu
      and args.per_gpu == 'auto' and not args.dry_run):
    raise SweepError(
        f'--per-gpu auto measures runs per GPU with an Atari task; for '
        f'--suite {suite.name} on a GPU give --per-gpu K'
        + (', or train on the CPU with --cpu (scripts/run_minatar.sh).'
           if suite.cpu else '.'))
  check_train_flags(args.configs, methods, extra, suite.task(games[0]))
  logroot = pathlib.Path(args.logroot).expanduser().absolute()
  check_logroot(logroot)
  # One cache for every run and the runs-per-GPU bench, unless turned off or
  # named by the user after `--` (then that flag reaches each of them).
  cache = (None if args.no_compilation_cache
           or 'run.compilation_cache' in flag_keys(extra)
           else logroot / '.jax_cache')
  per_device = (args.cpu_workers if args.cpu
                else None if args.per_gpu == 'auto' else args.per_gpu)
  return Plan(logroot, games, seeds, methods, list(args.configs), extra,
              train_command(args.train_cmd), cpu=args.cpu,
              per_device=per_device, mem_fraction=args.mem_fraction,
              cache=cache, gpu_check=not args.no_gpu_check,
              suite=suite.name)


def check_logroot(logroot: pathlib.Path) -> None:
  """Refuse a --logroot that is (or lies below) a file."""
  for path in (logroot, *logroot.parents):
    if path.exists():
      if not path.is_dir():
        raise SweepError(
            f'--logroot {logroot}: {path} is a file, not a folder; name a '
            'folder (it is created if need be).')
      return


def check_engine_options(args: argparse.Namespace) -> None:
  """Refuse options of another engine than the chosen one."""
  owners = {'--gpus': ('local', args.gpus is not None),
            '--slurm-args': ('slurm', bool(args.slurm_args)),
            '--slurm-template': ('slurm', args.slurm_template is not None),
            '--slurm-max-running': ('slurm',
                                    args.slurm_max_running is not None),
            '--ray-address': ('ray', args.ray_address is not None),
            '--slice': (None, args.slice is not None),
            '--measure': (None, args.measure),
            '--report': (None, args.report)}
  for option, (engine, given) in owners.items():
    if given and engine is None:
      raise SweepError(f'{option} goes with --plan (inside a SLURM job).')
    if given and engine != args.engine:
      raise SweepError(f'{option} is an option of --engine {engine}.')
  try:
    shlex.split(args.slurm_args or '')
  except ValueError as e:
    raise SweepError(f'--slurm-args {args.slurm_args!r}: {e} (it is split '
                     'as a shell would)') from None
  if args.slurm_max_running is not None and args.slurm_max_running < 1:
    raise SweepError('--slurm-max-running must be at least 1')
  if args.retries < 0:
    raise SweepError('--retries must be at least 0')


def main(argv: Sequence[str] | None = None) -> int:
  """Command-line entry point; returns the exit status."""
  argv = list(sys.argv[1:] if argv is None else argv)
  own, extra = split_extra(argv)
  args = parse_args(own)
  if args.plan:
    from . import slurm
    return slurm.job_main(args, extra)
  try:
    plan = build_plan(args, extra)
    devices, source = ([], '')
    if args.engine == 'local':
      devices, source = local.choose_devices(args)
    runs = plan.runs()
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE
  suite = get_suite(plan.suite)
  print(f'{suite.title} sweep: {len(plan.games)} game(s) x '
        f'{len(plan.seeds)} seed(s) x {"+".join(plan.methods)} in '
        f'{plan.logroot}')
  if args.engine == 'local':
    _print_devices(args, devices, source)
  print(f'Per run: {shlex.join(plan.command)} --task {suite.task("<game>")} '
        f'--configs {" ".join(plan.configs)} --seed <seed> --logdir '
        f'{plan.logroot}/<method>/<game>/seed<seed> ...')
  try:
    if args.engine == 'slurm':
      from . import slurm
      return slurm.submit(plan, runs, args, own, extra)
    if args.engine == 'ray':
      from . import ray_engine
      return ray_engine.main(plan, runs, args)
    return run_local(plan, runs, args, devices, source)
  except SweepError as e:
    print(f'error: {e}', file=sys.stderr)
    return EXIT_USAGE


def _print_devices(args, devices: list[str], source: str) -> None:
  if args.cpu:
    print(f'Devices: CPU, {args.cpu_workers} run(s) at a time')
  elif devices:
    per_gpu = ('auto (measured before the first run)'
               if args.per_gpu == 'auto' else args.per_gpu)
    print(f'Devices: GPUs {",".join(devices)} (from {source}), runs per '
          f'GPU: {per_gpu}')


def run_local(plan: Plan, runs: list[Run], args: argparse.Namespace,
              devices: list[str], source: str) -> int:
  """The local engine: train `runs` on `devices`, then the score table."""
  if args.dry_run:
    print_dry_run(runs)
    return EXIT_OK
  if not devices:
    if get_suite(plan.suite).cpu:
      print(f'error: no GPU found ({source}). MinAtar trains on the CPU: add '
            '--cpu (scripts/run_minatar.sh does), --cpu-workers N at a '
            'time.', file=sys.stderr)
    else:
      print(f'error: no GPU found ({source}). Atari 100K needs a GPU (~1.5 '
            'h per run on an H100; days on a CPU). Use --gpus IDS to name '
            'GPUs, or --cpu to train on the CPU anyway (--cpu-workers N at '
            'a time).', file=sys.stderr)
    return EXIT_USAGE
  done = sum(r.status == 'done' for r in runs)
  pending = done < len(runs)
  if not plan.cpu and plan.gpu_check and pending:
    problem = check_jax_gpu(devices[0])
    if problem:
      print(f'error: JAX cannot use GPU {devices[0]}: {problem}\n'
            'Install a CUDA jaxlib (pip install "jax[cuda12]"), pass --cpu '
            'to train on the CPU, or --no-gpu-check to skip this check.',
            file=sys.stderr)
      return EXIT_USAGE
  print(status_counts(runs) + (f'; skipping the {done} done' if done else ''),
        flush=True)
  per_device = plan.per_device or 1
  if not plan.cpu and pending and plan.per_device is None:
    try:
      per_device = local.resolve_per_gpu(
          devices, plan.configs, plan.extra, plan.mem_fraction,
          plan.logroot, plan.cache, say)
    except KeyboardInterrupt:
      print('Interrupted while measuring runs per GPU: nothing was '
            'trained.', file=sys.stderr)
      return EXIT_INTERRUPTED
  launch = launch_for(plan, per_device)
  if not plan.cpu:
    say(f'{per_device} run(s) per GPU, memory fraction '
        f'{launch.mem_fraction:g} each')
  slots = {gpu: per_device for gpu in devices}
  sweep = local.LocalSweep(runs, slots, launch)
  code = sweep.execute()
  print(sweep.summary(), flush=True)
  if code == EXIT_INTERRUPTED:
    print('Interrupted: run the same command again to resume.')
    return code
  if not args.no_report:
    if sweep.skipped or sweep.finished:
      report(plan.logroot, sweep.say, plan.suite)
    else:
      sweep.say('No finished runs: no score table.')
  return code
