"""Installing the project as a user would: wheel, sdist, editable with old pip.

The sdist is built from a copy of the source tree, the wheel from the sdist.
Each goes into a fresh venv with --no-deps: the wheel with this venv's pip,
the unpacked sdist as an editable install with pip 23.2 (what Python 3.11
ships, the oldest pip supported) and `wheel` present, as in a venv that
has built dreamerv3's sdist: without pyproject.toml that pip would take the
legacy route that drops the patches/ mapping.
The dependencies (JAX & co.) are not installed again: after the install,
a .pth file appends this venv's site-packages to the fresh venv's path, so
they are found, but what is imported as `harmony_v3` can only be what the
install put there (a .pth path line does not run the .pth files it names,
so this venv's own editable finder stays off). Every import runs from a
folder outside the source tree.
"""
from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile

import pytest

import harmony_v3

REPO = pathlib.Path(__file__).resolve().parents[1]
OLDEST_PIP = '23.2.1'  # What Python 3.11 ships: the oldest pip supported.
NAME = f'harmony_v3-{harmony_v3.__version__}'
SOURCE_IGNORE = shutil.ignore_patterns(
    '.git', '.venv*', 'build', 'dist', '*.egg-info', '__pycache__',
    '.pytest_cache', 'logdir', '.whl', 'tests')

# Run in the fresh venv: what a user touches first, and where it came from.
PROBE = '''
import importlib.metadata, json, sys
import harmony_v3, harmony_v3.patches, harmony_v3.configs
from harmony_v3 import scores
from harmony_v3.config import load_config
config = load_config(['tiny'], ['--task', 'atari_pong'])
print(json.dumps({
    'package': harmony_v3.__file__,
    'patches': harmony_v3.patches.__file__,
    'configs': harmony_v3.configs.__file__,
    'patches_applied': harmony_v3.patches.status(),
    'reference': sorted(str(p) for p in scores.REFERENCE_DIR.iterdir()),
    'paper_rows': len(scores.load_paper_table()['human']),
    'tiny_task': config.task,
    'version': harmony_v3.__version__,
    'metadata_version': importlib.metadata.version('harmony_v3'),
}))
'''


def run(*args, cwd=None, check=True, **kwargs) -> subprocess.CompletedProcess:
  """Run a command without PYTHONPATH; on failure show its output."""
  env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
  result = subprocess.run([str(a) for a in args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300,
                          **kwargs)
  if check and result.returncode:
    pytest.fail(f'{args} failed:\n{result.stdout}\n{result.stderr}')
  return result


def version_tuple(version: str) -> tuple[int, ...]:
  """'23.2.1' -> (23, 2, 1)."""
  return tuple(int(part) for part in version.split('.')[:3])


def fresh_venv(path: pathlib.Path, with_pip: bool) -> pathlib.Path:
  """A new venv at `path`; returns its python."""
  run(sys.executable, '-m', 'venv', *([] if with_pip else ['--without-pip']),
      path)
  return path / 'bin' / 'python'


def site_packages(python: pathlib.Path) -> pathlib.Path:
  """The site-packages folder of a venv's python."""
  out = run(python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))')
  return pathlib.Path(out.stdout.strip())


def see_our_dependencies(python: pathlib.Path) -> None:
  """Let a fresh venv import this venv's packages, after its own."""
  ours = sysconfig.get_path('purelib')
  (site_packages(python) / 'zz_test_dependencies.pth').write_text(ours + '\n')


def probe(python: pathlib.Path, elsewhere: pathlib.Path) -> dict:
  """Run PROBE with `python` from a folder outside the source tree."""
  return json.loads(run(python, '-c', PROBE, cwd=elsewhere).stdout)


def check_probe(found: dict, root: pathlib.Path) -> None:
  """Everything imported came from `root`, data files included."""
  assert pathlib.Path(found['package']).is_relative_to(root)
  assert pathlib.Path(found['patches']).is_relative_to(root)
  assert pathlib.Path(found['configs']).is_relative_to(root)
  assert all(found['patches_applied'].values())
  names = sorted(pathlib.Path(p).name for p in found['reference'])
  assert names == sorted(p.name for p in
                         (REPO / 'harmony_v3' / 'reference').iterdir())
  assert all(pathlib.Path(p).is_relative_to(root) for p in found['reference'])
  assert found['paper_rows'] == 26
  assert found['tiny_task'] == 'atari_pong'
  assert found['metadata_version'] == found['version']


@pytest.fixture(scope='module')
def dist(tmp_path_factory) -> dict[str, pathlib.Path]:
  """sdist built from a copy of the source tree, then the wheel from it."""
  tmp = tmp_path_factory.mktemp('dist')
  source = tmp / 'source'
  shutil.copytree(REPO, source, ignore=SOURCE_IGNORE)
  out = tmp / 'dist'
  run(sys.executable, '-c',
      f'from setuptools import build_meta; build_meta.build_sdist({str(out)!r})',
      cwd=source)
  sdist = out / f'{NAME}.tar.gz'
  run(sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
      '--no-index', '-w', out, sdist, cwd=tmp)
  return {'sdist': sdist, 'wheel': out / f'{NAME}-py3-none-any.whl',
          'tmp': tmp}


def test_pyproject_lists_every_package():
  config = tomllib.loads((REPO / 'pyproject.toml').read_text())['tool']
  listed = set(config['setuptools']['packages'])
  on_disk = {'.'.join(p.parent.relative_to(REPO).parts)
             for p in (REPO / 'harmony_v3').rglob('__init__.py')}
  mapped = {name for name, folder in config['setuptools']['package-dir'].items()
            if (REPO / folder / '__init__.py').is_file()}
  # Folders of data only (no __init__.py), listed so that setuptools does
  # not warn that it would ignore them.
  data = {name for name in config['setuptools']['package-data']
          if (REPO / name.replace('.', '/')).is_dir()
          and not (REPO / name.replace('.', '/') / '__init__.py').exists()}
  assert listed == on_disk | mapped | data, (
      'add new subpackages of harmony_v3 to [tool.setuptools] packages')


def test_wheel_installs_and_imports_from_another_folder(dist, tmp_path):
  names = zipfile.ZipFile(dist['wheel']).namelist()
  assert all(n.split('/')[0] in ('harmony_v3', f'{NAME}.dist-info')
             for n in names)
  for data in ('harmony_v3/reference/atari100k_table2.csv',
               'harmony_v3/reference/harmony_dreamerv3_atari100k.json',
               'harmony_v3/configs/tiny.yaml', 'harmony_v3/patches/__init__.py',
               'harmony_v3/scores/__main__.py'):
    assert data in names
  python = fresh_venv(tmp_path / 'venv', with_pip=False)
  run(sys.executable, '-m', 'pip', '--python', python, 'install', '--no-deps',
      '--no-index', dist['wheel'])
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  # Without the base package the error says how to install it.
  missing = run(python, '-c', 'import harmony_v3', cwd=elsewhere, check=False)
  assert missing.returncode == 1
  assert 'pip install --no-deps dreamerv3==1.5.0' in missing.stderr
  see_our_dependencies(python)
  check_probe(probe(python, elsewhere), site_packages(python))


def test_sdist_editable_install_with_oldest_pip(dist, tmp_path):
  with tarfile.open(dist['sdist']) as archive:
    archive.extractall(tmp_path / 'unpacked', filter='data')
  source = tmp_path / 'unpacked' / NAME
  python = fresh_venv(tmp_path / 'venv', with_pip=True)
  pip = run(python, '-m', 'pip', '--version').stdout.split()[1]
  # With `wheel` installed (building dreamerv3's sdist needs it), pip 23.2
  # takes a project without pyproject.toml through the legacy `setup.py
  # develop`, which loses the patches/ -> harmony_v3.patches mapping.
  # Python 3.11 and 3.12 ship pip 23.2.1; newer Pythons ship a newer pip.
  older = version_tuple(pip) < version_tuple(OLDEST_PIP)
  pins = [f'pip=={OLDEST_PIP}'] if older else []
  run(python, '-m', 'pip', 'install', '-q', *pins, 'wheel')
  run(python, '-m', 'pip', 'install', '-q', '--no-deps', '-e', source,
      cwd=tmp_path)
  see_our_dependencies(python)
  elsewhere = tmp_path / 'elsewhere'
  elsewhere.mkdir()
  found = probe(python, elsewhere)
  check_probe(found, source)
  assert pathlib.Path(found['patches']).parent == source / 'patches'
