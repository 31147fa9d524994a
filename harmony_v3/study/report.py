"""The study's tables (Markdown and CSV) and figures, from its result files.

  python -m harmony_v3.study.report STUDY_DIR   # rebuild them at any time

Every number is the mean over the seeds that have finished, with a 95%
bootstrap interval over those seeds (the table says how many); the CSV also
holds the std (ddof 1). Reads only `results/*.json` and `reference.json`.
"""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
import pathlib
import sys
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


LEVEL = 0.95          # the bootstrap intervals' coverage
EXACT_UP_TO = 10      # seeds: exact bootstrap distribution up to this many
RESAMPLES = 20_000    # Monte Carlo resamples beyond (fixed generator seed)


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
  values = np.asarray(values, np.float64)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else float('nan')
  return float(values.mean()), std


def bootstrap_interval(values: Sequence[float], level: float = LEVEL
                       ) -> tuple[float, float]:
  """Percentile bootstrap interval of the mean over `values` (the seeds).

  Deterministic: up to EXACT_UP_TO values the bootstrap distribution is
  enumerated exactly (every multiset of resampled seeds, with its
  multinomial probability); beyond, RESAMPLES resamples of a fixed
  generator. Quantiles are inverted-CDF ones, so with 2 or 3 seeds the 95%
  interval is the seeds' range, and it narrows from 4 or 5 on. NaN for one
  value (no interval).
  """
  values = np.asarray(values, np.float64)
  n = len(values)
  if n < 2:
    return float('nan'), float('nan')
  if n <= EXACT_UP_TO:
    means, probs = [], []
    for chosen in itertools.combinations_with_replacement(range(n), n):
      counts = np.bincount(chosen, minlength=n)
      means.append(values[list(chosen)].mean())
      probs.append(math.factorial(n) / np.prod(
          [math.factorial(c) for c in counts]) / n ** n)
    means, probs = np.array(means), np.array(probs)
  else:
    rng = np.random.default_rng(0)
    means = values[rng.integers(n, size=(RESAMPLES, n))].mean(1)
    probs = np.full(RESAMPLES, 1 / RESAMPLES)
  order = np.argsort(means, kind='stable')
  means, cdf = means[order], np.cumsum(probs[order])
  tail = (1 - level) / 2
  lower = means[np.searchsorted(cdf, tail - 1e-12)]
  upper = means[min(np.searchsorted(cdf, 1 - tail - 1e-12), len(means) - 1)]
  return float(lower), float(upper)


def _num(value: float) -> str:
  if value != 0 and abs(value) < 0.01:
    return f'{value:.2g}'
  return f'{value:.{3 if abs(value) < 10 else 1}f}'


def _fmt(row: dict, key: str) -> str:
  """`mean [low, high]` of `key` in a row, or `mean` alone (one seed)."""
  mean, low = row.get(f'{key}_mean'), row.get(f'{key}_lo')
  if mean is None:
    return '—'
  if low is None or np.isnan(low):
    return _num(mean)
  return f'{_num(mean)} [{_num(low)}, {_num(row[f"{key}_hi"])}]'


def _summarize(row: dict, key: str, values: Sequence[float]) -> None:
  """Mean, std and bootstrap interval of `values` into `row`."""
  row[f'{key}_mean'], row[f'{key}_std'] = _mean_std(values)
  row[f'{key}_lo'], row[f'{key}_hi'] = bootstrap_interval(values)


def per_game_keys(final: dict) -> list[str]:
  """The per-game metric keys (`metric/game`) of a result's final metrics."""
  return [k for k in final if '/' in k]


REFERENCE = 'reference: training-set mean reward per game'
REACHED = ('updates_to_within_10pct', 'updates_to_stay_within_10pct')


def aggregate(by_arm: dict[str, list[dict]], reference: dict) -> list[dict]:
  """One row per arm (and the reference first): mean, std and bootstrap
  interval of each final metric over seeds, overall and per game;
  harmonizer weights, their optima and when they reached them."""
  keys = [k for k, _ in COLUMNS]
  rows = [{'arm': REFERENCE, 'seeds': 0, 'paper_setting': None,
           **{f'{k}_mean': v for k, v in reference.items()
              if k in keys or '/' in k}}]
  for arm, results in by_arm.items():
    row = {'arm': arm, 'seeds': len(results),
           'paper_setting': arm not in NOT_PAPER,
           'seed_list': [r['seed'] for r in results]}
    for key in keys + per_game_keys(results[0]['final']):
      _summarize(row, key, [r['final'][key] for r in results])
    harmonized = [r['harmonizers'] for r in results if r['harmonizers']]
    for task in TASKS if harmonized else ():
      for what in ('weight', 'optimal_weight'):
        _summarize(row, f'{what}_{task}',
                   [h['summary'][task][what] for h in harmonized])
      for what in REACHED:
        # '—': a result written before this was recorded.
        row[f'{what}_{task}'] = [h['summary'][task].get(what, '—')
                                 for h in harmonized]
    row['updates'] = results[0]['updates']
    row['updates_per_s'] = float(np.mean(
        [r['timing']['updates_per_s'] for r in results]))
    rows.append(row)
  return rows


PAIRED = ('reward_mse_tf', 'reward_mse_ol', 'obs_loss_tf', 'kl')


def paired_differences(by_arm: dict[str, list[dict]]) -> list[dict]:
  """Each arm minus the first (the baseline), seed by seed, over the seeds
  both have finished: a study's arms share a seed's data, batches, keys and
  initial model, so the difference is the arm's own effect on that seed.
  Per metric of PAIRED and per game of the teacher-forced reward error:
  mean, std, bootstrap interval and the per-seed differences."""
  arms = list(by_arm)
  if len(arms) < 2:
    return []
  baseline = {r['seed']: r['final'] for r in by_arm[arms[0]]}
  rows = []
  for arm in arms[1:]:
    pairs = [(r['seed'], r['final'], baseline[r['seed']])
             for r in by_arm[arm] if r['seed'] in baseline]
    if not pairs:
      continue
    row = {'arm': arm, 'baseline': arms[0],
           'seed_list': [seed for seed, _, _ in pairs],
           'paper_setting': arm not in NOT_PAPER}
    games = [k for k in pairs[0][1] if k.startswith('reward_mse_tf/')]
    for key in PAIRED + tuple(games):
      diffs = [mine[key] - theirs[key] for _, mine, theirs in pairs]
      _summarize(row, key, diffs)
      row[f'{key}_per_seed'] = diffs
    rows.append(row)
  return rows


def paired_markdown(paired: list[dict]) -> list[str]:
  """The table of paired differences (empty without a second arm)."""
  if not paired:
    return []
  games = [k for k in paired[0] if k.startswith('reward_mse_tf/')
           and k.endswith('_per_seed')]
  games = [k[:-len('_per_seed')] for k in games]
  head = (['arm', 'minus', 'seeds'] + [dict(COLUMNS)[k] for k in PAIRED]
          + [f'reward error tf, {g.split("/", 1)[1]}' for g in games]
          + ['reward error tf per seed'])
  lines = ['', 'Paired by seed (same data, batches, keys and initial model): '
           'the arm minus the first arm, mean [interval] over seeds; '
           'negative is lower than the first arm.', '',
           '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for row in paired:
    cells = [_fmt(row, k) for k in PAIRED + tuple(games)]
    per_seed = ', '.join(f'{d:+.3f}' for d in row['reward_mse_tf_per_seed'])
    lines.append(f"| {_name(row)} | {row['baseline']} | "
                 f"{', '.join(map(str, row['seed_list']))} | "
                 + ' | '.join(cells) + f' | {per_seed} |')
  return lines


def markdown(rows: list[dict], reference: dict,
             paired: Sequence[dict] = ()) -> str:
  """The Markdown tables: held-out metrics, the paired differences
  against the first arm, the same per game, then the harmonizers' weights
  and when they reached their optimum."""
  ref_tf, ref_ol = reference['reward_mse_tf'], reference['reward_mse_ol']
  arms = [r for r in rows if r['seeds']]
  updates = sorted({r['updates'] for r in arms})
  lines = [f'Final held-out metrics after {", ".join(map(str, updates))} '
           f'updates: mean [{LEVEL:.0%} bootstrap interval over seeds] '
           '(with 2 or 3 seeds the interval is their range).', '']
  head = ['arm', 'seeds'] + [h for _, h in COLUMNS] + ['beats reference']
  lines += ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
  for row in rows:
    cells = [_fmt(row, k) for k, _ in COLUMNS]
    if not row['seeds']:
      lines.append(f"| {row['arm']} | — | " + ' | '.join(cells) + ' | — |')
      continue
    beats = ('tf ' + ('yes' if row['reward_mse_tf_mean'] < ref_tf else 'no')
             + ', ol ' + ('yes' if row['reward_mse_ol_mean'] < ref_ol else 'no'))
    lines.append(f"| {_name(row)} | {row['seeds']} | " + ' | '.join(cells)
                 + f' | {beats} |')
  lines += paired_markdown(list(paired))
  lines += per_game_markdown(rows)
  lines += ['', 'Harmonizers: final weight and the App. B optimum of the '
            'running mean loss, mean [interval]; the update at which `s` '
            'first came within 10% of log sigma*, and from which it stayed '
            'within 10% to the end, per seed.', '',
            '| arm | harmonizer | final weight 1/sigma | App. B optimum '
            'of the running mean loss | first within 10% (per seed) | '
            'within 10% from (per seed) |', '|---|---|---|---|---|---|']
  for row in rows:
    if 'weight_reward_mean' not in row:
      continue
    for task in TASKS:
      reached = ' | '.join(_updates(row[f'{what}_{task}'])
                           for what in REACHED)
      lines.append(
          f"| {row['arm']} | {task} | {_fmt(row, f'weight_{task}')} | "
          f"{_fmt(row, f'optimal_weight_{task}')} | {reached} |")
  return '\n'.join(lines) + '\n'


def _name(row: dict) -> str:
  return row['arm'] + (' (not the paper)' if row['paper_setting'] is False
                       else '')


def _updates(values: Sequence[int | str | None]) -> str:
  """Updates per seed: None is 'never', a str ('—': not recorded) as is."""
  return ', '.join('never' if n is None else n if isinstance(n, str)
                   else f'{n:,}' for n in values)


PER_GAME = (('reward_mse_tf', 'reward error, teacher-forced'),
            ('reward_mse_ol', 'reward error, open-loop'),
            ('obs_loss_tf', 'obs. loss, teacher-forced'))


def per_game_markdown(rows: list[dict]) -> list[str]:
  """One table per metric with a row per arm and a column per game."""
  lines = []
  for key, header in PER_GAME:
    games = []
    for row in rows:
      games += [k.split('/', 1)[1][:-len('_mean')] for k in row
                if k.startswith(key + '/') and k.endswith('_mean')
                and k.split('/', 1)[1][:-len('_mean')] not in games]
    if not games:
      continue
    lines += ['', f'Per game, {header}: mean [interval] over seeds.', '',
              '| arm | ' + ' | '.join(games) + ' |',
              '|' + '---|' * (len(games) + 1)]
    for row in rows:
      cells = [_fmt(row, f'{key}/{game}') for game in games]
      if not row['seeds'] and all(c == '—' for c in cells):
        continue
      lines.append(f'| {_name(row)} | ' + ' | '.join(cells) + ' |')
  return lines


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


TASK_STYLES = {'reward': ':', 'obs': '--', 'dyn': '-.'}


def _band(ax, updates, values: np.ndarray, color, label) -> None:
  """Mean over seeds (rows of `values`) and its bootstrap interval."""
  mean = values.mean(0)
  ax.plot(updates, mean, label=label, color=color)
  if len(values) > 1:
    low, high = np.array([bootstrap_interval(v) for v in values.T]).T
    ax.fill_between(updates, low, high, alpha=0.2, color=color)


def _label(arm: str) -> str:
  return arm + (' (not the paper)' if arm in NOT_PAPER else '')


def equilibrium_updates(results: Sequence[dict]) -> dict[str, tuple]:
  """Per harmonizer: (median over the seeds that got there of the update at
  which `s` first came within 10% of its optimum, seeds that got there,
  seeds); empty without harmonizers."""
  summaries = [r['harmonizers']['summary'] for r in results
               if r['harmonizers']]
  if not summaries:
    return {}
  marks = {}
  for task in TASKS:
    reached = [s[task]['updates_to_within_10pct'] for s in summaries
               if s[task]['updates_to_within_10pct'] is not None]
    marks[task] = (float(np.median(reached)) if reached else None,
                   len(reached), len(summaries))
  return marks


def figures(by_arm: dict[str, list[dict]], reference: dict,
            folder: pathlib.Path) -> list[pathlib.Path]:
  """heldout_curves.png, reward_error_equilibrium.png and (with harmonized
  arms) harmonizer_weights.png; their paths. Bands are the bootstrap
  intervals over seeds."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  folder.mkdir(parents=True, exist_ok=True)
  colors = dict(zip(ARMS, plt.get_cmap('tab10').colors))
  paths = []

  def curves(results, key):
    return ([p['update'] for p in results[0]['curves']],
            np.array([[p[key] for p in r['curves']] for r in results]))

  fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
  panels = (('reward_mse_tf', 'held-out reward error, teacher-forced'),
            ('reward_mse_ol', 'held-out reward error, open-loop'),
            ('obs_loss_tf', 'held-out observation loss, teacher-forced'))
  for ax, (key, title) in zip(axes, panels):
    for arm, results in by_arm.items():
      _band(ax, *curves(results, key), colors.get(arm), _label(arm))
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

  paths.append(_equilibrium_figure(by_arm, reference, folder, colors, curves))

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
        ax.plot(updates, weight, color=colors.get(arm), label=_label(arm))
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


def _equilibrium_figure(by_arm, reference, folder, colors, curves
                        ) -> pathlib.Path:
  """Held-out teacher-forced reward error over updates, all games and each
  game, with a vertical line where each harmonizer of each harmonized arm
  first came within 10% of its optimum (median over seeds)."""
  import matplotlib.pyplot as plt
  from matplotlib.lines import Line2D
  first = next(iter(by_arm.values()))[0]['final']
  games = [k.split('/', 1)[1] for k in per_game_keys(first)
           if k.startswith('reward_mse_tf/')]
  keys = [('reward_mse_tf', 'all games')] + [
      (f'reward_mse_tf/{g}', g) for g in games]
  fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 4.2),
                           squeeze=False)
  notes = {}
  for ax, (key, title) in zip(axes[0], keys):
    for arm, results in by_arm.items():
      _band(ax, *curves(results, key), colors.get(arm), _label(arm))
      for task, (update, got, of) in equilibrium_updates(results).items():
        if update is None:
          continue
        ax.axvline(update, color=colors.get(arm), ls=TASK_STYLES[task],
                   lw=1.2)
        if ax is axes[0][0]:
          notes.setdefault(arm, []).append(
              f'{task} {update:,.0f}'
              + ('' if got == of else f' ({got} of {of} seeds)'))
    if key in reference:
      ax.axhline(reference[key], color='k', ls='--', lw=1,
                 label='reference: training mean')
    ax.set_title(f'held-out reward error, teacher-forced: {title}',
                 fontsize=9)
    ax.set_xlabel('updates')
    ax.set_yscale('log')
  axes[0][0].set_ylabel('MSE in symlog space')
  handles, _ = axes[0][0].get_legend_handles_labels()
  handles += [Line2D([], [], color='gray', ls=style,
                     label=f'{task} harmonizer within 10% of its optimum')
              for task, style in TASK_STYLES.items()]
  axes[0][0].legend(handles=handles, fontsize=6)
  if notes:
    fig.suptitle('\n'.join(
        ['Vertical lines: first update within 10% of the App. B optimum, '
         'median over seeds'] + [f'{arm}: ' + ', '.join(items)
                                 for arm, items in notes.items()]),
        fontsize=8)
  fig.tight_layout()
  path = folder / 'reward_error_equilibrium.png'
  fig.savefig(path, dpi=110)
  plt.close(fig)
  return path


def per_run_csv(by_arm: dict[str, list[dict]]) -> str:
  """One row per (arm, seed): final held-out metrics and speed."""
  rows = []
  for arm, results in by_arm.items():
    for r in results:
      rows.append({'arm': arm, 'seed': r['seed'], **r['final'],
                   'updates_per_s': r['timing']['updates_per_s'],
                   'compile_s': r['timing']['compile_s']})
  return csv_text(rows) if rows else ''


def write(study_dir: pathlib.Path, reference: dict | None = None
          ) -> tuple[dict[str, pathlib.Path], list[dict]]:
  """Write table.md, table.csv, runs.csv and the figures from
  `results/*.json` and the reference (default: `reference.json`); their
  paths and the table's rows."""
  if reference is None:
    reference = json.loads((study_dir / 'reference.json').read_text())
  by_arm = read_results(study_dir / 'results')
  rows = aggregate(by_arm, reference)
  paths = {'table_md': study_dir / 'table.md',
           'table_csv': study_dir / 'table.csv',
           'runs_csv': study_dir / 'runs.csv'}
  paths['table_md'].write_text(
      markdown(rows, reference, paired_differences(by_arm)))
  paths['table_csv'].write_text(csv_text(rows))
  paths['runs_csv'].write_text(per_run_csv(by_arm))
  if by_arm:
    for path in figures(by_arm, reference, study_dir / 'figures'):
      paths[path.stem] = path
  return paths, rows


def main(argv: Sequence[str] | None = None) -> int:
  """python -m harmony_v3.study.report STUDY_DIR: rebuild the tables and
  figures of a study folder from its results."""
  argv = list(sys.argv[1:] if argv is None else argv)
  if len(argv) != 1 or argv[0].startswith('-'):
    print('usage: python -m harmony_v3.study.report STUDY_DIR',
          file=sys.stderr)
    return 2
  folder = pathlib.Path(argv[0])
  if not (folder / 'reference.json').exists():
    print(f'error: {folder} holds no reference.json (not a study folder?)',
          file=sys.stderr)
    return 2
  paths, _ = write(folder)
  print(paths['table_md'].read_text())
  for name, path in paths.items():
    if name != 'table_md':
      print(f'  {name}: {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
