"""The report as Markdown, CSV (one row per game and method) and JSON."""
from __future__ import annotations

import csv
import io
import json
import math

import numpy as np

from harmony_v3.scores.minatar import stats
from harmony_v3.scores.minatar.benchmark import (GAMES, METHODS, pretty_game,
                                                 shown_path)
from harmony_v3.scores.minatar.records import HARMONIZERS
from harmony_v3.scores.minatar.summary import (NORMALIZATIONS, Summary,
                                               method_label)

CITATION = ('Young & Tian (2019), "MinAtar: An Atari-Inspired Testbed for '
            'Thorough and Reproducible Reinforcement Learning Experiments", '
            'arXiv:1903.03176')
HARMONIZER_NAMES = {'reward': 'reward', 'obs': 'observation',
                    'dyn': 'dynamics'}
FIGURES = {'learning_curves': 'Learning curves',
           'harmony_weights': 'Harmonizer weights against their optimum'}


def number(value: float | None) -> str:
  """A return or score, to 2 decimals below 10 and 1 above; '—' for None."""
  if value is None or not math.isfinite(value):
    return '—'
  return f'{value:.2f}' if abs(value) < 10 else f'{value:.1f}'


def interval(value: stats.Interval | None) -> str:
  """'12.3 [10.1, 14.2]'."""
  if value is None:
    return '—'
  return f'{number(value.value)} [{number(value.low)}, {number(value.high)}]'


def _cell(summary: Summary, game: str, method: str, normalized: bool) -> str:
  result = summary.results[game][method]
  if not result.n:
    return f'— (0/{summary.num_seeds})'
  shown = interval(result.normalized if normalized else result.mean)
  seeds = (f'({result.n})' if result.n == summary.num_seeds
           else f'({result.n}/{summary.num_seeds}, incomplete)')
  return f'{shown} {seeds}'


def _status(summary: Summary, game: str) -> str:
  if summary.complete(game):
    return 'complete'
  counts = ', '.join(f'{method_label(m)} {summary.results[game][m].n}/'
                     f'{summary.num_seeds}' for m in METHODS)
  return f'**incomplete** ({counts})'


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  return (['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
          + ['| ' + ' | '.join(row) + ' |' for row in rows])


def _game_table(summary: Summary, normalized: bool) -> list[str]:
  header = ['Game', 'Random', 'Reference',
            *[method_label(m) for m in METHODS], 'Status']
  rows = []
  for game in GAMES:
    rows.append([pretty_game(game), number(summary.random.values.get(game)),
                 number(summary.reference.values.get(game)),
                 *[_cell(summary, game, m, normalized) for m in METHODS],
                 _status(summary, game)])
  return _table(header, rows)


def _aggregates(summary: Summary) -> list[str]:
  games = summary.complete_games
  lines = ['## Aggregates', '']
  if not games:
    return lines + ['None yet: no game has all its seeds for both methods.',
                    '']
  lines += [f'Over the {len(games)} game(s) complete for both methods '
            f'({", ".join(games)}); {summary.num_seeds} seeds each; 95% '
            'stratified-bootstrap intervals (rliable).', '']
  if summary.iqm:
    unit = ('normalized' if summary.normalization == 'reference'
            else 'return above random (fallback, see Warnings)')
    lines += _table(['Method', f'IQM, {unit} [95% CI]'],
                    [[method_label(m), interval(summary.iqm[m])]
                     for m in METHODS])
    lines.append('')
  else:
    lines += ['IQM: not computed (no random returns; see Warnings).', '']
  poi = summary.improvement
  lines += [f'Probability of improvement, P({method_label("harmony")} > '
            f'{method_label("dreamerv3")}): **{poi.value:.3f}** '
            f'[{poi.low:.3f}, {poi.high:.3f}]. For each game, the chance '
            'that a Harmony run scores higher than a DreamerV3 run (ties '
            'count half), averaged over games; 0.5 is no difference.', '']
  return lines


def _weights(summary: Summary) -> list[str]:
  lines = ['## Harmonizer weights at the end of the Harmony runs', '']
  if not summary.weights:
    return lines + ['No Harmony run with harmonizer logs yet.', '']
  lines += ['The weight 1/σ of each harmonizer at the last log, and 1/σ* = '
            '1/σ*(m), the optimum of App. B for m, the running mean of its '
            'loss over the last 1,000 updates (harmony_v3.run.summary). '
            'Geometric means over seeds; ratio: geometric mean of '
            '(1/σ) / (1/σ*), 1 at the optimum.', '']
  rows = []
  for game in GAMES:
    for name in HARMONIZERS:
      entry = summary.weights.get(game, {}).get(name)
      if not entry:
        continue
      weight, optimal = (np.asarray(entry[k]) for k in ('weight', 'optimal'))
      rows.append([pretty_game(game), HARMONIZER_NAMES[name],
                   f'{_geomean(weight):.4g}', f'{_geomean(optimal):.4g}',
                   f'{_geomean(weight / optimal):.3g}',
                   str(len(entry['seeds']))])
  return lines + _table(['Game', 'Harmonizer', '1/σ', '1/σ*', 'ratio',
                         'seeds'], rows) + ['']


def _geomean(values: np.ndarray) -> float:
  return float(np.exp(np.mean(np.log(values))))


def _missing(summary: Summary) -> list[str]:
  lines = ['## Missing runs', '']
  if not summary.missing:
    return lines + [f'None: all {summary.expected_runs} runs are here.', '']
  for method, game, seeds in summary.missing:
    lines.append(f'- {method} {game}: seed(s) '
                 + ', '.join(map(str, seeds)))
  return lines + ['']


def _sources(summary: Summary) -> list[str]:
  random, reference = summary.random, summary.reference
  hours = [r.wall_time_s for r in summary.records if r.wall_time_s]
  machines = sorted({str(r.machine.get('cpu')) for r in summary.records})
  lines = ['## Sources', '',
           '- Random returns: '
           + (f'{shown_path(random.path)} (column {random.column})'
              if random.path else 'none (file absent)'),
           '- Reference returns: '
           + (shown_path(reference.path) if reference.path
              else 'none (file absent)') + '; '
           f'the DQN of {CITATION}'
           + (f'; missing for {", ".join(reference.missing)}'
              if reference.missing else ''),
           f'- Normalization: {NORMALIZATIONS[summary.normalization]}',
           f'- Runs: {len(summary.records)} data file(s); trainer time '
           f'{sum(hours) / 3600:.1f} h over the {len(hours)} with a known '
           'time; collected on: ' + (', '.join(machines) or '—'), '']
  return lines


def to_markdown(summary: Summary, command: str = '',
                figures: list[str] | None = None) -> str:
  """The whole report as Markdown."""
  lines = ['# MinAtar: Harmony DreamerV3 against DreamerV3', '']
  if command:
    lines += [f'Made by `{command}` from the data files alone '
              f'({summary.reps:,} bootstrap replications, seed '
              f'{summary.seed}).', '']
  lines += [f'**{summary.counted_runs} of {summary.expected_runs} runs** '
            f'({len(GAMES)} games x {len(METHODS)} methods x '
            f'{summary.num_seeds} seeds); complete games: '
            + (', '.join(summary.complete_games) or 'none') + '.', '']
  if summary.warnings:
    lines += ['## Warnings', '']
    lines += [f'- {w}' for w in summary.warnings] + ['']
  lines += ['## Final return per game', '',
            "Mean over seeds of each run's final evaluation (the mean "
            'return of its evaluation episodes at the end of its budget), '
            '[95% percentile bootstrap interval over seeds], (seeds).', '']
  lines += _game_table(summary, normalized=False) + ['']
  if summary.normalization != 'none':
    lines += [f'Normalized: {NORMALIZATIONS[summary.normalization]}.', '']
    lines += _game_table(summary, normalized=True) + ['']
  lines += _aggregates(summary) + _weights(summary) + _missing(summary)
  if figures:
    lines += ['## Figures', '']
    for stem in figures:
      lines += [f'![{FIGURES.get(stem, stem)}]({stem}.png)', '']
  lines += _sources(summary)
  return '\n'.join(lines)


def to_csv(summary: Summary) -> str:
  """One row per game and method: seeds, complete, mean and interval, the
  normalized ones, random and reference."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator='\n')
  writer.writerow(['game', 'method', 'seeds', 'expected_seeds', 'complete',
                   'mean', 'ci_low', 'ci_high', 'normalized_mean',
                   'normalized_ci_low', 'normalized_ci_high', 'random',
                   'reference', 'normalization'])
  for game in GAMES:
    for method in METHODS:
      result = summary.results[game][method]
      mean, norm = result.mean, result.normalized
      writer.writerow([
          game, method, result.n, summary.num_seeds,
          summary.complete(game),
          *(_raw(getattr(mean, k, None)) for k in ('value', 'low', 'high')),
          *(_raw(getattr(norm, k, None)) for k in ('value', 'low', 'high')),
          _raw(summary.random.values.get(game)),
          _raw(summary.reference.values.get(game)), summary.normalization])
  return out.getvalue()


def _raw(value) -> str:
  return '' if value is None else repr(float(value))


def to_json(summary: Summary) -> str:
  """The numbers of the report, for other tools."""
  def iv(value):
    return None if value is None else {
        'value': value.value, 'low': value.low, 'high': value.high}
  data = {
      'runs': summary.counted_runs, 'expected_runs': summary.expected_runs,
      'num_seeds': summary.num_seeds,
      'complete_games': summary.complete_games,
      'normalization': summary.normalization,
      'games': {g: {m: {'seeds': sorted(r.scores),
                        'final': [r.scores[s] for s in sorted(r.scores)],
                        'mean': iv(r.mean), 'normalized': iv(r.normalized)}
                    for m, r in summary.results[g].items()}
                for g in GAMES},
      'iqm': ({m: iv(v) for m, v in summary.iqm.items()}
              if summary.iqm else None),
      'probability_of_improvement': iv(summary.improvement),
      'harmonizer_weights': summary.weights,
      'missing': [{'method': m, 'game': g, 'seeds': s}
                  for m, g, s in summary.missing],
      'warnings': summary.warnings,
      'bootstrap': {'reps': summary.reps, 'seed': summary.seed},
  }
  return json.dumps(data, indent=1) + '\n'
