"""python -m harmony_v3.study --quick: outputs, the variants inside a real
world model, resume, and input errors."""
import json
import subprocess

import numpy as np
import pytest

from harmony_v3.harmonizer import optimal_sigma
from harmony_v3.study import cli
from harmony_v3.study.data import Split
from harmony_v3.study.evaluate import running_mean

ARMS = ('harmony_closed_form', 'harmony_lr')


@pytest.fixture(scope='module')
def quick_study(tmp_path_factory, python):
  out = tmp_path_factory.mktemp('study')
  proc = subprocess.run(
      [python, '-m', 'harmony_v3.study', '--quick', '--out', str(out),
       '--arms', *ARMS, '--seeds', '1', '--progress', 'lines',
       '--json', str(out / 'summary.json')],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return out, proc


def _result(out, arm):
  return json.loads((out / 'results' / f'{arm}__seed0.json').read_text())


def test_quick_study_writes_table_figures_and_results(quick_study):
  out, proc = quick_study
  for name in ('data/train.npz', 'data/heldout.npz', 'data/dataset.json',
               'reference.json', 'table.md', 'table.csv', 'runs.csv',
               'figures/heldout_curves.png', 'figures/harmonizer_weights.png',
               'adaptation.md', 'summary.json'):
    assert (out / name).stat().st_size > 0, name
  table = (out / 'table.md').read_text()
  assert 'reference: training-set mean reward per game' in table
  assert 'harmony_lr (not the paper)' in table
  assert "NOT the paper's setting" in proc.stdout + proc.stderr
  summary = json.loads((out / 'summary.json').read_text())
  assert sorted(r['arm'] for r in summary['rows'][1:]) == sorted(ARMS)
  reference = json.loads((out / 'reference.json').read_text())
  result = _result(out, 'harmony_lr')
  assert [c['update'] for c in result['curves']] == [0, 6, 12]
  for key in ('reward_mse_tf', 'reward_mse_ol', 'obs_loss_tf', 'obs_loss_ol',
              'kl'):
    assert np.isfinite(result['final'][key]) and result['final'][key] > 0
  # The reference is the constant training-mean prediction on the same
  # held-out steps: its error is the targets' spread around that constant.
  assert 0 < reference['reward_mse_tf'] == reference['reward_mse_ol']


def test_closed_form_weights_sit_at_the_optimum_of_the_running_mean(
    quick_study):
  out, _ = quick_study
  summary = _result(out, 'harmony_closed_form')['harmonizers']['summary']
  for task in ('reward', 'obs', 'dyn'):
    entry = summary[task]
    np.testing.assert_allclose(entry['weight'], entry['optimal_weight'],
                               rtol=1e-3)
    assert entry['updates_to_within_10pct'] == 1


def test_own_lr_moves_the_s_by_about_its_lr_per_update(quick_study):
  out, _ = quick_study
  result = _result(out, 'harmony_lr')
  trajectory = result['harmonizers']['trajectory']
  # s of the last update's loss, after updates - 1 Adam steps of lr 1e-2.
  s_obs = -np.log(trajectory['weight_obs'][-1])
  steps = result['updates'] - 1
  assert 0.8 * 0.01 * steps < s_obs <= 1.001 * 0.01 * steps


def test_rerun_resumes_and_reuses_the_dataset(quick_study, capsys):
  out, _ = quick_study
  before = {p.name: p.stat().st_mtime_ns for p in (out / 'results').iterdir()}
  data_time = (out / 'data' / 'train.npz').stat().st_mtime_ns
  # What a kill -9 during a write leaves behind is ignored.
  (out / 'results' / 'harmony__seed0.json.tmp').write_text('{"trunc')
  code = cli.main(['--quick', '--out', str(out), '--arms', *ARMS,
                   '--seeds', '1', '--progress', 'off'])
  assert code == 0
  text = capsys.readouterr().out
  assert 'Resuming: 2 of 2' in text and 'Dataset: reusing' in text
  after = {p.name: p.stat().st_mtime_ns for p in (out / 'results').iterdir()}
  assert {k: after[k] for k in before} == before
  assert (out / 'data' / 'train.npz').stat().st_mtime_ns == data_time


def test_bad_input_is_one_line_and_exit_2(quick_study, capsys):
  out, _ = quick_study
  assert cli.main(['--quick', '--out', str(out), '--updates', '13']) == 2
  assert 'other settings (updates)' in capsys.readouterr().err
  assert cli.main(['--quick', '--arms', 'nope']) == 2
  assert 'unknown arms' in capsys.readouterr().err


def test_damaged_study_files_are_one_message_and_nothing_runs(
    tmp_path, capsys, monkeypatch):
  """Issue 19, round two: a results/*.json cut in half, or a study.json
  that is not JSON, were JSONDecodeError tracebacks (the result only after
  training every other arm). Now one line names the file, exit 2, before
  anything is trained or written."""
  import dataclasses
  started = []
  monkeypatch.setattr(cli, 'run', lambda *a, **k: started.append(a))
  out = tmp_path / 'study'
  (out / 'results').mkdir(parents=True)
  settings = cli.build_settings(cli.parse_args(['--quick']))
  study_json = out / 'study.json'
  study_json.write_text(json.dumps(
      {'settings': dataclasses.asdict(settings), 'command': 'test'}))
  result = out / 'results' / 'harmony__seed0.json'
  whole = json.dumps({'arm': 'harmony', 'seed': 0, 'updates': 12,
                      'curves': [], 'final': {}, 'harmonizers': None,
                      'timing': {}})
  cases = [
      (result, whole[:len(whole) // 2],
       f"error: {result} is not one of the study's results (JSONDecodeError"),
      (result, '{"arm": "harmony"}',
       f"error: {result} is not one of the study's results (it lacks seed, "),
      (study_json, '{"settings": {"games": [',
       f"error: {study_json} is not the study's settings (JSONDecodeError"),
      (study_json, '[1, 2]',
       f"error: {study_json} is not the study's settings (no \"settings\")"),
  ]
  for path, text, message in cases:
    good = path.read_text() if path.exists() else None
    path.write_text(text)
    before = {p: p.read_bytes() for p in out.rglob('*') if p.is_file()}
    code = cli.main(['--quick', '--out', str(out), '--progress', 'off'])
    err = capsys.readouterr().err
    assert (code, started) == (2, []), err
    assert err.startswith(message) and err.count('\n') == 1, err
    assert {p: p.read_bytes() for p in out.rglob('*') if p.is_file()} == (
        before)
    if good is None:
      path.unlink()
    else:
      path.write_text(good)
  a_file = tmp_path / 'a_file'
  a_file.write_text('x')
  assert cli.main(['--quick', '--out', str(a_file)]) == 2
  assert f'--out {a_file} is a file, not a folder' in capsys.readouterr().err


def test_windows_stay_inside_episodes_and_start_fresh():
  split = Split(
      image=np.zeros((7, 2, 2, 3), np.uint8),
      action=np.array([0, 1, -1, 2, 0, 1, -1], np.int16),
      reward=np.arange(7, dtype=np.float32),
      is_first=np.array([1, 0, 0, 1, 0, 0, 0], bool),
      is_last=np.array([0, 0, 1, 0, 0, 0, 1], bool),
      is_terminal=np.array([0, 0, 1, 0, 0, 0, 1], bool),
      game=np.zeros(7, np.int8), episode=np.array([0, 0, 0, 1, 1, 1, 1]))
  np.testing.assert_array_equal(split.window_starts(3), [0, 3, 4])
  batch = split.windows(np.array([4]), 3, num_actions=4)
  assert batch['is_first'][0].tolist() == [True, False, False]
  # Action -1 (an episode's last step) is all zeros; others are one-hot.
  np.testing.assert_array_equal(batch['action'][0], np.eye(4)[[0, 1]].tolist()
                                + [[0, 0, 0, 0]])


def test_running_mean_is_the_debiased_ema():
  values = np.array([2.0, 4.0, 4.0])
  expected, raw = [], 0.0
  for i, v in enumerate(values, 1):
    raw = 0.99 * raw + 0.01 * v
    expected.append(raw / (1 - 0.99 ** i))
  np.testing.assert_allclose(running_mean(values), expected)
  assert np.isclose(running_mean(np.full(50, 3.0))[-1], 3.0)
  assert optimal_sigma(3.0) > 3.0  # Rectified: sigma* above the mean.
