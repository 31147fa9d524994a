"""The `atari100k` preset sets a key that the defaults do not have.

dreamerv3 1.5.0's `configs.yaml` preset `atari100k` sets
`actor_eval_sample: True`, but `defaults` has no such key, so
`Config.update(configs['atari100k'])` raises `KeyError: Unknown key or pattern
actor_eval_sample`. The base never reads the key: its `policy(mode='eval')`
always samples the actor. We add the key to the defaults with the value that
describes that behaviour (True), so the preset loads and the saved config
states how evaluation actions are chosen.
"""
from __future__ import annotations

import dreamerv3

KEY = 'actor_eval_sample'


def is_applied() -> bool:
  return KEY in dreamerv3.Agent.configs['defaults']


def apply() -> None:
  dreamerv3.Agent.configs['defaults'].setdefault(KEY, True)
