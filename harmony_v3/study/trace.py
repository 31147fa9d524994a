"""python -m harmony_v3.study.trace: one (arm, seed) of the study, every update.

  python -m harmony_v3.study.trace ARM --data STUDY/data [--seed N]
      [--updates N] [--eval-every N] [--preset default|equilibrium] [--quick]
      [--set KEY VALUE ...] [--out FILE.json]

A diagnostic, not part of the study's table: it trains one arm exactly as the
study does (same dataset, batches, keys and initial model for a seed) and
keeps every update's train metrics (per-term losses, the gradient norm before
the clip, each harmonizer's loss, `s` and weight) instead of 200 points.
`--set` changes config keys on top of the arm's (e.g. `--set
harmony.closed_form_start neutral`). It prints the metrics at a few updates
and writes everything to `--out`. The dataset must be the preset's (the
study's `data/` folder is reused, never collected here).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Sequence

SHOWN = ('image_loss_mean', 'reward_loss_mean', 'dyn_loss_mean',
         'rep_loss_mean', 'model_opt_grad_norm', 'harmony_weight_obs',
         'harmony_weight_reward', 'harmony_weight_dyn')


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
  from . import settings as study_settings
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.study.trace', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('arm', choices=list(study_settings.ARMS))
  parser.add_argument('--data', required=True,
                      help="a study's data/ folder (made with the preset)")
  parser.add_argument('--preset', default='default',
                      choices=list(study_settings.PRESETS))
  parser.add_argument('--quick', action='store_true',
                      help="the preset's arms at the --quick size")
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--updates', type=int, default=None)
  parser.add_argument('--eval-every', type=int, default=None)
  parser.add_argument('--set', nargs=2, action='append', default=[],
                      metavar=('KEY', 'VALUE'),
                      help='a config key on top of the arm (repeatable)')
  parser.add_argument('--out', default=None, help='write the trace here')
  parser.add_argument('--platform', default='cpu', choices=['cpu', 'gpu'])
  return parser.parse_args(argv)


def shown_updates(updates: int) -> list[int]:
  """1, 2, 5, 10, 20, 50, ... up to `updates`, and `updates` itself."""
  shown, base = [], 1
  while base <= updates:
    shown += [u for u in (base, 2 * base, 5 * base) if u <= updates]
    base *= 10
  return sorted(set(shown + [updates]))


def trace(args) -> dict:
  import embodied
  import harmony_v3  # noqa: F401  (patches)
  from . import runs
  from . import settings as study_settings
  from .data import load_or_collect, write_json_atomic
  from .jobs import _spaces
  from .model import WorldModelArm
  settings = study_settings.with_overrides(
      study_settings.preset(args.preset, args.quick), updates=args.updates,
      eval_every=args.eval_every)
  train, heldout_split, info = load_or_collect(
      pathlib.Path(args.data), settings.games, settings.train_steps_per_game,
      settings.heldout_steps_per_game, settings.data_seed, report=print)
  num_actions = max(info['action_sets'].values())
  heldout = runs.HeldOut(heldout_split, settings, num_actions)
  config = study_settings.arm_config(settings, args.arm, args.platform)
  flags = [x for key, value in args.set for x in (f'--{key}', value)]
  config = embodied.Flags(config).parse(flags)
  obs_space, act_space = _spaces(train, num_actions)
  model = WorldModelArm(config, obs_space, act_space, settings.context,
                        fast_compile=settings.fast_compile)
  history, curves = [], []

  def progress(update, metrics):
    if not metrics:
      return
    print(f"update {update:,}: held-out reward error "
          f"{metrics['reward_mse_tf']:.4f} tf, obs. loss "
          f"{metrics['obs_loss_tf']:.1f}", flush=True)
    curves.append(metrics)
    if args.out and update < settings.updates:  # What a kill would lose.
      write_json_atomic(pathlib.Path(args.out), {
          'partial': True, 'arm': args.arm, 'seed': args.seed,
          'curves': curves, 'history': _columns(history)})

  result = runs.train_one(model, args.arm, args.seed, train, heldout,
                          settings, num_actions, progress, history)
  result.update(history=_columns(history), set=dict(args.set),
                preset=args.preset)
  return result


def _columns(history: list[dict]) -> dict[str, list[float]]:
  """Per-update metric dicts as metric -> one value per update."""
  return {k: [float(h[k]) for h in history] for k in history[0]} if (
      history) else {}


def summary_lines(result: dict) -> list[str]:
  """A table of the train metrics at a few updates, then the held-out ones."""
  history = result['history']
  keys = [k for k in SHOWN if k in history]
  lines = ['| update | ' + ' | '.join(keys) + ' |',
           '|' + '---|' * (len(keys) + 1)]
  for update in shown_updates(len(history[keys[0]])):
    lines.append(f'| {update:,} | ' + ' | '.join(
        f'{history[k][update - 1]:.4g}' for k in keys) + ' |')
  lines += ['', *diagnostics(history)]
  lines += ['', '| update | reward error tf | obs. loss tf | KL |',
            '|---|---|---|---|']
  for point in result['curves']:
    lines.append(f"| {point['update']:,} | {point['reward_mse_tf']:.4f} | "
                 f"{point['obs_loss_tf']:.1f} | {point['kl']:.3f} |")
  return lines


def diagnostics(history: dict, free: float = 1.0, window: int = 500,
                top: int = 5) -> list[str]:
  """The two signs of trouble seen in the study: KL losses at DreamerV3's
  free-bits floor (`free` nats: the latent carries almost nothing and the
  KL gives no gradient), and gradient-norm spikes (the model optimizer
  clips at 1,000)."""
  import numpy as np
  dyn = np.array(history['dyn_loss_mean'])
  grad = np.array(history['model_opt_grad_norm'])
  floor = dyn <= free + 1e-4
  shares = ', '.join(f'{floor[i:i + window].mean():.2f}'
                     for i in range(0, len(dyn), window))
  first = f'{int(np.argmax(floor)) + 1:,}' if floor.any() else 'never'
  lines = [f'dyn loss at the free-bits floor ({free:g} nat): first at update '
           f'{first}; share of updates per {window}: {shares}',
           f'gradient norm above the clip (1,000): share per {window}: '
           + ', '.join(f'{(grad[i:i + window] > 1000).mean():.2f}'
                       for i in range(0, len(grad), window)),
           f'largest gradient norms (update: norm, image, reward, dyn loss):']
  for i in sorted(np.argsort(grad)[::-1][:top]):
    lines.append(f"  {i + 1:,}: {grad[i]:,.0f}, "
                 f"{history['image_loss_mean'][i]:.1f}, "
                 f"{history['reward_loss_mean'][i]:.3f}, {dyn[i]:.2f}")
  return lines


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(list(sys.argv[1:] if argv is None else argv))
  result = trace(args)
  print('\n'.join(summary_lines(result)))
  if args.out:
    from .data import write_json_atomic
    write_json_atomic(pathlib.Path(args.out), result)  # Replaces a partial.
  return 0


if __name__ == '__main__':
  sys.exit(main())
