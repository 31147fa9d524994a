"""DreamerV3's Agent with HarmonyWorldModel installed, without editing the base.

The base `Agent.__init__` builds its world model from the module-level name
`dreamerv3.agent.WorldModel`. `HarmonyAgent` binds that name to
`HarmonyWorldModel` while the base constructor runs, then restores it, so the
actor-critic and everything else are built exactly as in the base.
"""
from __future__ import annotations

import contextlib
import threading

from dreamerv3 import agent as base_agent
from dreamerv3 import jaxagent

from .world_model import HarmonyWorldModel

_SWAP_LOCK = threading.Lock()


@contextlib.contextmanager
def _world_model_class(cls):
  with _SWAP_LOCK:
    original = base_agent.WorldModel
    base_agent.WorldModel = cls
    try:
      yield
    finally:
      base_agent.WorldModel = original


class HarmonyAgentModule(base_agent.Agent.inner):
  """The base agent's ninjax module, built with HarmonyWorldModel."""

  def __init__(self, obs_space, act_space, step, config):
    with _world_model_class(HarmonyWorldModel):
      super().__init__(obs_space, act_space, step, config)


# The JAX wrapper: jit-compiled policy/train/report, parameters, checkpoints.
HarmonyAgent = jaxagent.Wrapper(HarmonyAgentModule)
