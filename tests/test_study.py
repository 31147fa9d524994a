"""python -m harmony_v3.study --quick: outputs, the variants inside a real
world model, resume, and input errors."""
import dataclasses
import json
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from harmony_v3.harmonizer import optimal_sigma
from harmony_v3.study import cli, report, settings
from harmony_v3.study.data import Split
from harmony_v3.study.evaluate import running_mean

ARMS = ('harmony_closed_form', 'harmony_lr')
TASKS = ('reward', 'obs', 'dyn')
QUICK_ARGS = ('--preset', 'equilibrium', '--quick', '--arms', *ARMS,
              '--seeds', '2')


@pytest.fixture(scope='module')
def quick_study(tmp_path_factory, python):
  """The equilibrium preset at the --quick size: two of its variants, two
  seeds (so every metric has an interval)."""
  out = tmp_path_factory.mktemp('study')
  proc = subprocess.run(
      [python, '-m', 'harmony_v3.study', *QUICK_ARGS, '--out', str(out),
       '--progress', 'lines', '--json', str(out / 'summary.json')],
      capture_output=True, text=True, timeout=900)
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
  code = cli.main([*QUICK_ARGS, '--out', str(out), '--progress', 'off'])
  assert code == 0
  text = capsys.readouterr().out
  assert 'Resuming: 4 of 4' in text and 'Dataset: reusing' in text
  after = {p.name: p.stat().st_mtime_ns for p in (out / 'results').iterdir()}
  assert {k: after[k] for k in before} == before
  assert (out / 'data' / 'train.npz').stat().st_mtime_ns == data_time


def test_bad_input_is_one_line_and_exit_2(quick_study, capsys):
  out, _ = quick_study
  assert cli.main(['--quick', '--out', str(out), '--updates', '13']) == 2
  assert 'other settings (updates)' in capsys.readouterr().err
  assert cli.main(['--quick', '--arms', 'nope']) == 2
  assert 'unknown arms' in capsys.readouterr().err
  # Refused before hours of training, not when the summary is written.
  missing = out / 'no_such_folder' / 'summary.json'
  assert cli.main([*QUICK_ARGS, '--out', str(out), '--json',
                   str(missing)]) == 2
  assert f'the folder {missing.parent} does not exist' in (
      capsys.readouterr().err)


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


def test_bootstrap_interval_is_exact_deterministic_and_honest_with_few_seeds():
  from harmony_v3.study.report import bootstrap_interval
  # 2 or 3 seeds: the 95% percentile interval of the mean is their range.
  assert bootstrap_interval([0.3, 0.1]) == pytest.approx((0.1, 0.3))
  assert bootstrap_interval([0.2, 0.5, 0.3]) == pytest.approx((0.2, 0.5))
  # 5 seeds: the exact bootstrap distribution, strictly inside the range.
  values = [0.0, 1.0, 2.0, 3.0, 10.0]
  low, high = bootstrap_interval(values)
  assert 0.0 < low < np.mean(values) < high < 10.0
  rng = np.random.default_rng(1)  # Agrees with a Monte Carlo bootstrap.
  means = np.asarray(values)[rng.integers(5, size=(200_000, 5))].mean(1)
  np.testing.assert_allclose((low, high), np.quantile(means, [0.025, 0.975]),
                             atol=0.21)
  assert bootstrap_interval(values) == (low, high)
  # Beyond the exact range: resamples of a fixed generator, deterministic.
  many = np.linspace(0, 1, 12)
  assert bootstrap_interval(many) == bootstrap_interval(many)
  assert 0 < bootstrap_interval(many)[0] < 0.5 < bootstrap_interval(many)[1]
  assert np.isnan(bootstrap_interval([1.0])).all()


def _fake_result(arm, seed, reward_tf, obs_tf):
  final = {'reward_mse_tf': reward_tf, 'reward_mse_ol': reward_tf + 0.1,
           'obs_loss_tf': obs_tf, 'obs_loss_ol': obs_tf + 1, 'kl': 1.0,
           'reward_mse_tf/pong': reward_tf, 'reward_mse_tf/krull': 0.5}
  return {'arm': arm, 'seed': seed, 'final': final}


def test_paired_differences_match_seeds_and_skip_unpaired_ones():
  by_arm = {'dreamerv3_wr100': [_fake_result('dreamerv3_wr100', s, r, 20.0)
                                for s, r in ((0, 0.3), (1, 0.2), (2, 0.4))],
            'harmony': [_fake_result('harmony', 0, 0.1, 30.0),
                        _fake_result('harmony', 2, 0.45, 26.0)]}
  (row,) = report.paired_differences(by_arm)
  assert (row['arm'], row['baseline'], row['seed_list']) == (
      'harmony', 'dreamerv3_wr100', [0, 2])
  # Seed 1 of the baseline has no partner and takes no part.
  assert row['reward_mse_tf_per_seed'] == pytest.approx([-0.2, 0.05])
  assert row['reward_mse_tf_mean'] == pytest.approx(-0.075)
  assert (row['reward_mse_tf_lo'], row['reward_mse_tf_hi']) == pytest.approx(
      (-0.2, 0.05))
  assert row['obs_loss_tf_per_seed'] == pytest.approx([10.0, 6.0])
  assert row['reward_mse_tf/krull_per_seed'] == pytest.approx([0.0, 0.0])
  lines = report.paired_markdown([row])
  assert lines[-1].startswith('| harmony | dreamerv3_wr100 | 0, 2 | ')
  assert lines[-1].endswith('| -0.200, +0.050 |')
  assert report.paired_differences({'harmony': by_arm['harmony']}) == []


def test_committed_equilibrium_table_is_what_its_result_files_give(tmp_path):
  """benchmarks/study_equilibrium holds the full run's result files; its
  tables must be the report of exactly those files."""
  folder = pathlib.Path(__file__).parents[1] / 'benchmarks/study_equilibrium'
  reference = json.loads((folder / 'reference.json').read_text())
  by_arm = report.read_results(folder / 'results')
  assert set(by_arm) == set(settings.EQUILIBRIUM.arms)
  copy = tmp_path / 'copy'
  shutil.copytree(folder / 'results', copy / 'results')
  shutil.copy(folder / 'reference.json', copy / 'reference.json')
  report.write(copy)
  for name in ('table.md', 'table.csv', 'runs.csv'):
    assert (copy / name).read_text() == (folder / name).read_text(), name
  for results in by_arm.values():
    assert all(r['updates'] == settings.EQUILIBRIUM.updates for r in results)


def test_equilibrium_preset_keeps_the_default_data_batches_and_model():
  default, equilibrium = settings.Settings(), settings.EQUILIBRIUM
  changed = {k for k, v in dataclasses.asdict(equilibrium).items()
             if getattr(default, k) != v}
  # Seeds 0 and 1 get the default study's data, batches, keys and model.
  assert changed == {'updates', 'eval_every', 'arms', 'seeds'}
  assert equilibrium.seeds[:2] == default.seeds and len(equilibrium.seeds) >= 3
  assert {'dreamerv3_wr100', 'harmony'} <= set(equilibrium.arms)
  assert equilibrium.updates > default.updates
  quick = settings.preset('equilibrium', quick=True)
  assert (quick.arms, quick.seeds) == (equilibrium.arms, equilibrium.seeds)
  assert quick.updates == settings.QUICK.updates
  with pytest.raises(settings.StudyError, match='Unknown preset'):
    settings.preset('nope')


def test_equilibrium_quick_reports_intervals_and_per_game_rows_for_every_arm(
    quick_study):
  out, _ = quick_study
  saved = json.loads((out / 'study.json').read_text())['settings']
  assert (saved['arms'], saved['seeds']) == (list(ARMS), [0, 1])
  assert saved['updates'] == settings.QUICK.updates
  table = (out / 'table.md').read_text()
  lines = table.splitlines()
  games = ('crazy_climber', 'krull')
  for header in ('reward error, teacher-forced', 'reward error, open-loop',
                 'obs. loss, teacher-forced'):
    start = lines.index(f'Per game, {header}: mean [interval] over seeds.')
    assert lines[start + 2] == '| arm | ' + ' | '.join(games) + ' |'
    end = (lines + [''])[start + 4:].index('') + start + 4
    rows = [r for r in lines[start + 4:end] if r.startswith('| harmony')]
    assert sorted(r.split(' (')[0][2:] for r in rows) == sorted(ARMS)
    # Two seeds: every cell is a mean with its bootstrap interval.
    assert all(r.count('[') == len(games) for r in rows), rows
  assert 'within 10% from (per seed)' in table
  assert (out / 'figures' / 'reward_error_equilibrium.png').stat().st_size
  summary = _result(out, 'harmony_lr')['harmonizers']['summary']
  assert 'updates_to_stay_within_10pct' in summary['obs']
  # The preset's own arms and seeds, as a run without --arms gets them.
  chosen = cli.build_settings(cli.parse_args(['--preset', 'equilibrium']))
  assert chosen == settings.EQUILIBRIUM


def test_report_rebuilds_from_the_result_files_alone(quick_study, tmp_path,
                                                     python):
  out, _ = quick_study
  copy = tmp_path / 'copy'
  shutil.copytree(out / 'results', copy / 'results')
  shutil.copy(out / 'reference.json', copy / 'reference.json')
  proc = subprocess.run([python, '-m', 'harmony_v3.study.report', str(copy)],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  for name in ('table.md', 'table.csv', 'runs.csv'):
    assert (copy / name).read_text() == (out / name).read_text(), name
  for name in ('heldout_curves', 'reward_error_equilibrium',
               'harmonizer_weights'):
    assert (copy / 'figures' / f'{name}.png').stat().st_size > 0
  assert report.main([str(tmp_path / 'empty')]) == 2  # No reference.json.


def test_settled_within_is_the_update_from_which_s_stays_near_its_target():
  from harmony_v3.study.evaluate import settled_within
  targets = np.full(6, 2.0)
  # Within 10% at updates 2, 4, 5, 6 (1-based): first 2, settled from 4.
  s = np.array([1.0, 1.9, 1.5, 2.1, 2.0, 1.95])
  assert settled_within(s, targets) == 4
  assert settled_within(s[:3], targets[:3]) is None  # Ends outside.
  assert settled_within(np.full(3, 2.0), np.full(3, 2.0)) == 1


def test_trace_keeps_every_update_and_reports_the_signs_of_trouble(
    quick_study, tmp_path, python):
  out, _ = quick_study
  path = tmp_path / 'trace.json'
  proc = subprocess.run(
      [python, '-m', 'harmony_v3.study.trace', 'harmony_closed_form',
       '--preset', 'equilibrium', '--quick', '--data', str(out / 'data'),
       '--updates', '4', '--eval-every', '2', '--set', 'harmony.warmup', '4',
       '--out', str(path)], capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  trace = json.loads(path.read_text())
  assert 'partial' not in trace and trace['set'] == {'harmony.warmup': '4'}
  weights = trace['history']['harmony_weight_obs']
  assert len(weights) == 4 and weights[-1] < weights[0] < 1  # The ramp.
  assert 'dyn loss at the free-bits floor (1 nat)' in proc.stdout
  from harmony_v3.study.trace import diagnostics, shown_updates
  assert shown_updates(120) == [1, 2, 5, 10, 20, 50, 100, 120]
  lines = diagnostics({'dyn_loss_mean': [3.0, 1.0, 1.0, 2.0],
                       'model_opt_grad_norm': [5e3, 10.0, 20.0, 30.0],
                       'image_loss_mean': [1.0] * 4,
                       'reward_loss_mean': [1.0] * 4}, window=2, top=1)
  assert lines[0].endswith('first at update 2; share of updates per 2: '
                           '0.50, 0.50')
  assert lines[1].endswith('share per 2: 0.50, 0.00')
  assert lines[3].startswith('  1: 5,000')


def test_replay_of_the_model_optimizer_on_s_matches_optax():
  from harmony_v3 import adaptation
  from harmony_v3.study.trace import predict, replay_s
  steps = 300
  replayed = replay_s(np.full(steps, 150.0), np.ones(steps), 1e-2)
  expected = adaptation.s_trajectory(150.0, 1e-2, steps)  # s after each.
  np.testing.assert_allclose(replayed[1:], expected[:-1], rtol=2e-4,
                             atol=1e-5)
  # Unclipped, predict finds the constant-loss answer; a clip in the first
  # updates leaves Adam a smaller second moment to forget, so s gets there
  # sooner.
  def first(norms):
    history = {'model_opt_grad_norm': norms,
               **{f'harmony_loss_{k}': [150.0] * 10 for k in TASKS},
               **{f'harmony_s_{k}': [0.0] * 10 for k in TASKS}}
    return predict({'history': history}, 5000, lr=1e-2)['obs'][
        'first_within_10pct']
  unclipped = first([10.0] * 10)
  # One later: the study counts the update that uses s, adaptation the one
  # that produced it.
  assert unclipped == 1 + adaptation.updates_to_optimum(
      150.0, 1e-2, max_updates=5000)
  assert first([4000.0] * 10) < unclipped


def test_a_run_killed_mid_way_resumes_from_its_last_evaluation(
    quick_study, tmp_path):
  """A run stopped after its first held-out evaluation resumes there on the
  next call and ends with the uninterrupted run's result."""
  from harmony_v3.study import jobs, model, runs
  from harmony_v3.study.data import load_or_collect
  out, _ = quick_study
  chosen = cli.build_settings(cli.parse_args(list(QUICK_ARGS)))
  arm = 'harmony_lr'
  train, heldout, info = load_or_collect(
      out / 'data', chosen.games, chosen.train_steps_per_game,
      chosen.heldout_steps_per_game, chosen.data_seed, report=print)
  actions = max(info['action_sets'].values())
  heldout = runs.HeldOut(heldout, chosen, actions)
  arm_model = model.WorldModelArm(
      settings.arm_config(chosen, arm, 'cpu'), *jobs._spaces(train, actions),
      chosen.context, fast_compile=True)
  partial, messages = tmp_path / 'partial.pkl', []

  def train_one(progress):
    return runs.train_one(arm_model, arm, 0, train, heldout, chosen, actions,
                          progress, partial=partial, say=messages.append)

  class Killed(Exception):
    pass

  def kill_after_the_first_evaluation(update, metrics):
    if update == chosen.eval_every + 1:
      raise Killed()

  with pytest.raises(Killed):
    train_one(kill_after_the_first_evaluation)
  assert partial.exists() and not messages
  updates = []
  resumed = train_one(lambda update, metrics: updates.append(update))
  assert messages == [f'Resuming {arm} seed 0 at update {chosen.eval_every} '
                      f'from {partial}']
  assert updates == list(range(chosen.eval_every, chosen.updates + 1))
  uninterrupted = _result(out, arm)
  for key in ('curves', 'train', 'harmonizers'):
    np.testing.assert_equal(json.loads(json.dumps(resumed[key])),
                            uninterrupted[key])


def test_a_damaged_or_foreign_run_state_is_reported_and_ignored(tmp_path):
  from harmony_v3.study import runs
  partial, messages = tmp_path / 'partial.pkl', []
  chosen = settings.QUICK
  partial.write_bytes(b'\x80\x05trunc')
  assert runs._load_partial(partial, 'harmony', 0, chosen,
                            messages.append) is None
  partial.write_bytes(__import__('pickle').dumps({
      'arm': 'harmony', 'seed': 0, 'update': 6,
      'settings': dataclasses.asdict(dataclasses.replace(chosen, updates=7))}))
  assert runs._load_partial(partial, 'harmony', 0, chosen,
                            messages.append) is None
  assert 'unreadable (UnpicklingError)' in messages[0]
  assert 'saved under other settings' in messages[1]
  assert all('starts from update 0' in m for m in messages)
