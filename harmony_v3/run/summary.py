"""Speed and harmonizer trends of run folders, in one table.

  python -m harmony_v3.run.summary RUN_DIR [RUN_DIR ...] [--json FILE]

For each run folder it reads `config.yaml`, `metrics.jsonl` and `eval.jsonl`
and reports: agent steps and frames done, training frames/s and updates/s
(the median over the logging windows after the first, which holds the
compilation), the projected wall-clock of the whole run at that pace, where
the time went (env, policy, data, train, eval), evaluation throughput, and
the harmonizer weights 1/sigma at the first and last log.

Harmonizer adaptation (Harmony runs): for each harmonizer i, the number of
train updates its `s_i` needed to come within 10% of its optimum. At each
log k, the target is `log sigma*_k`, the App. B optimum
(`harmonizer.optimal_sigma`, rectified or not as the run's config says) of
the running mean loss `m_k`: the plain mean of the logged
`train/harmony_loss_i` over the logs of the last `ADAPTATION_WINDOW` = 1,000
updates up to log k (the logs whose `perf/updates` exceeds log k's minus
1,000, log k included; each logged value is itself the mean over
its logging window). `s_i` is within 10% at log k when

  |s_k - log sigma*_k| <= 0.1 * |log sigma*_k|,

and the figure is `perf/updates` at the first such log, or 'not reached'
with the last `s_i` and the last target.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Sequence

import numpy as np

from ..adaptation import first_within
from ..harmonizer import optimal_sigma
from .logs import JSONLines
from .progress import format_duration
from ..scores.runs import read_config

HARMONIZERS = ('reward', 'obs', 'dyn')
TIME_SHARES = ('env', 'policy', 'data', 'train', 'eval', 'other')
ADAPTATION_WINDOW = 1000  # Updates in the running mean of a harmonizer's loss.
ADAPTATION_TOLERANCE = 0.1  # "Within 10%" of log sigma*.


def _steady_rate(records: list[dict], key: str) -> float | None:
  values = [r[key] for r in records[1:] if key in r]
  if not values:  # A single window: it is all there is.
    values = [r[key] for r in records if key in r]
  return float(np.median(values)) if values else None


def summarize(run_dir: str | pathlib.Path) -> dict:
  """The summary of one run folder as a dict (see the module docstring)."""
  run_dir = pathlib.Path(run_dir)
  if not (run_dir / 'config.yaml').exists():
    raise FileNotFoundError(f'{run_dir} is not a run folder: no config.yaml')
  config = read_config(run_dir)
  metrics = JSONLines(run_dir / 'metrics.jsonl').read()
  evals = JSONLines(run_dir / 'eval.jsonl').read()
  perf = [r for r in metrics if 'perf/frames_per_s' in r]
  last = metrics[-1] if metrics else {'step': 0, 'frames': 0}
  repeat = last['frames'] / last['step'] if last['step'] else None
  total_steps = int(float(config['run']['steps']))

  summary = {
      'run': str(run_dir),
      'task': config.get('task'),
      'harmony': bool(config.get('harmony', {}).get('enabled', False)),
      'steps': int(last['step']),
      'frames': int(last['frames']),
      'total_steps': total_steps,
      'frames_per_s': _steady_rate(perf, 'perf/frames_per_s'),
      'updates_per_s': _steady_rate(perf, 'perf/updates_per_s'),
      'time_share': {k: perf[-1][f'perf/time_share/{k}'] for k in TIME_SHARES
                     if perf and f'perf/time_share/{k}' in perf[-1]},
  }
  fps = summary['frames_per_s']
  if fps and repeat:
    summary['projected_run_hours'] = total_steps * repeat / fps / 3600

  if evals:
    seconds = sum(e['seconds'] for e in evals)
    episodes = sum(e['episodes'] for e in evals)
    steps = sum(sum(e['lengths']) for e in evals)
    summary['eval'] = {
        'evaluations': len(evals),
        'episodes_per_s': episodes / seconds if seconds else None,
        'frames_per_s': steps * (repeat or 1) / seconds if seconds else None,
        'seconds_per_evaluation': seconds / len(evals),
        'last_mean': evals[-1]['mean'],
    }

  weights = [r for r in metrics if 'train/harmony_weight_obs' in r]
  if weights:
    summary['weights'] = {
        name: {'first': weights[0][f'train/harmony_weight_{name}'],
               'last': weights[-1][f'train/harmony_weight_{name}']}
        for name in HARMONIZERS}
    rectified = bool(config.get('harmony', {}).get('rectified', True))
    summary['adaptation'] = {
        name: adaptation(metrics, name, rectified) for name in HARMONIZERS}
  return summary


def adaptation(metrics: Sequence[dict], name: str, rectified: bool = True,
               window: int = ADAPTATION_WINDOW,
               tolerance: float = ADAPTATION_TOLERANCE) -> dict | None:
  """When harmonizer `name`'s `s` first came within `tolerance` of its target.

  `metrics` are a run's metrics.jsonl records; see the module docstring for
  the target and the running mean. Returns None without logs of `name`,
  else a dict: `updates` (perf/updates at the first log within tolerance,
  None if not reached), `s` and `target` (last `s` and last target
  `log sigma*`), `mean_loss` (last running mean) and `within_at_end`.
  """
  keys = (f'train/harmony_loss_{name}', f'train/harmony_s_{name}',
          'perf/updates')
  logs = [r for r in metrics if all(k in r for k in keys)]
  if not logs:
    return None
  losses = np.array([r[keys[0]] for r in logs])
  s = np.array([r[keys[1]] for r in logs])
  updates = np.array([r['perf/updates'] for r in logs])
  mean_loss = np.array([
      losses[(updates > u - window) & (updates <= u)].mean() for u in updates])
  target = np.log(optimal_sigma(mean_loss, rectified))
  first = first_within(s, target, tolerance)
  return {'updates': None if first is None else int(updates[first - 1]),
          's': s[-1], 'target': float(target[-1]),
          'mean_loss': float(mean_loss[-1]),
          'within_at_end': first_within(s[-1:], target[-1:], tolerance)
                           is not None}


def _fmt(value, spec: str) -> str:
  return '-' if value is None else format(value, spec)


def markdown(summaries: Sequence[dict]) -> str:
  """A Markdown table, one row per run."""
  header = ['run', 'method', 'steps', 'frames/s', 'updates/s', 'full run',
            'time: env/policy/data/train/eval', 'eval episodes/s',
            'weights reward/obs/dyn (first -> last)']
  rows = []
  for s in summaries:
    shares = '/'.join(f"{100 * s['time_share'].get(k, 0):.0f}%"
                      for k in TIME_SHARES[:5]) if s['time_share'] else '-'
    hours = s.get('projected_run_hours')
    weights = '-'
    if 'weights' in s:
      weights = ', '.join(
          f"{w['first']:.3f} -> {w['last']:.3f}" for w in s['weights'].values())
    rows.append([
        s['run'], 'Harmony' if s['harmony'] else 'DreamerV3',
        f"{s['steps']:,}/{s['total_steps']:,}",
        _fmt(s['frames_per_s'], '.1f'), _fmt(s['updates_per_s'], '.2f'),
        format_duration(hours * 3600) if hours else '-', shares,
        _fmt(s.get('eval', {}).get('episodes_per_s'), '.2f'), weights])
  return _table(header, rows)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  lines = ['| ' + ' | '.join(header) + ' |',
           '|' + '---|' * len(header)]
  lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
  return '\n'.join(lines)


def adaptation_markdown(summaries: Sequence[dict]) -> str:
  """A Markdown table of harmonizer adaptation, one row per run and
  harmonizer ('' when no run has harmonizers)."""
  header = ['run', 'harmonizer', 'updates to within 10% of log sigma*',
            'last s', 'last target log sigma*', 'running mean loss']
  rows = []
  for s in summaries:
    for name, a in s.get('adaptation', {}).items():
      if a is None:
        continue
      reached = ('not reached' if a['updates'] is None
                 else f"{a['updates']:,}")
      rows.append([s['run'], name, reached, f"{a['s']:.3f}",
                   f"{a['target']:.3f}", f"{a['mean_loss']:.4g}"])
  return _table(header, rows) if rows else ''


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.run.summary', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('runs', nargs='+', help='run folders')
  parser.add_argument('--json', default=None, help='also write them here')
  args = parser.parse_args(argv)
  summaries = []
  for run in args.runs:
    try:
      summaries.append(summarize(run))
    except (FileNotFoundError, ValueError) as e:
      if isinstance(e, UnicodeDecodeError):  # The one that names no file.
        e = ValueError(f'{run}: a log file is not text ({e})')
      print(f'error: {e}', file=sys.stderr)
      return 2
    except (OSError, KeyError, TypeError, AttributeError, IndexError) as e:
      print(f'error: cannot summarize {run}: its config.yaml, metrics.jsonl '
            f'or eval.jsonl is not as a harmony_v3 run writes it '
            f'({type(e).__name__}: {e})', file=sys.stderr)
      return 2
  if args.json and not pathlib.Path(args.json).parent.is_dir():
    print(f'error: --json {args.json}: no folder '
          f'{pathlib.Path(args.json).parent}', file=sys.stderr)
    return 2
  print(markdown(summaries))
  adapted = adaptation_markdown(summaries)
  if adapted:
    print('\nHarmonizer adaptation (see --help for the definition):\n')
    print(adapted)
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(summaries, indent=2))
  return 0


if __name__ == '__main__':
  sys.exit(main())
