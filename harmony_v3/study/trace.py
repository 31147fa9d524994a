"""python -m harmony_v3.study.trace: one (arm, seed) of the study, every update.

  python -m harmony_v3.study.trace ARM --data STUDY/data [--seed N]
      [--updates N] [--eval-every N] [--preset default|equilibrium] [--quick]
      [--set KEY VALUE ...] [--out FILE.json]
  python -m harmony_v3.study.trace --predict FILE.json [--updates N]

A diagnostic, not part of the study's table: it trains one arm exactly as the
study does (same dataset, batches, keys and initial model for a seed) and
keeps every update's train metrics (per-term losses, the gradient norm before
the clip, each harmonizer's loss, `s` and weight) instead of 200 points.
`--set` changes config keys on top of the arm's (e.g. `--set
harmony.warmup 500`). It prints the metrics at a few updates and writes
everything to `--out`. The dataset must be the preset's (the study's `data/`
folder is reused, never collected here).

`--predict` reads the trace of a `harmony` run (the paper's setting) and
predicts when each `s_i` comes within 10% of its optimum: it replays the
model optimizer on `s_i` alone (the clip at global norm 1,000 from the
logged gradient norm, then Adam at `model_opt.lr`), which reproduces the
logged `s_i`, and continues for `--updates` in all with each loss held at
its mean over the last 500 updates.
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
  parser.add_argument('arm', nargs='?', choices=list(study_settings.ARMS))
  parser.add_argument('--data', help="a study's data/ folder (made with the "
                                     'preset)')
  parser.add_argument('--predict', metavar='TRACE',
                      help="a harmony arm's trace: predict when each "
                           'harmonizer reaches its optimum')
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
  args = parser.parse_args(argv)
  if not args.predict and not (args.arm and args.data):
    parser.error('ARM and --data are needed (or --predict TRACE)')
  return args


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


def replay_s(losses, clip, lr: float, rectified: bool = True,
             eps: float = 1e-8, b1: float = 0.9, b2: float = 0.999):
  """`s` used at each update when DreamerV3's model optimizer (gradient
  scaled by `clip[t]`, then Adam, then `-lr`) trains it on `losses[t]`."""
  import numpy as np
  s, m, v, used = 0.0, 0.0, 0.0, []
  for t, (loss, scale) in enumerate(zip(losses, clip), 1):
    used.append(s)
    sigma = np.exp(s)
    reg = sigma / (1 + sigma) if rectified else 1.0
    grad = (-loss / sigma + reg) * scale
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad * grad
    s -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
  return np.array(used)


def predict(trace: dict, updates: int, lr: float = 1e-3,
            clip: float = 1000.0, rectified: bool = True) -> dict:
  """Per harmonizer: the logged and replayed final `s`, and the predicted
  first update within 10% of `log sigma*` (None: not within `updates`)."""
  import numpy as np
  from ..adaptation import first_within
  from .evaluate import TOLERANCE, optimal_log_sigmas
  history = trace['history']
  done = len(history['model_opt_grad_norm'])
  scale = np.minimum(1.0, clip / np.array(history['model_opt_grad_norm']))
  scale = np.concatenate([scale, np.ones(max(0, updates - done))])
  out = {}
  for task in ('reward', 'obs', 'dyn'):
    logged = np.array(history[f'harmony_loss_{task}'])
    losses = np.concatenate([logged, np.full(
        max(0, updates - done), logged[-500:].mean())])
    s = replay_s(losses, scale, lr, rectified)
    target = optimal_log_sigmas({task: losses}, rectified)[task]
    out[task] = {'logged_s': history[f'harmony_s_{task}'][-1],
                 'replayed_s': float(s[done - 1]),
                 'held_loss': float(logged[-500:].mean()),
                 'first_within_10pct': first_within(s, target, TOLERANCE)}
  return out


def main(argv: Sequence[str] | None = None) -> int:
  args = parse_args(list(sys.argv[1:] if argv is None else argv))
  if args.predict:
    from .settings import preset
    for task, row in predict(
        json.loads(pathlib.Path(args.predict).read_text()),
        args.updates or 20_000, preset(args.preset).model_lr).items():
      reached = row['first_within_10pct']
      print(f"{task}: s {row['logged_s']:.4f} logged, {row['replayed_s']:.4f} "
            f"replayed; with the loss held at {row['held_loss']:.3g}, within "
            f"10% of log sigma* from update "
            + ('never' if reached is None else f'{reached:,}'))
    return 0
  result = trace(args)
  print('\n'.join(summary_lines(result)))
  if args.out:
    from .data import write_json_atomic
    write_json_atomic(pathlib.Path(args.out), result)  # Replaces a partial.
  return 0


if __name__ == '__main__':
  sys.exit(main())
