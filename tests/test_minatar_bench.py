"""The MinAtar benchmark: the sweep's --suite minatar, the data files of
finished runs (collect) and the report built from them alone."""
from __future__ import annotations

import json
import math
import pathlib
import shutil
import sys

import numpy as np
import pytest

from harmony_v3.harmonizer import optimal_sigma
from harmony_v3.scores.minatar import benchmark, cli, records, stats
from harmony_v3.scores.minatar.collect import collect, parse_duration
from harmony_v3.scores.runs import load_published
from harmony_v3.sweep import cli as sweep_cli
from harmony_v3.sweep import reporting

REPO = pathlib.Path(__file__).resolve().parents[1]
GAMES = ('breakout', 'freeway')
SEEDS = (0, 1, 2)
REPS = 200  # Small bootstraps: fast, and still reproducible.
EVAL_FRAMES = list(range(1000, 10_001, 1000))
# Constant harmonizer losses and final s of the fake Harmony runs.
LOSSES = {'reward': 0.5, 'obs': 40.0, 'dyn': 3.0}
S_END = {'reward': -0.2, 'obs': 2.5, 'dyn': 1.0}


def write_run(root: pathlib.Path, method: str, game: str, seed: int,
              final: float, done: bool = True, task: str | None = None
              ) -> pathlib.Path:
  """A MinAtar run folder as the trainer (and the sweep) leave it."""
  folder = root / method / game / f'seed{seed}'
  folder.mkdir(parents=True)
  harmony = method == 'harmony'
  (folder / 'config.yaml').write_text(
      f'task: {task or "minatar_" + game}\nseed: {seed}\n'
      f'logdir: {folder}\n'
      f'harmony: {{enabled: {str(harmony).lower()}, rectified: true}}\n'
      'run: {steps: 10000, eval_every: 1000}\njax: {platform: cpu}\n')
  with open(folder / 'eval.jsonl', 'w') as f:
    for i, frames in enumerate(EVAL_FRAMES, 1):
      mean = final * i / len(EVAL_FRAMES)
      f.write(json.dumps({'step': frames, 'frames': frames, 'episodes': 2,
                          'returns': [mean - 1, mean + 1], 'mean': mean,
                          'lengths': [10, 12], 'seconds': 0.1}) + '\n')
  with open(folder / 'metrics.jsonl', 'w') as f:
    for i, frames in enumerate(EVAL_FRAMES, 1):
      row = {'step': frames, 'frames': frames, 'perf/updates': 100 * i,
             'train/loss': 1.0}
      if harmony:
        for name in LOSSES:
          s = S_END[name] * i / len(EVAL_FRAMES)
          row[f'train/harmony_loss_{name}'] = LOSSES[name]
          row[f'train/harmony_s_{name}'] = s
          row[f'train/harmony_weight_{name}'] = math.exp(-s)
      f.write(json.dumps(row) + '\n')
  (folder / 'train.log').write_text(
      '=== sweep 2026-12-01 10:00:00: new run on CPU: ...\n'
      '=== sweep: exit 130 after 1h02m\n'
      '=== sweep 2026-12-01 12:00:00: resume run on CPU: ...\n'
      '=== sweep: exit 0 after 3m05s\n')
  if done:
    (folder / 'done.json').write_text(json.dumps(
        {'finished': '2026-12-01T12:03:05', 'final_eval_mean': final}))
  return folder


def final_score(method: str, game: str, seed: int) -> float:
  """Harmony beats DreamerV3 on every seed of every game."""
  base = {'breakout': 10.0, 'freeway': 30.0}[game] + seed
  return base + (5.0 if method == 'harmony' else 0.0)


@pytest.fixture
def runroot(tmp_path):
  """2 games x 2 methods x 3 seeds, all finished; plus an unfinished
  MinAtar run and a finished Atari run."""
  root = tmp_path / 'logs'
  for method in ('harmony', 'dreamerv3'):
    for game in GAMES:
      for seed in SEEDS:
        write_run(root, method, game, seed, final_score(method, game, seed))
  write_run(root, 'harmony', 'asterix', 0, 1.0, done=False)
  write_run(root, 'harmony', 'pong', 0, 1.0, task='atari_pong')
  return root


@pytest.fixture
def refs(tmp_path):
  """Random returns (the suite's layout: comments, a `mean` column) and
  reference returns for all five games."""
  random = tmp_path / 'random.csv'
  random.write_text('# made by a command\ngame,episodes,mean,std\n'
                    + ''.join(f'{g},1000,{r},0.5\n' for g, r in zip(
                        benchmark.GAMES, (0.5, 0.4, 0.0, 0.1, 4.0))))
  reference = tmp_path / 'reference.csv'
  reference.write_text('# test values\ngame,reference,source\n'
                       + ''.join(f'{g},{v},test\n' for g, v in zip(
                           benchmark.GAMES, (20, 20.4, 60, 30, 100))))
  return random, reference


def report(capsys, bench, out, *extra):
  code = cli.main(['report', str(bench), '--out', str(out), '--reps',
                   str(REPS), '--num-seeds', str(len(SEEDS)), *map(str, extra)])
  captured = capsys.readouterr()
  return code, captured.out, captured.err


# Collect ------------------------------------------------------------------------


def test_collect_writes_one_file_per_finished_run(runroot, tmp_path, capsys):
  bench = tmp_path / 'bench'
  assert cli.main(['collect', str(runroot), '--out', str(bench)]) == 0
  out = capsys.readouterr().out
  files = sorted(p.relative_to(bench).as_posix()
                 for p in bench.rglob('*.json'))
  assert files == sorted(f'runs/{m}/{g}/seed{s}.json'
                         for m in ('harmony', 'dreamerv3') for g in GAMES
                         for s in SEEDS)
  assert '1 MinAtar run(s) not finished' in out and 'asterix' in out
  assert '1 other run folder(s) skipped' in out
  data = json.loads((bench / 'runs/harmony/breakout/seed1.json').read_text())
  assert data['steps'] == EVAL_FRAMES
  assert data['score']['breakout'][0][-1] == final_score('harmony',
                                                         'breakout', 1)
  assert data['wall_time_s'] == 3600 + 120 + 185
  assert data['finished'] == '2026-12-01T12:03:05'
  assert data['total_steps'] == 10_000 and data['machine']['cores']
  # The App. B optimum of the (constant) loss, and 1/sigma = exp(-s).
  for name, loss in LOSSES.items():
    weights = data['harmony'][name]
    assert weights['weight'] == pytest.approx(math.exp(-S_END[name]))
    assert weights['optimal_weight'] == pytest.approx(1 / optimal_sigma(loss))
  baseline = json.loads(
      (bench / 'runs/dreamerv3/breakout/seed1.json').read_text())
  assert baseline['harmony'] is None
  # The same settings give the same digest for both methods and all seeds.
  digests = {json.loads(p.read_text())['config_digest']
             for p in bench.rglob('*.json')}
  assert len(digests) == 1


def test_a_data_file_reads_as_published_curves(runroot, tmp_path):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  curves = load_published(bench / 'runs/dreamerv3/freeway/seed2.json')
  curve = curves.curves['freeway'][0]
  assert list(curve.frames) == EVAL_FRAMES
  assert curve.scores[-1] == final_score('dreamerv3', 'freeway', 2)


def test_collect_again_keeps_files_and_refuses_a_different_run(
    runroot, tmp_path, capsys):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  again = collect([runroot], bench)
  assert not again.written and len(again.unchanged) == 12
  # Seed 0 of breakout trained anew, with another result.
  shutil.rmtree(runroot / 'harmony/breakout/seed0')
  write_run(runroot, 'harmony', 'breakout', 0, 99.0)
  assert cli.main(['collect', str(runroot), '--out', str(bench)]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and 'seed0.json already holds a different' in err
  assert '--replace' in err
  assert cli.main(['collect', str(runroot), '--out', str(bench),
                   '--replace']) == 0
  data = records.read_record(bench / 'runs/harmony/breakout/seed0.json')
  assert data.final == 99.0


def test_a_finished_run_that_cannot_be_read_is_named_and_nothing_written(
    runroot, tmp_path, capsys):
  (runroot / 'dreamerv3/freeway/seed1/eval.jsonl').write_text('')
  bench = tmp_path / 'bench'
  assert cli.main(['collect', str(runroot), '--out', str(bench)]) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1
  assert 'dreamerv3/freeway/seed1' in err and 'no evaluation' in err
  assert not bench.exists()


def test_parse_duration_reads_the_sweeps_durations():
  assert parse_duration('1h02m') == 3720
  assert parse_duration('3m05s') == 185
  assert parse_duration('42s') == 42
  assert parse_duration('soon') is None


# The report ---------------------------------------------------------------------


def test_report_from_the_files_alone(runroot, tmp_path, refs, capsys):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  shutil.rmtree(runroot)  # The report needs the data files only.
  random, reference = refs
  out = tmp_path / 'report'
  code, printed, _ = report(capsys, bench, out, '--random', random,
                            '--reference', reference)
  assert code == 0
  text = (out / 'report.md').read_text()
  assert printed.strip() == text.strip()
  for name in ('scores.csv', 'summary.json', 'learning_curves.png',
               'learning_curves.pdf', 'harmony_weights.png'):
    assert (out / name).is_file(), name
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['runs'] == 12 and summary['expected_runs'] == 30
  assert summary['complete_games'] == list(GAMES)
  assert summary['normalization'] == 'reference'
  # Per game: the mean over seeds, inside its bootstrap interval.
  harmony = summary['games']['breakout']['harmony']
  finals = [final_score('harmony', 'breakout', s) for s in SEEDS]
  assert harmony['final'] == finals
  assert harmony['mean']['value'] == pytest.approx(np.mean(finals))
  assert harmony['mean']['low'] <= np.mean(finals) <= harmony['mean']['high']
  assert harmony['normalized']['value'] == pytest.approx(
      (np.mean(finals) - 0.4) / (20.4 - 0.4))
  # Harmony wins every comparison: IQM higher, P(improvement) 1.
  assert summary['iqm']['harmony']['value'] > summary['iqm']['dreamerv3'][
      'value']
  assert summary['probability_of_improvement']['value'] == 1.0
  assert '**1.000** [1.000, 1.000]' in text
  # Missing: the games without runs, and seeds are listed.
  assert '- harmony asterix: seed(s) 0, 1, 2' in text
  assert 'Breakout' in text and '| complete |' in text
  assert 'Harmonizer weights at the end' in text
  # The same files give the same report.
  again = tmp_path / 'again'
  report(capsys, bench, again, '--random', random, '--reference', reference,
         '--no-plots')
  assert (again / 'summary.json').read_text() == (
      out / 'summary.json').read_text()


def test_an_incomplete_game_is_marked_and_left_out_of_the_aggregates(
    runroot, tmp_path, refs, capsys):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  (bench / 'runs/dreamerv3/freeway/seed2.json').unlink()
  random, reference = refs
  out = tmp_path / 'report'
  code, printed, err = report(capsys, bench, out, '--random', random,
                              '--reference', reference, '--no-plots')
  assert code == 0
  summary = json.loads((out / 'summary.json').read_text())
  assert summary['complete_games'] == ['breakout']
  assert {'method': 'dreamerv3', 'game': 'freeway', 'seeds': [2]} in (
      summary['missing'])
  freeway = next(line for line in printed.splitlines()
                 if line.startswith('| Freeway'))
  assert '(2/3, incomplete)' in freeway and '**incomplete**' in freeway
  assert 'DreamerV3 2/3' in freeway
  assert "Over the 1 game(s) complete for both methods (breakout)" in printed
  assert '- dreamerv3 freeway: seed(s) 2' in printed
  assert 'runs are missing' in printed and 'warning(s)' in err
  # Only breakout is in the IQM: it equals the IQM of breakout's runs.
  norm = [(final_score('harmony', 'breakout', s) - 0.4) / 20.0 for s in SEEDS]
  assert summary['iqm']['harmony']['value'] == pytest.approx(
      stats_iqm(norm))


def stats_iqm(values):
  from scipy.stats import trim_mean
  return trim_mean(values, 0.25)


def test_no_complete_game_gives_no_aggregate(runroot, tmp_path, refs, capsys):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  for game in GAMES:
    (bench / f'runs/harmony/{game}/seed0.json').unlink()
  random, reference = refs
  code, printed, _ = report(capsys, bench, tmp_path / 'r', '--random',
                            random, '--reference', reference, '--no-plots')
  assert code == 0
  assert 'None yet: no game has all its seeds for both methods.' in printed
  assert 'no aggregate' in printed
  summary = json.loads((tmp_path / 'r/summary.json').read_text())
  assert summary['iqm'] is None
  assert summary['probability_of_improvement'] is None


def test_without_reference_returns_the_fallback_is_said(
    runroot, tmp_path, refs, capsys):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  random, _ = refs
  empty = tmp_path / 'empty.csv'  # As shipped: no value filled in.
  shutil.copy(benchmark.REFERENCE_CSV, empty)
  code, printed, _ = report(capsys, bench, tmp_path / 'r', '--random',
                            random, '--reference', empty, '--no-plots')
  assert code == 0
  assert 'NO REFERENCE RETURNS' in printed and 'NOT reference-normalized' in (
      printed)
  assert 'IQM, return above random (fallback' in printed
  summary = json.loads((tmp_path / 'r/summary.json').read_text())
  assert summary['normalization'] == 'random'
  # Without random returns: no normalized score, no IQM; P(improvement) stays.
  code, printed, _ = report(capsys, bench, tmp_path / 'r2', '--random',
                            tmp_path / 'absent.csv', '--reference', empty,
                            '--no-plots')
  assert code == 0 and 'no normalized scores and no IQM' in printed
  summary = json.loads((tmp_path / 'r2/summary.json').read_text())
  assert summary['iqm'] is None
  assert summary['probability_of_improvement']['value'] == 1.0


@pytest.mark.parametrize('content, why', [
    ('{"steps": [1], "score": {"breakout": [[1.0]]}}', 'format None'),
    ('not json', 'not JSON'),
    (None, 'but is named'),
])
def test_a_bad_or_foreign_data_file_is_one_error_naming_it(
    runroot, tmp_path, capsys, content, why):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  bad = bench / 'runs/harmony/breakout/seed1.json'
  if content is None:  # A good file under the wrong name.
    shutil.copy(bench / 'runs/harmony/breakout/seed2.json', bad)
  else:
    bad.write_text(content)
  code, printed, err = report(capsys, bench, tmp_path / 'r', '--no-plots')
  assert code == 2 and not printed
  assert err.count('\n') == 1 and str(bad) in err and why in err


def test_a_bad_reference_file_is_one_error_naming_it(runroot, tmp_path,
                                                     capsys):
  bench = tmp_path / 'bench'
  collect([runroot], bench)
  bad = tmp_path / 'ref.csv'
  bad.write_text('game,reference\npong,3\n')
  code, _, err = report(capsys, bench, tmp_path / 'r', '--reference', bad)
  assert code == 2 and err.count('\n') == 1
  assert str(bad) in err and "unknown game 'pong'" in err
  code, _, err = report(capsys, tmp_path / 'nothing', tmp_path / 'r')
  assert code == 2 and 'no runs/ folder' in err


def test_the_shipped_reference_file_is_empty_on_purpose():
  values = benchmark.read_game_values(
      REPO / 'harmony_v3/reference/minatar_reference.csv', ('reference',))
  assert values.missing == list(benchmark.GAMES)  # Shipped empty, on purpose.


# Statistics ---------------------------------------------------------------------


def test_probability_of_improvement_is_one_when_a_method_dominates():
  rng = np.random.default_rng(0)
  low = rng.normal(0, 1, (5, 4))
  high = low + 10
  better = stats.probability_of_improvement(high, low, reps=REPS)
  assert better.value == 1.0 and better.low >= 0.95
  worse = stats.probability_of_improvement(low, high, reps=REPS)
  assert worse.value == 0.0 and worse.high <= 0.05


def test_probability_of_improvement_is_one_half_on_identical_data():
  scores = np.random.default_rng(1).normal(0, 1, (5, 4))
  same = stats.probability_of_improvement(scores, scores.copy(), reps=REPS)
  assert same.value == 0.5
  assert same.low < 0.5 < same.high


def test_bootstrap_mean_interval_and_reproducibility():
  values = [1.0, 2.0, 3.0, 10.0]
  first = stats.bootstrap_mean(values, reps=REPS, seed=3)
  assert first == stats.bootstrap_mean(values, reps=REPS, seed=3)
  assert first.value == 4.0 and 1.0 <= first.low < 4.0 < first.high <= 10.0
  assert stats.bootstrap_mean([2.5]) == stats.Interval(2.5, 2.5, 2.5)


# The sweep's --suite minatar ---------------------------------------------------


def test_minatar_suite_plan_defaults(fake, capsys, monkeypatch):
  code = sweep_cli.main(['--suite', 'minatar', '--both', '--dry-run',
                         '--logroot', str(fake / 'logs')])
  out = capsys.readouterr().out
  assert code == 0
  assert 'MinAtar sweep: 5 game(s) x 5 seed(s) x harmony+dreamerv3' in out
  assert '--task minatar_<game> --configs tiny minatar' in out
  assert '50 runs: 0 done, 0 resume, 50 new' in out
  args = sweep_cli.parse_args(['--suite', 'minatar'])
  assert args.logroot == '~/logdir/harmony_v3_minatar'
  assert args.configs == ['tiny', 'minatar'] and args.cpu_workers >= 1
  atari = sweep_cli.parse_args([])  # run_atari100k.sh keeps its meaning.
  assert atari.suite == 'atari100k' and atari.configs == ['atari100k']
  assert atari.cpu_workers == 1


def test_minatar_sweep_runs_k_at_once_on_the_cpu_and_reports(
    fake, capsys, monkeypatch):
  monkeypatch.setenv('FAKE_SLEEP', '0.4')
  scores = fake / 'fake_scores.py'
  scores.write_text(
      'import json, sys\n'
      f'open({str(fake / "calls.jsonl")!r}, "a").write('
      'json.dumps(sys.argv[1:]) + "\\n")\n')
  monkeypatch.setenv(reporting.MINATAR_SCORES_CMD_ENV,
                     f'{sys.executable} {scores}')
  logroot = fake / 'logs'
  # The preset 'minatar' comes with the MinAtar suite; tiny stands in here.
  code = sweep_cli.main(['--suite', 'minatar', '--cpu', '--cpu-workers', '2',
                         '--games', 'minatar_breakout', 'space_invaders',
                         '--seeds', '0', '--configs', 'tiny',
                         '--logroot', str(logroot)])
  out = capsys.readouterr().out
  assert code == 0, out
  calls = [json.loads(l) for g in ('breakout', 'space_invaders')
           for l in (logroot / f'harmony/{g}/seed0/fake_runs.jsonl')
           .read_text().splitlines()]
  tasks = sorted(c['argv'][c['argv'].index('--task') + 1] for c in calls)
  assert tasks == ['minatar_breakout', 'minatar_space_invaders']
  spans = sorted((c['start'], c['end']) for c in calls)
  assert spans[1][0] < spans[0][1]  # Both ran at once.
  reports = [json.loads(l) for l in
             (fake / 'calls.jsonl').read_text().splitlines()]
  assert reports == [
      ['collect', str(logroot), '--out', str(logroot / 'benchmark')],
      ['report', str(logroot / 'benchmark'), '--out',
       str(logroot / 'report')]]
  # Running it again skips the finished runs.
  code = sweep_cli.main(['--suite', 'minatar', '--cpu', '--games',
                         'breakout', 'space_invaders', '--seeds', '0',
                         '--configs', 'tiny', '--logroot', str(logroot),
                         '--no-report'])
  assert code == 0 and '2 runs: 2 done' in capsys.readouterr().out


def test_minatar_suite_errors(fake, capsys):
  code = sweep_cli.main(['--suite', 'minatar', '--games', 'pong',
                         '--dry-run'])
  err = capsys.readouterr().err
  assert code == 2 and "Unknown MinAtar game(s): 'pong'" in err
  assert 'space_invaders' in err
  code = sweep_cli.main(['--suite', 'minatar', '--configs', 'tiny',
                         '--logroot', str(fake / 'l')])
  err = capsys.readouterr().err
  assert code == 2 and '--per-gpu K' in err and '--cpu' in err
  code = sweep_cli.main(['--suite', 'minatar', '--configs', 'tiny',
                         '--per-gpu', '1', '--logroot', str(fake / 'l')])
  err = capsys.readouterr().err
  assert code == 2 and 'MinAtar trains on the CPU: add --cpu' in err


def test_each_module_imports_only_earlier_ones():
  import ast
  layers = ('benchmark', 'records', 'collect', 'stats', 'summary', 'formats',
            'plots', 'cli')
  package = REPO / 'harmony_v3/scores/minatar'
  assert sorted(layers) == sorted(p.stem for p in package.glob('*.py')
                                  if not p.stem.startswith('__'))
  for index, name in enumerate(layers):
    imported = set()
    for node in ast.walk(ast.parse((package / f'{name}.py').read_text())):
      if isinstance(node, ast.ImportFrom) and node.module:
        if node.module.startswith('harmony_v3.scores.minatar.'):
          imported.add(node.module.rsplit('.', 1)[1])
        elif node.module == 'harmony_v3.scores.minatar':
          imported.update(alias.name for alias in node.names)
    later = imported - set(layers[:index])
    assert not later, f'{name} imports {sorted(later)}: a later layer'


def test_config_digest_ignores_tracking_and_neutral_later_keys():
  from harmony_v3.scores.minatar.collect import config_digest
  before = {'seed': 0, 'task': 'minatar_breakout', 'logdir': '/a',
            'harmony': {'enabled': True, 'lr': 0.0},
            'run': {'steps': 20000}}
  after = {'seed': 3, 'task': 'minatar_freeway', 'logdir': '/b',
           'harmony': {'enabled': False, 'lr': 0.0, 'warmup': 0},
           'run': {'steps': 20000, 'track': 'wandb',
                   'track_group': 'harmony-freeway',
                   'track_project': 'p'}}
  assert config_digest(before) == config_digest(after)
  warm = {**after, 'harmony': {**after['harmony'], 'warmup': 500}}
  assert config_digest(warm) != config_digest(before)
  longer = {**after, 'run': {**after['run'], 'steps': 30000}}
  assert config_digest(longer) != config_digest(before)
