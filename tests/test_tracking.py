"""Experiment tracking (--run.track wandb): what an offline W&B run holds,
resuming the same W&B run, and the errors. The runs are stand-in trainers
(tests/standin.py: the real runner and logger, a NumPy agent), offline."""
import json
import pathlib
import signal
import struct

import pytest

from harmony_v3 import train
from harmony_v3.run import tracking
from trainer_runs import Trainer, read_jsonl

needs_wandb = pytest.mark.skipif(
    not tracking.wandb_installed(),
    reason="wandb is not installed: pip install 'harmony_v3[track]'")

OFFLINE = {'WANDB_MODE': 'offline', 'WANDB_SILENT': 'true'}
TRACK = ('--run.track', 'wandb', '--run.track_group', 'harmony-pong')

# An offline run's .wandb file: a 7-byte header (':W&B', 0xBEE1, version 0),
# then LevelDB's log format: 32 KiB blocks of chunks, each a CRC (4 bytes),
# a length (2), a type (1: whole, 2: first, 3: middle, 4: last) and the data,
# which joined are one protocol buffer `Record` (wandb/proto).
_BLOCK, _CHUNK = 32768, struct.Struct('<IHB')


def wandb_records(path: pathlib.Path) -> list:
  """The Records of an offline run's .wandb file."""
  from wandb.proto import wandb_internal_pb2
  data = path.read_bytes()
  assert data[:4] == b':W&B', f'{path}: not a W&B run file'
  records, pending, offset = [], b'', 7
  while offset + _CHUNK.size <= len(data):
    if _BLOCK - offset % _BLOCK < _CHUNK.size:  # The block's zero tail.
      offset += _BLOCK - offset % _BLOCK
      continue
    _, length, kind = _CHUNK.unpack_from(data, offset)
    chunk = data[offset + _CHUNK.size:offset + _CHUNK.size + length]
    offset += _CHUNK.size + length
    pending = chunk if kind in (1, 2) else pending + chunk
    if kind in (1, 4):
      records.append(wandb_internal_pb2.Record.FromString(pending))
  return records


def offline_runs(logdir: pathlib.Path) -> list[dict]:
  """Each offline W&B run (one per trainer attempt) under the run folder,
  oldest first: its run record, config, history rows and exit code."""
  runs = []
  for folder in sorted((logdir / 'wandb').glob('offline-run-*')):
    records = wandb_records(next(folder.glob('*.wandb')))
    kinds = {}
    for record in records:
      kinds.setdefault(record.WhichOneof('record_type'), []).append(record)
    run = kinds['run'][0].run
    rows = [{('.'.join(item.nested_key) or item.key): json.loads(
        item.value_json) for item in r.history.item} for r in kinds['history']]
    runs.append({
        'run': run,
        'config': {i.key: json.loads(i.value_json) for i in run.config.update},
        'history': rows,
        'exit_code': kinds['exit'][-1].exit.exit_code,
    })
  return runs


@needs_wandb
def test_offline_run_holds_metrics_config_and_names(tmp_path):
  logdir = tmp_path / 'run'
  trainer = Trainer(logdir, *TRACK, env=OFFLINE)
  assert trainer.wait() == 0, trainer.output[-3000:]
  [offline] = offline_runs(logdir)
  run = offline['run']
  assert run.run_id == json.loads((logdir / 'tracking.json').read_text())[
      'wandb_id']
  assert run.project == 'harmony_v3' and run.run_group == 'harmony-pong'
  assert run.display_name == 'harmony/atari_pong/seed0'
  assert list(run.tags) == ['harmony', 'atari_pong']
  config = offline['config']
  assert config['task'] == 'atari_pong' and config['run']['track'] == 'wandb'
  assert config['harmony']['enabled'] is True and config['run']['steps'] == 600
  # Every scalar of metrics.jsonl, at W&B step = frames (4 per agent step).
  history = {}
  for row in offline['history']:
    history.setdefault(row['_step'], {}).update(row)
  metrics = read_jsonl(logdir / 'metrics.jsonl')
  assert metrics and any('train/model_loss' in r for r in metrics)
  for record in metrics:
    row = history[record['frames']]
    assert record['frames'] == 4 * record['step']
    for key, value in record.items():
      if key not in ('step', 'frames', 'nonfinite') and value is not None:
        assert row[key] == pytest.approx(value), (key, record['step'])
  evals = read_jsonl(logdir / 'eval.jsonl')
  assert [history[e['frames']]['eval/score'] for e in evals] == [
      pytest.approx(e['mean']) for e in evals]
  assert offline['exit_code'] == 0


@needs_wandb
def test_a_resumed_run_continues_the_same_wandb_run(tmp_path):
  logdir = tmp_path / 'run'
  first = Trainer(logdir, *TRACK, env={**OFFLINE, 'STANDIN_STEP_SLEEP': '0.01'})
  first.wait_for('Evaluation at 800 frames', timeout=120)
  first.signal(signal.SIGTERM)
  assert first.wait() == 130, first.output[-3000:]
  run_id = json.loads((logdir / 'tracking.json').read_text())['wandb_id']
  second = Trainer(logdir, *TRACK, env=OFFLINE)
  assert second.wait() == 0, second.output[-3000:]
  attempts = offline_runs(logdir)
  assert [a['run'].run_id for a in attempts] == [run_id, run_id]
  assert [a['exit_code'] for a in attempts] == [130, 0]
  resumed_at = min(row['_step'] for row in attempts[1]['history'])
  assert resumed_at > 800  # Continued from the checkpoint, not from 0.
  # A fresh run in another folder is another W&B run.
  other = Trainer(tmp_path / 'other', *TRACK, '--run.steps', '200',
                  env=OFFLINE)
  assert other.wait() == 0, other.output[-3000:]
  assert offline_runs(tmp_path / 'other')[0]['run'].run_id != run_id


def test_tracking_keys_may_change_on_resume():
  from harmony_v3.run.folder import config_differences
  saved = {'run.track': '', 'run.track_project': 'a', 'run.track_group': ''}
  new = {'run.track': 'wandb', 'run.track_project': 'b',
         'run.track_group': 'harmony-pong'}
  assert config_differences(saved, new) == []


def test_sweep_groups_runs_by_method_and_game(tmp_path):
  from harmony_v3.sweep.launch import Launch
  from harmony_v3.sweep.plan import make_run
  launch = Launch(['train'], ['tiny'], ['--run.track', 'wandb'], True, 0.0,
                  None)
  argv = launch.argv(make_run(tmp_path, 'dreamerv3', 'pong', 2))
  assert argv[argv.index('--run.track_group') + 1] == 'dreamerv3-pong'
  mine = Launch(['train'], ['tiny'], ['--run.track_group', 'mine'], True,
                0.0, None).argv(make_run(tmp_path, 'harmony', 'pong', 0))
  assert mine.count('--run.track_group') == 1 and mine[-1] == 'mine'


@pytest.mark.parametrize('installed, flag, message', [
    (False, 'wandb', "needs the wandb package, which is not installed: pip "
                     "install 'harmony_v3[track]'"),
    (True, 'mlflow', "run.track must be '' (off) or wandb, got 'mlflow'"),
])
def test_bad_tracking_is_one_clear_error_before_training(
    tmp_path, capsys, monkeypatch, installed, flag, message):
  monkeypatch.setattr(tracking, 'wandb_installed', lambda: installed)
  logdir = tmp_path / 'run'
  code = train.main(['--configs', 'tiny', '--logdir', str(logdir),
                     '--run.track', flag])
  err = capsys.readouterr().err
  assert code == 2 and message in err
  assert err.count('error:') == 1 and 'Traceback' not in err
  assert not logdir.exists()  # Nothing was started.


@needs_wandb
def test_a_full_disk_at_the_run_id_file_is_one_clear_error(tmp_path):
  """tracking.json cannot be written: a disk error naming it (exit 2), not
  a traceback."""
  logdir = tmp_path / 'run'
  trainer = Trainer(logdir, *TRACK, env=OFFLINE,
                    fault='enospc:tracking.json.tmp')
  assert trainer.wait() == 2, trainer.output[-3000:]
  assert f'Disk full while writing {logdir / "tracking.json"}' in (
      trainer.output)
  assert 'Traceback' not in trainer.output
