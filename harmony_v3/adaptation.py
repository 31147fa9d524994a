"""How fast a learned harmonizer reaches its optimum, under a constant loss.

  python -m harmony_v3.adaptation [--losses 1 5 150 1500]
      [--lrs 1e-4 1e-3 1e-2] [--tolerance 0.1] [--json FILE]

In the paper's setting the `s_i` are trained by the world model's Adam at its
learning rate (1e-4 in DreamerV3), so each moves by about `lr` per update.
For a constant loss `L`, this counts the Adam updates (optax, eps 1e-8, from
`s = 0`) until `s` first comes within `tolerance` (relative) of
`log sigma*`, the App. B optimum. Learning rates other than the model's are
the opt-in `harmony.lr` variant (NOT the paper's setting). The closed-form
variant (`harmony.mode: closed_form`) sits at the optimum of its running mean
from the first update on, by construction, so it has no row here.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from functools import partial
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from .harmonizer import harmonious_loss, optimal_sigma

PAPER_LR = 1e-4  # DreamerV3's model_opt.lr, which trains the s_i in the paper.


@partial(jax.jit, static_argnames=('updates', 'rectified'))
def _trajectory(mean_loss, lr, eps, updates: int, rectified: bool):
  opt = optax.adam(lr, eps=eps)
  grad = jax.grad(
      lambda s: harmonious_loss({'x': mean_loss}, {'x': s}, rectified))

  def step(carry, _):
    s, state = carry
    updates_, state = opt.update(grad(s), state)
    s = optax.apply_updates(s, updates_)
    return (s, state), s

  s = jnp.zeros((), jnp.float32)
  _, trajectory = jax.lax.scan(step, (s, opt.init(s)), None, length=updates)
  return trajectory


def s_trajectory(mean_loss: float, lr: float, updates: int,
                 rectified: bool = True, eps: float = 1e-8) -> np.ndarray:
  """`s` after each of `updates` Adam updates from 0 on the constant loss."""
  import jax
  with jax.transfer_guard('allow'):
    return np.asarray(_trajectory(
        np.float32(mean_loss), np.float32(lr), np.float32(eps),
        updates=int(updates), rectified=bool(rectified)))


def first_within(trajectory: np.ndarray, target: float,
                 tolerance: float = 0.1) -> int | None:
  """1-based index of the first value within `tolerance` (relative) of
  `target` (a number, or one target per value), or None if none is."""
  close = (np.abs(np.asarray(trajectory) - target)
           <= tolerance * np.abs(target))
  return int(np.argmax(close)) + 1 if close.any() else None


def updates_to_optimum(mean_loss: float, lr: float, rectified: bool = True,
                       tolerance: float = 0.1, max_updates: int = 200_000,
                       eps: float = 1e-8) -> int | None:
  """Adam updates until `s` is within `tolerance` of `log sigma*` (App. B)
  under a constant loss, or None if not within `max_updates`."""
  target = float(np.log(optimal_sigma(mean_loss, rectified)))
  return first_within(
      s_trajectory(mean_loss, lr, max_updates, rectified, eps), target,
      tolerance)


def measure(losses: Sequence[float], lrs: Sequence[float],
            rectified: bool = True, tolerance: float = 0.1,
            max_updates: int = 200_000) -> dict:
  """updates_to_optimum for every loss and learning rate, with the context."""
  rows = []
  for loss in losses:
    row = {'loss': float(loss),
           'log_sigma_star': float(np.log(optimal_sigma(loss, rectified))),
           'updates': {}}
    for lr in lrs:
      row['updates'][f'{lr:g}'] = updates_to_optimum(
          loss, lr, rectified, tolerance, max_updates)
    rows.append(row)
  return {'rectified': rectified, 'tolerance': tolerance,
          'max_updates': max_updates, 'optimizer': 'optax.adam, eps 1e-8',
          'paper_lr': PAPER_LR, 'lrs': [float(x) for x in lrs], 'rows': rows,
          'date': time.strftime('%Y-%m-%d'),
          'machine': f'{platform.processor() or platform.machine()}'}


def markdown(result: dict) -> str:
  """The measurement as a Markdown table: one row per loss, one column per lr."""
  def label(lr):
    note = " (paper's: the model optimizer)" if float(lr) == PAPER_LR else \
        ' (harmony.lr, not the paper)'
    return f'lr {lr}{note}'
  lrs = list(result['rows'][0]['updates']) if result['rows'] else []
  lines = ['| L | log sigma* | ' + ' | '.join(label(lr) for lr in lrs) + ' |',
           '|---|---|' + '---|' * len(lrs)]
  for row in result['rows']:
    cells = [f'{n:,}' if n else f"> {result['max_updates']:,}"
             for n in row['updates'].values()]
    lines.append(f"| {row['loss']:g} | {row['log_sigma_star']:.3f} | "
                 + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.adaptation', description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--losses', nargs='+', type=float,
                      default=[1, 5, 150, 1500])
  parser.add_argument('--lrs', nargs='+', type=float,
                      default=[PAPER_LR, 1e-3, 1e-2])
  parser.add_argument('--tolerance', type=float, default=0.1)
  parser.add_argument('--max-updates', type=int, default=200_000)
  parser.add_argument('--unrectified', action='store_true',
                      help='the unrectified loss (Eq. 4)')
  parser.add_argument('--json', default=None, help='also write results here')
  args = parser.parse_args(argv)
  bad = [x for x in args.losses if x <= 0] + [x for x in args.lrs if x <= 0]
  if bad or args.tolerance <= 0 or args.max_updates < 1:
    print('error: losses, learning rates, tolerance and --max-updates must be '
          'positive', file=sys.stderr)
    return 2
  result = measure(args.losses, args.lrs, not args.unrectified,
                   args.tolerance, args.max_updates)
  print(f"Adam updates until s is within {args.tolerance:.0%} of log sigma* "
        f"(constant loss L, s from 0, {'rectified' if result['rectified'] else 'unrectified'}):")
  print(markdown(result))
  if args.json:
    result['command'] = ' '.join(['python -m harmony_v3.adaptation',
                                  *(argv if argv is not None else sys.argv[1:])])
    with open(args.json, 'w') as f:
      json.dump(result, f, indent=2)
  return 0


if __name__ == '__main__':
  sys.exit(main())
