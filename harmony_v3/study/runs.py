"""Training one (arm, seed) of the study, with held-out evaluations.

For a given seed every arm gets the same initial model (harmonizers aside),
the same sequence of training batches and the same random keys: the arms
differ only in their loss.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import pickle
import time
from typing import Callable, Sequence

import jax
import numpy as np

from . import evaluate
from ..run.atomic_files import write_atomic
from .data import Split
from .model import WorldModelArm
from .settings import NOT_PAPER, Settings, StudyError

TRAIN_CURVES = ('model_loss_mean', 'image_loss_mean', 'reward_loss_mean',
                'dyn_loss_mean', 'rep_loss_mean')
POINTS = 200  # at most this many points of each per-update trajectory


class HeldOut:
  """Fixed held-out windows (the same for every arm and seed) and targets."""

  def __init__(self, split: Split, settings: Settings, num_actions: int):
    length = settings.context + settings.horizon
    rng = np.random.default_rng(settings.data_seed)
    starts, games = [], []
    for index in range(len(settings.games)):
      valid = split.window_starts(length, game=index)
      if len(valid) < settings.eval_windows_per_game:
        raise StudyError(
            f'The held-out split of {settings.games[index]} has only '
            f'{len(valid)} windows of {length} steps.')
      chosen = np.sort(rng.choice(
          valid, settings.eval_windows_per_game, replace=False))
      starts.append(chosen)
      games.append(np.full(len(chosen), index))
    starts, self.games = np.concatenate(starts), np.concatenate(games)
    chunk = settings.eval_chunk
    usable = len(starts) // chunk * chunk or len(starts)
    if usable < len(starts):  # Equal chunks: one compiled shape.
      keep = np.sort(rng.choice(len(starts), usable, replace=False))
      starts, self.games = starts[keep], self.games[keep]
      chunk = min(chunk, usable)
    self.windows = [split.windows(starts[i:i + chunk], length, num_actions)
                    for i in range(0, len(starts), chunk)]
    self.targets = evaluate.heldout_targets(self.windows, settings.context)
    self.game_names = settings.games


def _subsample(length: int) -> np.ndarray:
  """Indices of at most POINTS evenly spread entries, the last included."""
  step = max(1, int(np.ceil(length / POINTS)))
  index = np.arange(step - 1, length, step)
  if not len(index) or index[-1] != length - 1:
    index = np.append(index, length - 1)
  return index


def _load_partial(path: pathlib.Path, arm: str, seed: int,
                  settings: Settings, say: Callable[[str], None]
                  ) -> dict | None:
  """The saved state of an unfinished run, or None (nothing usable saved)."""
  if not path.exists():
    return None
  try:
    with path.open('rb') as file:
      state = pickle.load(file)
    same = (state['arm'], state['seed'], state['settings']) == (
        arm, seed, dataclasses.asdict(settings))
  except Exception as error:  # Truncated or foreign file: start over.
    say(f'{path} is unreadable ({type(error).__name__}); {arm} seed {seed} '
        'starts from update 0.')
    return None
  if not same:
    say(f'{path} was saved under other settings; {arm} seed {seed} starts '
        'from update 0.')
    return None
  say(f"Resuming {arm} seed {seed} at update {state['update']} from {path}")
  return state


def train_one(model: WorldModelArm, arm: str, seed: int, train: Split,
              heldout: HeldOut, settings: Settings, num_actions: int,
              progress: Callable[[int, dict | None], None],
              history: list | None = None,
              partial: pathlib.Path | None = None,
              say: Callable[[str], None] = print) -> dict:
  """Train one world model for `settings.updates` updates; its result.

  `progress(update, heldout_metrics_or_None)` is called after every update.
  Every update's train metrics are appended to `history` (a new list if
  None) by the time of each held-out evaluation; `study.trace` passes its
  own list to keep them all.

  With `partial` (a file), the run's whole state is saved there atomically
  at every held-out evaluation, and a run that finds the file resumes from
  it: a killed run loses at most `eval_every` updates, and its result is
  the one an uninterrupted run gives (same batches, keys and variables).
  The caller deletes the file once the result is written.
  """
  starts = train.window_starts(settings.batch_length)
  batch_rng = np.random.default_rng([seed, 1])
  key_rng = np.random.default_rng([seed, 2])

  def batch():
    chosen = batch_rng.choice(starts, settings.batch_size)
    return train.windows(chosen, settings.batch_length, num_actions)

  load_start = os.getloadavg()
  compiled_before = model.update_compile_s
  varibs = model.init(seed, train.windows(
      starts[:settings.batch_size], settings.batch_length, num_actions))
  eval_s = 0.0

  def heldout_eval(update):
    nonlocal eval_s
    start = time.perf_counter()
    outputs = model.evaluate(varibs, heldout.windows)
    eval_s += time.perf_counter() - start
    return {'update': update, **evaluate.heldout_metrics(
        outputs, heldout.targets, heldout.games, heldout.game_names)}

  history = [] if history is None else history
  saved = partial and _load_partial(partial, arm, seed, settings, say)
  if saved:
    varibs = jax.device_put(saved['varibs'], model.device)
    batch_rng.bit_generator.state = saved['batch_rng']
    key_rng.bit_generator.state = saved['key_rng']
    curves, train_s, eval_s = saved['curves'], saved['train_s'], saved[
        'eval_s']
    history.extend(saved['history'])
    first = saved['update'] + 1
  else:
    curves = [heldout_eval(0)]
    train_s, first = 0.0, 1
  progress(first - 1, curves[-1])

  def save(update):
    state = {'arm': arm, 'seed': seed,
             'settings': dataclasses.asdict(settings), 'update': update,
             'varibs': jax.device_get(varibs),
             'batch_rng': batch_rng.bit_generator.state,
             'key_rng': key_rng.bit_generator.state, 'curves': curves,
             'history': history, 'train_s': train_s, 'eval_s': eval_s}
    partial.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(partial, pickle.dumps(state, pickle.HIGHEST_PROTOCOL))

  pending = []
  start = time.perf_counter()
  for update in range(first, settings.updates + 1):
    metrics, varibs = model.train(
        varibs, int(key_rng.integers(2 ** 32)), batch())
    pending.append(metrics)
    due = update % settings.eval_every == 0 or update == settings.updates
    if due:
      history.extend(jax.device_get(pending))
      pending = []
      jax.block_until_ready(varibs)
      train_s += time.perf_counter() - start
      curves.append(heldout_eval(update))
      if partial and update < settings.updates:
        save(update)
      start = time.perf_counter()
    progress(update, curves[-1] if due else None)
  # The first update of an arm's first seed holds the update's compilation.
  train_s -= model.update_compile_s - compiled_before
  return {
      'arm': arm, 'seed': seed, 'paper_setting': arm not in NOT_PAPER,
      'updates': settings.updates,
      'curves': curves,
      'final': curves[-1],
      'train': _train_curves(history),
      'harmonizers': _harmonizers(history, model.config),
      'timing': {
          'compile_s': round(model.compile_s, 2),
          'train_s': round(train_s, 2),
          'eval_s': round(eval_s, 2),
          'updates_per_s': round((settings.updates - 1) / max(train_s, 1e-9),
                                 3),
          'loadavg_start': load_start,
          'loadavg_end': os.getloadavg(),
          'device': str(model.device),
      },
  }


def _train_curves(history: Sequence[dict]) -> dict:
  index = _subsample(len(history))
  curves = {'update': (index + 1).tolist()}
  for key in TRAIN_CURVES:
    values = np.array([float(h[key]) for h in history])
    curves[key] = values[index].tolist()
  return curves


def _harmonizers(history: Sequence[dict], config) -> dict | None:
  """Summary and trajectories of the harmonizers (None without them)."""
  if not config.harmony.enabled:
    return None
  rectified = bool(config.harmony.rectified)
  s = {k: np.array([float(h[f'harmony_s_{k}']) for h in history])
       for k in evaluate.TASKS}
  losses = {k: np.array([float(h[f'harmony_loss_{k}']) for h in history])
            for k in evaluate.TASKS}
  optimum = evaluate.optimal_log_sigmas(losses, rectified)
  index = _subsample(len(history))
  trajectory = {'update': (index + 1).tolist()}
  for key in evaluate.TASKS:
    trajectory[f'weight_{key}'] = np.exp(-s[key][index]).tolist()
    trajectory[f'optimal_weight_{key}'] = np.exp(
        -optimum[key][index]).tolist()
  return {'summary': evaluate.harmonizer_summary(s, losses, rectified),
          'trajectory': trajectory}
