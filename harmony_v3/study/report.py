"""The study's table (Markdown and CSV) and figures, from its result files.

Every number is the mean ± std (ddof 1) over the seeds that have finished;
the table says how many. Reads only `results/*.json` and `data/dataset.json`,
so it can be rerun at any time.
"""
from __future__ import annotations

import csv
import io
import pathlib
from typing import Sequence

import numpy as np

from .evaluate import TASKS
from .settings import ARMS, NOT_PAPER

COLUMNS = (  # (key, header)
    ('reward_mse_tf', 'reward error, teacher-forced'),
    ('reward_mse_ol', 'reward error, open-loop'),
    ('obs_loss_tf', 'obs. loss, teacher-forced'),
    ('obs_loss_ol', 'obs. loss, open-loop'),
    ('kl', 'KL'),
)


RESULT_KEYS = ('arm', 'seed', 'updates', 'curves', 'final', 'harmonizers',
               'timing')


def read_results(folder: pathlib.Path) -> dict[str, list[dict]]:
  """Finished results by arm, in the study's arm order, seeds sorted.

  A file that is not a result (cut short, edited, foreign) raises
  StudyError naming it."""
  from .data import read_json
  from .settings import StudyError
  by_arm: dict[str, list[dict]] = {}
  for path in sorted(folder.glob('*.json')):
    advice = ('Delete it (the next run of the study trains that arm and '
              'seed again) or move it out of results/.')
    result = read_json(path, "one of the study's results", advice)
    lacks = ([k for k in RESULT_KEYS if k not in result]
             if isinstance(result, dict) else ['all'])
    if lacks:
      raise StudyError(f"{path} is not one of the study's results (it lacks "
                       f"{', '.join(lacks)}). {advice}")
    by_arm.setdefault(result['arm'], []).append(result)
  order = [a for a in ARMS if a in by_arm] + [a for a in by_arm if a not in ARMS]
  return {a: sorted(by_arm[a], key=lambda r: r['seed']) for a in order}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else float('nan')
  return float(values.mean()), std


def _fmt(mean: float, std: float) -> str:
  digits = 3 if abs(mean) < 10 else 1
  if np.isnan(std):
    return f'{mean:.{digits}f}'
  return f'{mean:.{digits}f} ± {std:.{digits}f}'


def aggregate(by_arm: dict[str, list[dict]], reference: dict) -> list[dict]:
  """One row per arm (and the reference first): mean and std of each final
  metric over seeds, harmonizer weights and their optima."""
  rows = [{'arm': 'reference: training-set mean reward per game', 'seeds': 0,
           'paper_setting': None,
           **{f'{k}_mean': reference.get(k) for k, _ in COLUMNS},
           **{f'{k}_std': None for k, _ in COLUMNS}}]
  for arm, results in by_arm.items():
    row = {'arm': arm, 'seeds': len(results),
           'paper_setting': arm not in NOT_PAPER}
    for key, _ in COLUMNS:
      row[f'{key}_mean'], row[f'{key}_std'] = _mean_std(
          [r['final'][key] for r in results])
    harmonized = [r['harmonizers'] for r in results if r['harmonizers']]
    for task in TASKS if harmonized else ():
      for what in ('weight', 'optimal_weight'):
        row[f'{what}_{task}_mean'], row[f'{what}_{task}_std'] = _mean_std(
            [h['summary'][task][what] for h in harmonized])
      reached = [h['summary'][task]['updates_to_within_10pct']
                 for h in harmonized]
      row[f'updates_to_within_10pct_{task}'] = reached
    row['updates'] = results[0]['updates']
    row['updates_per_s'] = float(np.mean(
        [r['timing']['updates_per_s'] for r in results]))
    rows.append(row)
  return rows


def markdown(rows: list[dict], reference: dict) -> str:
  """The two Markdown tables: held-out metrics, then harmonizer weights."""
  ref_tf, ref_ol = reference['reward_mse_tf'], reference['reward_mse_ol']
  head = ['arm', 'seeds'] + [h for _, h in COLUMNS] + ['beats reference']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for row in rows:
    name = row['arm']
    if row['paper_setting'] is False:
      name += ' (not the paper)'
    if not row['seeds']:
      cells = [f'{row[f"{k}_mean"]:.3f}' if row.get(f'{k}_mean') is not None
               else '—' for k, _ in COLUMNS]
      lines.append(f'| {name} | — | ' + ' | '.join(cells) + ' | — |')
      continue
    cells = [_fmt(row[f'{k}_mean'], row[f'{k}_std']) for k, _ in COLUMNS]
    beats = ('tf ' + ('yes' if row['reward_mse_tf_mean'] < ref_tf else 'no')
             + ', ol ' + ('yes' if row['reward_mse_ol_mean'] < ref_ol else 'no'))
    lines.append(f"| {name} | {row['seeds']} | " + ' | '.join(cells)
                 + f' | {beats} |')
  lines += ['', '| arm | harmonizer | final weight 1/sigma | App. B optimum '
            'of the running mean loss | updates to within 10% of log sigma* '
            '(per seed) |', '|---|---|---|---|---|']
  for row in rows:
    if 'weight_reward_mean' not in row:
      continue
    for task in TASKS:
      reached = ', '.join('never' if n is None else f'{n:,}'
                          for n in row[f'updates_to_within_10pct_{task}'])
      lines.append(
          f"| {row['arm']} | {task} | "
          f"{_weight(row, 'weight', task)} | "
          f"{_weight(row, 'optimal_weight', task)} | {reached} |")
  return '\n'.join(lines) + '\n'


def _weight(row: dict, what: str, task: str) -> str:
  mean, std = row[f'{what}_{task}_mean'], row[f'{what}_{task}_std']
  if np.isnan(std):
    return f'{mean:.4g}'
  return f'{mean:.4g} ± {std:.2g}'


def csv_text(rows: list[dict]) -> str:
  """The aggregate rows as CSV (one column per mean and std)."""
  keys: list[str] = []
  for row in rows:
    keys += [k for k in row if k not in keys]
  out = io.StringIO()
  writer = csv.DictWriter(out, keys)
  writer.writeheader()
  for row in rows:
    writer.writerow({k: _csv_value(row.get(k)) for k in keys})
  return out.getvalue()


def _csv_value(value):
  if isinstance(value, list):
    return ' '.join('never' if v is None else str(v) for v in value)
  if isinstance(value, float) and np.isnan(value):
    return ''
  return '' if value is None else value


def figures(by_arm: dict[str, list[dict]], reference: dict,
            folder: pathlib.Path) -> list[pathlib.Path]:
  """heldout_curves.png and harmonizer_weights.png; their paths."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  folder.mkdir(parents=True, exist_ok=True)
  colors = dict(zip(ARMS, plt.get_cmap('tab10').colors))
  paths = []

  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  panels = (('reward_mse_tf', 'held-out reward error, teacher-forced'),
            ('reward_mse_ol', 'held-out reward error, open-loop'),
            ('obs_loss_tf', 'held-out observation loss, teacher-forced'))
  for ax, (key, title) in zip(axes, panels):
    for arm, results in by_arm.items():
      updates = [p['update'] for p in results[0]['curves']]
      values = np.array([[p[key] for p in r['curves']] for r in results])
      mean, std = values.mean(0), values.std(0)
      label = arm + (' (not the paper)' if arm in NOT_PAPER else '')
      ax.plot(updates, mean, label=label, color=colors.get(arm))
      ax.fill_between(updates, mean - std, mean + std, alpha=0.2,
                      color=colors.get(arm))
    if key in reference:
      ax.axhline(reference[key], color='k', ls='--', lw=1,
                 label='reference: training mean')
    ax.set_title(title, fontsize=10)
    ax.set_xlabel('updates')
    ax.set_yscale('log')
  axes[0].set_ylabel('MSE in symlog space')
  axes[2].set_ylabel('-log p(image), per frame')
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  paths.append(folder / 'heldout_curves.png')
  fig.savefig(paths[-1], dpi=110)
  plt.close(fig)

  harmonized = {a: rs for a, rs in by_arm.items()
                if all(r['harmonizers'] for r in rs)}
  if harmonized:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, task in zip(axes, TASKS):
      for arm, results in harmonized.items():
        trajectories = [r['harmonizers']['trajectory'] for r in results]
        updates = trajectories[0]['update']
        weight = np.mean([t[f'weight_{task}'] for t in trajectories], 0)
        optimum = np.mean([t[f'optimal_weight_{task}'] for t in trajectories],
                          0)
        label = arm + (' (not the paper)' if arm in NOT_PAPER else '')
        ax.plot(updates, weight, color=colors.get(arm), label=label)
        ax.plot(updates, optimum, color=colors.get(arm), ls=':', lw=1)
      ax.set_title(f'{task} harmonizer', fontsize=10)
      ax.set_xlabel('updates')
      ax.set_yscale('log')
    axes[0].set_ylabel('weight 1/sigma')
    axes[0].legend(fontsize=7)
    fig.suptitle('Harmonizer weights (solid) and the App. B optimum of the '
                 'running mean loss (dotted), mean over seeds', fontsize=10)
    fig.tight_layout()
    paths.append(folder / 'harmonizer_weights.png')
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
  return paths


def per_run_csv(by_arm: dict[str, list[dict]]) -> str:
  """One row per (arm, seed): final held-out metrics and speed."""
  rows = []
  for arm, results in by_arm.items():
    for r in results:
      rows.append({'arm': arm, 'seed': r['seed'], **r['final'],
                   'updates_per_s': r['timing']['updates_per_s'],
                   'compile_s': r['timing']['compile_s']})
  return csv_text(rows) if rows else ''


def write(study_dir: pathlib.Path, reference: dict
          ) -> tuple[dict[str, pathlib.Path], list[dict]]:
  """Write table.md, table.csv, runs.csv and the figures; their paths and
  the table's rows."""
  by_arm = read_results(study_dir / 'results')
  rows = aggregate(by_arm, reference)
  paths = {'table_md': study_dir / 'table.md',
           'table_csv': study_dir / 'table.csv',
           'runs_csv': study_dir / 'runs.csv'}
  paths['table_md'].write_text(markdown(rows, reference))
  paths['table_csv'].write_text(csv_text(rows))
  paths['runs_csv'].write_text(per_run_csv(by_arm))
  if by_arm:
    for path in figures(by_arm, reference, study_dir / 'figures'):
      paths[path.stem] = path
  return paths, rows
