"""SIGTERM and Ctrl-C at the moments where they used to do harm: during the
first compilations and during a checkpoint write, twice in a row (SLURM's
scancel can send two SIGTERMs 20 ms apart).

SIGTERM only asks for a stop: the trainer saves once and exits with 130,
and the run resumes to the same end as an uninterrupted one. A second
Ctrl-C stops at once, but never in the middle of a checkpoint write.
The stand-in agent compiles a real JAX function where DreamerV3 compiles.
"""
import signal
import time

import pytest

from trainer_runs import Trainer, facts, run

INTERRUPTED = 130


@pytest.fixture(scope='module')
def reference(tmp_path_factory):
  trainer = run(tmp_path_factory.mktemp('reference') / 'run')
  assert trainer.process.exitcode == 0, trainer.output[-3000:]
  return facts(trainer.logdir)


def _signals(trainer, signum, gap):
  trainer.signal(signum)
  time.sleep(gap)
  trainer.signal(signum)


SLOW_WRITE = 'pause:during_checkpoint_write:1.0'  # Each write takes 1 s.


def _checkpoint_step(logdir):
  from harmony_v3.run import checkpoint
  return checkpoint.load_checkpoint(logdir / 'checkpoint.ckpt')['step']


def _resume_matches(logdir, reference, env=None):
  second = run(logdir, env=env)
  assert second.process.exitcode == 0, second.output[-3000:]
  assert facts(logdir) == reference


@pytest.mark.parametrize('when, gap', [('agent construction', 0.02),
                                       ('the first train update', 0.3)])
def test_two_sigterms_during_a_compilation(when, gap, reference, tmp_path):
  logdir = tmp_path / 'run'
  where = 'construction' if when == 'agent construction' else 'update'
  trainer = Trainer(logdir, env={'STANDIN_COMPILE': where})
  trainer.wait_for(f'Compiling for {when}.')
  time.sleep(0.1)
  _signals(trainer, signal.SIGTERM, gap)
  assert trainer.wait() == INTERRUPTED, trainer.output[-3000:]
  out = trainer.output
  # The signals arrived while XLA compiled, and the compilation went on.
  assert out.index('Stop requested') < out.index(f'Compiled for {when}.')
  assert out.count('Stop requested') == 1
  assert 'Saved. Run the same command again to resume.' in out
  step = _checkpoint_step(logdir)
  assert step == (0 if when == 'agent construction' else 101)
  assert not list(logdir.glob('*.tmp'))
  _resume_matches(logdir, reference)


def _wait_for_checkpoint_write(trainer, logdir, nth=1):
  """Until the nth checkpoint write is under way."""
  tmp = logdir / 'checkpoint.ckpt.tmp'
  deadline = time.time() + 60
  seen = 0
  while seen < nth:
    while not tmp.exists():
      assert trainer.process.is_alive(), trainer.output[-3000:]
      assert time.time() < deadline, 'no checkpoint write seen'
      time.sleep(0.001)
    seen += 1
    while seen < nth and tmp.exists():
      time.sleep(0.001)


def _stopped_at(trainer) -> int:
  line = [l for l in trainer.output.splitlines()
          if l.startswith('Interrupted at step ')]
  assert line, trainer.output[-3000:]
  return int(line[0].split()[3].rstrip(',:').replace(',', ''))


@pytest.mark.parametrize('gap', [0.02, 0.3])
def test_two_sigterms_during_a_checkpoint_write(gap, reference, tmp_path):
  logdir = tmp_path / 'run'
  trainer = Trainer(logdir, fault=SLOW_WRITE)
  _wait_for_checkpoint_write(trainer, logdir, nth=2)
  _signals(trainer, signal.SIGTERM, gap)
  assert trainer.wait() == INTERRUPTED, trainer.output[-3000:]
  # The write went on, and the stop came right after it, without a
  # second checkpoint.
  assert 'which the last checkpoint holds.' in trainer.output
  assert _checkpoint_step(logdir) == _stopped_at(trainer)
  assert not list(logdir.glob('*.tmp'))
  _resume_matches(logdir, reference)


def test_second_ctrl_c_stops_at_once_even_in_a_compilation(
    reference, tmp_path):
  logdir = tmp_path / 'run'
  trainer = Trainer(logdir, env={'STANDIN_COMPILE': 'update'})
  trainer.wait_for('Compiling for the first train update.')
  time.sleep(0.1)
  _signals(trainer, signal.SIGINT, 0.3)
  assert trainer.wait() == INTERRUPTED, trainer.output[-3000:]
  out = trainer.output
  assert 'Press Ctrl-C again to stop at once' in out
  assert 'Stopped at once at step 101 without saving. The last good ' \
      f'checkpoint is {logdir}/checkpoint.ckpt at step 0' in out
  assert 'Compiled for the first train update.' not in out
  assert _checkpoint_step(logdir) == 0
  _resume_matches(logdir, reference)


def test_second_ctrl_c_waits_for_the_checkpoint_write(reference, tmp_path):
  """The first Ctrl-C asks for a stop, which saves; the second comes
  during that write and ends the process right after it."""
  logdir = tmp_path / 'run'
  trainer = Trainer(logdir, fault=SLOW_WRITE,
                    env={'STANDIN_STEP_SLEEP': '0.005'})
  trainer.wait_for('Evaluation at 800 frames')
  _wait_for_checkpoint_write(trainer, logdir)  # The one at step 200.
  while (logdir / 'checkpoint.ckpt.tmp').exists():
    time.sleep(0.001)
  time.sleep(0.1)  # Some steps on.
  trainer.signal(signal.SIGINT)
  trainer.wait_for('Interrupted at step')
  _wait_for_checkpoint_write(trainer, logdir)
  trainer.signal(signal.SIGINT)
  assert trainer.wait() == INTERRUPTED, trainer.output[-3000:]
  assert 'Stopping once the checkpoint being written is complete.' in (
      trainer.output)
  step = _stopped_at(trainer)
  assert step > 200 and _checkpoint_step(logdir) == step  # Written whole.
  assert not list(logdir.glob('*.tmp'))
  _resume_matches(logdir, reference)
