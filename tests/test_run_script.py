"""run_atari100k.sh picks its Python: $PYTHON, the project's .venv, `python`.

Each case runs a copy of the script from another folder, with a PATH that
holds no project Python, as a new user's shell after `make train` does.
"""
from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
SYSTEM_PATH = '/usr/bin:/bin'


def fake_python(path: pathlib.Path, run_real: bool = False) -> pathlib.Path:
  """A `python` that writes its own path to <path>.used, then runs or exits."""
  path.parent.mkdir(parents=True, exist_ok=True)
  then = f'exec {sys.executable} "$@"' if run_real else 'exit 0'
  path.write_text(f'#!/bin/sh\necho "$0" > "{path}.used"\n{then}\n')
  path.chmod(0o755)
  return path


def run_script(project: pathlib.Path, *args: str, **env: str
               ) -> subprocess.CompletedProcess:
  """Run the project's copy of run_atari100k.sh from a folder outside it."""
  project.mkdir(parents=True, exist_ok=True)
  script = shutil.copy(REPO / 'run_atari100k.sh', project)
  elsewhere = project.parent / 'elsewhere'
  elsewhere.mkdir(exist_ok=True)
  environ = {k: v for k, v in os.environ.items()
             if k not in ('PYTHON', 'VIRTUAL_ENV')}
  environ.update({'PATH': SYSTEM_PATH, **env})
  return subprocess.run([script, *args], cwd=elsewhere, env=environ,
                        capture_output=True, text=True, timeout=120)


def test_uses_the_project_venv_when_python_is_unset(tmp_path):
  project = tmp_path / 'project'
  venv_python = fake_python(project / '.venv' / 'bin' / 'python',
                            run_real=True)
  result = run_script(project, '--dry-run', '--games', 'pong', '--seeds', '0',
                      '--logroot', str(tmp_path / 'logs'))
  assert result.returncode == 0, result.stderr
  assert '1 runs: 0 done, 0 resume, 1 new (dry run' in result.stdout
  assert pathlib.Path(f'{venv_python}.used').read_text().strip() == str(
      venv_python)


def test_python_variable_wins_over_the_venv(tmp_path):
  project = tmp_path / 'project'
  venv_python = fake_python(project / '.venv' / 'bin' / 'python')
  chosen = fake_python(tmp_path / 'mine' / 'python3')
  result = run_script(project, '--dry-run', PYTHON=str(chosen))
  assert result.returncode == 0, result.stderr
  assert pathlib.Path(f'{chosen}.used').exists()
  assert not pathlib.Path(f'{venv_python}.used').exists()


def test_without_a_venv_it_uses_python_on_path(tmp_path):
  on_path = fake_python(tmp_path / 'bin' / 'python')
  result = run_script(tmp_path / 'project', '--dry-run',
                      PATH=f'{on_path.parent}:{SYSTEM_PATH}')
  assert result.returncode == 0, result.stderr
  assert pathlib.Path(f'{on_path}.used').exists()
