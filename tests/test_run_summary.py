"""run_summary: figures computed from a run folder's logs."""
import json
import math

import pytest

from harmony_v3.run import summary as run_summary


def _write_run(path, harmony=True):
  path.mkdir()
  (path / 'config.yaml').write_text(
      f'task: atari_pong\nharmony:\n  enabled: {str(harmony).lower()}\n'
      'run:\n  steps: 1000.0\n')
  records = []
  # The first window holds compilation and is slow; then steady 40 frames/s.
  for i, (fps, ups) in enumerate([(4.0, 1.0), (40.0, 10.0), (44.0, 11.0),
                                  (36.0, 9.0)]):
    record = {'step': 100 * (i + 1), 'frames': 400 * (i + 1),
              'perf/frames_per_s': fps, 'perf/updates_per_s': ups,
              'perf/time_share/env': 0.1, 'perf/time_share/train': 0.6,
              'perf/time_share/eval': 0.2}
    if harmony:
      record.update({f'train/harmony_weight_{k}': 1.0 - 0.01 * i
                     for k in ('reward', 'obs', 'dyn')})
    records.append(record)
  (path / 'metrics.jsonl').write_text(
      ''.join(json.dumps(r) + '\n' for r in records))
  evals = [{'step': 200, 'frames': 800, 'episodes': 4,
            'returns': [-21, -20, -21, -20], 'lengths': [800, 800, 900, 900],
            'mean': -20.5, 'seconds': 8.0},
           {'step': 400, 'frames': 1600, 'episodes': 4,
            'returns': [-19, -20, -21, -20], 'lengths': [700, 700, 800, 800],
            'mean': -20.0, 'seconds': 8.0}]
  (path / 'eval.jsonl').write_text(''.join(json.dumps(e) + '\n' for e in evals))
  return path


def test_rates_skip_the_compilation_window(tmp_path):
  s = run_summary.summarize(_write_run(tmp_path / 'run'))
  assert s['frames_per_s'] == 40.0 and s['updates_per_s'] == 10.0
  assert s['steps'] == 400 and s['frames'] == 1600
  # 1000 steps x 4 frames at 40 frames/s.
  assert s['projected_run_hours'] == pytest.approx(100 / 3600)
  assert s['time_share'] == {'env': 0.1, 'train': 0.6, 'eval': 0.2}


def test_evaluation_throughput(tmp_path):
  e = run_summary.summarize(_write_run(tmp_path / 'run'))['eval']
  assert e['evaluations'] == 2
  assert e['episodes_per_s'] == pytest.approx(8 / 16)
  assert e['frames_per_s'] == pytest.approx(6400 * 4 / 16)
  assert e['last_mean'] == -20.0


def test_weights_first_and_last(tmp_path):
  s = run_summary.summarize(_write_run(tmp_path / 'run'))
  assert s['harmony'] is True
  assert s['weights']['obs'] == {'first': 1.0, 'last': pytest.approx(0.97)}


def test_baseline_run_has_no_weights(tmp_path):
  s = run_summary.summarize(_write_run(tmp_path / 'run', harmony=False))
  assert s['harmony'] is False and 'weights' not in s


def test_cli_table_and_errors(tmp_path, capsys):
  runs = [_write_run(tmp_path / 'a'), _write_run(tmp_path / 'b', False)]
  out_json = tmp_path / 'summary.json'
  assert run_summary.main([str(r) for r in runs] + ['--json', str(out_json)]) == 0
  table = capsys.readouterr().out.splitlines()
  assert len(table) == 4 and 'Harmony' in table[2] and 'DreamerV3' in table[3]
  assert '1.000 -> 0.970' in table[2]
  assert len(json.loads(out_json.read_text())) == 2
  assert run_summary.main([str(tmp_path)]) == 2
  assert 'no config.yaml' in capsys.readouterr().err


def _write_harmony_logs(path, losses, s_values, rectified=True):
  """A Harmony run whose every log holds all three harmonizers, alike."""
  path.mkdir()
  (path / 'config.yaml').write_text(
      'task: toy_cue\nharmony:\n  enabled: true\n'
      f'  rectified: {str(rectified).lower()}\nrun:\n  steps: 1000.0\n')
  records = []
  for i, (loss, s) in enumerate(zip(losses, s_values)):
    record = {'step': 100 * (i + 1), 'frames': 100 * (i + 1),
              'perf/updates': 200.0 * (i + 1)}
    for k in ('reward', 'obs', 'dyn'):
      record.update({f'train/harmony_loss_{k}': loss,
                     f'train/harmony_s_{k}': s,
                     f'train/harmony_weight_{k}': math.exp(-s)})
    records.append(record)
  (path / 'metrics.jsonl').write_text(
      ''.join(json.dumps(r) + '\n' for r in records))
  return path


BAD_RUN_FILES = [
    ('config.yaml', 'task: [atari_pong\n', 'config.yaml is not readable YAML'),
    ('config.yaml', '- 1\n', 'config.yaml is not a YAML mapping'),
    ('metrics.jsonl', '[1]\n[2]\n', 'is not as a harmony_v3 run writes it'),
    ('eval.jsonl', '\x80\n', 'a log file is not text'),
]


@pytest.mark.parametrize('name, text, message', BAD_RUN_FILES,
                         ids=['yaml', 'yaml_list', 'metrics_list', 'binary'])
def test_cli_bad_run_files_are_one_message(tmp_path, capsys, name, text,
                                           message):
  """Issue 19, round two: each of these was a traceback."""
  run = _write_run(tmp_path / 'run')
  (run / name).write_bytes(text.encode('latin-1'))
  assert run_summary.main([str(run)]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: ') and str(run) in err and message in err
  assert err.count('\n') == 1


def test_cli_json_into_a_missing_folder(tmp_path, capsys):
  run = _write_run(tmp_path / 'run')
  out_json = tmp_path / 'no_such_folder' / 'summary.json'
  assert run_summary.main([str(run), '--json', str(out_json)]) == 2
  assert f'--json {out_json}: no folder' in capsys.readouterr().err


def test_adaptation_unrectified_constant_loss(tmp_path):
  # Unrectified, sigma* = mean loss: a loss of e gives log sigma* = 1, so
  # within 10% means |s - 1| <= 0.1: first at the third log (s = 0.95).
  run = _write_harmony_logs(tmp_path / 'run', [math.e] * 4,
                            [0.5, 0.85, 0.95, 1.2], rectified=False)
  a = run_summary.summarize(run)['adaptation']['obs']
  assert a['updates'] == 600
  assert a['target'] == pytest.approx(1.0)
  assert a['s'] == 1.2 and a['within_at_end'] is False


def test_adaptation_rectified_uses_eq12(tmp_path):
  # Rectified, mean loss 2: sigma* = (2 + sqrt(4 + 8)) / 2 = 1 + sqrt(3),
  # log sigma* = 1.00505, tolerance 0.100505: s = 0.9 misses by 0.10505,
  # s = 0.91 is in.
  run = _write_harmony_logs(tmp_path / 'run', [2.0] * 3, [0.8, 0.9, 0.91])
  a = run_summary.summarize(run)['adaptation']['reward']
  assert a['target'] == pytest.approx(math.log(1 + math.sqrt(3)))
  assert a['updates'] == 600 and a['within_at_end'] is True


def test_adaptation_running_mean_is_the_last_1000_updates(tmp_path):
  # Logs every 200 updates, losses 1, 1, 1, 1, 1, 6: at the sixth log
  # (update 1,200) the last 1,000 updates hold the logs at 400..1,200, mean
  # (1 + 1 + 1 + 1 + 6) / 5 = 2 (unrectified target log 2 = 0.693). The last
  # loss alone (log 6 = 1.79) or all six logs (log 11/6 = 0.606) would put
  # s = 0.68 outside 10%.
  losses = [1.0] * 5 + [6.0]
  run = _write_harmony_logs(tmp_path / 'run', losses, [0.3] * 5 + [0.68],
                            rectified=False)
  a = run_summary.summarize(run)['adaptation']['dyn']
  assert a['mean_loss'] == pytest.approx(2.0)
  assert a['target'] == pytest.approx(math.log(2))
  assert a['updates'] == 1200


def test_adaptation_not_reached_reports_s_and_target(tmp_path, capsys):
  run = _write_harmony_logs(tmp_path / 'run', [150.0] * 3, [0.01, 0.02, 0.03],
                            rectified=False)
  s = run_summary.summarize(run)
  a = s['adaptation']['obs']
  assert a['updates'] is None and a['s'] == 0.03
  assert a['target'] == pytest.approx(math.log(150))
  out_json = tmp_path / 'summary.json'
  assert run_summary.main([str(run), '--json', str(out_json)]) == 0
  out = capsys.readouterr().out
  assert '| obs | not reached | 0.030 | 5.011 | 150 |' in out
  saved = json.loads(out_json.read_text())[0]['adaptation']['obs']
  assert saved['updates'] is None and saved['s'] == 0.03


def test_adaptation_needs_harmonizer_logs(tmp_path):
  s = run_summary.summarize(_write_run(tmp_path / 'run'))
  assert s['adaptation'] == {'reward': None, 'obs': None, 'dyn': None}
  assert run_summary.adaptation_markdown([s]) == ''
