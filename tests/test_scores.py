"""Tests of the Atari 100K score table, its outputs, figures and CLI."""
from __future__ import annotations

import csv
import io
import json
import pathlib
import statistics
import subprocess
import sys

import numpy as np
import pytest

from harmony_v3 import scores
from harmony_v3.scores import plots

REF = scores.REFERENCE_DIR
HARMONY_JSON = REF / 'harmony_dreamerv3_atari100k.json'
REPRODUCED_JSON = REF / 'dreamerv3_reproduced_atari100k.json'
REPO = pathlib.Path(__file__).resolve().parents[1]
EVAL_FRAMES = list(range(20_000, 400_001, 20_000))
REPS = 100  # Small bootstrap for speed.


def write_run(root: pathlib.Path, game: str, seed: int, final: float,
              harmony: bool = True, last_frames: int = 400_000,
              done: bool = True, weights: bool = True) -> pathlib.Path:
  """A run folder as the trainer writes it, with scores rising to `final`."""
  method = 'harmony' if harmony else 'dreamerv3'
  folder = root / method / game / f'seed_{seed}'
  folder.mkdir(parents=True)
  (folder / 'config.yaml').write_text(
      f'task: atari_{game}\nseed: {seed}\n'
      f'harmony: {{enabled: {str(harmony).lower()}, rectified: true}}\n'
      'run: {steps: 101000, log_every: 1000}\n')
  frames = [f for f in EVAL_FRAMES if f <= last_frames]
  with open(folder / 'eval.jsonl', 'w') as f:
    for i, fr in enumerate(frames):
      score = final * (i + 1) / len(EVAL_FRAMES)
      if fr == 400_000:
        score = final
      row = {'step': fr // 4, 'frames': fr, 'episodes': 2,
             'returns': [score - 1, score + 1], 'mean': score}
      f.write(json.dumps(row) + '\n')
  with open(folder / 'metrics.jsonl', 'w') as f:
    for fr in range(4_000, last_frames + 1, 4_000):
      row = {'step': fr // 4, 'frames': fr, 'train/loss': 1.0}
      if weights and harmony:
        row.update({'train/harmony_weight_reward': 10.0 + fr / 4e4 + seed,
                    'train/harmony_weight_obs': 1e-3 * (1 + fr / 4e5),
                    'train/harmony_weight_dyn': 0.5})
      f.write(json.dumps(row) + '\n')
      f.write(json.dumps({'step': fr // 4, 'frames': fr, 'fps': 30}) + '\n')
  if done:
    (folder / 'done.json').write_text('{}')
  return folder


def hns(score: float, game: str) -> float:
  low, high = scores.load_random_human()[game]
  return (score - low) / (high - low)


@pytest.fixture(scope='module')
def published():
  return {path.name: scores.summarize(scores.load_published(path), reps=REPS)
          for path in (HARMONY_JSON, REPRODUCED_JSON)}


@pytest.fixture()
def sweep(tmp_path):
  """pong: 3 complete seeds; breakout: seed 0 done, seed 1 cut, seed 2 absent.

  The dreamerv3 baseline has pong seeds 0-2 in the same root.
  """
  root = tmp_path / 'sweep'
  for seed, final in enumerate([10.0, 14.0, 18.0]):
    write_run(root, 'pong', seed, final)
    write_run(root, 'pong', seed, final - 20.0, harmony=False)
  write_run(root, 'breakout', 0, 40.0)
  write_run(root, 'breakout', 1, 60.0, last_frames=200_000, done=False)
  return root


def test_per_game_aggregates_match_hand_computation(sweep):
  harmony, baseline = scores.load_sweep(sweep)
  assert harmony.label == 'harmony_dreamerv3 (ours)'
  assert baseline.label == 'dreamerv3 (ours)'
  summary = scores.summarize(harmony, reps=REPS)
  pong = summary.games['pong']
  assert pong.mean == pytest.approx(14.0)
  assert pong.std == pytest.approx(statistics.stdev([10.0, 14.0, 18.0]))
  assert pong.n_seeds == 3 and pong.complete
  breakout = summary.games['breakout']
  assert breakout.scores == {0: 40.0}
  assert breakout.std is None
  per_game = [hns(14.0, 'pong'), hns(40.0, 'breakout')]
  assert summary.mean == pytest.approx(np.mean(per_game))
  assert summary.median == pytest.approx(np.median(per_game))
  base = scores.summarize(baseline, reps=REPS)
  assert base.games['pong'].mean == pytest.approx(-6.0)
  assert set(base.games) == {'pong'}


def test_published_hns_mean_and_median(published):
  harmony = published[HARMONY_JSON.name]
  reproduced = published[REPRODUCED_JSON.name]
  assert round(100 * harmony.mean, 1) == 136.4
  assert round(100 * harmony.median, 1) == 67.1
  assert round(100 * reproduced.mean, 1) == 107.4
  assert round(100 * reproduced.median, 1) == 41.6
  assert harmony.label == 'harmony_dreamerv3'
  assert reproduced.label == 'dreamerv3_reproduced'
  assert not harmony.warnings and not reproduced.warnings


def test_bootstrap_intervals_are_sane_and_reproducible(published):
  summary = published[HARMONY_JSON.name]
  matrix, names = scores.hns_matrix(summary)
  assert matrix.shape == (5, 26) and len(names) == 26
  iqm, gap = summary.iqm, summary.optimality_gap
  assert iqm.low <= iqm.value <= iqm.high
  assert matrix.min() <= iqm.low and iqm.high <= matrix.max()
  assert iqm.high - iqm.low > 0
  assert gap.low <= gap.value <= gap.high
  assert 0.0 <= gap.low and gap.high <= 1.0
  state = np.random.get_state()[1].copy()
  again = scores.bootstrap_intervals(matrix, reps=REPS)
  assert np.array_equal(state, np.random.get_state()[1])
  assert (again['iqm'].low, again['iqm'].high) == (iqm.low, iqm.high)
  other = scores.bootstrap_intervals(matrix, reps=REPS, seed=1)
  assert (other['iqm'].low, other['iqm'].high) != (iqm.low, iqm.high)


def test_incomplete_data_is_marked_and_reported(sweep):
  harmony = scores.load_sweep(sweep)[0]
  summary = scores.summarize(harmony, reps=REPS)
  table = scores.build_table([summary])
  label = summary.label
  assert table.cell('breakout', label).display == '40.0 (1/3 seeds)*'
  assert table.cell('pong', label).display == '14.0 ± 4.0'
  assert table.cell('alien', label).display == scores.MISSING
  assert table.cell('alien', label).value is None
  assert '(over 2/26 games' in table.cell('mean', label).display
  assert table.cell('iqm', label).marked
  warns = table.warnings()
  text = '\n'.join(warns)
  assert 'breakout seed 1: incomplete' in text
  assert 'last evaluation at 200000 frames < 400000' in text
  assert 'breakout: no run for seed(s) 2 (1/3 seeds scored)' in text
  assert 'missing games (24)' in text and 'alien' in text
  assert 'IQM and optimality gap use 1 seed(s) per game' in text
  assert all(w.startswith(label + ': ') for w in warns)
  markdown = scores.to_markdown(table)
  assert '## Warnings' in markdown
  assert 'breakout seed 1: incomplete' in markdown.split('## Warnings')[1]


def test_run_that_reached_frames_without_done_is_used_but_noted(tmp_path):
  write_run(tmp_path, 'pong', 0, 5.0, done=False)
  summary = scores.summarize(scores.load_sweep(tmp_path)[0], reps=REPS)
  assert summary.games['pong'].scores == {0: 5.0}
  assert any('no done.json' in w for w in summary.warnings)


def test_game_without_complete_runs_and_duplicate_runs(tmp_path):
  write_run(tmp_path / 'a', 'pong', 0, 5.0)
  write_run(tmp_path / 'b', 'pong', 0, 7.0, last_frames=100_000, done=False)
  write_run(tmp_path, 'boxing', 0, 50.0, last_frames=300_000, done=False)
  method = scores.load_sweep(tmp_path)[0]
  assert any('duplicate runs' in n for n in method.notes)
  summary = scores.summarize(method, reps=REPS)
  assert summary.games['pong'].scores == {0: 5.0}  # The finished duplicate.
  table = scores.build_table([summary])
  cell = table.cell('boxing', summary.label)
  assert cell.display == f'{scores.MISSING} (0/1 seeds)*'
  assert 'boxing' in summary.missing_games
  assert summary.mean == pytest.approx(hns(5.0, 'pong'))


def test_frames_option_changes_final_point(tmp_path):
  write_run(tmp_path, 'pong', 0, 20.0)
  method = scores.load_sweep(tmp_path)[0]
  early = scores.final_scores(method, frames=200_000)['pong']
  assert early.scores[0] == pytest.approx(20.0 * 10 / 20)
  late = scores.final_scores(method, frames=500_000)['pong']
  assert late.scores == {} and 0 in late.incomplete


def test_outputs_parse(sweep, published):
  ours = scores.summarize(scores.load_sweep(sweep)[0], reps=REPS)
  pub = published[HARMONY_JSON.name]
  table = scores.build_table([ours, pub])
  rows = list(csv.DictReader(io.StringIO(scores.to_csv(table))))
  by_row = {r['row']: r for r in rows}
  assert len(rows) == 26 + 4
  pong = by_row['pong']
  assert float(pong['harmony_dreamerv3 (ours):mean']) == pytest.approx(14.0)
  assert float(pong['harmony_dreamerv3 (ours):std']) == pytest.approx(4.0)
  assert pong['harmony_dreamerv3 (ours):n_seeds'] == '3'
  assert by_row['breakout']['harmony_dreamerv3 (ours):note'] == '1/3 seeds'
  assert by_row['alien']['harmony_dreamerv3 (ours):mean'] == ''
  assert float(pong['paper:harmony_dreamerv3']) == 19.0  # Paper's Table 2.
  assert float(by_row['mean_hns_pct']['harmony_dreamerv3:mean']) == (
      pytest.approx(100 * pub.mean))
  iqm = by_row['iqm_hns_pct']
  assert (float(iqm['harmony_dreamerv3:ci_low'])
          <= float(iqm['harmony_dreamerv3:mean'])
          <= float(iqm['harmony_dreamerv3:ci_high']))
  assert '**' not in scores.to_csv(table)

  latex = scores.to_latex(table)
  assert r'\begin{tabular}' in latex and r'\end{tabular}' in latex
  body = [l for l in latex.splitlines() if l.endswith(r'\\')]
  assert len(body) == 1 + len(table.rows)
  assert all(l.count(' & ') == len(table.columns) for l in body)
  assert r'\textbf{' in latex and r'$\pm$' in latex
  tabular = '\n'.join(l for l in latex.splitlines() if not l.startswith('%'))
  assert '_' not in tabular.replace(r'\_', '')
  assert any(l.startswith('% WARNING') for l in latex.splitlines())

  markdown = scores.to_markdown(table)
  lines = [l for l in markdown.splitlines() if l.startswith('|')]
  assert len(lines) == 2 + len(table.rows)
  assert len({l.replace('\\|', '').count('|') for l in lines}) == 1


def test_bolding_rule():
  cells = {('r', c): scores.Cell(v) for c, v in
           zip('abcd', [100.0, 95.0, 94.9, None])}
  scores.apply_bold(cells, 'r', list('abcd'))
  assert [cells['r', c].bold for c in 'abcd'] == [True, True, False, False]
  cells = {('r', c): scores.Cell(v) for c, v in zip('abc', [10.0, 10.5, 10.6])}
  scores.apply_bold(cells, 'r', list('abc'), higher_is_better=False)
  assert [cells['r', c].bold for c in 'abc'] == [True, True, False]
  cells = {('r', c): scores.Cell(v) for c, v in zip('abc', [-20., -21., -21.1])}
  scores.apply_bold(cells, 'r', list('abc'))
  assert [cells['r', c].bold for c in 'abc'] == [True, True, False]


def test_bolding_in_table_excludes_random_and_human(published):
  table = scores.build_table([published[HARMONY_JSON.name]])
  # Human is far above every agent on Alien but must not take the bold.
  assert table.cell('alien', 'dreamerv3_original', paper=True).bold
  assert not table.cell('alien', 'human', paper=True).bold
  assert not table.cell('alien', 'harmony_dreamerv3').bold  # 890 < 911.
  assert table.cell('mean', 'harmony_dreamerv3').bold
  markdown = scores.to_markdown(table)
  assert '| **136.4%** |' in markdown


def test_figures_are_written(sweep, tmp_path):
  methods = scores.load_sweep(sweep) + [scores.load_published(HARMONY_JSON)]
  paths = plots.save_all(methods, tmp_path / 'figs')
  names = sorted(p.name for p in paths)
  assert names == ['harmony_weights.pdf', 'harmony_weights.png',
                   'learning_curves.pdf', 'learning_curves.png']
  for path in paths:
    data = path.read_bytes()
    assert len(data) > 10_000
    assert data[:4] == (b'\x89PNG' if path.suffix == '.png' else b'%PDF')


def test_harmony_weights_are_read_from_metrics(sweep):
  folder = sweep / 'harmony' / 'pong' / 'seed_1'
  weights = scores.read_harmony_weights(folder)
  assert set(weights) == {'reward', 'obs', 'dyn'}
  frames, values = weights['reward']
  assert len(frames) == 100 and frames[0] == 4_000
  assert values[0] == pytest.approx(10.0 + 0.1 + 1)
  assert scores.read_harmony_weights(
      sweep / 'dreamerv3' / 'pong' / 'seed_0') == {}


def test_named_paths_and_duplicate_labels(sweep):
  methods = scores.load_paths([f'mine={sweep}', str(HARMONY_JSON),
                               str(HARMONY_JSON)])
  labels = [m.label for m in methods]
  assert labels == ['mine/harmony_dreamerv3', 'mine/dreamerv3',
                    'harmony_dreamerv3', 'harmony_dreamerv3 #2']


def run_cli(*args):
  return subprocess.run(
      [sys.executable, '-m', 'harmony_v3.scores', *map(str, args)],
      cwd=REPO, capture_output=True, text=True, timeout=120)


def test_cli_on_published_curves(tmp_path):
  out = tmp_path / 'out'
  result = run_cli(HARMONY_JSON, REPRODUCED_JSON, '--reps', REPS,
                   '--out', out, '--format', 'md,csv')
  assert result.returncode == 0, result.stderr
  for value in ('136.4%', '67.1%', '107.4%', '41.6%'):
    assert value in result.stdout
  assert '| harmony_dreamerv3 | dreamerv3_reproduced |' in result.stdout
  assert (out / 'atari100k_scores.md').read_text() == result.stdout
  assert (out / 'atari100k_scores.csv').stat().st_size > 0
  assert not (out / 'atari100k_scores.tex').exists()


def test_cli_rejects_bad_arguments(tmp_path):
  assert run_cli(HARMONY_JSON, '--plots').returncode == 2
  assert run_cli(HARMONY_JSON, '--format', 'xls').returncode == 2
  missing = run_cli(tmp_path / 'nothing_here')
  assert missing.returncode == 2 and 'neither' in missing.stderr


# Issue 19, round two: bad files and NaN scores ------------------------------


def scores_main(capsys, *args):
  """`python -m harmony_v3.scores` in this process: (code, stdout, stderr)."""
  from harmony_v3.scores.cli import main
  try:
    code = main([str(a) for a in args])
  except SystemExit as e:  # argparse's usage errors.
    code = e.code
  out, err = capsys.readouterr()
  return code, out, err


def test_a_nan_final_score_is_named_and_never_averaged(tmp_path, capsys):
  """A NaN evaluation was printed as 'nan' and made the IQM 'nan% [nan,
  nan%]' without a word. Now the run is excluded from the final scores and
  the aggregates, named in a warning, and its game is marked incomplete."""
  for seed, final in enumerate([10.0, float('nan'), 18.0]):
    folder = write_run(tmp_path, 'pong', seed, final)
    if seed == 1:
      nan_run = folder
  write_run(tmp_path, 'boxing', 0, 50.0)
  summary = scores.summarize(scores.load_sweep(tmp_path)[0], reps=REPS)
  pong = summary.games['pong']
  assert pong.scores == {0: 10.0, 2: 18.0} and not pong.complete
  assert pong.incomplete[1] == (
      f'final evaluation score is nan at 400000 frames ({nan_run})')
  assert np.isfinite([summary.mean, summary.median, summary.iqm.value,
                      summary.iqm.low, summary.optimality_gap.high]).all()
  table = scores.build_table([summary])
  assert table.cell('pong', summary.label).display == (
      '14.0 ± 5.7 (2/3 seeds)*')
  assert table.cell('iqm', summary.label).marked
  code, out, err = scores_main(capsys, tmp_path, '--reps', REPS)
  assert code == 0
  rows = [line for line in out.splitlines() if line.startswith('| ')]
  assert len(rows) > 26 and not [r for r in rows if 'nan' in r.lower()]
  assert (f'pong seed 1: incomplete, excluded from final scores — final '
          f'evaluation score is nan at 400000 frames ({nan_run})') in out
  assert 'warning(s): see the Warnings section' in err
  # The same for published curves: the file is named.
  curves = tmp_path / 'curves.json'
  curves.write_text('{"steps": [400000], "score": {"pong": [[5.0], [NaN]]}}')
  summary = scores.summarize(scores.load_published(curves), reps=REPS)
  assert summary.games['pong'].scores == {0: 5.0}
  assert (f'pong seed 1: incomplete, excluded from final scores — final '
          f'evaluation score is nan at 400000 frames ({curves})'
          ) in summary.warnings


BAD_CURVES = [
    ('[1, 2]', 'it holds a JSON list'),
    ('{"steps": [400000]}', "it lacks 'score'"),
    ('{"steps": [400000], "score": [1]}', '"score" is not an object'),
    ('{"steps": [400000], "score": {"pong": [5]}}',
     '"score" of \'pong\' is not a list of per-seed score lists'),
    ('{"steps": [400000], "sco', 'is not a readable JSON file'),
]


@pytest.mark.parametrize('text, message', BAD_CURVES,
                         ids=['list', 'no_score', 'score_list', 'flat_score',
                              'cut_in_half'])
def test_a_bad_curves_file_is_one_message_naming_it(tmp_path, capsys, text,
                                                    message):
  path = tmp_path / 'curves.json'
  path.write_text(text)
  code, out, err = scores_main(capsys, path)
  assert code == 2 and out == ''
  assert err.startswith(f'error: {path} ') and message in err
  assert err.count('\n') == 1  # One line, no traceback.


def test_bad_run_folder_files_and_out_are_one_message(tmp_path, capsys):
  """A config.yaml that is not YAML, an evaluation record that is not an
  object, and --out naming a file were tracebacks."""
  good = write_run(tmp_path / 'sweep', 'pong', 0, 10.0)
  with open(good / 'eval.jsonl', 'a') as f:
    f.write('[1, 2]\n{"frames": "soon", "mean": 3}\n')
  bad = write_run(tmp_path / 'sweep', 'pong', 1, 12.0)
  (bad / 'config.yaml').write_text('task: [atari_pong\n')
  code, out, err = scores_main(capsys, tmp_path / 'sweep', '--reps', REPS)
  assert code == 0, err
  assert f'{bad / "config.yaml"} is not readable YAML' in out
  assert out.count(f'{good / "eval.jsonl"}: unreadable evaluation record '
                   'skipped') == 2
  only_bad = tmp_path / 'only_bad'
  (tmp_path / 'sweep' / 'harmony' / 'pong' / 'seed_1').rename(only_bad)
  code, out, err = scores_main(capsys, only_bad)
  assert code == 2 and 'No Atari 100K run folders found' in err
  assert f'{only_bad / "config.yaml"} is not readable YAML' in err
  a_file = tmp_path / 'a_file'
  a_file.write_text('x')
  code, out, err = scores_main(capsys, HARMONY_JSON, '--out', a_file)
  assert code == 2 and f'--out {a_file} is a file, not a folder' in err
  assert a_file.read_text() == 'x'
  code, out, err = scores_main(capsys, HARMONY_JSON, '--bootstrap-seed',
                               '-1')
  assert code == 2 and '--bootstrap-seed must be in [0, 2**32)' in err
