"""Evaluation, checkpoints, logs and progress, without training."""
import io
import pickle

import numpy as np
import pytest

from harmony_v3.run import checkpoint as ckpt
from harmony_v3.run.evaluation import episode_quotas, evaluate
from harmony_v3.run.logs import JSONLines
from harmony_v3.run.progress import Progress, format_duration


class CountdownEnv:
  """A batch of envs whose episode i of env j lasts `lengths[j]` steps, with
  reward 1 per step."""

  def __init__(self, lengths):
    self.lengths = np.array(lengths)
    self.t = np.zeros(len(lengths), int)
    self.act_space = {'action': type('S', (), {'shape': (2,), 'dtype':
                                               np.float32})(),
                      'reset': type('S', (), {'shape': (), 'dtype': bool})()}

  def __len__(self):
    return len(self.lengths)

  def step(self, action):
    reset = action['reset']
    self.t = np.where(reset, 0, self.t + 1)
    return {'is_first': reset.copy(), 'is_last': self.t >= self.lengths,
            'reward': np.where(reset, 0.0, 1.0).astype(np.float32)}


class ConstantAgent:
  def __init__(self):
    self.calls = 0

  def policy(self, obs, state, mode):
    self.calls += 1
    n = len(obs['is_first'])
    return {'action': np.zeros((n, 2), np.float32)}, state


def test_quotas_split_evenly():
  assert episode_quotas(100, 25) == [4] * 25
  assert episode_quotas(10, 4) == [3, 3, 2, 2]
  assert sum(episode_quotas(7, 16)) == 7


def test_evaluate_counts_fixed_shares_not_the_fastest_episodes():
  env = CountdownEnv([2, 10])  # A short and a long episode kind.
  agent = ConstantAgent()
  result = evaluate(agent, env, episodes=4)
  # Two episodes of each env, although env 0 finishes five more in the time.
  assert sorted(result.lengths) == [2, 2, 10, 10]
  assert sorted(result.returns) == [2.0, 2.0, 10.0, 10.0]
  assert result.mean == 6.0
  assert agent.calls >= 22  # One batched call per step for both envs.


def test_checkpoint_round_trip_and_corruption(tmp_path):
  path = tmp_path / 'checkpoint.ckpt'
  agent = {'w': np.ones((2, 3), np.float32)}
  ckpt.save_checkpoint(path, {'step': 7, 'agent': agent, 'run': {'u': 1},
                              'config': {'seed': 0}, 'replay': {}})
  loaded = ckpt.load_checkpoint(path)
  assert loaded['step'] == 7 and np.all(loaded['agent']['w'] == 1)
  path.write_bytes(path.read_bytes()[:20])  # Truncated mid-write.
  with pytest.raises(ckpt.CheckpointError, match='corrupt'):
    ckpt.load_checkpoint(path)
  path.write_bytes(pickle.dumps({'something': 'else'}))
  with pytest.raises(ckpt.CheckpointError, match='not a harmony_v3'):
    ckpt.load_checkpoint(path)


def test_incompatible_checkpoint_names_the_difference(tmp_path):
  saved = {'agent/wm/w': np.zeros((4, 4)), 'agent/wm/harmonizers/s_obs': 0.0}
  current = {'agent/wm/w': np.zeros((8, 4))}
  with pytest.raises(ckpt.CheckpointError) as info:
    ckpt.check_compatible(saved, current, tmp_path / 'c.ckpt')
  text = str(info.value)
  assert 'unexpected' in text and 's_obs' in text
  assert '(4, 4)' in text and '(8, 4)' in text
  ckpt.check_compatible(current, current, tmp_path / 'c.ckpt')  # No error.


def test_jsonlines_truncate_after(tmp_path):
  lines = JSONLines(tmp_path / 'eval.jsonl')
  for step in (100, 200, 300):
    lines.write({'step': step})
  lines.truncate_after(200)
  assert [r['step'] for r in lines.read()] == [100, 200]


def test_progress_line_and_modes():
  assert format_duration(3725) == '1h02m' and format_duration(65) == '1m05s'
  stream = io.StringIO()
  progress = Progress(1000, repeat=4, mode='lines', every=0, stream=stream,
                      name='atari_pong')
  progress.frames_per_s, progress.updates_per_s = 400.0, 10.0
  progress.set_eval(4000, 12.5)
  progress.update(500, force=True)
  line = stream.getvalue()
  assert 'step 500/1,000 (50%)' in line and '400 frames/s' in line
  assert 'ETA 5s' in line and 'eval 12.5 @ 4K frames' in line
  assert line.endswith('\n') and '\r' not in line
  bar = io.StringIO()
  Progress(10, 4, mode='bar', stream=bar).update(3, force=True)
  assert bar.getvalue().startswith('\r')
  off = io.StringIO()
  Progress(10, 4, mode='off', stream=off).update(3, force=True)
  assert off.getvalue() == ''
