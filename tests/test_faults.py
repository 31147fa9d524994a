"""Fault injection: kill -9 at the worst moments, full disks, damaged files,
two trainers at once. After each, the run resumes (or stops with a clear
error) and ends as an uninterrupted run of the same length: same counters,
updates, replay steps, evaluations, and logs without rolled-back records.

Stand-in trainers (tests/standin.py) run the real runner, checkpoints,
replay files and logs with a NumPy agent, so that each run takes about a
second; HARMONY_FAULT (harmony_v3.run.faults) places the kills.
"""
import pathlib
import shutil
import subprocess

import pytest

from harmony_v3.run import replay_files
from trainer_runs import Trainer, facts, read_jsonl, run, snapshot

KILLED = -9


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  """The facts of an uninterrupted run."""
  trainer = run(tmp_path_factory.mktemp('reference') / 'run')
  assert trainer.process.exitcode == 0, trainer.output[-3000:]
  return facts(trainer.logdir)


def test_reference_run_is_what_the_config_says(reference):
  assert reference['step'] == reference['done']['steps'] == 600
  # 100 steps of prefill, then one update every other step (train_ratio 8,
  # batches of 2 x 8 steps).
  assert reference['updates'] == reference['agent_updates'] == 250
  assert reference['replay_steps'] == 600
  assert reference['eval_steps'] == [200, 400, 600]
  assert reference['tensorboard_eval_frames'] == [800, 1600, 2400]


# (fault, what the resumed run must say about the files it dropped)
# DISCARDED_IF_NEW: the replay writes chunk files from a background thread,
# so whether one of a chunk the checkpoint does not know reached the disk
# before the kill depends on timing; where one did, it must be discarded.
DISCARDED_IF_NEW = 'Discarded (if a new chunk reached the disk)'
KILLS = [
    ('after_full_chunk_write@1', 'Discarded'),   # During the prefill.
    ('after_full_chunk_write@5', 'Discarded'),   # Between two checkpoints.
    ('after_replay_save@2', 'Discarded'),        # Chunks saved, no checkpoint.
    ('during_checkpoint_write@3', 'Discarded'),  # Checkpoint not renamed.
    ('after_checkpoint@3', None),                # Old chunk saves not deleted.
    ('during_eval@2', DISCARDED_IF_NEW),         # Mid-evaluation.
    # After the last step's logs, during the last evaluation: the logs of
    # step 600 must go, from the JSON lines and from TensorBoard.
    ('during_eval@3',
     'TensorBoard events logged after the checkpoint at step 400'),
    ('after_update@120', DISCARDED_IF_NEW),      # Anywhere in training.
    ('after_final_save', None),                  # Before done.json.
]


def new_chunks_on_disk(logdir) -> list[str]:
  """Chunk files holding replay steps that the checkpoint's manifest does not
  account for (a chunk it does not know, or a longer save of one it does)."""
  from harmony_v3.run import checkpoint
  manifest = checkpoint.load_checkpoint(logdir / 'checkpoint.ckpt')['replay']
  known = {}
  for name in manifest:
    uuid = replay_files._chunk_uuid(name)
    known[uuid] = max(known.get(uuid, 0), replay_files.chunk_steps(name))
  return [p.name for p in (logdir / 'replay').glob('*.npz')
          if p.name not in manifest and replay_files.chunk_steps(p.name)
          > known.get(replay_files._chunk_uuid(p.name), 0)]


@pytest.mark.parametrize('fault, message', KILLS, ids=[k[0] for k in KILLS])
def test_kill_then_resume_ends_as_an_uninterrupted_run(
    fault, message, reference, tmp_path):
  logdir = tmp_path / 'run'
  first = run(logdir, fault=fault)
  assert first.process.exitcode == KILLED, first.output[-3000:]
  assert f'FAULT: SIGKILL at {fault.split("@")[0]}' in first.output
  if message == DISCARDED_IF_NEW:
    message = 'Discarded' if new_chunks_on_disk(logdir) else None
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert 'Resumed from' in second.output
  if message:
    assert message in second.output, second.output[-3000:]
  assert facts(logdir) == reference


def test_kill_during_the_first_compilation(reference, tmp_path):
  """SIGKILL while XLA compiles the first update (a real compilation)."""
  import signal
  logdir = tmp_path / 'run'
  first = Trainer(logdir, env={'STANDIN_COMPILE': 'update'})
  first.wait_for('Compiling for the first train update.')
  first.signal(signal.SIGKILL)
  assert first.wait() == KILLED
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert 'at step 0 (0 replay steps' in second.output  # Prefill redone.
  assert facts(logdir) == reference


def test_kill_after_the_final_save_finishes_without_a_second_record(
    reference, tmp_path):
  logdir = tmp_path / 'run'
  run(logdir, fault='after_final_save')
  records = read_jsonl(logdir / 'metrics.jsonl')
  second = run(logdir)
  assert second.process.exitcode == 0
  assert read_jsonl(logdir / 'metrics.jsonl') == records


def test_replay_ahead_of_the_checkpoint_is_discarded(tmp_path):
  """Defect A: chunk files written after the checkpoint are not loaded."""
  logdir = tmp_path / 'run'
  run(logdir, fault='after_full_chunk_write@5')  # Step 320: last ckpt 200.
  from harmony_v3.run import checkpoint, replay_files
  payload = checkpoint.load_checkpoint(logdir / 'checkpoint.ckpt')
  assert payload['step'] == 200
  on_disk = replay_files.make_manifest(logdir / 'replay')
  # Chunks are written by a thread pool: under load the 6th chunk can be on
  # disk before the 5th write's kill, so the count ahead is read, not fixed.
  ahead = replay_files.manifest_steps(on_disk) - 200
  assert ahead >= 120
  second = Trainer(logdir, '--run.steps', '200')  # Resume, nothing more.
  assert second.wait() == 0, second.output[-3000:]
  assert f'Discarded {ahead} replay steps' in second.output
  assert 'at step 200 (200 replay steps, 193 sequences)' in second.output


def _kill_at_step_200(logdir):
  first = run(logdir, fault='after_checkpoint@2')
  assert first.process.exitcode == KILLED
  from harmony_v3.run import checkpoint
  return checkpoint.load_checkpoint(logdir / 'checkpoint.ckpt')


def test_a_resumed_run_seeds_its_envs_anew(reference, tmp_path):
  """The trainer gives a resumed run's envs the seed that env_seed draws
  from the run's seed and the resume step, not the run's seed again."""
  from harmony_v3.envs import env_seed
  logdir = tmp_path / 'run'
  step = int(_kill_at_step_200(logdir)['step'])
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  seed = env_seed(0, step)
  assert seed != 0
  assert f'Stand-in envs seeded {seed}.' in second.output
  assert f'Resuming at step {step:,}: the envs are seeded {seed}' in (
      second.output)
  assert facts(logdir) == reference


def test_truncated_chunk_is_a_clear_error_naming_it(tmp_path):
  """Defect B: a damaged chunk of the checkpoint names the file."""
  logdir = tmp_path / 'run'
  payload = _kill_at_step_200(logdir)
  name = sorted(payload['replay'])[1]
  path = logdir / 'replay' / name
  path.write_bytes(path.read_bytes()[:100])
  before = snapshot(logdir)
  second = run(logdir)
  assert second.process.exitcode == 2
  assert f'Replay chunk {path} is damaged' in second.output
  assert snapshot(logdir) == before


def test_garbled_chunk_is_a_clear_error_naming_it(tmp_path):
  """Defect B: same size, unreadable content."""
  logdir = tmp_path / 'run'
  payload = _kill_at_step_200(logdir)
  path = logdir / 'replay' / sorted(payload['replay'])[0]
  path.write_bytes(b'x' * path.stat().st_size)
  second = run(logdir)
  assert second.process.exitcode == 2
  assert f'Replay chunk {path} is corrupt or unreadable' in second.output


def test_missing_replay_folder_is_refused(tmp_path):
  """Defect C."""
  logdir = tmp_path / 'run'
  _kill_at_step_200(logdir)
  shutil.rmtree(logdir / 'replay')
  second = run(logdir)
  assert second.process.exitcode == 2
  assert f'The replay folder {logdir / "replay"} is missing' in second.output
  assert not (logdir / 'replay').exists()


def test_a_foreign_npz_in_the_replay_folder_is_refused(reference, tmp_path):
  """Issue 19, round two: `replay/notes.npz` was an IndexError traceback.
  Now one message names it, exit 2, nothing changes; moved away, the run
  resumes as if it had never been there."""
  logdir = tmp_path / 'run'
  _kill_at_step_200(logdir)
  notes = logdir / 'replay' / 'notes.npz'
  notes.write_bytes(b'my notes')
  before = snapshot(logdir)
  second = run(logdir)
  assert second.process.exitcode == 2, second.output[-3000:]
  assert f'error: {notes} is not a replay chunk file' in second.output
  assert 'Traceback' not in second.output
  assert snapshot(logdir) == before
  notes.rename(tmp_path / 'notes.npz')
  third = run(logdir)
  assert third.process.exitcode == 0, third.output[-3000:]
  assert facts(logdir) == reference


def test_torn_log_line_and_leftover_temporary_files(reference, tmp_path):
  logdir = tmp_path / 'run'
  _kill_at_step_200(logdir)
  with (logdir / 'metrics.jsonl').open('a') as f:
    f.write('{"step": 250, "frames": 10')  # Cut short by the kill.
  (logdir / 'checkpoint.ckpt.tmp').write_bytes(b'half a checkpoint')
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert facts(logdir) == reference


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
  logdir = tmp_path / 'run'
  _kill_at_step_200(logdir)
  path = logdir / 'checkpoint.ckpt'
  path.write_bytes(path.read_bytes()[:500])
  second = run(logdir)
  assert second.process.exitcode == 2
  assert f'Checkpoint {path} is corrupt or unreadable' in second.output


def test_a_second_trainer_is_refused_and_changes_nothing(tmp_path):
  """Defect D, with the lock held by this process."""
  from harmony_v3.run import run_lock
  logdir = tmp_path / 'run'
  _kill_at_step_200(logdir)
  before = snapshot(logdir)
  fd = run_lock.acquire(logdir)
  try:
    assert run_lock.is_locked(logdir)
    second = run(logdir)
  finally:
    run_lock.release(fd)
  assert second.process.exitcode == 2
  assert 'Another trainer is training in' in second.output
  assert snapshot(logdir) == before
  assert not run_lock.is_locked(logdir)


def test_two_trainers_started_together(reference, tmp_path):
  """Defect D: one trains, the other stops at once; the run is whole."""
  logdir = tmp_path / 'run'
  slow = {'STANDIN_STEP_SLEEP': '0.002'}
  trainers = [Trainer(logdir, env=slow), Trainer(logdir, env=slow)]
  codes = sorted(t.wait() for t in trainers)
  assert codes == [0, 2], [t.output[-2000:] for t in trainers]
  assert facts(logdir) == reference


def test_rerunning_a_finished_run_changes_nothing(tmp_path):
  """Defect H."""
  logdir = tmp_path / 'run'
  assert run(logdir).process.exitcode == 0
  before = snapshot(logdir)
  second = run(logdir)
  assert second.process.exitcode == 0
  assert 'holds a finished run (600 steps' in second.output
  assert 'nothing was changed' in second.output
  assert snapshot(logdir) == before


def test_config_is_checked_from_the_checkpoint(tmp_path):
  """Defect I: without config.yaml, the checkpoint's config still decides."""
  logdir = tmp_path / 'run'
  _kill_at_step_200(logdir)
  (logdir / 'config.yaml').unlink()
  second = run(logdir, '--harmony.rectified', 'False')
  assert second.process.exitcode == 2
  assert 'holds a run with another config (harmony.rectified' in (
      second.output)
  assert 'checkpoint.ckpt' in second.output


def test_a_run_from_an_older_version_resumes_with_new_keys_at_default(
    reference, tmp_path):
  """Keys added to the config since a run began (absent from its saved
  config) take their defaults; a non-default value is still refused."""
  from harmony_v3.run import checkpoint
  logdir = tmp_path / 'run'
  payload = _kill_at_step_200(logdir)
  added = [k for k in payload['config']
           if k.startswith(('env.toy.', 'harmony.ema'))]
  assert added
  older = {k: v for k, v in payload['config'].items() if k not in added}
  checkpoint.save_checkpoint(logdir / 'checkpoint.ckpt',
                             {**payload, 'config': older})
  refused = run(logdir, '--harmony.ema', '0.5')
  assert refused.process.exitcode == 2
  assert 'holds a run with another config (harmony.ema: None -> 0.5' in (
      refused.output)
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert (f'{len(added)} config keys were added since this run began; they '
          'take their defaults: ') in second.output
  assert facts(logdir) == reference


NONFINITE = [
    # Update 120 comes at step 100 + 2 * 120 - 1 = 339; the last checkpoint
    # before it was the one after the evaluation at step 200.
    ('loss@120', 'Training diverged at step 339 (update 120): '
                 'model_opt_loss = nan.'),
    ('action@120', "The policy returned a non-finite 'action' at step 339 "
                   '(update 120)'),
    ('params@120', "1 parameter arrays hold NaN or inf at step 400 (e.g. "
                   "['w']); no checkpoint is written."),
]


@pytest.mark.parametrize('nan, message', NONFINITE,
                         ids=[n[0] for n in NONFINITE])
def test_nonfinite_values_stop_the_run_and_are_never_saved(
    nan, message, tmp_path):
  """Defect E: a clear error naming the step and the last good checkpoint;
  no checkpoint with NaN in it."""
  logdir = tmp_path / 'run'
  first = run(logdir, env={'STANDIN_NAN': nan})
  assert first.process.exitcode == 2, first.output[-3000:]
  assert message in first.output
  assert f'The last good checkpoint is {logdir}/checkpoint.ckpt at step ' \
      '200; it is left as it was.' in first.output
  from harmony_v3.run import checkpoint
  payload = checkpoint.load_checkpoint(logdir / 'checkpoint.ckpt')
  assert payload['step'] == 200 and not checkpoint.nonfinite_leaves(
      payload['agent'])


def _mount_tmpfs(folder: pathlib.Path, size: str) -> bool:
  folder.mkdir(parents=True, exist_ok=True)
  result = subprocess.run(
      ['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(folder)],
      capture_output=True)
  return result.returncode == 0


@pytest.fixture
def small_disk(tmp_path):
  """A 1.5 MB filesystem where mounting is allowed, else None."""
  folder = tmp_path / 'disk'
  mounted = _mount_tmpfs(folder, '1536k')
  yield folder if mounted else None
  if mounted:
    subprocess.run(['umount', '-l', str(folder)], check=True)


def test_full_disk_during_a_checkpoint(reference, small_disk, tmp_path):
  """Defect G: a real full disk (tmpfs) where the tests may mount one,
  else the write hook. The second checkpoint does not fit."""
  env = {'STANDIN_PARAM_MB': '1'}  # Checkpoints of 1 MB.
  if small_disk is not None:
    logdir = small_disk / 'run'
    first = run(logdir, env=env)
  else:
    logdir = tmp_path / 'run'
    first = run(logdir, env=env, fault='enospc:checkpoint.ckpt.tmp@2')
  assert first.process.exitcode == 2, first.output[-3000:]
  assert f'Disk full while writing {logdir}/checkpoint.ckpt' in first.output
  assert 'The last good checkpoint is' in first.output
  assert 'at step 0; it is left as it was' in first.output
  assert ' free there)' in first.output
  assert not list(logdir.glob('*.tmp'))
  if small_disk is not None:
    subprocess.run(['mount', '-o', 'remount,size=16m', str(small_disk)],
                   check=True)
  second = run(logdir, env=env)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert facts(logdir) == reference


def test_full_disk_during_a_chunk_write(reference, tmp_path):
  """Defect G, for replay chunks written between checkpoints."""
  logdir = tmp_path / 'run'
  first = run(logdir, fault='enospc:*.npz.tmp@6')
  assert first.process.exitcode == 2, first.output[-3000:]
  assert f'Disk full while writing {logdir}/replay/' in first.output
  assert 'The last good checkpoint is' in first.output
  assert not list((logdir / 'replay').glob('*.tmp'))
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert facts(logdir) == reference


# Round two (issue 19) ---------------------------------------------------------


@pytest.mark.parametrize('damage', ['deleted', 'last_record_cut'])
def test_a_damaged_eval_log_is_rebuilt_from_the_checkpoint(
    damage, reference, tmp_path):
  """eval.jsonl deleted, or its last record cut in half, in a stopped run:
  the checkpoint knows which evaluations are done, and its copy wins (the
  resumed run once evaluated again at the first step after the resume)."""
  logdir = tmp_path / 'run'
  first = run(logdir, fault='after_checkpoint@3')  # Step 200, after its eval.
  assert first.process.exitcode == KILLED
  path = logdir / 'eval.jsonl'
  assert [r['step'] for r in read_jsonl(path)] == [200]
  if damage == 'deleted':
    path.unlink()
  else:
    text = path.read_text()
    path.write_text(text[:len(text) - len(text.splitlines()[-1]) // 2 - 1])
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert 'written anew from the checkpoint' in second.output
  assert facts(logdir) == reference


def test_a_deleted_lock_file_lets_no_second_trainer_in(reference, tmp_path):
  """The lock file deleted under a running trainer: a second trainer is
  still refused (the folder itself is locked) and the run ends whole."""
  logdir = tmp_path / 'run'
  slow = {'STANDIN_STEP_SLEEP': '0.01'}
  first = Trainer(logdir, env=slow)
  first.wait_for('Logdir:')
  (logdir / '.trainer.lock').unlink()
  second = run(logdir, env=slow)
  assert second.process.exitcode == 2, second.output[-3000:]
  assert 'Another trainer is training in' in second.output
  assert first.wait() == 0, first.output[-3000:]
  assert facts(logdir) == reference


def test_a_trainer_whose_lock_file_is_gone_writes_no_checkpoint(
    tmp_path, monkeypatch):
  """Where folders cannot be locked (some network filesystems), the lock
  file is all there is: a trainer checks it before each checkpoint."""
  from harmony_v3.run import run_lock
  monkeypatch.setattr(run_lock, '_lock_folder', lambda folder, mode: None)
  lock = run_lock.acquire(tmp_path)
  assert lock.folder_fd is None
  try:
    lock.check()  # Held: fine.
    (tmp_path / run_lock.LOCK_NAME).unlink()
    with pytest.raises(run_lock.RunLockedError, match='deleted or replaced'):
      lock.check()
    (tmp_path / run_lock.LOCK_NAME).write_text('')  # Another trainer's.
    with pytest.raises(run_lock.RunLockedError, match='deleted or replaced'):
      lock.check()
  finally:
    lock.release()
  assert not run_lock.is_locked(tmp_path)


DISK_ERRORS = [
    # (fault, the file named, the words of the error)
    ('oserror:EIO:metrics.jsonl@3', 'metrics.jsonl',
     'Input/output error (EIO)'),
    ('oserror:EROFS:*.npz.tmp@6', 'replay/',
     'Read-only file system (EROFS)'),
    ('oserror:EIO:checkpoint.ckpt.tmp@2', 'checkpoint.ckpt',
     'Input/output error (EIO)'),
    ('oserror:EDQUOT:eval.jsonl@2', 'eval.jsonl', 'Disk full while writing'),
]


@pytest.mark.parametrize('fault, where, words', DISK_ERRORS,
                         ids=[d[0] for d in DISK_ERRORS])
def test_a_failing_disk_is_one_clear_error_and_resumes(
    fault, where, words, reference, tmp_path):
  """Disk errors besides ENOSPC (EIO, EROFS, EDQUOT) once ended in
  tracebacks: now one message naming the file, exit 2, the last checkpoint
  as it was, and the same command resumes."""
  logdir = tmp_path / 'run'
  first = run(logdir, fault=fault)
  assert first.process.exitcode == 2, first.output[-3000:]
  assert 'Traceback' not in first.output, first.output[-3000:]
  assert f'{logdir}/{where}' in first.output
  assert words in first.output
  assert 'The last good checkpoint is' in first.output
  second = run(logdir)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert facts(logdir) == reference
