"""One training run: DreamerV3's loop on embodied parts, with our evaluation,
logs, progress display and resumable checkpoints.

Run folder:
  config.yaml       the full config (checked against on resume)
  metrics.jsonl     training metrics by agent step (losses, harmonizers, rates)
  episodes.jsonl    every training episode: step, frames, score, length
  eval.jsonl        every evaluation: step, frames, episodes, returns, mean
  events.out.*      TensorBoard (x-axis: frames)
  checkpoint.ckpt   agent, counters; replay/ holds the replay buffer
  done.json         written when the run has finished
"""
from __future__ import annotations

import collections
import contextlib
import json
import pathlib
import signal
import time

import embodied
import numpy as np

from . import checkpoint as ckpt
from .config import ConfigError
from .evaluation import evaluate
from .logs import JSONLines, make_logger
from .progress import Progress

# Config keys that may change when a run is resumed.
RESUMABLE_CHANGES = (
    'run.steps', 'run.progress', 'run.log_every', 'run.save_every',
    'run.eval_processes', 'run.compilation_cache', 'run.report', 'logdir',
    'jax.platform', 'jax.prealloc', 'jax.mem_fraction', 'data_loaders')


class StopRequested(KeyboardInterrupt):
  """Raised at a safe point after SIGTERM or Ctrl-C: save, then exit."""


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


def config_differences(saved: embodied.Config, new: embodied.Config) -> list:
  """Keys whose values differ between two configs, ignoring resumable ones."""
  a, b = saved.flat, new.flat
  keys = sorted(set(a) | set(b))
  return [k for k in keys if a.get(k) != b.get(k)
          and k not in RESUMABLE_CHANGES]


def prepare_logdir(config: embodied.Config) -> pathlib.Path:
  """Create and check the run folder; refuse to mix two different configs."""
  logdir = pathlib.Path(config.logdir).expanduser()
  try:
    logdir.mkdir(parents=True, exist_ok=True)
    probe = logdir / '.write_test'
    probe.write_text('ok')
    probe.unlink()
  except OSError as e:
    raise ConfigError(f'Cannot write to logdir {logdir}: {e.strerror}.') \
        from None
  saved_path = logdir / 'config.yaml'
  if saved_path.exists():
    try:
      saved = embodied.Config.load(saved_path)
    except Exception as e:
      raise ConfigError(f'Cannot read {saved_path}: {e}') from None
    diffs = config_differences(saved, config)
    if diffs:
      shown = ', '.join(
          f'{k}: {saved.flat.get(k)!r} -> {config.flat.get(k)!r}'
          for k in diffs[:5])
      raise ConfigError(
          f'{logdir} holds a run with another config ({shown}). Resume it '
          'with the same options, or choose a new --logdir.')
  config.save(saved_path)
  return logdir


class Trainer:
  """Trains one agent on one task; `run()` resumes from the run folder."""

  def __init__(self, config: embodied.Config, agent_cls, train_env,
               eval_env, log=print):
    self.config = config
    self.args = config.run
    self.log = log
    self.logdir = prepare_logdir(config)
    self.repeat = config.env.atari.repeat if config.task.startswith(
        'atari_') else 1
    self.stopwatch = Stopwatch()
    self.train_env = TimedEnv(train_env, self.stopwatch)
    self.eval_env = eval_env
    self.step = embodied.Counter()
    self.state = RunState()
    self.replay = embodied.replay.Uniform(
        config.batch_length, config.replay_size, self.logdir / 'replay',
        online=config.replay_online, seed=config.seed)
    self.agent = agent_cls(
        train_env.obs_space, train_env.act_space, self.step, config)
    self.logger = make_logger(self.step, self.logdir, self.repeat)
    self.metrics = embodied.Metrics()
    self.eval_log = JSONLines(self.logdir / 'eval.jsonl')
    self.episode_log = JSONLines(self.logdir / 'episodes.jsonl')
    self.checkpoint_path = self.logdir / 'checkpoint.ckpt'
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

  # Checkpoints ---------------------------------------------------------------

  def save(self) -> None:
    """Checkpoint the agent and counters, and flush the replay to disk."""
    self.replay.save(wait=True)
    self.state.ratio_prev = self.should_train._prev
    ckpt.save_checkpoint(self.checkpoint_path, {
        'step': int(self.step), 'agent': self.agent.save(),
        'run': self.state.to_dict()})

  def restore(self) -> bool:
    """Load the checkpoint if there is one; True if the run resumed."""
    if not self.checkpoint_path.exists():
      return False
    payload = ckpt.load_checkpoint(self.checkpoint_path)
    ckpt.check_compatible(
        payload['agent'], self.agent.save(), self.checkpoint_path)
    self.agent.load(payload['agent'])
    self.step.value = int(payload['step'])
    self.state.load(payload['run'])
    self.should_train._prev = self.state.ratio_prev
    # Anything logged after the checkpoint is redone from here on.
    for lines in (self.eval_log, self.episode_log,
                  JSONLines(self.logdir / 'metrics.jsonl')):
      lines.truncate_after(int(self.step))
    self.log(f'Resumed from {self.checkpoint_path} at step {int(self.step):,}'
             f' ({len(self.replay):,} replay sequences).')
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
      self.metrics.add(mets, prefix='train')
      self.state.updates += 1
    if self.should_log(self.step):
      self._write_logs()
    # Last of the step's callbacks: counter and replay already hold this step.
    self._check_stop()

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
      self.logger.add(self.agent.report(self._batch), prefix='report')
    self.logger.write()

  def _policy(self, *args, mode):
    with self.stopwatch('policy'):
      return self.agent.policy(*args, mode=mode)

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
    self.progress.message(
        f'Evaluation at {frames:,} frames: mean return {result.mean:.1f} '
        f'over {len(result.returns)} episodes ({result.seconds:.0f} s).')

  def _next_eval(self, step: int) -> int:
    every = int(self.args.eval_every)
    return (step // every + 1) * every

  def run(self) -> dict:
    """Train until `run.steps`, evaluating every `run.eval_every` steps."""
    total = int(self.args.steps)
    driver = embodied.Driver(self.train_env)
    driver.on_episode(self._on_episode)
    driver.on_step(lambda tran, worker: self.step.increment())
    driver.on_step(self.replay.add)
    resumed = self.restore()
    if not resumed:
      self.save()
    self._install_signal_handlers()
    try:
      random_agent = embodied.RandomAgent(self.train_env.act_space)
      while len(self.replay) < max(self.batch_steps, self.args.train_fill):
        driver(random_agent.policy, steps=100)
        self._check_stop()
      self._dataset = self.agent.dataset(self.replay.dataset)
      driver.on_step(self._on_step)
      if self.args.eval_initial and int(self.step) == 0 or (
          resumed and self._eval_missing()):
        self._evaluate()
      self.progress.rates(int(self.step), self.state.updates)
      while self.step < total:
        step = int(self.step)
        chunk = min(100, self._next_eval(step) - step, total - step)
        mode = 'explore' if self.should_expl(self.step) else 'train'
        driver(lambda *a: self._policy(*a, mode=mode), steps=chunk)
        self.progress.update(int(self.step))
        if int(self.step) % int(self.args.eval_every) == 0:
          self._evaluate()
          self.save()
        elif self.should_save():
          self.save()
      self._write_logs()
      self.save()
    except StopRequested:
      self.progress.close()
      self.log(f'Interrupted at step {int(self.step):,}: saving a checkpoint.')
      self.save()
      self.log('Saved. Run the same command again to resume.')
      raise
    except KeyboardInterrupt:  # A second signal: stop at once.
      self.progress.close()
      self.log(f'Stopped at step {int(self.step):,} without saving; '
               'resuming starts from the last checkpoint.')
      raise
    finally:
      self._restore_signal_handlers()
    self.progress.close()
    summary = self._summary()
    (self.logdir / 'done.json').write_text(json.dumps(summary, indent=2))
    return summary

  def _eval_missing(self) -> bool:
    step = int(self.step)
    every = int(self.args.eval_every)
    due = step >= every and step % every == 0
    logged = {r['step'] for r in self.eval_log.read()}
    return due and step not in logged

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

  # Interruption ------------------------------------------------------------
  # SIGTERM or Ctrl-C asks the loop to stop after the current env step and
  # its train updates, where counters and replay agree; it then saves and
  # exits. A second signal stops at once, without saving.

  def _install_signal_handlers(self):
    self._stop_requested = False

    def handler(signum, frame):
      if self._stop_requested:
        raise KeyboardInterrupt(f'signal {signum}')
      self._stop_requested = True
      self.progress.message(
          'Stopping after the current steps (signal again to stop now).')
    self._old_handlers = {
        sig: signal.signal(sig, handler)
        for sig in (signal.SIGTERM, signal.SIGINT)}

  def _restore_signal_handlers(self):
    for sig, old in self._old_handlers.items():
      signal.signal(sig, old)

  def _check_stop(self):
    if self._stop_requested:
      raise StopRequested()
