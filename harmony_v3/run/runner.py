"""One training run: DreamerV3's loop on embodied parts, with our evaluation,
logs, progress display and crash-safe checkpoints.

Run folder:
  config.yaml       the full config (the checkpoint holds it too)
  metrics.jsonl     training metrics by agent step (losses, harmonizers, rates)
  episodes.jsonl    every training episode: step, frames, score, length
                    (and `stats` of the env's log_* keys: Crafter's achievements)
  eval.jsonl        every evaluation: step, frames, episodes, returns, mean
  events.out.*      TensorBoard (x-axis: frames)
  checkpoint.ckpt   agent, counters, config and the replay manifest
  replay/           the replay buffer, in chunk files
  done.json         written when the run has finished
  tracking.json     the W&B run id, with --run.track wandb (tracking.py)
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
import sys
import time
from typing import Callable

import embodied
import numpy as np

from . import faults
from .actions import first_nonfinite, random_actions
from .atomic_files import write_atomic
from .errors import NonFiniteError, RunError
from .evaluation import evaluate
from .folder import RunFolder
from .progress import Progress
from .records import RunRecords, stat_keys
from .saving import Checkpointer
from .stop_signals import EXIT_INTERRUPTED, StopSignals
from ..config import ConfigError
from ..envs import action_repeat, env_seed

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
    self.repeat = action_repeat(config)
    self.stopwatch = Stopwatch()
    self.train_env = TimedEnv(train_env, self.stopwatch)
    self.eval_env = eval_env
    self.step = embodied.Counter()
    self.state = RunState()
    self.records = RunRecords(
        self.logdir, self.step, self.repeat,
        stat_keys(train_env.obs_space, self.args))
    self.saver = Checkpointer(config, folder, signals, log)
    self.saver.roll_back(self.records)
    self.replay = self.saver.open_replay()
    self.agent = agent_cls(
        train_env.obs_space, train_env.act_space, self.step, config)
    with self.saver.disk_errors_are_run_errors():  # tracking.json, logs.
      self.records.open_logger(config, resuming=folder.payload is not None)
    self.logger = self.records.logger
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

  def save(self) -> None:
    """Checkpoint the run at the current step (see saving.Checkpointer)."""
    self.state.ratio_prev = self.should_train._prev
    self.saver.save(self.agent, int(self.step), self.state, self.replay,
                    self.records)

  def close(self, exit_code: int) -> None:
    """End the run's tracking (run.track), with the process's exit code."""
    self.records.close_logger(exit_code)

  def _restore(self) -> bool:
    """Load the checkpoint if there is one; True if the run resumed."""
    if not self.saver.restore(self.agent, self.step, self.state, self.replay):
      return False
    self.should_train._prev = self.state.ratio_prev
    return True

  # Training ------------------------------------------------------------------

  def _on_episode(self, ep, worker):
    self.records.episode(ep)

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
          f'{self.state.updates:,}): {shown}. {self.saver.last_good()} Resuming '
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
    key = first_nonfinite(outs)
    if key is not None:
      raise NonFiniteError(
          f'The policy returned a non-finite {key!r} at step '
          f'{int(self.step):,} (update {self.state.updates:,}): the '
          f'parameters are no longer finite. {self.saver.last_good()} '
          'Resuming would diverge again: change the config (e.g. a lower '
          'learning rate) in a new --logdir.')
    return outs, state

  def _random_policy(self, obs, state=None, **kwargs):
    """Seeded uniform random actions (see actions.random_actions)."""
    return random_actions(self.train_env.act_space, self.config.seed,
                          int(self.step), len(obs['is_first'])), state

  def _evaluate(self):
    step = int(self.step)
    self.progress.message(
        f'Evaluating {self.args.eval_eps} episodes at step {step:,}.')
    with self.stopwatch('eval'):
      result = evaluate(self.agent, self.eval_env, int(self.args.eval_eps))
    frames = step * self.repeat
    self.records.evaluation(result)
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
        + self.saver.last_good())
    with self.saver.disk_errors_are_run_errors():
      return self._run()

  def _run(self) -> dict:
    total = int(self.args.steps)
    driver = embodied.Driver(self.train_env)
    driver.on_episode(self._on_episode)
    driver.on_step(lambda tran, worker: self.step.increment())
    driver.on_step(self.replay.add)
    if not self._restore():
      self.save()
    evals = self.records.eval_steps()
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
    summary = self.records.summary(self.config, self.state.updates)
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
    if self.saver.last_saved_step != step:
      self.log(f'Interrupted at step {step:,}: saving a checkpoint.')
      self.save()
    else:
      self.log(f'Interrupted at step {step:,}, which the last checkpoint '
               'holds.')
    self.log('Saved. Run the same command again to resume.')
    raise Interrupted()


def _exit_code(error: BaseException) -> int:
  """The exit code that `train` gives for `error`."""
  if isinstance(error, Interrupted):
    return EXIT_INTERRUPTED
  return 2 if isinstance(error, (ConfigError, RunError)) else 1


def train(config: embodied.Config, agent_cls,
          make_envs: Callable[[embodied.Config, int], tuple],
          signals: StopSignals, log=print) -> int:
  """Train one run in its folder and return the process's exit code.

  0: finished (or already finished); 2: an error, printed as one message;
  130: stopped by SIGTERM or Ctrl-C after saving a checkpoint. `signals`
  must already be installed, so that a stop asked for during the set-up
  (the first compilation included) is honoured too. `make_envs(config,
  seed)` builds the training and evaluation env batches from a base seed:
  the run's own seed, or after a resume the one `envs.env_seed` draws.
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
      seed = env_seed(config.seed, folder.step)
      if seed != config.seed:
        log(f'Resuming at step {folder.step:,}: the envs are seeded {seed}, '
            'drawn from the run\'s seed and this step, so that they do not '
            'replay the episodes the run began with.')
      envs = list(make_envs(config, seed))
      trainer = Trainer(config, agent_cls, *envs, folder, signals, log=log)
      log(f'Logdir: {trainer.logdir}')
      try:
        summary = trainer.run()
      except BaseException as e:
        with contextlib.suppress(Exception):  # The error is what to report.
          trainer.close(_exit_code(e))
        raise
      trainer.close(0)
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
