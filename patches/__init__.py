"""Small, tested patches that let `dreamerv3==1.5.0` run on today's stack.

Each patch is one module with `apply()` (idempotent) and `is_applied()`.
`apply_all()` runs them in order; importing `harmony_v3` calls it once.

| patch                | fixes                                                        | needed on                      |
|----------------------|--------------------------------------------------------------|--------------------------------|
| ruamel_yaml_config   | `Config.save/load` call `ruamel.yaml.safe_dump/safe_load`    | ruamel.yaml >= 0.18            |
| tensorboard_no_tf    | `TensorBoardOutput` imports tensorflow to write event files  | any install without tensorflow |
| atari100k_eval_key   | the `atari100k` preset sets `actor_eval_sample`, unknown key | dreamerv3 1.5.0                |
| replay_chunk_atomic  | replay chunks are written in place: a kill leaves a truncated| dreamerv3 1.5.0                |
|                      | file that fails every later load (BadZipFile, names no file) |                                |
| crafter_ordered_chunks | a chunk's objects are a set iterated in memory-address order: | crafter 1.8.3 (the latest)   |
|                      | two envs of one seed and the same actions drift apart        |                                |

Replaced: `replay_chunk_versions` deleted the shorter saves of a chunk as soon
as a longer one was written, which could delete a file that the last
checkpoint needs. Which chunk files a resume loads is now decided by the
checkpoint's manifest (`harmony_v3.run.replay_files`), which also keeps one save
per chunk.

Not patched: the base's multi-device path (pmap over several train or policy
devices) uses `jax.device_put_sharded`/`device_put_replicated`, which current
JAX removed. harmony_v3 trains each run on one device (several runs share a GPU
as separate processes), where that code is never reached.
"""
from __future__ import annotations

from . import atari100k_eval_key
from . import crafter_ordered_chunks
from . import replay_chunk_atomic
from . import ruamel_yaml_config
from . import tensorboard_no_tf

PATCHES = (
    ruamel_yaml_config,
    tensorboard_no_tf,
    atari100k_eval_key,
    replay_chunk_atomic,
    crafter_ordered_chunks,
)


def apply_all() -> None:
  """Apply every patch; safe to call more than once."""
  for patch in PATCHES:
    patch.apply()


def status() -> dict[str, bool]:
  """Map each patch name to whether it is applied."""
  return {p.__name__.rsplit('.', 1)[-1]: p.is_applied() for p in PATCHES}
