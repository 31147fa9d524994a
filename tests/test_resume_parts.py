"""The parts that make resumes exact, without training: log files and their
roll-back, TensorBoard files read back, the trainer lock, signal handling,
the replay manifest and the agent's per-update losses."""
import json
import os
import signal

import numpy as np
import pytest

from harmony_v3.run import checkpoint, replay_files, run_lock
from harmony_v3.run.logs import (JSONLines, MetricsJSONL, TensorBoardFrames,
                             read_records, record_event, truncate_tensorboard)
from harmony_v3.run.stop_signals import StopSignals


def test_nonfinite_metrics_are_written_as_null_and_named(tmp_path):
  """Defect E: no metric goes missing without a word."""
  output = MetricsJSONL(tmp_path / 'metrics.jsonl', repeat=4)
  output(((10, 'train/loss', np.float32('nan')),
          (10, 'replay/wait', np.float64('inf')),
          (10, 'train/ok', np.float32(1.5))))
  record = json.loads((tmp_path / 'metrics.jsonl').read_text())
  assert record == {'step': 10, 'frames': 40, 'train/loss': None,
                    'replay/wait': None, 'train/ok': 1.5,
                    'nonfinite': {'train/loss': 'nan', 'replay/wait': 'inf'}}


def test_a_torn_last_line_is_ignored_and_truncation_is_atomic(tmp_path):
  lines = JSONLines(tmp_path / 'eval.jsonl')
  for step in (100, 200, 300):
    lines.write({'step': step})
  with lines.path.open('a') as f:
    f.write('{"step": 4')  # A kill during the write.
  assert [r['step'] for r in lines.read()] == [100, 200, 300]
  lines.truncate_after(200)
  assert lines.path.read_text() == '{"step": 100}\n{"step": 200}\n'
  assert not list(tmp_path.glob('*.tmp'))
  lines.path.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
  with pytest.raises(ValueError, match='line 2: not a JSON record'):
    lines.read()


def test_tensorboard_files_are_cut_back_to_the_checkpoint(tmp_path):
  """Defect J: events past the checkpoint go; the file stays readable."""
  output = TensorBoardFrames(tmp_path, repeat=4)
  for step in range(10):
    output(((step, 'train/loss', np.float32(step)),
            (step, 'train/nan', np.float32('nan')),
            (step, 'train/inf', np.float32('inf')),
            (step, 'train/hist', np.arange(5, dtype=np.float32)),
            (step, 'report/image', np.zeros((4, 4, 3), np.float32)),
            (step, 'report/video', np.zeros((3, 4, 4, 3), np.uint8))))
  path, = tmp_path.glob('events.out.tfevents.*')
  with path.open('ab') as f:
    f.write(path.read_bytes()[-30:-5])  # A record cut short by a kill.
  assert truncate_tensorboard(tmp_path, last_step=20) == 5 * 4
  events = [record_event(r) for r in read_records(path)]
  assert events[0].file_version == 'brain.Event:2'
  tags = {}
  for event in events[1:]:
    for value in event.summary.value:
      tags.setdefault(value.tag, []).append(event.step)
  assert tags == {tag: [0, 4, 8, 12, 16, 20] for tag in (
      'train/loss', 'train/inf', 'train/hist', 'report/image',
      'report/video')}  # A NaN scalar has no value yet: no point.
  assert np.isposinf([v.simple_value for e in events[1:] for v in
                      e.summary.value if v.tag == 'train/inf']).all()
  assert sum(len(r) for r in read_records(path)) == path.stat().st_size
  assert record_event(read_records(path)[-1]).step == 20


def test_the_trainer_lock(tmp_path):
  """Defect D: one holder at a time; gone with the holder."""
  assert not run_lock.is_locked(tmp_path)
  fd = run_lock.acquire(tmp_path)
  assert run_lock.is_locked(tmp_path)
  assert (tmp_path / run_lock.LOCK_NAME).exists()
  with pytest.raises(run_lock.RunLockedError, match='Another trainer'):
    run_lock.acquire(tmp_path)
  run_lock.release(fd)
  assert not run_lock.is_locked(tmp_path)


def test_sigterm_only_requests_a_stop():
  signals = StopSignals().install()
  try:
    for _ in range(3):
      os.kill(os.getpid(), signal.SIGTERM)  # Handled before kill() returns.
    assert signals.requested and signals.terms == 3
  finally:
    signals.restore()
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_manifest_keeps_the_latest_save_of_each_chunk(tmp_path):
  for name in ('t1-A-0-10.npz', 't1-A-0-30.npz', 't1-A-B-64.npz',
               't2-B-0-5.npz'):
    (tmp_path / name).write_bytes(b'x' * len(name))
  manifest = replay_files.make_manifest(tmp_path)
  assert sorted(manifest) == ['t1-A-B-64.npz', 't2-B-0-5.npz']
  assert replay_files.manifest_steps(manifest) == 69
  messages = []
  replay_files.reconcile(tmp_path, {'t1-A-0-30.npz': {
      'steps': 30, 'bytes': 13}}, 200, tmp_path / 'c.ckpt', messages.append)
  assert sorted(p.name for p in tmp_path.iterdir()) == ['t1-A-0-30.npz']
  assert messages[0].startswith('Discarded 39 replay steps (3 chunk files)')


def test_a_foreign_npz_in_the_replay_folder_is_refused_and_kept(tmp_path):
  """Issue 19, round two: a user's `replay/notes.npz` stopped the resume
  with an IndexError traceback (and the base's loader would fail on it
  too). It is refused, named, before anything is deleted."""
  names = ('t1-A-0-10.npz', 't1-A-B-64.npz', 'notes.npz')
  for name in names:
    (tmp_path / name).write_bytes(b'x' * len(name))
  assert replay_files.make_manifest(tmp_path) == {
      't1-A-B-64.npz': {'steps': 64, 'bytes': 13}}  # notes.npz is no chunk.
  for manifest, checkpoint_path in (({}, None), (
      {'t1-A-B-64.npz': {'steps': 64, 'bytes': 13}}, tmp_path / 'c.ckpt')):
    with pytest.raises(replay_files.ReplayError) as error:
      replay_files.reconcile(tmp_path, manifest, 64, checkpoint_path,
                             print)
    assert str(error.value).startswith(
        f'{tmp_path / "notes.npz"} is not a replay chunk file')
    assert 'nothing was changed' in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)
  assert not replay_files.is_chunk_name('a-b-c.npz')
  assert not replay_files.is_chunk_name('my-old-run-backup-3.npz')
  assert replay_files.is_chunk_name(
      '20261130T101010F000001-4x7Gq-0-1024.npz')


def test_checkpoint_write_failure_keeps_the_previous_one(tmp_path,
                                                         monkeypatch):
  path = tmp_path / 'checkpoint.ckpt'
  checkpoint.save_checkpoint(path, {'step': 1, 'agent': {}, 'run': {},
                                    'config': {}, 'replay': {}})
  monkeypatch.setenv('HARMONY_FAULT', 'enospc:checkpoint.ckpt.tmp')
  with pytest.raises(OSError, match=f'writing {path}'):
    checkpoint.save_checkpoint(path, {'step': 2, 'agent': {}, 'run': {},
                                      'config': {}, 'replay': {}})
  assert checkpoint.load_checkpoint(path)['step'] == 1
  assert not list(tmp_path.glob('*.tmp'))


def test_prefill_actions_depend_on_the_seed_and_step_only():
  """Defect K: the base's random prefill drew from unseeded generators."""
  import types
  import embodied
  from harmony_v3.run.runner import Trainer
  from standin import make_envs
  from harmony_v3.config import load_config
  env, _ = make_envs(load_config(['tiny'], ['--run.eval_envs', '1']), 0)

  def actions(seed, step):
    fake = types.SimpleNamespace(config=types.SimpleNamespace(seed=seed),
                                 step=embodied.Counter(step), train_env=env)
    obs = {'is_first': np.zeros(3, bool)}
    return Trainer._random_policy(fake, obs)[0]['action']
  first = actions(0, 5)
  assert first.shape == (3, 3) and (first.sum(-1) == 1).all()
  assert set(np.unique(first)) == {0.0, 1.0}
  assert np.array_equal(first, actions(0, 5))
  runs = [np.concatenate([actions(seed, step) for step in range(20)])
          for seed in (0, 1)]
  assert not np.array_equal(*runs)


def test_env_seeds_of_a_resume_are_new_deterministic_and_in_range():
  """A resumed run's envs must not replay its first episodes (Crafter's
  worlds follow from the seed and the episode number alone)."""
  from harmony_v3.envs import crafter, env_seed
  assert env_seed(7, 0) == 7  # A fresh run keeps its seed.
  seeds = {env_seed(seed, step) for seed in range(4)
           for step in (100, 200, 50_000, 400_000)}
  assert len(seeds) == 16 and not seeds & set(range(4))
  assert env_seed(3, 200) == env_seed(3, 200)
  assert all(0 <= s and s + 1_000_000 + 64 < 2 ** 31 for s in seeds)

  def first_world(seed):
    env = crafter.Crafter(seed=seed)
    obs = env.step({'action': 0, 'reset': True})
    env.close()
    return obs['image']
  # Same seed, same first world: what a resume used to replay.
  assert np.array_equal(first_world(5), first_world(5))
  assert not np.array_equal(first_world(5), first_world(env_seed(5, 200)))


def test_report_does_not_move_the_agents_random_generator():
  """Defect K: logs come at wall-clock times and must not change training."""
  import types
  from harmony_v3.run.runner import Trainer

  class Agent:
    rng = np.random.default_rng(0)

    def report(self, batch):
      return {'draw': self.rng.integers(100)}
  fake = types.SimpleNamespace(agent=Agent(), _batch=None)
  expected = np.random.default_rng(0).integers(1 << 62, size=3)
  Trainer._report(fake)
  assert np.array_equal(fake.agent.rng.integers(1 << 62, size=3), expected)


def test_agent_losses_data_and_updates(harmony_agent, tiny_config, pong_env):
  """The real agent: each update's losses, NaN included (defect E); with
  data_loaders 0 the batches are reproducible, and an update from the same
  state gives the same result bit for bit on the CPU (defect K)."""
  import embodied
  import jax
  from conftest import random_batch
  batch = jax.device_put(random_batch(tiny_config, pong_env))
  saved, rng = harmony_agent.save(), harmony_agent.rng.bit_generator.state
  results = []
  try:
    for _ in range(2):
      harmony_agent.load(saved)
      harmony_agent.rng.bit_generator.state = rng
      harmony_agent.train(batch)
      results.append((harmony_agent.last_losses(), harmony_agent.save()))
    losses = results[0][0]
    assert set(losses) == {'model_opt_loss', 'actor_opt_loss',
                           'extr_critic_critic_opt_loss'}
    assert all(np.isfinite(v) for v in losses.values()), losses
    assert results[0][0] == results[1][0]
    assert all(np.array_equal(a, b) for a, b in zip(
        jax.tree_util.tree_leaves(results[0][1]),
        jax.tree_util.tree_leaves(results[1][1])))
    harmony_agent.load(jax.tree_util.tree_map(
        lambda x: np.full_like(x, np.nan) if np.issubdtype(
            x.dtype, np.floating) else x, saved))
    harmony_agent.train(batch)
    assert np.isnan(harmony_agent.last_losses()['model_opt_loss'])
  finally:
    harmony_agent.load(saved)
    harmony_agent.rng.bit_generator.state = rng

  def batches():
    replay = embodied.replay.Uniform(tiny_config.batch_length, 1000, seed=0)
    data = random_batch(tiny_config, pong_env, seed=3)
    for t in range(data['reward'].shape[1]):
      for b in range(data['reward'].shape[0]):
        replay.add({k: v[b, t] for k, v in data.items()}, worker=b)
    loader = harmony_agent.dataset(replay.dataset)
    return [next(loader) for _ in range(3)]
  loaders = harmony_agent.data_loaders
  harmony_agent.data_loaders = 0
  try:
    first, second = batches(), batches()
  finally:
    harmony_agent.data_loaders = loaders
  assert isinstance(first[0]['image'], jax.Array)
  for a, b in zip(first, second):
    assert all(np.array_equal(jax.device_get(a[k]), jax.device_get(b[k]))
               for k in a if k != 'id')
