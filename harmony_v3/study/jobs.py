"""Running the study's (arm, seed) jobs, in this process or in workers.

An arm's seeds run one after another in one process, so the arm compiles
once. On the CPU, XLA runs this study's small update on a single core, so
`workers` processes (one per core, each single-threaded) train that many
arms at once. Each finished (arm, seed) is written atomically by the process
that trained it; workers report progress to the parent through a queue, and
stop when the parent is gone (a killed study leaves no orphans training).
"""
from __future__ import annotations

import multiprocessing
import os
import pathlib
import queue
import traceback
from typing import Callable

from . import settings as study_settings

# One XLA thread per worker: the workers are the parallelism.
SINGLE_THREAD_FLAGS = ('--xla_cpu_multi_thread_eigen=false '
                       'intra_op_parallelism_threads=1')


class ParentGone(Exception):
  """The study's parent process has exited."""


def result_path(out: pathlib.Path, arm: str, seed: int) -> pathlib.Path:
  return out / 'results' / f'{arm}__seed{seed}.json'


def partial_path(out: pathlib.Path, arm: str, seed: int) -> pathlib.Path:
  """Where an unfinished (arm, seed) run keeps its state between sessions."""
  return out / 'partial' / f'{arm}__seed{seed}.pkl'


def _spaces(train, num_actions):
  """The world model's spaces: the dataset's images, one-hot actions."""
  import embodied
  import numpy as np
  from ..envs.atari import image_obs_space
  act_space = {'action': embodied.Space(np.float32, (num_actions,), 0, 1)}
  return image_obs_space(train.image.shape[1:]), act_space


def train_arms(out: pathlib.Path, settings, platform: str,
               jobs: list[tuple[str, list[int]]],
               emit: Callable[[tuple], None]) -> None:
  """Train every (arm, seeds) job in order and write each result.

  `emit` receives ('progress', label, update, updates, metrics_or_None),
  ('message', text) and ('done', label, result) events.
  """
  import harmony_v3  # noqa: F401  (patches)
  from . import runs
  from .data import load_or_collect, write_json_atomic
  from .model import WorldModelArm
  train, heldout_split, info = load_or_collect(
      out / 'data', settings.games, settings.train_steps_per_game,
      settings.heldout_steps_per_game, settings.data_seed,
      report=lambda text: None)
  num_actions = max(info['action_sets'].values())
  heldout = runs.HeldOut(heldout_split, settings, num_actions)
  obs_space, act_space = _spaces(train, num_actions)
  for arm, seeds in jobs:
    if arm in study_settings.NOT_PAPER:
      emit(('message', f"Arm {arm}: NOT the paper's setting (an opt-in "
                       'variant).'))
    config = study_settings.arm_config(settings, arm, platform)
    model = WorldModelArm(config, obs_space, act_space, settings.context,
                          fast_compile=settings.fast_compile)
    for seed in seeds:
      label = f'{arm} seed {seed}'
      partial = partial_path(out, arm, seed)
      result = runs.train_one(
          model, arm, seed, train, heldout, settings, num_actions,
          lambda u, m: emit(('progress', label, u, settings.updates, m)),
          partial=partial, say=lambda text: emit(('message', text)))
      result['dataset'] = info['settings']
      write_json_atomic(result_path(out, arm, seed), result)
      partial.unlink(missing_ok=True)
      emit(('done', label, result))


def _worker(out, settings, platform, jobs_queue, events, parent_pid):
  """A worker process: takes arm jobs until the queue says stop."""
  def emit(event):
    if os.getppid() != parent_pid:
      raise ParentGone()
    events.put(event)
  try:
    while True:
      job = jobs_queue.get()
      if job is None:
        break
      train_arms(out, settings, platform, [job], emit)
  except ParentGone:
    return
  except BaseException:  # Reported by the parent, which exits non-zero.
    events.put(('error', traceback.format_exc()))
  finally:
    events.put(('exit',))


def run_jobs(out: pathlib.Path, settings, platform: str,
             jobs: list[tuple[str, list[int]]], workers: int,
             handle: Callable[[tuple], None]) -> list[str]:
  """Run the jobs (here if `workers` is 1, else in worker processes) and
  pass every event to `handle`; returns the errors (tracebacks)."""
  if not jobs:
    return []
  if workers <= 1 or len(jobs) <= 1:
    train_arms(out, settings, platform, jobs, handle)
    return []
  context = multiprocessing.get_context('spawn')
  jobs_queue, events = context.Queue(), context.Queue()
  for job in jobs:
    jobs_queue.put(job)
  count = min(workers, len(jobs))
  for _ in range(count):
    jobs_queue.put(None)
  flags = os.environ.get('XLA_FLAGS', '')
  os.environ['XLA_FLAGS'] = f'{flags} {SINGLE_THREAD_FLAGS}'.strip()
  try:
    procs = [context.Process(
        target=_worker, args=(out, settings, platform, jobs_queue, events,
                              os.getpid()), daemon=True)
             for _ in range(count)]
    for proc in procs:
      proc.start()
  finally:
    os.environ['XLA_FLAGS'] = flags
  errors, running = [], count
  try:
    while running:
      try:
        event = events.get(timeout=5)
      except queue.Empty:
        if not any(p.is_alive() for p in procs):
          errors.append('a worker died without reporting (killed?)')
          break
        continue
      if event[0] == 'exit':
        running -= 1
      elif event[0] == 'error':
        errors.append(event[1])
      else:
        handle(event)
  finally:
    for proc in procs:
      if proc.is_alive() and errors:
        proc.terminate()
      proc.join(timeout=30)
  return errors
