"""The Crafter score of training runs: `python -m harmony_v3.scores.crafter`.

  python -m harmony_v3.scores.crafter RUNROOT [RUNROOT ...] [--steps 1e6]
      [--achievements] [--json FILE]
  python -m harmony_v3.scores.crafter --random 100 [--seed 0]

Crafter's benchmark (Hafner, 2021) scores an agent on the episodes it plays
while it trains, not on separate evaluations. For each of the 22
achievements, the success rate `s_i` is the percentage of those episodes in
which it was unlocked at least once; the score is their geometric-style mean

  S = exp(mean_i ln(1 + s_i)) - 1,   s_i in [0, 100],

which lies in [0, 100] and rewards rare achievements more than an
arithmetic mean would. The return next to it is the mean episode return
under Crafter's reward (the episode's `sum_log_reward`, which is the
agent's reward for crafter_reward and also known for crafter_noreward).

Input: every run folder below each RUNROOT (a folder with config.yaml and
episodes.jsonl) whose task is `crafter_<task>`; each line of episodes.jsonl
carries the episode's achievement counts in `stats` (written by the runner,
harmony_v3/run/records.py). `--steps` keeps the episodes that ended by that
agent step (Crafter's budget is 1e6). Runs are grouped by task and method;
a group's score and return are the mean and standard deviation (ddof 1)
over its seeds, each seed scored on its own episodes.

`--random N` scores N episodes of the uniform random policy instead, through
this project's env (harmony_v3.envs.crafter.random_episodes), for reference.

Bad input stops the command with exit code 2 and one line naming the file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import pathlib
import sys
from collections.abc import Mapping, Sequence

from harmony_v3.envs.crafter import (ACHIEVEMENT_PREFIX, ACHIEVEMENTS,
                                     random_episodes)
from harmony_v3.scores.runs import method_label, read_config, read_jsonl

STAT_PREFIX = 'max_' + ACHIEVEMENT_PREFIX
RETURN_STAT = 'sum_log_reward'


def success_rates(episodes: Sequence[Mapping[str, int]]) -> dict[str, float]:
  """Percent of `episodes` (each: achievement -> times unlocked) in which
  each of the 22 achievements was unlocked at least once."""
  if not episodes:
    raise ValueError('success rates need at least one episode')
  return {name: 100.0 * sum(ep[name] > 0 for ep in episodes) / len(episodes)
          for name in ACHIEVEMENTS}


def crafter_score(rates: Mapping[str, float]) -> float:
  """S = exp(mean_i ln(1 + s_i)) - 1 over the 22 success rates in percent."""
  missing = [name for name in ACHIEVEMENTS if name not in rates]
  if missing:
    raise ValueError(f'the Crafter score needs all 22 achievements; missing '
                     f'{", ".join(missing)}')
  values = [float(rates[name]) for name in ACHIEVEMENTS]
  bad = [v for v in values if not 0.0 <= v <= 100.0]
  if bad:
    raise ValueError(f'success rates are percentages in [0, 100], got {bad[0]}')
  return math.exp(sum(math.log1p(v) for v in values) / len(values)) - 1.0


@dataclasses.dataclass
class RunResult:
  """One run's training episodes, scored."""
  path: str
  task: str
  method: str
  seed: int
  episodes: int
  mean_return: float | None
  rates: dict[str, float] | None  # None without episodes.
  score: float | None
  done: bool


def episode_achievements(record: dict, where: str) -> dict[str, int]:
  """Achievement -> times unlocked, from one line of episodes.jsonl."""
  stats = record.get('stats') if isinstance(record, dict) else None
  if not isinstance(stats, dict) or not all(
      STAT_PREFIX + name in stats for name in ACHIEVEMENTS):
    raise ValueError(
        f'{where}: the episode has no achievement counts (stats '
        f"'{STAT_PREFIX}<name>' for all 22): was the run trained with "
        f"run.log_keys_max '^log_achievement_.*' (the crafter preset)?")
  try:
    return {name: int(stats[STAT_PREFIX + name]) for name in ACHIEVEMENTS}
  except (TypeError, ValueError):
    raise ValueError(f'{where}: an achievement count is not a number') from None


def read_run(folder: str | pathlib.Path, steps: float | None = None,
             notes: list[str] | None = None) -> RunResult:
  """Score the run in `folder` on its episodes that ended by agent step
  `steps` (all if None)."""
  folder = pathlib.Path(folder)
  notes = [] if notes is None else notes
  config = read_config(folder)
  task = str(config.get('task', ''))
  if not task.startswith('crafter_'):
    raise ValueError(f'{folder / "config.yaml"}: task {task!r} is not a '
                     'Crafter task')
  path = folder / 'episodes.jsonl'
  counts, returns = [], []
  for number, record in enumerate(read_jsonl(path, notes), 1):
    where = f'{path}:{number}'
    if not isinstance(record, dict) or 'step' not in record:
      raise ValueError(f'{where}: not an episode record')
    if not isinstance(record['step'], (int, float)):
      raise ValueError(f'{where}: step {record["step"]!r} is not a number')
    if steps is not None and record['step'] > steps:
      continue
    counts.append(episode_achievements(record, where))
    value = record['stats'].get(RETURN_STAT, record.get('score'))
    returns.append(float(value))
  rates = success_rates(counts) if counts else None
  return RunResult(
      path=str(folder), task=task, method=method_label(config),
      seed=int(config.get('seed', 0)), episodes=len(counts),
      mean_return=sum(returns) / len(returns) if returns else None,
      rates=rates, score=crafter_score(rates) if rates else None,
      done=(folder / 'done.json').exists())


def find_runs(root: str | pathlib.Path) -> list[pathlib.Path]:
  """Run folders below `root` with config.yaml and episodes.jsonl."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise FileNotFoundError(f'{root} is not a folder of runs')
  return [config.parent for config in sorted(root.rglob('config.yaml'))
          if (config.parent / 'episodes.jsonl').is_file()]


def load_runs(roots: Sequence[str | pathlib.Path], steps: float | None = None,
              notes: list[str] | None = None) -> list[RunResult]:
  """Every Crafter run below `roots`; runs of other tasks are noted."""
  notes = [] if notes is None else notes
  results = []
  for root in roots:
    for folder in find_runs(root):
      task = str(read_config(folder).get('task', ''))
      if not task.startswith('crafter_'):
        notes.append(f'{folder}: task {task!r}, not Crafter: skipped')
        continue
      results.append(read_run(folder, steps, notes))
  if not results:
    raise ValueError('no Crafter run folders (config.yaml with a crafter_* '
                     'task, and episodes.jsonl) below ' + ', '.join(
                         str(r) for r in roots))
  return results


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
  if not values:
    return None, None
  mean = sum(values) / len(values)
  if len(values) < 2:
    return mean, None
  var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
  return mean, math.sqrt(var)


@dataclasses.dataclass
class GroupSummary:
  """The runs of one task and method, over seeds."""
  task: str
  method: str
  seeds: list[int]
  episodes: int
  score: tuple[float | None, float | None]  # mean, std over seeds
  mean_return: tuple[float | None, float | None]
  rates: dict[str, float] | None  # mean over seeds


def summarize(results: Sequence[RunResult]) -> list[GroupSummary]:
  """One summary per (task, method), over the runs' seeds; runs without
  episodes count in `seeds` but not in the means."""
  groups: dict[tuple[str, str], list[RunResult]] = {}
  for result in results:
    groups.setdefault((result.task, result.method), []).append(result)
  summaries = []
  for (task, method), runs in sorted(groups.items()):
    scored = [r for r in runs if r.rates is not None]
    rates = ({name: sum(r.rates[name] for r in scored) / len(scored)
              for name in ACHIEVEMENTS} if scored else None)
    summaries.append(GroupSummary(
        task=task, method=method, seeds=sorted(r.seed for r in runs),
        episodes=sum(r.episodes for r in runs),
        score=_mean_std([r.score for r in scored]),
        mean_return=_mean_std([r.mean_return for r in scored]),
        rates=rates))
  return summaries


def _pm(pair: tuple[float | None, float | None], digits: int) -> str:
  mean, std = pair
  if mean is None:
    return '-'
  text = f'{mean:.{digits}f}'
  return text if std is None else f'{text} ± {std:.{digits}f}'


def to_markdown(summaries: Sequence[GroupSummary],
                achievements: bool = False) -> str:
  """The table: one row per task and method (and, with `achievements`, a
  table of success rates in percent, one column per group)."""
  lines = ['| task | method | seeds | episodes | Crafter score (%) | return |',
           '|---|---|---|---:|---:|---:|']
  for s in summaries:
    lines.append(f'| {s.task} | {s.method} | '
                 f'{",".join(map(str, s.seeds))} | {s.episodes} | '
                 f'{_pm(s.score, 2)} | {_pm(s.mean_return, 2)} |')
  if achievements:
    heads = [f'{s.task} {s.method}' for s in summaries]
    lines += ['', '| achievement | ' + ' | '.join(heads) + ' |',
              '|---|' + '---:|' * len(heads)]
    for name in ACHIEVEMENTS:
      cells = ['-' if s.rates is None else f'{s.rates[name]:.1f}'
               for s in summaries]
      lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def to_json(results: Sequence[RunResult],
            summaries: Sequence[GroupSummary]) -> str:
  """Every run and group, as JSON."""
  return json.dumps({
      'runs': [dataclasses.asdict(r) for r in results],
      'groups': [dataclasses.asdict(s) for s in summaries]}, indent=2)


def _random_policy(episodes: int, seed: int) -> int:
  """Print the score and return of the uniform random policy."""
  results = random_episodes(episodes, seed)
  rates = success_rates([counts for counts, _, _ in results])
  returns = [ret for _, ret, _ in results]
  mean, std = _mean_std(returns)
  sem = std / math.sqrt(len(returns)) if std is not None else 0.0
  length = sum(n for _, _, n in results) / len(results)
  print(f'uniform random policy, {episodes} episodes, seed {seed}: Crafter '
        f'score {crafter_score(rates):.2f}%, return {mean:.2f} ± {sem:.2f} '
        f'(standard error), mean length {length:.0f} steps')
  print('success rates (%): ' + ', '.join(
      f'{name} {rate:.1f}' for name, rate in rates.items() if rate))
  return 0


def main(argv: Sequence[str] | None = None) -> int:
  """Print the Crafter score table of the runs below the given roots."""
  parser = argparse.ArgumentParser(
      prog='python -m harmony_v3.scores.crafter',
      description='Crafter score (Hafner, 2021) and return of Crafter '
                  'training runs, per task and method over seeds.')
  parser.add_argument('roots', nargs='*', metavar='RUNROOT',
                      help='folder searched for run folders')
  parser.add_argument('--steps', type=float, default=None,
                      help='count the episodes that ended by this agent step '
                           "(Crafter's budget: 1e6; default: all)")
  parser.add_argument('--achievements', action='store_true',
                      help='also print the success rate of each achievement')
  parser.add_argument('--json', type=pathlib.Path, default=None,
                      help='also write every run and group to this file')
  parser.add_argument('--random', type=int, default=None, metavar='N',
                      help='score N episodes of the uniform random policy '
                           'instead of runs')
  parser.add_argument('--seed', type=int, default=0,
                      help='seed of the env and the random policy (--random)')
  args = parser.parse_args(argv)
  if args.steps is not None and args.steps <= 0:
    parser.error('--steps must be positive')
  if (args.random is None) == (not args.roots):
    parser.error('give RUNROOT folders, or --random N (not both)')
  if args.random is not None:
    if args.random < 1:
      parser.error('--random must be at least 1')
    return _random_policy(args.random, args.seed)
  notes: list[str] = []
  try:
    results = load_runs(args.roots, args.steps, notes)
  except (FileNotFoundError, ValueError) as error:
    print(f'error: {error}', file=sys.stderr)
    return 2
  summaries = summarize(results)
  print(to_markdown(summaries, args.achievements))
  unfinished = [r.path for r in results if not r.done]
  if unfinished:
    notes.append(f'{len(unfinished)} run(s) not finished (no done.json): '
                 + ', '.join(unfinished))
  for note in notes:
    print(f'note: {note}', file=sys.stderr)
  if args.json is not None:
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(to_json(results, summaries) + '\n')
  return 0


if __name__ == '__main__':
  sys.exit(main())
