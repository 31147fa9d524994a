"""Train-update throughput: DreamerV3 against Harmony DreamerV3, and several
runs sharing one GPU.

  python -m harmony_v3.bench [--configs atari100k] [--updates 200]
  python -m harmony_v3.bench --concurrency 1 2 4 8   # K processes at once
  python -m harmony_v3.bench --vectorized 1 2 4 8    # R runs in one update

The first form builds both agents in one process with the same preset, batch
and data, and prints compile time and updates/s of each, and their ratio.
The second starts K worker processes at once (each a Harmony agent with
1/K of the GPU memory) and reports the aggregate updates/s, per-run
updates/s and memory, and the GPU-hours the 130-run sweep would take.
The third builds one Harmony agent and, for each R, updates R runs (seeds
0..R-1, each with its own batch) in one vmapped call (`vectorized.py`), and
reports the same aggregate figures next to the single run's.
Timings cover train updates only (no environment, policy or evaluation).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Sequence

import numpy as np

SWEEP_RUNS = 26 * 5
UPDATES_PER_RUN = 101_000 * 1024 // (16 * 64)  # steps x train_ratio / batch


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.bench', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--configs', nargs='+', default=['atari100k'])
  parser.add_argument('--task', default='atari_pong')
  parser.add_argument('--updates', type=int, default=200,
                      help='timed updates after compilation (default 200)')
  parser.add_argument('--rounds', type=int, default=5,
                      help='alternating timing rounds per method (default 5)')
  parser.add_argument('--methods', nargs='+', default=['dreamerv3', 'harmony'],
                      choices=['dreamerv3', 'harmony'])
  parser.add_argument('--concurrency', nargs='+', type=int, default=None,
                      help='measure K concurrent runs for each K given')
  parser.add_argument('--vectorized', nargs='+', type=int, default=None,
                      help='measure R runs vectorized in one process for each '
                           'R given')
  parser.add_argument('--json', default=None, help='also write results here')
  parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
  parser.add_argument('--trajectory', type=int, default=0,
                      help=argparse.SUPPRESS)
  return parser.parse_known_args(argv)


class TimedUpdates:
  """The timing loop of TimedAgent and TimedGroup. A subclass defines
  `update()` (one train update of each of its `runs` runs, returning the
  metrics) and `varibs` (the variables that update writes)."""

  runs = 1

  def update(self) -> dict:
    raise NotImplementedError

  def _compile(self) -> None:
    """The first update, which compiles; its seconds become compile_s."""
    import jax
    start = time.perf_counter()
    self.update()
    jax.block_until_ready(self.varibs)
    self.compile_s += time.perf_counter() - start

  def time(self, updates: int) -> float:
    """Seconds for `updates` updates of every run, waiting for the device."""
    import jax
    start = time.perf_counter()
    for _ in range(updates):
      self.update()
    jax.block_until_ready(self.varibs)
    return time.perf_counter() - start


class TimedAgent(TimedUpdates):
  """One agent on a fixed random batch, compiled on construction."""

  def __init__(self, config):
    import embodied
    import jax
    from .agent import HarmonyAgent
    from .envs import make_env
    self.config = config
    env = make_env(config, seed=0)
    self.obs_space, self.act_space = env.obs_space, env.act_space
    spaces = {**env.obs_space, **env.act_space}
    env.close()
    start = time.perf_counter()
    self.agent = HarmonyAgent(
        env.obs_space, env.act_space, embodied.Counter(), config)
    self.data = jax.device_put(
        _batch(spaces, config, np.random.default_rng(0)))
    self.state = None
    self.compile_s = time.perf_counter() - start
    self._compile()

  @property
  def varibs(self):
    return self.agent.varibs

  def update(self) -> dict:
    _, self.state, mets = self.agent.train(self.data, self.state)
    return mets

  def trajectory(self, updates: int) -> dict:
    """Model losses of the next `updates` updates and a digest of the state.

    Runs that share a GPU must learn exactly as they would alone: equal
    trajectories and digests show it.
    """
    import hashlib
    import jax
    losses = [float(self.update()['model_loss_mean'])
              for _ in range(updates)]
    varibs = jax.device_get(self.varibs)
    digest = hashlib.sha256()
    for key in sorted(varibs):
      for leaf in jax.tree_util.tree_leaves(varibs[key]):
        digest.update(np.ascontiguousarray(leaf).tobytes())
    return {'losses': losses, 'digest': digest.hexdigest()}

  def summary(self, rates: list[float]) -> dict:
    return {
        'harmony': bool(self.config.harmony.enabled),
        'compile_s': round(self.compile_s, 2),
        'updates_per_s': float(np.median(rates)),
        'updates_per_s_rounds': [round(r, 3) for r in rates],
        **_device_summary(self.config),
    }


def _device_summary(config) -> dict:
  """The device's name and its peak memory so far (None where unknown)."""
  import jax
  device = jax.devices(config.jax.platform)[0]
  stats = device.memory_stats() or {}
  peak = stats.get('peak_bytes_in_use', 0) / 2**30
  return {
      'peak_memory_gb': peak or None,
      'device': f'{device.platform}:{getattr(device, "device_kind", "")}',
  }


def _sweep_hours(aggregate_updates_per_s: float) -> float:
  """Device-hours of updates alone for the 26 x 5 sweep at this throughput."""
  return SWEEP_RUNS * UPDATES_PER_RUN / aggregate_updates_per_s / 3600


def _batch(spaces, config, rng):
  shape = (config.batch_size, config.batch_length)
  data = {}
  for key, space in spaces.items():
    if key == 'reset':
      continue
    if space.dtype.name == 'uint8':
      data[key] = rng.integers(0, 256, shape + space.shape).astype('uint8')
    elif key == 'action':
      data[key] = np.eye(space.shape[-1], dtype='float32')[
          rng.integers(0, space.shape[-1], shape)]
    else:
      data[key] = np.zeros(shape + space.shape, space.dtype)
  data['is_first'][:, 0] = True
  return data


def _config(args, rest, method):
  from .config import load_config
  from .train import setup_jax
  flags = ['--task', args.task, *rest]
  if method == 'dreamerv3':
    flags += ['--harmony.enabled', 'False']
  return setup_jax(load_config(args.configs, flags))


def _updates_per_round(args) -> int:
  return max(1, args.updates // args.rounds)


def _rates(timed, per_round: int, rounds: int) -> list[float]:
  """Updates/s of each of `rounds` rounds of `per_round` updates, counting
  every run that `timed` (a TimedUpdates) updates at once."""
  return [timed.runs * per_round / timed.time(per_round)
          for _ in range(rounds)]


def compare_methods(args, rest) -> dict:
  """Both methods in this process, timed in alternating rounds.

  Alternating rounds (A, B, A, B, ...) and taking each one's median keeps
  drifts of the machine (clocks, other load) out of the ratio.
  """
  agents = {m: TimedAgent(_config(args, rest, m)) for m in args.methods}
  rates = {m: [] for m in agents}
  per_round = _updates_per_round(args)
  for _ in range(args.rounds):
    for method, timed in agents.items():
      rates[method].append(per_round / timed.time(per_round))
  results = {}
  for method, timed in agents.items():
    r = results[method] = timed.summary(rates[method])
    print(f"{method:10s} compile {r['compile_s']:6.1f} s  "
          f"{r['updates_per_s']:7.2f} updates/s (median of {args.rounds} "
          f"rounds of {per_round})  on {r['device']}", flush=True)
  if {'dreamerv3', 'harmony'} <= set(results):
    ratio = (results['harmony']['updates_per_s']
             / results['dreamerv3']['updates_per_s'])
    results['harmony_over_dreamerv3'] = ratio
    print(f'Harmony / DreamerV3 updates/s: {ratio:.3f} '
          f'({100 * (1 - ratio):+.1f}% cost)')
  return results


def run_workers(k: int, worker_args: Sequence[str]) -> list[dict]:
  """Start `k` bench workers at once, each with 1/k of the GPU memory."""
  from .sweep import default_mem_fraction  # The sweep's share per run.
  env = {**os.environ,
         'XLA_PYTHON_CLIENT_MEM_FRACTION': f'{default_mem_fraction(k):g}'}
  cmd = [sys.executable, '-m', 'harmony_v3.bench', '--worker', *worker_args]
  procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
           for _ in range(k)]
  results = []
  for proc in procs:
    out, _ = proc.communicate()
    lines = [l for l in out.splitlines() if l.startswith('WORKER ')]
    if proc.returncode or not lines:
      raise RuntimeError(f'bench worker failed (exit {proc.returncode})')
    results.append(json.loads(lines[-1][len('WORKER '):]))
  return results


def concurrent_runs(args, rest) -> dict:
  """K worker processes at once, for each K in --concurrency."""
  results = {}
  worker_args = ['--configs', *args.configs, '--task', args.task,
                 '--updates', str(args.updates), '--rounds', str(args.rounds),
                 *rest]
  for k in args.concurrency:
    try:
      runs = run_workers(k, worker_args)
    except RuntimeError as e:
      results[k] = _failure(f'K={k}', e)
      continue
    total = sum(r['updates_per_s'] for r in runs)
    hours = _sweep_hours(total)
    results[k] = {'aggregate_updates_per_s': total, 'runs': runs,
                  'sweep_gpu_hours_updates_only': hours}
    memory = [r['peak_memory_gb'] for r in runs if r['peak_memory_gb']]
    mem = f'{max(memory):.2f} GB/run' if memory else 'memory n/a'
    print(f'K={k}: {total:7.2f} updates/s aggregate, '
          f'{total / k:6.2f} per run, {mem}, sweep ~{hours:,.0f} device-hours '
          '(updates only)', flush=True)
  return results


def _failure(label: str, error: Exception) -> dict:
  """Report one measurement that failed; the others still run."""
  lines = str(error).strip().splitlines() or ['']
  message = f'{type(error).__name__}: {lines[0][:300]}'
  print(f'{label}: failed: {message}', flush=True)
  return {'error': message}


class TimedGroup(TimedUpdates):
  """R vectorized runs (seeds 0..R-1, each with its own fixed random batch)
  built on a TimedAgent's agent, compiled on construction."""

  def __init__(self, timed: TimedAgent, runs: int):
    import jax
    from .run.vectorized import VectorizedTrain, stack_runs
    self.runs = runs
    spaces = {**timed.obs_space, **timed.act_space}
    start = time.perf_counter()
    self.group = VectorizedTrain(timed.agent, timed.obs_space,
                                 timed.act_space, seeds=range(runs))
    self.data = jax.device_put(stack_runs(
        [_batch(spaces, timed.config, np.random.default_rng(seed))
         for seed in range(runs)]), self.group.device)
    self.carry = None
    self.compile_s = time.perf_counter() - start
    self._compile()

  @property
  def varibs(self):
    return self.group.varibs

  def update(self) -> dict:
    _, self.carry, mets = self.group.train(self.data, self.carry)
    return mets


def vectorized_runs(args, rest) -> dict:
  """R runs updated by one vmapped call, for each R in --vectorized.

  The single run (the base JAXAgent's own jit) is timed first in the same
  process, so the speed-up reads against it directly.
  """
  timed = TimedAgent(_config(args, rest, 'harmony'))
  per_round = _updates_per_round(args)
  single = float(np.median(_rates(timed, per_round, args.rounds)))
  print(f'single run: {single:7.2f} updates/s (compile '
        f'{timed.compile_s:.1f} s)', flush=True)
  results = {'single_updates_per_s': single}
  for r in args.vectorized:
    try:
      group = TimedGroup(timed, r)
      total = float(np.median(_rates(group, per_round, args.rounds)))
    except Exception as e:  # A compiler or memory failure at this size.
      results[r] = _failure(f'R={r}', e)
      continue
    compile_s, hours = group.compile_s, _sweep_hours(total)
    del group  # Frees its device memory before the next size.
    summary = _device_summary(timed.config)
    results[r] = {'aggregate_updates_per_s': total, 'compile_s': compile_s,
                  'speedup_over_single': total / single,
                  'sweep_gpu_hours_updates_only': hours,
                  'peak_memory_gb_so_far': summary['peak_memory_gb'],
                  'device': summary['device']}
    print(f'R={r}: {total:7.2f} updates/s aggregate, {total / r:6.2f} per '
          f'run, {total / single:4.2f}x single, compile {compile_s:.1f} s, '
          f'sweep ~{hours:,.0f} device-hours (updates only)', flush=True)
  return results


def main(argv: Sequence[str] | None = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  args, rest = parse_args(argv)
  from .config import ConfigError, load_config
  from .envs import check_task
  try:  # Bad presets, keys, values or tasks: a message, not a traceback.
    check_task(load_config(args.configs, ['--task', args.task, *rest]))
  except (ConfigError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  import harmony_v3  # noqa: F401  (patches)
  if args.worker and args.trajectory:
    timed = TimedAgent(_config(args, rest + ['--jax.metrics_every', '1'],
                               'harmony'))
    print('WORKER ' + json.dumps(timed.trajectory(args.trajectory)),
          flush=True)
    return 0
  if args.worker:
    timed = TimedAgent(_config(args, rest, 'harmony'))
    rates = _rates(timed, _updates_per_round(args), args.rounds)
    print('WORKER ' + json.dumps(timed.summary(rates)), flush=True)
    return 0
  if args.concurrency:
    results = concurrent_runs(args, rest)
  elif args.vectorized:
    results = vectorized_runs(args, rest)
  else:
    results = compare_methods(args, rest)
  if args.json:
    results['command'] = ' '.join(['python -m harmony_v3.bench', *argv])
    results['date'] = time.strftime('%Y-%m-%d')
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=2, default=str)
  failed = [k for k, v in results.items() if isinstance(v, dict) and 'error' in v]
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
