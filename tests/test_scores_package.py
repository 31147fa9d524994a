"""The report package's shape: layered modules, old names, a light import."""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

from harmony_v3 import scores

PACKAGE = pathlib.Path(scores.__file__).parent
# Each module may import only modules listed before it.
LAYERS = ('benchmark', 'runs', 'crafter', 'aggregate', 'table', 'formats',
          'plots', 'cli')
# The public names of harmony_v3/scores.py before it became a package.
FLAT_MODULE_NAMES = (
    'AGGREGATE_ROWS', 'BOLD_TOLERANCE', 'Cell', 'Curve',
    'DEFAULT_BOOTSTRAP_SEED', 'DEFAULT_FRAMES', 'DEFAULT_REPS', 'FORMATS',
    'GAMES', 'GameResult', 'Interval', 'MISSING', 'MethodData',
    'MethodSummary', 'PAPER_AGENT_COLUMNS', 'PAPER_COLUMNS', 'REFERENCE_DIR',
    'RandomHuman', 'TABLE_STEM', 'Table', 'apply_bold', 'bootstrap_intervals',
    'build_table', 'final_scores', 'find_run_dirs', 'hns_matrix',
    'human_normalized', 'load_paper_table', 'load_path', 'load_paths',
    'load_published', 'load_random_human', 'load_sweep', 'main', 'method_key',
    'method_label', 'paper_aggregates', 'paper_key', 'parse_args',
    'pretty_game', 'published_label', 'read_config', 'read_eval_curve',
    'read_jsonl', 'summarize', 'to_csv', 'to_latex', 'to_markdown',
    'write_outputs')


def package_imports(path: pathlib.Path) -> set[str]:
  """Modules of harmony_v3.scores that a source file imports, anywhere in it."""
  found = set()
  for node in ast.walk(ast.parse(path.read_text())):
    if isinstance(node, ast.ImportFrom) and node.module:
      if node.module.startswith('harmony_v3.scores.'):
        found.add(node.module.rsplit('.', 1)[1])
      elif node.module == 'harmony_v3.scores':
        found.update(alias.name for alias in node.names)
  return found


def test_modules_import_only_earlier_layers():
  modules = sorted(p.stem for p in PACKAGE.glob('*.py')
                   if not p.stem.startswith('__'))
  assert sorted(LAYERS) == modules
  for index, name in enumerate(LAYERS):
    imported = package_imports(PACKAGE / f'{name}.py')
    later = imported - set(LAYERS[:index])
    assert not later, f'{name} imports {sorted(later)}: a later layer'


def test_old_names_stay_importable():
  missing = [n for n in FLAT_MODULE_NAMES if not hasattr(scores, n)]
  assert not missing
  assert sorted(scores.__all__) == sorted(set(scores.__all__))


def test_the_table_command_does_not_load_matplotlib():
  code = ('import sys, harmony_v3.scores; '
          'print(sorted(m for m in ("matplotlib", "rliable") '
          'if m in sys.modules))')
  result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120, check=True)
  assert result.stdout.strip() == '[]'
