"""Launching stand-in trainers (tests/standin.py) and reading run folders back.

Trainers are forked from a multiprocessing forkserver that has the stand-in
module (and so harmony_v3, embodied and JAX) imported already: a trainer
starts in milliseconds instead of seconds, as a separate process that can be
killed with SIGKILL or sent signals like any other.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import pathlib
import signal
import time

import numpy as np

CTX = multiprocessing.get_context('forkserver')
TESTS = pathlib.Path(__file__).resolve().parent


def _start_forkserver() -> None:
  """Start the server with the stand-in preloaded (once per session).

  Python 3.11's forkserver ignores the parent's sys.path, so the tests
  folder reaches it through PYTHONPATH.
  """
  from multiprocessing import forkserver
  CTX.set_forkserver_preload(['standin'])
  saved = {key: os.environ.get(key)
           for key in ('PYTHONPATH', 'JAX_COMPILATION_CACHE_DIR')}
  os.environ['PYTHONPATH'] = os.pathsep.join(
      [str(TESTS), str(TESTS.parent)] + (
          [saved['PYTHONPATH']] if saved['PYTHONPATH'] else []))
  # No persistent compilation cache (conftest's): the signal tests send
  # signals while a stand-in trainer compiles, which a cache hit would skip.
  os.environ.pop('JAX_COMPILATION_CACHE_DIR', None)
  try:
    forkserver.ensure_running()
  finally:
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value


class Trainer:
  """One stand-in trainer process and its output."""

  def __init__(self, logdir, *flags, fault: str | None = None,
               env: dict | None = None):
    import standin
    _start_forkserver()
    self.logdir = pathlib.Path(logdir)
    self.log_path = self.logdir.parent / (
        f'{self.logdir.name}.{time.time_ns()}.log')
    env = dict(env or {})
    if fault:
      env['HARMONY_FAULT'] = fault
    self.process = CTX.Process(
        target=standin.run_child,
        args=(['--logdir', str(self.logdir), *flags], env, str(self.log_path)))
    self.process.start()

  @property
  def pid(self) -> int:
    return self.process.pid

  def wait(self, timeout: float = 120) -> int:
    self.process.join(timeout)
    if self.process.exitcode is None:
      self.process.kill()
      self.process.join()
      raise TimeoutError(f'trainer still running after {timeout} s:\n'
                         + self.output[-3000:])
    return self.process.exitcode

  def signal(self, signum=signal.SIGTERM) -> None:
    os.kill(self.pid, signum)

  @property
  def output(self) -> str:
    return self.log_path.read_text() if self.log_path.exists() else ''

  def wait_for(self, text: str, timeout: float = 60) -> None:
    """Until `text` appears in the output (or the process ends)."""
    deadline = time.time() + timeout
    while text not in self.output:
      if not self.process.is_alive() or time.time() > deadline:
        raise AssertionError(f'{text!r} never came:\n' + self.output[-3000:])
      time.sleep(0.005)


def run(logdir, *flags, **kwargs) -> Trainer:
  """Start a trainer and wait for it to end."""
  trainer = Trainer(logdir, *flags, **kwargs)
  trainer.wait()
  return trainer


def read_jsonl(path: pathlib.Path) -> list[dict]:
  """The records of a JSON-lines file, strictly (a torn line is an error);
  none if it does not exist."""
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines()]


def tensorboard_events(logdir: pathlib.Path) -> dict[str, list[int]]:
  """Steps per tag over all event files, oldest file first."""
  from harmony_v3.run.logs import read_records, record_event
  steps = {}
  files = sorted(pathlib.Path(logdir).glob('events.out.tfevents.*'),
                 key=lambda p: p.stat().st_mtime_ns)
  for path in files:
    for record in read_records(path):
      event = record_event(record)
      for value in event.summary.value:
        steps.setdefault(value.tag, []).append(event.step)
  return steps


def facts(logdir) -> dict:
  """What a finished run must agree on with an uninterrupted one, after
  checking that its folder is consistent."""
  from harmony_v3.run import checkpoint, replay_files
  logdir = pathlib.Path(logdir)
  payload = checkpoint.load_checkpoint(logdir / 'checkpoint.ckpt')
  manifest = payload['replay']
  on_disk = sorted(p.name for p in (logdir / 'replay').iterdir())
  assert on_disk == sorted(manifest), (on_disk, sorted(manifest))
  assert not list(logdir.glob('*.tmp')), list(logdir.glob('*.tmp'))
  episodes = [r['step'] for r in read_jsonl(logdir / 'episodes.jsonl')]
  assert episodes == sorted(set(episodes)), episodes  # Nothing redone twice.
  metrics = read_jsonl(logdir / 'metrics.jsonl')
  steps = [r['step'] for r in metrics]
  assert steps == sorted(steps), steps
  events = tensorboard_events(logdir)
  for tag, tag_steps in events.items():
    assert tag_steps == sorted(set(tag_steps)), (tag, tag_steps)
  done = json.loads((logdir / 'done.json').read_text())
  return {
      'step': payload['step'], 'updates': payload['run']['updates'],
      'agent_updates': int(payload['agent']['updates']),
      'ratio_prev': payload['run']['ratio_prev'],
      'replay_steps': replay_files.manifest_steps(manifest),
      'eval_steps': [r['step'] for r in read_jsonl(logdir / 'eval.jsonl')],
      'episodes_ended_by': episodes[-1] <= payload['step'],
      'last_metrics': {k: v for k, v in metrics[-1].items()
                       if k in ('step', 'perf/updates')},
      'tensorboard_eval_frames': events['eval/score'],
      'done': {k: done[k] for k in ('steps', 'updates')},
      'params_finite': bool(np.isfinite(payload['agent']['w']).all()),
  }


def snapshot(folder) -> dict[str, bytes]:
  """Every file under `folder` with its bytes."""
  folder = pathlib.Path(folder)
  return {str(p.relative_to(folder)): p.read_bytes()
          for p in sorted(folder.rglob('*')) if p.is_file()}
