"""The score tables stay byte-identical to the golden files in tests/data.

The golden files were written by `python -m harmony_v3.scores` before the
report side became a package (scores.py and plots.py, commit ad589b5), so
any change of the printed tables shows up here as a diff. To accept an
intended change, rerun `python tests/test_scores_golden.py` and review the
diff of tests/data/scores_golden.
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import sys

import pytest

from harmony_v3 import scores
from test_scores import HARMONY_JSON, REF, REPO, write_run

GOLDEN = pathlib.Path(__file__).parent / 'data' / 'scores_golden'
TABLE_FILES = ('atari100k_scores.md', 'atari100k_scores.csv',
               'atari100k_scores.tex')


def make_sweep(root: pathlib.Path) -> None:
  """A sweep with every kind of gap: cut, unfinished, duplicate, missing."""
  for seed, final in enumerate([10.0, 14.0, 18.0]):
    write_run(root, 'pong', seed, final)
    write_run(root, 'pong', seed, final - 20.0, harmony=False)
  write_run(root, 'breakout', 0, 40.0)
  write_run(root, 'breakout', 1, 60.0, last_frames=200_000, done=False)
  write_run(root / 'dup', 'pong', 0, 7.0, last_frames=100_000, done=False)
  write_run(root, 'boxing', 0, 50.0, last_frames=300_000, done=False)
  write_run(root, 'alien', 3, 500.0, done=False)


# name -> (arguments, folder the command runs in: 'repo' or 'tmp').
CASES = {
    # The published curves exactly as the README's score table is made.
    'published': ([str(p.relative_to(REPO)) for p in sorted(
        REF.glob('*.json'))] + ['--out', 'out'], 'repo'),
    # Our runs next to a labelled published file, other bootstrap settings.
    'sweep': (['mine=sweep', 'paper=harmony.json', '--reps', '300',
               '--bootstrap-seed', '3', '--out', 'out'], 'tmp'),
    # An earlier final point; only two formats.
    'frames': (['sweep', '--frames', '200000', '--reps', '200',
                '--format', 'tex,md', '--out', 'out'], 'tmp'),
}


def run_case(name: str, workdir: pathlib.Path) -> dict[str, str]:
  """Run one case in `workdir`; return its stdout and table files by name."""
  args, where = CASES[name]
  make_sweep(workdir / 'sweep')
  shutil.copy(HARMONY_JSON, workdir / 'harmony.json')
  cwd = REPO if where == 'repo' else workdir
  if where == 'repo':
    args = [a if a != 'out' else str(workdir / 'out') for a in args]
  stdout = io.StringIO()
  old = os.getcwd()
  os.chdir(cwd)
  try:
    with contextlib.redirect_stdout(stdout), \
        contextlib.redirect_stderr(io.StringIO()):
      assert scores.main(args) == 0
  finally:
    os.chdir(old)
  outputs = {'stdout.md': stdout.getvalue()}
  for file in TABLE_FILES:
    path = workdir / 'out' / file
    if path.exists():
      outputs[file] = path.read_text()
  return outputs


@pytest.mark.parametrize('name', CASES)
def test_tables_match_golden_files(name, tmp_path):
  outputs = run_case(name, tmp_path)
  expected = sorted(p.name for p in (GOLDEN / name).iterdir())
  assert sorted(outputs) == expected
  for file, text in outputs.items():
    golden = (GOLDEN / name / file).read_text()
    assert text == golden, f'{name}/{file} differs from the golden file'


def regenerate() -> None:
  """Rewrite the golden files from the current code."""
  import tempfile
  for name in CASES:
    with tempfile.TemporaryDirectory() as tmp:
      outputs = run_case(name, pathlib.Path(tmp))
    folder = GOLDEN / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for file, text in outputs.items():
      (folder / file).write_text(text)
    print(f'wrote {folder}', file=sys.stderr)


if __name__ == '__main__':
  regenerate()
