"""The study's fixed dataset: random-play Atari 100K episodes, saved once.

Episodes come from the project's own environment (`envs.make_env`, the
Atari 100K protocol of the `atari100k` preset: 64x64 RGB, action repeat 4
with max-pooling, up to 30 no-ops, no sticky actions, minimal action set)
with uniformly random actions. Each game gets its own env seeds for the
training and the held-out split, so the two splits share no episode.

Steps are stored as DreamerV3's replay stores them: step `t` holds the
observation `o_t`, the reward that came with it, and the action taken after
it (zero on an episode's last step). Each game keeps its minimal action set;
one-hot actions are padded with zeros to the largest set among the games, so
one world model reads all of them.
"""
from __future__ import annotations

import dataclasses
import io
import json
import pathlib
import time
from typing import Callable, Sequence

import numpy as np

from ..run.atomic_files import write_atomic
from .evaluate import symlog

FIELDS = ('image', 'action', 'reward', 'is_first', 'is_last', 'is_terminal',
          'game', 'episode')


class DatasetError(ValueError):
  """A saved dataset that does not match the study's settings."""


@dataclasses.dataclass
class Split:
  """Consecutive steps of many episodes, flat arrays of equal length.

  `action` is the index in the game's minimal action set (-1 on last steps),
  `game` the index in the study's game list, `episode` a running id.
  """
  image: np.ndarray
  action: np.ndarray
  reward: np.ndarray
  is_first: np.ndarray
  is_last: np.ndarray
  is_terminal: np.ndarray
  game: np.ndarray
  episode: np.ndarray

  def __len__(self) -> int:
    return len(self.reward)

  def window_starts(self, length: int, game: int | None = None) -> np.ndarray:
    """Start indices of every `length`-step window inside one episode."""
    if len(self) < length:
      return np.zeros(0, np.int64)
    starts = np.arange(len(self) - length + 1)
    same = self.episode[starts] == self.episode[starts + length - 1]
    if game is not None:
      same &= self.game[starts] == game
    return starts[same]

  def windows(self, starts: np.ndarray, length: int,
              num_actions: int) -> dict[str, np.ndarray]:
    """A batch (len(starts), length, ...) in the world model's format.

    The first step of each window is marked `is_first`, so the model starts
    each window from its initial state.
    """
    index = np.asarray(starts)[:, None] + np.arange(length)
    action = np.zeros(index.shape + (num_actions,), np.float32)
    taken = self.action[index]
    rows, cols = np.nonzero(taken >= 0)
    action[rows, cols, taken[rows, cols]] = 1.0
    is_first = self.is_first[index].copy()
    is_first[:, 0] = True
    return {
        'image': self.image[index],
        'action': action,
        'reward': self.reward[index].astype(np.float32),
        'is_first': is_first,
        'is_last': self.is_last[index],
        'is_terminal': self.is_terminal[index],
    }


def _game_config(game: str):
  from ..config import load_config
  return load_config(['atari100k'], ['--task', f'atari_{game}'])


def collect_game(game: str, game_index: int, steps: int, seed: int,
                 first_episode: int = 0,
                 report: Callable[[str], None] | None = None
                 ) -> tuple[Split, int]:
  """`steps` steps of random play on one game, from env seed `seed`, and the
  size of the game's action set."""
  from ..envs import make_env
  env = make_env(_game_config(game), seed=seed)
  size = env.act_space['action'].shape[0]
  rng = np.random.default_rng(seed)
  columns = {k: [] for k in FIELDS}
  episode = first_episode
  obs = env.step({'action': np.zeros(size, np.float32), 'reset': True})
  start = time.time()
  try:
    for t in range(steps):
      action = -1 if obs['is_last'] else int(rng.integers(size))
      for key in ('image', 'reward', 'is_first', 'is_last', 'is_terminal'):
        columns[key].append(obs[key])
      columns['action'].append(action)
      columns['game'].append(game_index)
      columns['episode'].append(episode)
      onehot = np.zeros(size, np.float32)
      if action >= 0:
        onehot[action] = 1.0
      reset = bool(obs['is_last'])
      episode += reset
      obs = env.step({'action': onehot, 'reset': reset})
      if report and (t + 1) % 5000 == 0:
        report(f'  {game}: {t + 1:,}/{steps:,} steps '
               f'({(t + 1) / (time.time() - start):,.0f} steps/s)')
  finally:
    env.close()
  dtypes = {'image': np.uint8, 'action': np.int16, 'reward': np.float32,
            'is_first': bool, 'is_last': bool, 'is_terminal': bool,
            'game': np.int8, 'episode': np.int32}
  split = Split(**{k: np.asarray(v, dtypes[k]) for k, v in columns.items()})
  return split, size


def concatenate(splits: Sequence[Split]) -> Split:
  """One split of several, in order."""
  return Split(**{k: np.concatenate([getattr(s, k) for s in splits])
                  for k in FIELDS})


def collect(games: Sequence[str], steps_per_game: int, seed: int,
            report: Callable[[str], None] | None = None
            ) -> tuple[Split, dict[str, int]]:
  """Random play on each game (game `i` uses env seed `seed + i`), and the
  size of each game's action set."""
  parts, sizes, episode = [], {}, 0
  for index, game in enumerate(games):
    part, sizes[game] = collect_game(
        game, index, steps_per_game, seed + index, episode, report)
    episode = int(part.episode[-1]) + 1
    parts.append(part)
  return concatenate(parts), sizes


def _atomic_savez(path: pathlib.Path, arrays: dict) -> None:
  with io.BytesIO() as stream:
    np.savez_compressed(stream, **arrays)
    write_atomic(path, stream.getvalue())


def write_json_atomic(path: pathlib.Path, value) -> None:
  """Write JSON so that a kill at any moment leaves the old file or the new."""
  write_atomic(path, json.dumps(value, indent=2).encode())


def read_json(path: pathlib.Path, what: str, advice: str):
  """The JSON value in `path`; a StudyError naming the file (`what` it
  should hold, `advice` on what to do) if it cannot be read or parsed."""
  from .settings import StudyError
  try:
    return json.loads(pathlib.Path(path).read_text())
  except (OSError, ValueError) as error:  # UnicodeDecodeError included.
    raise StudyError(f'{path} is not {what} ({type(error).__name__}: '
                     f'{error}). {advice}') from None


def split_stats(split: Split, games: Sequence[str]) -> dict:
  """Episodes, steps and reward statistics of a split, overall and per game."""
  reward = split.reward.astype(np.float64)
  symlog_reward = symlog(reward)
  per_game = {}
  for index, game in enumerate(games):
    mask = split.game == index
    per_game[game] = {
        'steps': int(mask.sum()),
        'episodes': int(len(np.unique(split.episode[mask]))),
        'rewarded_steps': float(np.mean(reward[mask] != 0)),
        'mean_reward': float(reward[mask].mean()),
        'mean_symlog_reward': float(symlog_reward[mask].mean()),
    }
  return {
      'steps': len(split),
      'episodes': int(len(np.unique(split.episode))),
      'mean_reward': float(reward.mean()),
      'mean_symlog_reward': float(symlog_reward.mean()),
      'rewarded_steps': float(np.mean(reward != 0)),
      'games': per_game,
  }


def load_or_collect(folder: pathlib.Path, games: Sequence[str],
                    train_steps: int, heldout_steps: int, seed: int,
                    report: Callable[[str], None] = print
                    ) -> tuple[Split, Split, dict]:
  """The training and held-out splits, collected once and then reused.

  Returns (train, heldout, info). A saved dataset made with other settings
  raises DatasetError rather than being silently replaced.
  """
  folder.mkdir(parents=True, exist_ok=True)
  want = {'games': list(games), 'train_steps_per_game': int(train_steps),
          'heldout_steps_per_game': int(heldout_steps), 'seed': int(seed)}
  info_path = folder / 'dataset.json'
  paths = {'train': folder / 'train.npz', 'heldout': folder / 'heldout.npz'}
  if info_path.exists() and all(p.exists() for p in paths.values()):
    info = json.loads(info_path.read_text())
    if info['settings'] != want:
      raise DatasetError(
          f'{folder} holds a dataset made with {info["settings"]}, not '
          f'{want}: use another --out folder or delete that one.')
    splits = []
    for path in paths.values():
      with np.load(path) as arrays:
        splits.append(Split(**{k: arrays[k] for k in FIELDS}))
    report(f'Dataset: reusing {folder} ({info["train"]["steps"]:,} training '
           f'and {info["heldout"]["steps"]:,} held-out steps)')
    return splits[0], splits[1], info
  report(f'Dataset: collecting random play on {", ".join(games)} '
         f'({train_steps:,} training + {heldout_steps:,} held-out steps per '
         f'game) into {folder}')
  start = time.time()
  train, sizes = collect(games, train_steps, seed, report)
  heldout, _ = collect(games, heldout_steps, seed + 10_000, report)
  for name, split in (('train', train), ('heldout', heldout)):
    _atomic_savez(paths[name], dataclasses.asdict(split))
  info = {'settings': want,
          'action_sets': sizes,
          'train': split_stats(train, games),
          'heldout': split_stats(heldout, games),
          'collect_seconds': round(time.time() - start, 1),
          'env': 'harmony_v3.envs.atari via envs.make_env, atari100k preset, '
                 'uniformly random actions'}
  write_json_atomic(info_path, info)  # Last: marks the dataset complete.
  report(f'Dataset: done in {info["collect_seconds"]:.0f} s')
  return train, heldout, info

