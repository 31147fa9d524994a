"""Held-out metrics, the mean-reward reference, and harmonizer summaries.

Reward errors are mean squared errors in symlog space, the space of the
reward head's bins (`symlog(x) = sign(x) log(1 + |x|)`): the games' rewards
differ by two orders of magnitude (boxing 1, Ms. Pac-Man 10, Asterix 50), and
a raw-scale error would measure one game only. The reference predicts, at
every step, the training set's mean symlog reward of that step's game: the
best constant per game under this error. (A single mean over all games would
be beaten by any model that merely tells the games apart.)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..adaptation import first_within
from ..harmonizer import optimal_sigma

TASKS = ('reward', 'obs', 'dyn')
EMA = 0.99          # running-mean decay, as harmony.ema's default
TOLERANCE = 0.1     # "within 10% of log sigma*"


def symlog(x: np.ndarray) -> np.ndarray:
  return np.sign(x) * np.log1p(np.abs(x))


def heldout_targets(windows: Sequence[dict], context: int) -> dict:
  """Symlog rewards of the evaluated steps (context..T-1) of every window."""
  reward = np.concatenate([w['reward'][:, context:] for w in windows])
  return {'reward': symlog(reward.astype(np.float64))}


def heldout_metrics(outputs: dict, targets: dict, games: np.ndarray,
                    game_names: Sequence[str]) -> dict:
  """Scalar metrics from `WorldModelArm.evaluate` outputs.

  `games` gives each window's game index, for the per-game reward errors.
  """
  metrics = {}
  for mode in ('tf', 'ol'):
    error = (outputs[f'reward_pred_{mode}'] - targets['reward']) ** 2
    metrics[f'reward_mse_{mode}'] = float(error.mean())
    metrics[f'reward_nll_{mode}'] = float(outputs[f'reward_nll_{mode}'].mean())
    metrics[f'obs_loss_{mode}'] = float(outputs[f'obs_loss_{mode}'].mean())
    for index, game in enumerate(game_names):
      metrics[f'reward_mse_{mode}/{game}'] = float(
          error[games == index].mean())
      metrics[f'obs_loss_{mode}/{game}'] = float(
          outputs[f'obs_loss_{mode}'][games == index].mean())
  metrics['kl'] = float(outputs['kl'].mean())
  return metrics


def reference_metrics(train_means: Sequence[float], targets: dict,
                      games: np.ndarray, game_names: Sequence[str]) -> dict:
  """The errors of always predicting the training set's mean symlog reward of
  each window's game (`train_means[game index]`)."""
  constant = np.asarray(train_means, np.float64)[games][:, None]
  error = (constant - targets['reward']) ** 2
  metrics = {}
  for mode in ('tf', 'ol'):
    metrics[f'reward_mse_{mode}'] = float(error.mean())
    for index, game in enumerate(game_names):
      metrics[f'reward_mse_{mode}/{game}'] = float(
          error[games == index].mean())
  return metrics


def running_mean(values: np.ndarray, decay: float = EMA) -> np.ndarray:
  """Bias-corrected exponential moving average after each value (as the
  closed-form harmonizers keep it)."""
  out = np.empty(len(values))
  raw = 0.0
  for i, value in enumerate(values):
    raw = decay * raw + (1 - decay) * float(value)
    out[i] = raw / (1 - decay ** (i + 1))
  return out


def harmonizer_summary(s: dict[str, np.ndarray], losses: dict[str, np.ndarray],
                       rectified: bool = True) -> dict:
  """Each harmonizer's final weight next to the App. B optimum of its running
  mean loss, the first update at which `s` was within 10% of that optimum's
  `log sigma*`, and the update from which it stayed within 10% to the end
  (None if never).

  `s[k]` and `losses[k]` hold the `s_i` used and the batch loss `L_i` of
  every update, in order.
  """
  summary = {}
  for key in TASKS:
    means = running_mean(losses[key])
    targets = _log_optimum(means, rectified)
    summary[key] = {
        'weight': float(np.exp(-s[key][-1])),
        'optimal_weight': float(np.exp(-targets[-1])),
        'running_mean_loss': float(means[-1]),
        'updates_to_within_10pct': first_within(s[key], targets, TOLERANCE),
        'updates_to_stay_within_10pct': settled_within(
            s[key], targets, TOLERANCE),
    }
  return summary


def settled_within(trajectory: np.ndarray, targets: np.ndarray,
                   tolerance: float = TOLERANCE) -> int | None:
  """1-based index from which every value is within `tolerance` (relative)
  of its target up to the end, or None if the last one is not."""
  close = (np.abs(np.asarray(trajectory) - targets)
           <= tolerance * np.abs(targets))
  if not len(close) or not close[-1]:
    return None
  outside = np.flatnonzero(~close)
  return int(outside[-1]) + 2 if len(outside) else 1


def optimal_log_sigmas(losses: dict[str, np.ndarray],
                       rectified: bool = True) -> dict[str, np.ndarray]:
  """`log sigma*` of the running mean after each update, per harmonizer."""
  return {k: _log_optimum(running_mean(v), rectified)
          for k, v in losses.items()}


def _log_optimum(means: np.ndarray, rectified: bool) -> np.ndarray:
  """`log sigma*` (App. B) of each running mean (floored at 1e-8)."""
  return np.log(optimal_sigma(np.maximum(means, 1e-8), rectified))
