"""The Ray engine with real Ray on this CPU machine: fake GPUs declared to
Ray, the stand-in trainer (tests/stand_in_trainer.py) for the runs.

Skipped without Ray: `pip install -e '.[ray]'` (.ci/run does). The driver
runs in this process (so that Ray's workers, started once, serve every
test); Ctrl-C is a SIGINT to this process. Ray is kept on the loopback
address: by default it advertises the machine's network address.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import threading

import pytest

os.environ.setdefault('RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', '0')  # Loopback.
ray = pytest.importorskip('ray', reason="Ray is not installed (pip install "
                                        "-e '.[ray]')")

from harmony_v3.sweep import cli, ray_engine  # noqa: E402
from test_calibrate import FAKE_BENCH  # noqa: E402
from test_sweep import (flag, max_overlap, read_jsonl, records,  # noqa: E402
                        stand_in, wait_until)

# Ray starts its processes with subprocess (fork, then exec at once), which
# JAX, imported by other tests of the session, warns about as a bare fork.
pytestmark = pytest.mark.filterwarnings(
    r'ignore:os\.fork\(\) was called:RuntimeWarning')
RAY_HEADER = re.compile(r'^=== sweep .*: (new|resume) run \(Ray\) on node '
                        r'(\w+) GPU (\S+):', re.M)


def ray_sweep(capsys, logroot, games, seeds, *more, **options):
  code = cli.main(['--engine', 'ray', '--logroot', str(logroot), '--games',
                   *games, '--seeds', *map(str, seeds), '--no-report',
                   '--no-gpu-check', '--train-cmd', stand_in(**options),
                   *map(str, more)])
  out, err = capsys.readouterr()
  return code, out + err


def folders(logroot, games, seeds):
  return {f'{g}/seed{s}': logroot / f'harmony/{g}/seed{s}'
          for s in seeds for g in games}


def attempts(folder):
  """(status, node, GPU) of each Ray attempt in the run's train.log."""
  log = folder / 'train.log'
  return RAY_HEADER.findall(log.read_text()) if log.exists() else []


def started(folder):
  log = folder / 'train.log'
  return log.exists() and log.read_text().count('fake training') >= len(
      attempts(folder)) > 0


def in_background(delay_until, action):
  """Run `action` in a thread once `delay_until()` holds."""
  def body():
    wait_until(delay_until, 120, 'the runs to start')
    action()
  thread = threading.Thread(target=body, daemon=True)
  thread.start()
  return thread


@pytest.fixture
def local_ray(monkeypatch):
  """ray.init with 4 CPUs and 2 declared (fake) GPUs."""
  monkeypatch.setattr(ray_engine, 'POLL_SECONDS', 0.05)
  ray.init(address='local', num_cpus=4, num_gpus=2, include_dashboard=False,
           logging_level='warning')
  yield
  ray.shutdown()


def test_ray_packs_runs_per_gpu_with_memory_shares_failures_and_resume(
    local_ray, capsys, tmp_path):
  logroot = tmp_path / 'logs'
  games, seeds = ['pong', 'breakout', 'boxing'], [0, 1]
  runs = folders(logroot, games, seeds)
  runs['breakout/seed1'].mkdir(parents=True)
  (runs['breakout/seed1'] / 'checkpoint.ckpt').write_text('x')
  code, out = ray_sweep(capsys, logroot, games, seeds, '--per-gpu', '2',
                        sleep=1.5, fail_game='boxing')
  assert code == 1, out
  for seed in seeds:
    log = runs[f'boxing/seed{seed}'] / 'train.log'
    assert f'FAILED harmony/boxing/seed{seed} on node' in out
    assert f'harmony/boxing/seed{seed}: exit 1, log: {log}' in out
    assert 'fake crash' in log.read_text()
  calls = [c for folder in runs.values() for c in records(folder)]
  assert len(calls) == 6
  for call in calls:
    assert call['cuda'] in ('0', '1')
    assert flag(call['argv'], '--jax.mem_fraction') == '0.45'
    assert call['xla_mem'] == '0.45'
  assert records(runs['breakout/seed1'])[0]['resumed']
  assert attempts(runs['breakout/seed1'])[0][0] == 'resume'
  spans = [(c['start'], c['end']) for c in calls]
  assert 1 < max_overlap(spans) <= 4  # num_gpus=0.5 on 2 GPUs.
  for gpu in ('0', '1'):
    assert max_overlap([(c['start'], c['end']) for c in calls
                        if c['cuda'] == gpu]) <= 2
  # The same command again: finished runs skipped, the failed ones retried.
  code, out = ray_sweep(capsys, logroot, games, seeds, '--per-gpu', '2')
  assert code == 0, out
  assert '6 runs: 4 done, 0 resume, 2 new' in out
  assert [len(records(f)) for f in runs.values()] == [1, 1, 2] * 2


@pytest.fixture(scope='module')
def cluster(tmp_path_factory):
  """A Ray cluster of a head (no CPU: it schedules nothing) and two nodes
  with 2 CPUs and 1 fake GPU each; this process is its driver. Its workers
  have the fake bench of test_calibrate for `--per-gpu auto`."""
  from ray.cluster_utils import Cluster
  folder = tmp_path_factory.mktemp('fake_bench')
  (folder / 'fake_bench.py').write_text(FAKE_BENCH)
  bench_env = {'HARMONY_BENCH_CMD': f'{sys.executable} '
                                    f'{folder / "fake_bench.py"}',
               'FAKE_BENCH_CALLS': str(folder / 'calls.jsonl'),
               'FAKE_BENCH_RATES': '1:18,2:30'}
  saved = {k: os.environ.get(k) for k in bench_env}
  os.environ.update(bench_env)  # Inherited by the nodes' workers.
  head = Cluster(initialize_head=True, head_node_args={
      'num_cpus': 0, 'node_ip_address': '127.0.0.1'})
  nodes = [head.add_node(num_cpus=2, num_gpus=1,
                         node_ip_address='127.0.0.1') for _ in range(2)]
  ray.init(address=head.address, logging_level='warning')
  head.wait_for_nodes()
  for key, value in saved.items():
    if value is None:
      os.environ.pop(key)
    else:
      os.environ[key] = value
  yield head, nodes, folder
  ray.shutdown()
  head.shutdown()


def test_cluster_ctrl_c_cancels_every_run_saves_once_then_resumes(
    cluster, capsys, tmp_path, monkeypatch):
  monkeypatch.setattr(ray_engine, 'POLL_SECONDS', 0.05)
  logroot = tmp_path / 'logs'
  games, seeds = ['pong', 'breakout', 'boxing'], [0, 1]
  runs = folders(logroot, games, seeds)
  first = list(runs.values())[:4]  # Queued first; 2 per node fit at once.
  in_background(lambda: all(started(f) for f in first),
                lambda: os.kill(os.getpid(), signal.SIGINT))
  code, out = ray_sweep(capsys, logroot, games, seeds, '--per-gpu', '2',
                        sleep=60, save_seconds=0.5)
  assert code == 130, out
  assert 'Interrupted: cancelling 6 task(s)' in out
  nodes = {}
  for folder in first:
    [call] = records(folder)
    assert call['signals'] == 1 and call['saves'] == 1  # One SIGTERM each.
    assert (folder / 'checkpoint.ckpt').read_text() == 'saved'
    assert not (folder / 'done.json').exists()
    [(_, node, gpu)] = attempts(folder)
    nodes.setdefault(node, []).append(gpu)
  assert sorted(map(len, nodes.values())) == [2, 2]  # 2 per node's GPU.
  for folder in list(runs.values())[4:]:
    assert records(folder) == []  # Cancelled before they started.
  assert 'stopped (rerun the same command to resume): 4' in out
  assert 'not started: 2' in out

  code, out = ray_sweep(capsys, logroot, games, seeds, '--per-gpu', '2')
  assert code == 0, out
  assert '6 runs: 0 done, 4 resume, 2 new' in out
  for folder in runs.values():
    assert (folder / 'done.json').exists()
    assert records(folder)[-1]['resumed'] == (folder in first)


def test_cluster_auto_measures_runs_per_gpu_in_one_task(cluster, capsys,
                                                        tmp_path):
  _, _, bench = cluster
  logroot = tmp_path / 'logs'
  code, out = ray_sweep(capsys, logroot, ['pong', 'hero'], [0])
  assert code == 0, out
  [call] = read_jsonl(bench / 'calls.jsonl')
  argv = call['argv']
  # A node has 1 GPU and 2 CPUs: K = 1 or 2; 2 is 30/18 times faster.
  assert argv[argv.index('--concurrency') + 1:][:3] == ['1', '2', '--configs']
  assert call['cuda'] == '0'
  for game in ('pong', 'hero'):
    [run] = records(logroot / f'harmony/{game}/seed0')
    assert flag(run['argv'], '--jax.mem_fraction') == '0.45'
  assert (logroot / 'per_gpu.json').exists()


def test_cluster_node_removed_mid_sweep_its_runs_retry_and_resume(
    cluster, capsys, tmp_path, monkeypatch):
  head, nodes, _ = cluster
  monkeypatch.setattr(ray_engine, 'POLL_SECONDS', 0.05)
  logroot = tmp_path / 'logs'
  games, seeds = ['pong', 'breakout'], [0, 1]
  runs = folders(logroot, games, seeds)
  lost = nodes[1].node_id[:8]
  removed = []

  def remove_node():
    removed.extend(f for f in runs.values() if attempts(f)[0][1] == lost)
    head.remove_node(nodes[1], allow_graceful=False)
  in_background(lambda: all(started(f) and (f / 'checkpoint.ckpt').exists()
                            for f in runs.values()), remove_node)
  code, out = ray_sweep(capsys, logroot, games, seeds, '--per-gpu', '2',
                        sleep=6, save_every=0.5)
  assert code == 0, out
  assert len(removed) == 2, out
  for folder in runs.values():
    assert (folder / 'done.json').exists()
    tries = attempts(folder)
    if folder in removed:  # Killed with its worker, retried elsewhere.
      assert [node for _, node, _ in tries][0] == lost
      assert tries[1][1] != lost and tries[1][0] == 'resume'
      assert records(folder)[-1]['resumed']
    else:
      assert len(tries) == 1
