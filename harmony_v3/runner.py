"""One training run: DreamerV3's loop on embodied parts, with our evaluation,
logs, progress display and crash-safe checkpoints.

Run folder:
  config.yaml       the full config (the checkpoint holds it too)
  metrics.jsonl     training metrics by agent step (losses, harmonizers, rates)
  episodes.jsonl    every training episode: step, frames, score, length
  eval.jsonl        every evaluation: step, frames, episodes, returns, mean
  events.out.*      TensorBoard (x-axis: frames)
  checkpoint.ckpt   agent, counters, config and the replay manifest
  replay/           the replay buffer, in chunk files
  done.json         written when the run has finished
  .trainer.lock     held by the trainer while it runs (`run_lock`)

The checkpoint is the one record of where a run is. A resume brings the
replay folder, the JSON lines and the TensorBoard files back to it: what was
written after it is dropped, and that part of the run is done again. So a run
that is killed at any moment (kill -9 included) and resumed ends with the
counters, updates, replay steps and log records of a run that was never
interrupted (docs/resume.md lists what is and is not identical).
"""
from __future__ import annotations

import collections
import contextlib
import json
import pathlib
import sys
import time
from typing import Callable

import embodied
import numpy as np

from . import checkpoint as ckpt
from .atomic_files import write_atomic
from . import faults
from . import replay_files
from . import run_lock
from .config import ConfigError
from .config import defaults as config_defaults
from .errors import (DiskFullError, NonFiniteError, RunError, free_space,
                     is_disk_full)
from .evaluation import evaluate
from .logs import JSONLines, make_logger, truncate_tensorboard
from .progress import Progress
from .stop_signals import EXIT_INTERRUPTED, StopSignals

# Config keys that may change when a run is resumed.
RESUMABLE_CHANGES = (
    'run.steps', 'run.progress', 'run.log_every', 'run.save_every',
    'run.eval_processes', 'run.compilation_cache', 'run.report', 'logdir',
    'jax.platform', 'jax.prealloc', 'jax.mem_fraction', 'data_loaders')
# Temporary files of atomic writes that a kill can leave behind.
TMP_PATTERNS = ('*.tmp', 'config.tmp.yaml')
# The base's prefill runs its random policy in chunks of this many steps.
PREFILL_CHUNK = 100


class Interrupted(Exception):
  """The run stopped on SIGTERM or Ctrl-C, after saving a checkpoint."""


class Stopwatch:
  """Wall-clock seconds spent in named parts of the loop, as shares.

  JAX dispatches work asynchronously: device time of a train update can be
  counted in the next call that waits for the device (often the policy).
  """

  def __init__(self):
    self.totals = collections.defaultdict(float)
    self.since = time.perf_counter()

  @contextlib.contextmanager
  def __call__(self, name: str):
    start = time.perf_counter()
    try:
      yield
    finally:
      self.totals[name] += time.perf_counter() - start

  def shares(self) -> dict[str, float]:
    """Share of wall-clock time per part since the last call, and 'other'."""
    elapsed = max(time.perf_counter() - self.since, 1e-9)
    shares = {k: v / elapsed for k, v in self.totals.items()}
    shares['other'] = max(0.0, 1.0 - sum(shares.values()))
    self.totals.clear()
    self.since = time.perf_counter()
    return shares


class TimedEnv(embodied.Wrapper):
  """Counts the time spent stepping the wrapped env."""

  def __init__(self, env, stopwatch: Stopwatch, name: str = 'env'):
    super().__init__(env)
    self._stopwatch, self._name = stopwatch, name

  def step(self, action):
    with self._stopwatch(self._name):
      return self.env.step(action)


class RunState:
  """Counters that must survive a restart besides the step counter."""

  def __init__(self):
    self.updates = 0
    self.ratio_prev = None  # embodied.when.Ratio's position.
    self.evals_done = 0

  def to_dict(self) -> dict:
    return dict(vars(self))

  def load(self, data: dict) -> None:
    for key, value in data.items():
      setattr(self, key, value)


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

  def close(self) -> None:
    """Release the lock."""
    if self._lock is not None:
      run_lock.release(self._lock)
      self._lock = None

  def __enter__(self) -> 'RunFolder':
    return self

  def __exit__(self, *exc) -> None:
    self.close()


class Trainer:
  """Trains one agent on one task; `run()` resumes from the run folder."""

  def __init__(self, config: embodied.Config, agent_cls, train_env,
               eval_env, folder: RunFolder, signals: StopSignals,
               log=print):
    """`folder`: the run folder, opened (and locked) by the caller, of a
    run that has not finished; `signals`: installed by the caller."""
    self.config = config
    self.args = config.run
    self.log = log
    self.folder = folder
    self.logdir = self.folder.path
    self.signals = signals
    self.repeat = config.env.atari.repeat if config.task.startswith(
        'atari_') else 1
    self.stopwatch = Stopwatch()
    self.train_env = TimedEnv(train_env, self.stopwatch)
    self.eval_env = eval_env
    self.step = embodied.Counter()
    self.state = RunState()
    self.checkpoint_path = self.folder.checkpoint_path
    self.replay_dir = self.logdir / 'replay'
    self.eval_log = JSONLines(self.logdir / 'eval.jsonl')
    self.episode_log = JSONLines(self.logdir / 'episodes.jsonl')
    self.metrics_log = JSONLines(self.logdir / 'metrics.jsonl')
    self.last_saved_step = self.folder.step if self.folder.payload else None
    self._rollback()
    self.replay = self._open_replay()
    self.agent = agent_cls(
        train_env.obs_space, train_env.act_space, self.step, config)
    self.logger = make_logger(self.step, self.logdir, self.repeat)
    self.metrics = embodied.Metrics()
    self.progress = Progress(
        int(self.args.steps), self.repeat, self.args.progress,
        every=self.args.log_every, name=config.task)
    self.batch_steps = config.batch_size * config.batch_length
    self.should_train = embodied.when.Ratio(
        self.args.train_ratio / self.batch_steps)
    self.should_expl = embodied.when.Until(self.args.expl_until)
    self.should_log = embodied.when.Clock(self.args.log_every)
    self.should_save = embodied.when.Clock(self.args.save_every)
    self._train_state = None
    self._dataset = None
    self._batch = None
    self._last_eval = None
    self._config_written = False

  # The run folder ------------------------------------------------------------

  def _rollback(self) -> None:
    """Bring the replay folder and the logs back to the checkpoint."""
    payload = self.folder.payload
    for pattern in TMP_PATTERNS:
      for path in self.logdir.glob(pattern):
        path.unlink()
    if payload is None:  # A fresh start: nothing before it counts.
      manifest, step, where = {}, -1, None
    else:
      step, where = self.folder.step, self.checkpoint_path
      manifest = payload.get('replay')
      if manifest is None:  # First checkpoint format: no manifest.
        manifest = replay_files.make_manifest(self.replay_dir)
        self.log(f'{where} predates replay manifests: its replay folder is '
                 'used as found.')
    replay_files.reconcile(
        self.replay_dir, manifest, max(step, 0), where, self.log)
    for lines in (self.eval_log, self.episode_log, self.metrics_log):
      lines.truncate_after(step)
    dropped = truncate_tensorboard(self.logdir, step * self.repeat)
    if dropped and payload is not None:
      self.log(f'Dropped {dropped:,} TensorBoard events logged after the '
               f'checkpoint at step {step:,}.')
    (self.logdir / 'done.json').unlink(missing_ok=True)

  def _open_replay(self):
    try:
      return embodied.replay.Uniform(
          self.config.batch_length, self.config.replay_size, self.replay_dir,
          online=self.config.replay_online, seed=self.config.seed)
    except OSError as e:  # ChunkReadError names the file.
      raise replay_files.ReplayError(
          f'{e}. The checkpoint {self.checkpoint_path} needs it: restore it, '
          'or move the checkpoint away to start this run from scratch.') \
          from None

  # Checkpoints ---------------------------------------------------------------

  def save(self) -> None:
    """Checkpoint the agent, counters, config and the replay's files.

    The replay's chunks go to disk first, then the checkpoint names them.
    A kill at any moment leaves the previous checkpoint and its chunk files
    intact; chunk saves that the new checkpoint supersedes are deleted
    only once it is written.
    """
    step = int(self.step)
    agent = self.agent.save()
    bad = ckpt.nonfinite_leaves(agent)
    if bad:
      raise NonFiniteError(
          f'{len(bad)} parameter arrays hold NaN or inf at step {step:,} '
          f'(e.g. {bad[0]}); no checkpoint is written. {self._last_good()} '
          'Resuming would diverge again: change the config (e.g. a lower '
          'learning rate) in a new --logdir.')
    self.state.ratio_prev = self.should_train._prev
    with self.signals.critical(), self._disk_full_is_an_error():
      self.replay.save(wait=True)
      faults.point('after_replay_save')
      manifest = replay_files.make_manifest(self.replay_dir)
      if not self._config_written:
        self._write_config()
      ckpt.save_checkpoint(self.checkpoint_path, {
          'step': step, 'agent': agent, 'run': self.state.to_dict(),
          'config': dict(self.config.flat), 'replay': manifest})
    self.last_saved_step = step
    faults.point('after_checkpoint')
    replay_files.collect_garbage(self.replay_dir, manifest)

  def _write_config(self) -> None:
    tmp = self.logdir / 'config.tmp.yaml'
    self.config.save(tmp)
    tmp.replace(self.logdir / 'config.yaml')
    self._config_written = True

  def _last_good(self) -> str:
    if self.last_saved_step is None:
      return 'No checkpoint was written yet.'
    return (f'The last good checkpoint is {self.checkpoint_path} at step '
            f'{self.last_saved_step:,}; it is left as it was.')

  @contextlib.contextmanager
  def _disk_full_is_an_error(self):
    try:
      yield
    except OSError as e:
      if not is_disk_full(e):
        raise
      what = e.filename or f'a file in {self.logdir}'
      raise DiskFullError(
          f'Disk full while writing {what} ({free_space(self.logdir)} free '
          f'there). {self._last_good()} Free some space and run the same '
          'command again to resume.') from None

  def _restore(self) -> bool:
    """Load the checkpoint if there is one; True if the run resumed."""
    payload = self.folder.payload
    if payload is None:
      return False
    # Loaded into the agent below: do not keep a second copy for the run.
    self.folder.payload = None
    ckpt.check_compatible(
        payload['agent'], self.agent.save(), self.checkpoint_path)
    self.agent.load(payload['agent'])
    self.step.value = int(payload['step'])
    self.state.load(payload['run'])
    self.should_train._prev = self.state.ratio_prev
    steps = replay_files.manifest_steps(
        replay_files.make_manifest(self.replay_dir))
    self.log(f'Resumed from {self.checkpoint_path} at step {int(self.step):,}'
             f' ({steps:,} replay steps, {len(self.replay):,} sequences).')
    return True

  # Training ------------------------------------------------------------------

  def _on_episode(self, ep, worker):
    score = float(ep['reward'].astype(np.float64).sum())
    length = len(ep['reward']) - 1
    self.episode_log.write({
        'step': int(self.step), 'frames': int(self.step) * self.repeat,
        'score': score, 'length': length})
    self.logger.add({'score': score, 'length': length}, prefix='episode')

  def _on_step(self, tran, worker):
    for _ in range(self.should_train(self.step)):
      with self.stopwatch('data'):
        self._batch = next(self._dataset)
      with self.stopwatch('train'):
        outs, self._train_state, mets = self.agent.train(
            self._batch, self._train_state)
      self.state.updates += 1
      self._check_losses()
      self.metrics.add(mets, prefix='train')
      faults.point('after_update')
    if self.should_log(self.step):
      self._write_logs()

  def _check_losses(self) -> None:
    """Stop at the first update whose losses are not finite."""
    losses = getattr(self.agent, 'last_losses', None)
    if losses is None:
      return
    bad = {k: v for k, v in losses().items() if not np.isfinite(v)}
    if bad:
      shown = ', '.join(f'{k} = {v}' for k, v in sorted(bad.items()))
      raise NonFiniteError(
          f'Training diverged at step {int(self.step):,} (update '
          f'{self.state.updates:,}): {shown}. {self._last_good()} Resuming '
          'would diverge again: change the config (e.g. a lower learning '
          'rate) in a new --logdir.')

  def _write_logs(self):
    self.progress.rates(int(self.step), self.state.updates)
    self.logger.add(self.metrics.result())
    self.logger.add({
        'frames_per_s': self.progress.frames_per_s,
        'updates_per_s': self.progress.updates_per_s,
        'updates': self.state.updates}, prefix='perf')
    self.logger.add(self.stopwatch.shares(), prefix='perf/time_share')
    self.logger.add(self.replay.stats, prefix='replay')
    if self.args.report and self._batch is not None:
      self.logger.add(self._report(), prefix='report')
    self.logger.write()

  def _report(self) -> dict:
    # Logs come at wall-clock times; the report draws its random key from
    # the agent's generator, which then must not advance, or when the logs
    # came would change what is trained.
    rng = getattr(self.agent, 'rng', None)
    state = rng.bit_generator.state if rng is not None else None
    try:
      return self.agent.report(self._batch)
    finally:
      if rng is not None:
        rng.bit_generator.state = state

  def _policy(self, *args, mode):
    with self.stopwatch('policy'):
      outs, state = self.agent.policy(*args, mode=mode)
    for key, value in outs.items():
      if key.startswith('log_'):
        continue
      value = np.asarray(value)
      if np.issubdtype(value.dtype, np.inexact) and not np.isfinite(
          value).all():
        raise NonFiniteError(
            f'The policy returned a non-finite {key!r} at step '
            f'{int(self.step):,} (update {self.state.updates:,}): the '
            f'parameters are no longer finite. {self._last_good()} Resuming '
            'would diverge again: change the config (e.g. a lower learning '
            'rate) in a new --logdir.')
    return outs, state

  def _random_policy(self, obs, state=None, **kwargs):
    """Uniform random actions, drawn from the seed and the step only.

    (The base's RandomAgent draws from unseeded generators, so two runs of
    one seed began with different data.)
    """
    rng = np.random.default_rng([self.config.seed, int(self.step)])
    count = len(obs['is_first'])
    acts = {}
    for key, space in self.train_env.act_space.items():
      if key == 'reset':
        continue
      shape = (count,) + space.shape
      if space.discrete and np.issubdtype(space.dtype, np.floating):
        index = rng.integers(0, space.shape[-1], shape[:-1])  # One-hot.
        acts[key] = np.eye(space.shape[-1], dtype=space.dtype)[index]
      elif space.discrete:
        acts[key] = rng.integers(space.low, space.high, shape).astype(
            space.dtype)
      else:
        acts[key] = rng.uniform(space.low, space.high, shape).astype(
            space.dtype)
    return acts, state

  def _evaluate(self):
    step = int(self.step)
    self.progress.message(
        f'Evaluating {self.args.eval_eps} episodes at step {step:,}.')
    with self.stopwatch('eval'):
      result = evaluate(self.agent, self.eval_env, int(self.args.eval_eps))
    frames = step * self.repeat
    self.eval_log.write({
        'step': step, 'frames': frames, 'episodes': len(result.returns),
        'returns': result.returns, 'lengths': result.lengths,
        'mean': result.mean, 'seconds': round(result.seconds, 2)})
    self.logger.add({'score': result.mean, 'episodes': len(result.returns),
                     'seconds': result.seconds}, prefix='eval')
    self.logger.write()
    self.progress.set_eval(frames, result.mean)
    self.state.evals_done += 1
    self._last_eval = step
    self.progress.message(
        f'Evaluation at {frames:,} frames: mean return {result.mean:.1f} '
        f'over {len(result.returns)} episodes ({result.seconds:.0f} s).')

  def _eval_due(self, step: int) -> bool:
    """Whether `step` reached a multiple of run.eval_every that has no
    evaluation yet (or is the start, with run.eval_initial)."""
    if step == 0:
      return bool(self.args.eval_initial) and self._last_eval is None
    every = int(self.args.eval_every)
    return step // every > (self._last_eval or 0) // every

  def _fill_steps(self) -> int:
    """Agent steps of random prefill: until the replay holds
    max(batch steps, run.train_fill) sequences, in whole prefill chunks.

    Counted in steps, not in the replay's sequences, so that a run resumed
    during its prefill stops at the same step as an uninterrupted one.
    """
    envs = len(self.train_env)
    sequences = max(self.batch_steps, int(self.args.train_fill))
    steps = sequences + envs * (self.config.batch_length - 1)
    chunk = -(-PREFILL_CHUNK // envs) * envs
    return -(-steps // chunk) * chunk

  def run(self) -> dict:
    """Train until `run.steps`, evaluating every `run.eval_every` steps.

    Returns the summary (also written to done.json). On SIGTERM or Ctrl-C it
    saves a checkpoint and raises Interrupted.
    """
    self.signals.stop_now_message = lambda: (
        f'Stopped at once at step {int(self.step):,} without saving. '
        + self._last_good())
    with self._disk_full_is_an_error():
      return self._run()

  def _run(self) -> dict:
    total = int(self.args.steps)
    driver = embodied.Driver(self.train_env)
    driver.on_episode(self._on_episode)
    driver.on_step(lambda tran, worker: self.step.increment())
    driver.on_step(self.replay.add)
    if not self._restore():
      self.save()
    evals = [r['step'] for r in self.eval_log.read()]
    self._last_eval = max(evals) if evals else None
    self._stop_if_requested()
    while int(self.step) < min(self._fill_steps(), total):
      driver(self._random_policy, steps=1)
      self._stop_if_requested()
    self._dataset = self.agent.dataset(self.replay.dataset)
    driver.on_step(self._on_step)
    if self._eval_due(int(self.step)):
      self._evaluate()
      self.save()
    self.progress.rates(int(self.step), self.state.updates)
    while int(self.step) < total:
      self._stop_if_requested()
      mode = 'explore' if self.should_expl(self.step) else 'train'
      driver(lambda *a: self._policy(*a, mode=mode), steps=1)
      step = int(self.step)
      self.progress.update(step)
      final = step >= total
      if final:
        self._write_logs()
      if self.signals.requested:
        continue  # Stop now; a resume does the evaluation that is due.
      due = self._eval_due(step)
      if due:
        self._evaluate()
      if due or final or self.should_save():
        self.save()
    self._stop_if_requested()
    self.progress.close()
    summary = self._summary()
    faults.point('after_final_save')
    write_atomic(self.logdir / 'done.json',
                      json.dumps(summary, indent=2).encode())
    return summary

  def _stop_if_requested(self) -> None:
    """At a safe point: if a stop was asked for, save once and stop."""
    if not self.signals.requested:
      return
    self.progress.close()
    step = int(self.step)
    if self.last_saved_step != step:
      self.log(f'Interrupted at step {step:,}: saving a checkpoint.')
      self.save()
    else:
      self.log(f'Interrupted at step {step:,}, which the last checkpoint '
               'holds.')
    self.log('Saved. Run the same command again to resume.')
    raise Interrupted()

  def _summary(self) -> dict:
    evals = self.eval_log.read()
    return {
        'task': self.config.task, 'seed': self.config.seed,
        'harmony': bool(self.config.harmony.enabled),
        'steps': int(self.step), 'frames': int(self.step) * self.repeat,
        'updates': self.state.updates,
        'final_eval_mean': evals[-1]['mean'] if evals else None,
        'final_eval_frames': evals[-1]['frames'] if evals else None,
        'finished': time.strftime('%Y-%m-%dT%H:%M:%S'),
    }


def train(config: embodied.Config, agent_cls,
          make_envs: Callable[[embodied.Config], tuple],
          signals: StopSignals, log=print) -> int:
  """Train one run in its folder and return the process's exit code.

  0: finished (or already finished); 2: an error, printed as one message;
  130: stopped by SIGTERM or Ctrl-C after saving a checkpoint. `signals`
  must already be installed, so that a stop asked for during the set-up
  (the first compilation included) is honoured too.
  """
  envs = []
  try:
    with RunFolder(config) as folder:
      if folder.finished:
        log(folder.finished_message())
        return 0
      if signals.requested:
        log('Stopped before training began; nothing to save.')
        return EXIT_INTERRUPTED
      envs = list(make_envs(config))
      trainer = Trainer(config, agent_cls, *envs, folder, signals, log=log)
      log(f'Logdir: {trainer.logdir}')
      summary = trainer.run()
    log(f"Done: {summary['steps']:,} steps, final evaluation "
        f"{summary['final_eval_mean']} at {summary['final_eval_frames']} "
        'frames.')
    return 0
  except Interrupted:
    return EXIT_INTERRUPTED
  except (ConfigError, RunError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  finally:
    for env in envs:
      env.close()
