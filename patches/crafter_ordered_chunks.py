"""Crafter's episodes reproducible from the seed (crafter 1.8.3).

`crafter.engine.World` keeps the objects of each map chunk in a `set`.
Crafter's objects hash by identity, so such a set iterates in an order given
by memory addresses. Every 10 steps `Env._balance_object` lists a chunk's
creatures from that set and despawns `creatures[random.randint(n)]`: which
creature goes depends on where the objects happen to live in memory. Two
envs of one seed, given the same actions, drift apart within a few dozen
steps, and a run is not reproducible (danijar/crafter issues 31 and 36,
open in 2026).

The replacement keeps each chunk's objects in the order they entered it. The
random numbers drawn and the game's rules are unchanged; only which of the
candidates a draw picks becomes a function of the seed and the actions.
Without `crafter` installed there is nothing to patch.
"""
from __future__ import annotations

import collections


class OrderedObjects(dict):
  """The set operations Crafter uses on a chunk's objects (add, remove,
  `in`, len, iteration), iterating in insertion order."""

  def add(self, obj) -> None:
    self[obj] = None

  def remove(self, obj) -> None:
    del self[obj]


_ORIGINAL_RESET = None


def _reset(self, seed=None):
  _ORIGINAL_RESET(self, seed)
  self._chunks = collections.defaultdict(OrderedObjects)


def is_applied() -> bool:
  try:
    from crafter import engine
  except ImportError:
    return False
  return engine.World.reset is _reset


def apply() -> None:
  global _ORIGINAL_RESET
  try:
    from crafter import engine
  except ImportError:
    return
  if engine.World.reset is not _reset:
    _ORIGINAL_RESET = engine.World.reset
    engine.World.reset = _reset
