"""Probes for each patch, run in a fresh process with or without the patches.

  python tests/patch_probes.py [--patched]

Prints a JSON object: patch name -> 'ok' or the error the probe hit. Each
probe exercises the base code path that the patch fixes.
"""
import json
import pathlib
import sys
import tempfile

import numpy as np

if '--patched' in sys.argv:
  import harmony_v3  # noqa: F401
import dreamerv3  # noqa: E402
import embodied  # noqa: E402

TMP = pathlib.Path(tempfile.mkdtemp())


def ruamel_yaml_config():
  path = TMP / 'config.yaml'
  embodied.Config({'a': 1, 'b': {'c': [1, 2]}}).save(path)
  loaded = embodied.Config.load(path)
  assert loaded['b']['c'] == (1, 2) and loaded['a'] == 1, loaded


def tensorboard_no_tf():
  logdir = TMP / 'tb'
  output = embodied.logger.TensorBoardOutput(str(logdir), parallel=False)
  output(((0, 'probe/scalar', np.float32(1.5)),
          (0, 'probe/hist', np.arange(5, dtype=np.float32)),
          (0, 'probe/image', np.zeros((8, 8, 3), np.uint8))))
  files = list(logdir.glob('events.out.tfevents.*'))
  assert files and b'probe/scalar' in files[0].read_bytes(), files


def atari100k_eval_key():
  configs = dreamerv3.Agent.configs
  config = embodied.Config(configs['defaults']).update(configs['atari100k'])
  assert config.actor_eval_sample is True


def replay_chunk_atomic():
  import builtins
  import errno
  from embodied.replay import saver as saverlib
  directory = TMP / 'chunks'
  replay = embodied.replay.Uniform(4, 100, directory)
  step = lambda i: {'x': np.float32(i), 'is_first': i == 0}
  for i in range(10):
    replay.add(step(i))
  replay.save(wait=True)  # A complete chunk file of 10 steps.
  for i in range(10, 15):
    replay.add(step(i))
  real_open = builtins.open

  class HalfThenFull:
    """A file on a disk that fills up halfway through the write."""

    def __init__(self, f):
      self.f = f

    def write(self, data):
      self.f.write(data[:len(data) // 2])
      self.f.flush()
      raise OSError(errno.ENOSPC, 'No space left on device')

    def __getattr__(self, name):
      return getattr(self.f, name)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self.f.close()

  def full_disk_open(file, mode='r', *args, **kwargs):
    f = real_open(file, mode, *args, **kwargs)
    if 'w' in mode and str(file).startswith(str(directory)):
      return HalfThenFull(f)
    return f
  builtins.open = full_disk_open
  try:
    replay.save(wait=True)  # The 15-step save of the same chunk.
    raise AssertionError('the full disk went unnoticed')
  except OSError as e:
    error = str(e)
  finally:
    builtins.open = real_open
  loaded = [s['x'] for s, _ in saverlib.Saver(directory).load(None, 4)]
  assert sorted(loaded) == list(range(10)), f'{len(loaded)} steps loaded'
  assert '.npz' in error, f'the error names no file: {error}'
  garbled = directory / '20000101T000000F000000-a-0-5.npz'
  garbled.write_bytes(b'not a zip file')
  try:
    list(saverlib.Saver(directory).load(None, 4))
    raise AssertionError('a garbled chunk was loaded')
  except Exception as e:
    assert garbled.name in str(e), f'the error names no file: {e!r}'


def crafter_ordered_chunks():
  # Crafter's objects hash by identity. Take two cows whose order in a set
  # is the same whichever is added first (it follows their addresses), and
  # add them to a chunk the other way round: a chunk that keeps insertion
  # order lists them as added, a plain set does not.
  from crafter import constants, engine, objects
  world = engine.World((64, 64), constants.materials, (12, 12))
  for _ in range(100):
    a, b = objects.Cow(world, (1, 1)), objects.Cow(world, (2, 2))
    order = list({a, b})
    if order == list({b, a}):
      break
  else:
    raise AssertionError('no two cows with an address-given set order')
  added = order[::-1]
  for cow in added:
    world.add(cow)
  listed = list(world.chunks[world.chunk_key((1, 1))])
  assert listed == added, 'the chunk does not keep the insertion order'


PROBES = [ruamel_yaml_config, tensorboard_no_tf, atari100k_eval_key,
          replay_chunk_atomic, crafter_ordered_chunks]

if __name__ == '__main__':
  results = {}
  for probe in PROBES:
    try:
      probe()
      results[probe.__name__] = 'ok'
    except Exception as e:  # Report, don't stop: each probe stands alone.
      results[probe.__name__] = f'{type(e).__name__}: {e}'
  print('PROBES ' + json.dumps(results))
