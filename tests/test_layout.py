"""The package's layout: wings for envs and runs, and no import circles."""
from __future__ import annotations

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'harmony_v3'


def _module_name(path: pathlib.Path) -> str:
  parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
  return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def import_graph() -> dict[str, set[str]]:
  """Module -> the harmony_v3 modules it imports (anywhere in the file)."""
  modules = {_module_name(p): p for p in PACKAGE.rglob('*.py')}
  graph = {}
  for name, path in modules.items():
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets.update(alias.name for alias in node.names)
      elif isinstance(node, ast.ImportFrom):
        if node.level:
          base = package.split('.')
          base = base[:len(base) - node.level + 1]
          source = '.'.join(base + ([node.module] if node.module else []))
        else:
          source = node.module or ''
        for alias in node.names:
          full = f'{source}.{alias.name}'
          targets.add(full if full in modules else source)
    graph[name] = {t for t in targets if t in modules and t != name}
  return graph


def test_envs_and_run_are_wings_of_the_package():
  import harmony_v3.envs
  import harmony_v3.run
  assert callable(harmony_v3.envs.make_env)
  for old in ('runner', 'checkpoint', 'envs.py', 'atari', 'toy', 'games',
              'run_summary', 'plots', 'logs', 'progress'):
    assert not (PACKAGE / f'{old.removesuffix(".py")}.py').exists(), old


def test_no_module_imports_a_module_that_imports_it_back():
  graph = import_graph()
  circles = sorted(
      (a, b) for a, targets in graph.items() for b in targets
      if a < b and a in graph.get(b, ()))
  assert not circles, circles


def test_no_class_in_run_is_longer_than_250_lines():
  long = []
  for path in (PACKAGE / 'run').glob('*.py'):
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.ClassDef):
        length = node.end_lineno - node.lineno + 1
        if length > 250:
          long.append(f'{path.name}:{node.name} ({length} lines)')
  assert not long, long
