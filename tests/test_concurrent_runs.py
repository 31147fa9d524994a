"""Runs that share a machine learn exactly as they would alone (tiny preset)."""
from harmony_v3.bench import run_workers

ARGS = ['--configs', 'tiny', '--trajectory', '8']


def test_run_beside_another_follows_the_same_trajectory():
  alone = run_workers(1, ARGS)
  together = run_workers(2, ARGS)
  assert len(alone[0]['losses']) == 8
  # The losses change over the updates, so equality below is informative.
  assert len(set(alone[0]['losses'])) > 1
  for run in together:
    assert run['losses'] == alone[0]['losses']
    assert run['digest'] == alone[0]['digest']
