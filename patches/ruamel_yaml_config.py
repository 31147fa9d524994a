"""Config.save/load on ruamel.yaml >= 0.18.

`embodied.Config.save` and `.load` call the module-level functions
`ruamel.yaml.safe_dump` and `ruamel.yaml.safe_load`, which ruamel.yaml removed
in 0.18 (they now raise AttributeError). Writing a run's `config.yaml` fails.
The replacements use the `YAML(typ='safe')` object API and keep the same file
format; JSON files go through the original methods unchanged.
"""
from __future__ import annotations

import io

import dreamerv3  # noqa: F401  (makes `embodied` importable)
import embodied
from ruamel.yaml import YAML

_ORIGINAL_SAVE = embodied.Config.save
_ORIGINAL_LOAD = embodied.Config.load.__func__


def _is_yaml(filename) -> bool:
  return str(filename).endswith(('.yml', '.yaml'))


def _save(self, filename):
  if not _is_yaml(filename):
    return _ORIGINAL_SAVE(self, filename)
  stream = io.StringIO()
  yaml = YAML(typ='safe', pure=True)
  yaml.default_flow_style = False
  yaml.dump(dict(self), stream)
  embodied.Path(filename).write(stream.getvalue())


def _load(cls, filename):
  if not _is_yaml(filename):
    return _ORIGINAL_LOAD(cls, filename)
  text = embodied.Path(filename).read()
  return cls(YAML(typ='safe', pure=True).load(text))


def is_applied() -> bool:
  return embodied.Config.save is _save


def apply() -> None:
  embodied.Config.save = _save
  embodied.Config.load = classmethod(_load)
