"""The run folder: created, locked for one trainer, its checkpoint read, and
the config checked against the run it holds."""
from __future__ import annotations

import json
import pathlib

import embodied

from . import checkpoint as ckpt
from . import run_lock
from ..config import ConfigError
from ..config import defaults as config_defaults

# Config keys that may change when a run is resumed.
RESUMABLE_CHANGES = (
    'run.steps', 'run.progress', 'run.log_every', 'run.save_every',
    'run.eval_processes', 'run.compilation_cache', 'run.report', 'logdir',
    'jax.platform', 'jax.prealloc', 'jax.mem_fraction', 'data_loaders',
    'run.track', 'run.track_project', 'run.track_group')


def config_differences(saved, new, defaults=None) -> list:
  """Keys whose values differ between two configs (or their `.flat` dicts),
  ignoring resumable ones.

  With `defaults` (a config or flat dict), a key that `saved` lacks is no
  difference when `new` holds its default: the key came with a later version
  of harmony_v3, and its default keeps the behaviour the run had.
  """
  a = saved.flat if hasattr(saved, 'flat') else saved
  b = new.flat if hasattr(new, 'flat') else new
  d = (defaults.flat if hasattr(defaults, 'flat') else defaults) or {}
  keys = sorted(set(a) | set(b))
  return [k for k in keys if a.get(k) != b.get(k)
          and k not in RESUMABLE_CHANGES
          and not (k not in a and k in d and b.get(k) == d[k])]


def keys_added_since(saved, new) -> list:
  """Keys of `new` that `saved` lacks (added by a later version)."""
  a = saved.flat if hasattr(saved, 'flat') else saved
  b = new.flat if hasattr(new, 'flat') else new
  return sorted(set(b) - set(a))


def check_logdir(config: embodied.Config) -> pathlib.Path:
  """Create the run folder if needed and check that it can be written."""
  logdir = pathlib.Path(config.logdir).expanduser()
  try:
    logdir.mkdir(parents=True, exist_ok=True)
    probe = logdir / '.write_test'
    probe.write_text('ok')
    probe.unlink()
  except OSError as e:
    raise ConfigError(f'Cannot write to logdir {logdir}: {e.strerror}.') \
        from None
  return logdir


class RunFolder:
  """A run folder, locked for this process, with its checkpoint read.

  Opening it changes nothing in the folder (besides creating it and the
  lock file): it takes the trainer lock, reads the checkpoint, checks that
  the config fits the run and whether the run has finished.
  """

  def __init__(self, config: embodied.Config):
    self.path = check_logdir(config)
    self._lock = run_lock.acquire(self.path)
    try:
      self.checkpoint_path = self.path / 'checkpoint.ckpt'
      self.payload = None
      if self.checkpoint_path.exists():
        self.payload = ckpt.load_checkpoint(self.checkpoint_path)
      self._check_config(config)
    except BaseException:
      self.close()
      raise
    self.step = int(self.payload['step']) if self.payload else 0
    self.finished = bool(self.payload) and self.step >= int(
        config.run.steps) and (self.path / 'done.json').is_file()

  def _check_config(self, config: embodied.Config) -> None:
    """Refuse to resume a checkpoint under another config.

    The checkpoint's own copy decides (config.yaml may be gone or edited);
    checkpoints of the first format have none, and config.yaml stands in.
    Without a checkpoint there is no run to protect.
    """
    if self.payload is None:
      return
    saved = self.payload.get('config')
    source = self.checkpoint_path
    if saved is None:
      yaml = self.path / 'config.yaml'
      if not yaml.exists():
        return
      try:
        saved = embodied.Config.load(yaml).flat
      except Exception as e:
        raise ConfigError(f'Cannot read {yaml}: {e}') from None
      source = yaml
    diffs = config_differences(saved, config, config_defaults())
    added = keys_added_since(saved, config)
    if added and not diffs:
      print(f'{len(added)} config keys were added since this run began; they '
            f'take their defaults: {", ".join(added[:8])}'
            f'{", ..." if len(added) > 8 else ""}', flush=True)
    if diffs:
      shown = ', '.join(
          f'{k}: {saved.get(k)!r} -> {config.flat.get(k)!r}'
          for k in diffs[:5])
      raise ConfigError(
          f'{self.path} holds a run with another config ({shown}; from '
          f'{source.name}). Resume it with the same options, or choose a '
          'new --logdir.')

  def finished_message(self) -> str:
    """What to tell a user who reruns a finished run."""
    done = json.loads((self.path / 'done.json').read_text())
    score = done.get('final_eval_mean')
    final = f', final evaluation {score:.2f}' if score is not None else ''
    return (f'{self.path} holds a finished run ({self.step:,} steps{final}). '
            'Nothing to do; nothing was changed. Pass a larger --run.steps '
            'to train it further.')

  def check_lock(self) -> None:
    """Raise RunLockedError if this trainer no longer holds the folder."""
    self._lock.check()

  def close(self) -> None:
    """Release the lock."""
    if self._lock is not None:
      run_lock.release(self._lock)
      self._lock = None

  def __enter__(self) -> 'RunFolder':
    return self

  def __exit__(self, *exc) -> None:
    self.close()
