"""Each patch is needed (its probe fails on the bare base) and effective."""
import json
import pathlib
import subprocess
import sys

import pytest

PROBES = pathlib.Path(__file__).parent / 'patch_probes.py'
EXPECTED_FAILURES = {
    'ruamel_yaml_config': 'safe_dump',
    'tensorboard_no_tf': 'tensorflow',
    'atari100k_eval_key': 'actor_eval_sample',
    'replay_chunk_atomic': 'BadZipFile',
    'crafter_ordered_chunks': 'insertion order',
}


def _run_probes(*flags):
  result = subprocess.run(
      [sys.executable, str(PROBES), *flags], capture_output=True, text=True,
      timeout=300)
  lines = [l for l in result.stdout.splitlines() if l.startswith('PROBES ')]
  assert lines, result.stdout + result.stderr
  return json.loads(lines[-1][len('PROBES '):])


@pytest.fixture(scope='module')
def unpatched():
  return _run_probes()


@pytest.fixture(scope='module')
def patched():
  return _run_probes('--patched')


def test_every_patch_has_a_probe():
  from harmony_v3 import patches
  names = {p.__name__.rsplit('.', 1)[-1] for p in patches.PATCHES}
  assert names == set(EXPECTED_FAILURES)


@pytest.mark.parametrize('name', sorted(EXPECTED_FAILURES))
def test_probe_fails_on_the_unpatched_base(unpatched, name):
  assert unpatched[name] != 'ok'
  assert EXPECTED_FAILURES[name] in unpatched[name], unpatched[name]


@pytest.mark.parametrize('name', sorted(EXPECTED_FAILURES))
def test_probe_passes_once_patched(patched, name):
  assert patched[name] == 'ok', patched[name]


def test_patches_are_applied_on_import_and_idempotent():
  from harmony_v3 import patches
  assert all(patches.status().values()), patches.status()
  patches.apply_all()
  assert all(patches.status().values())
  import dreamerv3
  assert dreamerv3.Agent.configs['defaults']['actor_eval_sample'] is True
