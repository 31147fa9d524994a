"""The report's figures (PNG + PDF), from the data files' records.

- learning_curves: per game, each method's mean evaluation return over
  seeds and its 95% bootstrap band, against frames;
- harmony_weights: per game, each harmonizer's weight 1/sigma at the end of
  every Harmony run (dots) and the App. B optimum 1/sigma* of its running
  mean loss (crosses), log scale.
"""
from __future__ import annotations

import pathlib
from collections.abc import Sequence

import matplotlib

matplotlib.use('Agg')

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from harmony_v3.scores.minatar import stats  # noqa: E402
from harmony_v3.scores.minatar.benchmark import (  # noqa: E402
    GAMES, METHODS, NUM_SEEDS, pretty_game)
from harmony_v3.scores.minatar.records import (  # noqa: E402
    HARMONIZERS, RunRecord)
from harmony_v3.scores.minatar.summary import method_label  # noqa: E402

COLORS = {'harmony': 'tab:red', 'dreamerv3': 'tab:blue'}
HARMONIZER_LABELS = {'reward': 'reward', 'obs': 'observation',
                     'dyn': 'dynamics'}


def _grid(title: str):
  fig, axes = plt.subplots(2, 3, figsize=(12, 7))
  fig.suptitle(title, fontsize=12)
  return fig, axes.flatten()


def learning_curves_figure(records: Sequence[RunRecord],
                           num_seeds: int = NUM_SEEDS,
                           reps: int = stats.DEFAULT_REPS,
                           seed: int = stats.DEFAULT_SEED):
  """Mean evaluation return over seeds, 95% bootstrap band, per game."""
  fig, axes = _grid('MinAtar learning curves: mean over seeds, shaded 95% '
                    'bootstrap interval')
  for ax, game in zip(axes, GAMES):
    counts = []
    for method in METHODS:
      runs = [(r.steps, r.scores) for r in records
              if r.game == game and r.method == method and r.seed < num_seeds]
      counts.append(f'{len(runs)}/{num_seeds}')
      if not runs:
        continue
      frames, mean, low, high, _ = stats.curve_band(runs, reps, seed)
      color = COLORS[method]
      ax.fill_between(frames, low, high, color=color, alpha=0.2, linewidth=0)
      ax.plot(frames, mean, color=color, linewidth=1.6,
              label=f'{method_label(method)}')
    short = any(c != f'{num_seeds}/{num_seeds}' for c in counts)
    ax.set_title(f'{pretty_game(game)} (seeds {" / ".join(counts)}'
                 + (', incomplete)' if short else ')'), fontsize=10)
    ax.set_xlabel('Frames (= agent steps)', fontsize=9)
    ax.set_ylabel('Evaluation return', fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    if not ax.lines:
      ax.set_xticks([])
      ax.set_yticks([])
      ax.text(0.5, 0.5, 'no runs yet', ha='center', va='center',
              transform=ax.transAxes, color='0.5')
  legend = axes[len(GAMES)]
  legend.axis('off')
  handles = [plt.Line2D([], [], color=COLORS[m], linewidth=2,
                        label=method_label(m)) for m in METHODS]
  legend.legend(handles=handles, loc='center', frameon=False,
                title='Seeds in titles: ' + ' / '.join(
                    method_label(m) for m in METHODS))
  fig.tight_layout()
  return fig


def harmony_weights_figure(records: Sequence[RunRecord]):
  """Final weights against their optimum; None without Harmony weights."""
  runs = [r for r in records if r.method == 'harmony' and r.harmony]
  if not runs:
    return None
  fig, axes = _grid('Harmonizer weights at the end of the Harmony runs: '
                    '1/σ (dots) and the App. B optimum 1/σ* (crosses)')
  for ax, game in zip(axes, GAMES):
    mine = [r for r in runs if r.game == game]
    for x, name in enumerate(HARMONIZERS):
      values = [(r.harmony[name]['weight'], r.harmony[name]['optimal_weight'])
                for r in mine if name in r.harmony]
      if not values:
        continue
      weight, optimal = np.array(values).T
      jitter = np.linspace(-0.15, 0.15, len(weight)) if len(weight) > 1 else [0]
      ax.scatter(x + np.asarray(jitter), weight, color='tab:red', s=18,
                 zorder=3)
      ax.scatter(x + np.asarray(jitter), optimal, color='black', marker='x',
                 s=22, zorder=3)
    ax.set_xticks(range(len(HARMONIZERS)),
                  [HARMONIZER_LABELS[n] for n in HARMONIZERS], fontsize=8)
    ax.set_xlim(-0.5, len(HARMONIZERS) - 0.5)
    ax.set_title(f'{pretty_game(game)} ({len(mine)} run(s))', fontsize=10)
    ax.grid(alpha=0.3)
    if ax.collections:
      ax.set_yscale('log')
      ax.set_ylabel('Loss weight', fontsize=9)
    else:
      ax.set_yticks([])
      ax.text(0.5, 0.5, 'no Harmony runs yet', ha='center', va='center',
              transform=ax.transAxes, color='0.5')
  legend = axes[len(GAMES)]
  legend.axis('off')
  legend.legend(handles=[
      plt.Line2D([], [], color='tab:red', marker='o', linestyle='',
                 label='1/σ at the end of a run'),
      plt.Line2D([], [], color='black', marker='x', linestyle='',
                 label='1/σ*: App. B optimum of its mean loss')],
      loc='center', frameon=False)
  fig.tight_layout()
  return fig


def save_figure(fig, out: str | pathlib.Path, stem: str) -> list[pathlib.Path]:
  """<out>/<stem>.png and .pdf; the figure is closed."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  paths = [out / f'{stem}.png', out / f'{stem}.pdf']
  fig.savefig(paths[0], dpi=110)
  fig.savefig(paths[1], metadata={'CreationDate': None})
  plt.close(fig)
  return paths


def save_all(records: Sequence[RunRecord], out: str | pathlib.Path,
             num_seeds: int = NUM_SEEDS, reps: int = stats.DEFAULT_REPS,
             seed: int = stats.DEFAULT_SEED) -> list[pathlib.Path]:
  """Both figures (the weights only if some Harmony run logged them)."""
  paths = save_figure(learning_curves_figure(records, num_seeds, reps, seed),
                      out, 'learning_curves')
  weights = harmony_weights_figure(records)
  if weights is not None:
    paths += save_figure(weights, out, 'harmony_weights')
  return paths
