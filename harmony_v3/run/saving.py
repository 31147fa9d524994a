"""Checkpoints of a run: bringing the folder back to the last one before
training, restoring it, writing new ones, and the errors of writing them.

The checkpoint is the one record of where a run is (see runner.py). Its
replay chunks go to disk first, then the checkpoint names them; a kill at
any moment leaves the previous checkpoint and its chunk files intact.
"""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Callable

import embodied

from . import checkpoint as ckpt
from . import faults
from . import replay_files
from .errors import (DiskError, DiskFullError, NonFiniteError, free_space,
                     is_disk_error, is_disk_full)
from .folder import RunFolder
from .records import RunRecords
from .stop_signals import StopSignals

# Temporary files of atomic writes that a kill can leave behind.
TMP_PATTERNS = ('*.tmp', 'config.tmp.yaml')


class Checkpointer:
  """Saves and restores one run's checkpoint in its (locked) folder."""

  def __init__(self, config: embodied.Config, folder: RunFolder,
               signals: StopSignals, log: Callable[[str], None] = print):
    self.config = config
    self.folder = folder
    self.signals = signals
    self.log = log
    self.logdir = folder.path
    self.path = folder.checkpoint_path
    self.replay_dir = self.logdir / 'replay'
    self.last_saved_step = folder.step if folder.payload else None
    self._config_written = False

  def roll_back(self, records: RunRecords) -> None:
    """Bring the replay folder and the logs back to the checkpoint."""
    payload = self.folder.payload
    for pattern in TMP_PATTERNS:
      for path in self.logdir.glob(pattern):
        path.unlink()
    if payload is None:  # A fresh start: nothing before it counts.
      manifest, step, where = {}, -1, None
    else:
      step, where = self.folder.step, self.path
      manifest = payload.get('replay')
      if manifest is None:  # First checkpoint format: no manifest.
        manifest = replay_files.make_manifest(self.replay_dir)
        self.log(f'{where} predates replay manifests: its replay folder is '
                 'used as found.')
    replay_files.reconcile(
        self.replay_dir, manifest, max(step, 0), where, self.log)
    records.cut_back(step, payload is not None, self.log,
                     payload.get('evals') if payload else None)
    (self.logdir / 'done.json').unlink(missing_ok=True)

  def open_replay(self):
    """The run's replay buffer, on its folder."""
    try:
      return embodied.replay.Uniform(
          self.config.batch_length, self.config.replay_size, self.replay_dir,
          online=self.config.replay_online, seed=self.config.seed)
    except OSError as e:  # ChunkReadError names the file.
      raise replay_files.ReplayError(
          f'{e}. The checkpoint {self.path} needs it: restore it, or move '
          'the checkpoint away to start this run from scratch.') from None

  def restore(self, agent, step: embodied.Counter, state, replay) -> bool:
    """Load the checkpoint into the agent, the step counter and the run
    state (a `runner.RunState`), if there is one; True if the run resumed."""
    payload = self.folder.payload
    if payload is None:
      return False
    # Loaded into the agent below: do not keep a second copy for the run.
    self.folder.payload = None
    ckpt.check_compatible(payload['agent'], agent.save(), self.path)
    agent.load(payload['agent'])
    step.value = int(payload['step'])
    state.load(payload['run'])
    steps = replay_files.manifest_steps(
        replay_files.make_manifest(self.replay_dir))
    self.log(f'Resumed from {self.path} at step {int(step):,} ({steps:,} '
             f'replay steps, {len(replay):,} sequences).')
    return True

  def save(self, agent, step: int, state, replay,
           records: RunRecords) -> None:
    """Checkpoint the agent, counters, config, evaluations so far and the
    replay's files.

    Chunk saves that the new checkpoint supersedes are deleted only once
    it is written.
    """
    weights = agent.save()
    bad = ckpt.nonfinite_leaves(weights)
    if bad:
      raise NonFiniteError(
          f'{len(bad)} parameter arrays hold NaN or inf at step {step:,} '
          f'(e.g. {bad[0]}); no checkpoint is written. {self.last_good()} '
          'Resuming would diverge again: change the config (e.g. a lower '
          'learning rate) in a new --logdir.')
    self.folder.check_lock()
    with self.signals.critical(), self.disk_errors_are_run_errors():
      replay.save(wait=True)
      faults.point('after_replay_save')
      manifest = replay_files.make_manifest(self.replay_dir)
      if not self._config_written:
        self._write_config()
      ckpt.save_checkpoint(self.path, {
          'step': step, 'agent': weights, 'run': state.to_dict(),
          'config': dict(self.config.flat), 'replay': manifest,
          'evals': records.eval_records})
    self.last_saved_step = step
    faults.point('after_checkpoint')
    replay_files.collect_garbage(self.replay_dir, manifest)

  def _write_config(self) -> None:
    tmp = self.logdir / 'config.tmp.yaml'
    self.config.save(tmp)
    tmp.replace(self.logdir / 'config.yaml')
    self._config_written = True

  def last_good(self) -> str:
    """Where the last good checkpoint is, for error messages."""
    if self.last_saved_step is None:
      return 'No checkpoint was written yet.'
    return (f'The last good checkpoint is {self.path} at step '
            f'{self.last_saved_step:,}; it is left as it was.')

  @contextlib.contextmanager
  def disk_errors_are_run_errors(self):
    """Turn a failing disk (full, over quota, read-only, I/O errors) into a
    RunError that names the file and says what to do."""
    try:
      yield
    except OSError as e:
      if not is_disk_error(e):
        raise
      what = e.filename or f'a file in {self.logdir}'
      if is_disk_full(e):
        raise DiskFullError(
            f'Disk full while writing {what} ({free_space(self.logdir)} free '
            f'there). {self.last_good()} Free some space and run the same '
            'command again to resume.') from None
      code = errno.errorcode.get(e.errno, e.errno)
      raise DiskError(
          f'Writing {what} failed: {os.strerror(e.errno)} ({code}). '
          f'{self.last_good()} '
          'Once the disk works again, run the same command to resume.') \
          from None
