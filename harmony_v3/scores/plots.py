"""Atari 100K figures: learning curves and harmonizer weights (PNG + PDF).

Both figures take the `MethodData` list that the score table uses, so
our runs and published curves are drawn by the same code. Matplotlib runs with
the non-interactive Agg backend.
"""
from __future__ import annotations

import pathlib
from collections.abc import Sequence

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import ticker  # noqa: E402

from harmony_v3.envs import games as games_lib  # noqa: E402
from harmony_v3.scores.benchmark import (  # noqa: E402
    DEFAULT_FRAMES, pretty_game)
from harmony_v3.scores.runs import (  # noqa: E402
    MethodData, read_harmony_weights)

GRID = (5, 6)  # 26 games and a spare row end for the legend.
WEIGHT_COLORS = {'reward': 'tab:red', 'obs': 'tab:blue', 'dyn': 'tab:green'}
WEIGHT_NAMES = {'reward': 'reward loss', 'obs': 'observation loss',
                'dyn': 'dynamics loss'}
METHOD_STYLES = ('-', '--', ':', '-.')


def _frames_formatter() -> ticker.FuncFormatter:
  def fmt(x, _):
    if x == 0:
      return '0'
    return f'{x / 1e6:g}M' if abs(x) >= 1e6 else f'{x / 1e3:g}K'
  return ticker.FuncFormatter(fmt)


def _game_grid(title: str, ylabel: str):
  rows, cols = GRID
  fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows + 0.6))
  fig.suptitle(title, fontsize=14)
  fig.supxlabel('Environment frames', fontsize=12)
  fig.supylabel(ylabel, fontsize=12)
  axes = axes.flatten()
  for ax in axes[len(games_lib.ATARI100K_GAMES):]:
    ax.axis('off')
  return fig, axes


def seed_statistics(curves: Sequence[tuple[np.ndarray, np.ndarray]]):
  """Mean, sample std (0 for one seed) and seed count at each frame.

  Curves are (frames, values) pairs; a frame's statistics use the seeds that
  logged that frame.
  """
  grid = np.unique(np.concatenate([f for f, _ in curves]))
  table = np.full((len(curves), len(grid)), np.nan)
  for i, (frames, values) in enumerate(curves):
    table[i, np.searchsorted(grid, frames)] = values
  count = np.sum(~np.isnan(table), axis=0)
  mean = np.nanmean(table, axis=0)
  centered = np.where(np.isnan(table), 0.0, table - mean)
  std = np.sqrt(np.sum(centered ** 2, axis=0) / np.maximum(count - 1, 1))
  return grid, mean, std, count


def learning_curves_figure(methods: Sequence[MethodData],
                           frames: int = DEFAULT_FRAMES):
  """All games in one grid: mean evaluation return over seeds, ± 1 std band.

  Each method has its own color; our runs are solid, published curves dashed.
  Where only some of a game's runs reach a frame, the line turns dotted.
  """
  fig, axes = _game_grid(
      'Atari 100K learning curves: mean over seeds, shaded ± 1 sample std '
      '(dotted: not all seeds there yet)', 'Evaluation return')
  colors = plt.rcParams['axes.prop_cycle'].by_key()['color']
  handles = []
  for index, method in enumerate(methods):
    color = colors[index % len(colors)]
    style = '--' if method.published else '-'
    n_seeds = max((len(s) for s in method.curves.values()), default=0)
    handle = None
    for ax, game in zip(axes, games_lib.ATARI100K_GAMES):
      runs = [(c.frames, c.scores) for c in method.curves.get(game, {}).values()
              if len(c.frames)]
      if not runs:
        continue
      grid, mean, std, count = seed_statistics(runs)
      full = count == max(len(runs), n_seeds)
      ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.18,
                      linewidth=0)
      ax.plot(grid, mean, color=color, linestyle=':', linewidth=1.2)
      (handle,) = ax.plot(grid, np.where(full, mean, np.nan), color=color,
                          linestyle=style, linewidth=1.6)
    if handle is not None:
      kind = 'published' if method.published else 'ours'
      name = method.label
      if kind not in name:
        name += f' ({kind})'
      handle.set_label(f'{name}, {n_seeds} seeds')
      handles.append(handle)
  for ax, game in zip(axes, games_lib.ATARI100K_GAMES):
    ax.set_title(pretty_game(game), fontsize=11)
    ax.xaxis.set_major_formatter(_frames_formatter())
    ax.set_xlim(0, frames)
    ax.axvline(frames, color='0.6', linewidth=0.8)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if not ax.lines:
      _no_data(ax)
  _legend(fig, axes, handles)
  return fig


def _no_data(ax) -> None:
  ax.set_yticks([])
  ax.text(0.5, 0.5, 'no data', ha='center', va='center',
          transform=ax.transAxes, color='0.5')


def _legend(fig, axes, handles, title: str = 'Method') -> None:
  spare = axes[len(games_lib.ATARI100K_GAMES)]
  fig.tight_layout(rect=(0.01, 0.01, 1, 0.97))
  if handles:  # Drawn after the layout so that it may spill into spare axes.
    spare.legend(handles=handles, loc='center left', fontsize=10,
                 frameon=False, title=title, title_fontsize=11)


def _interpolated_mean(runs: Sequence[tuple[np.ndarray, np.ndarray]]):
  """Mean over runs on the union of their frames (no extrapolation)."""
  grid = np.unique(np.concatenate([f for f, _ in runs]))
  table = np.full((len(runs), len(grid)), np.nan)
  for i, (frames, values) in enumerate(runs):
    inside = (grid >= frames[0]) & (grid <= frames[-1])
    table[i, inside] = np.interp(grid[inside], frames, values)
  return grid, np.nanmean(table, axis=0)


def harmony_weights_figure(methods: Sequence[MethodData],
                           frames: int = DEFAULT_FRAMES):
  """Harmonizer weights over training per game (mean over seeds, log y).

  Returns None when no run of any method logged harmonizer weights.
  """
  data = []  # (method, game -> name -> [runs])
  for method in methods:
    per_game = {}
    for game, seeds in method.curves.items():
      for curve in seeds.values():
        if curve.path is None:
          continue
        for name, run in read_harmony_weights(curve.path).items():
          per_game.setdefault(game, {}).setdefault(name, []).append(run)
    if per_game:
      data.append((method, per_game))
  if not data:
    return None
  fig, axes = _game_grid(
      'Harmonizer loss weights over training (mean over seeds; log scale)',
      'Loss weight')
  handles = []
  for index, (method, per_game) in enumerate(data):
    style = METHOD_STYLES[index % len(METHOD_STYLES)]
    for ax, game in zip(axes, games_lib.ATARI100K_GAMES):
      for name, runs in per_game.get(game, {}).items():
        grid, mean = _interpolated_mean(runs)
        keep = mean > 0  # Weights are positive; a log axis cannot show others.
        (line,) = ax.plot(grid[keep], mean[keep], color=WEIGHT_COLORS[name],
                          linestyle=style, linewidth=1.4)
        label = WEIGHT_NAMES[name]
        if len(data) > 1:
          label += f' — {method.label}'
        if label not in [h.get_label() for h in handles]:
          line.set_label(label)
          handles.append(line)
  for ax, game in zip(axes, games_lib.ATARI100K_GAMES):
    ax.set_title(pretty_game(game), fontsize=11)
    ax.xaxis.set_major_formatter(_frames_formatter())
    ax.set_xlim(0, frames)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if ax.lines:
      ax.set_yscale('log')
    else:
      _no_data(ax)
  title = 'Weight of the'
  if len(data) == 1:
    title = f'{data[0][0].label}: weight of the'
  _legend(fig, axes, handles, title)
  return fig


def save_figure(fig, out: str | pathlib.Path, stem: str) -> list[pathlib.Path]:
  """Save a figure as <out>/<stem>.png and .pdf, close it, return the paths."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  paths = [out / f'{stem}.png', out / f'{stem}.pdf']
  fig.savefig(paths[0], dpi=120)
  fig.savefig(paths[1])
  plt.close(fig)
  return paths


def save_all(methods: Sequence[MethodData], out: str | pathlib.Path,
             frames: int = DEFAULT_FRAMES) -> list[pathlib.Path]:
  """Learning curves, and harmonizer weights where logged, into `out`."""
  paths = save_figure(learning_curves_figure(methods, frames), out,
                      'learning_curves')
  weights = harmony_weights_figure(methods, frames)
  if weights is not None:
    paths += save_figure(weights, out, 'harmony_weights')
  return paths
