"""The sweep's --suite dmc: the plan, the stand-in trainer's runs and the
missing score table said, not failed. Needs neither dm-control nor a GPU
(the plan only builds configs; the stand-in trainer trains nothing)."""
import json

from harmony_v3.sweep import cli as sweep_cli


def test_dmc_suite_dry_run(fake, capsys):
  code = sweep_cli.main(['--suite', 'dmc', '--both', '--seeds', '0', '1',
                         '--dry-run', '--logroot', str(fake / 'logs')])
  out = capsys.readouterr().out
  assert code == 0, out
  assert 'DeepMind Control sweep: 20 game(s) x 2 seed(s) x harmony+dreamerv3' \
      in out
  assert '--task dmc_<game> --configs dmc_vision' in out
  assert '80 runs: 0 done, 0 resume, 80 new' in out
  assert 'dreamerv3/walker_walk/seed1' in out and 'cup_catch' in out
  args = sweep_cli.parse_args(['--suite', 'dmc'])
  assert args.logroot == '~/logdir/harmony_v3_dmc'
  assert args.configs == ['dmc_vision'] and args.cpu_workers == 1


def test_dmc_suite_runs_and_says_there_is_no_score_table(fake, capsys):
  logroot = fake / 'logs'
  code = sweep_cli.main(['--suite', 'dmc', '--cpu', '--games',
                         'dmc_cartpole_balance', 'reacher_easy', '--seeds',
                         '0', '--configs', 'tiny', 'dmc_proprio', 'dmc_tiny',
                         '--logroot', str(logroot)])
  out = capsys.readouterr().out
  assert code == 0, out
  calls = [json.loads(l) for g in ('cartpole_balance', 'reacher_easy')
           for l in (logroot / f'harmony/{g}/seed0/fake_runs.jsonl')
           .read_text().splitlines()]
  tasks = sorted(c['argv'][c['argv'].index('--task') + 1] for c in calls)
  assert tasks == ['dmc_cartpole_balance', 'dmc_reacher_easy']
  assert 'No score table for DeepMind Control yet' in out
  assert not (logroot / 'report').exists()


def test_dmc_suite_errors(fake, capsys):
  code = sweep_cli.main(['--suite', 'dmc', '--games', 'walker_fly',
                         '--dry-run'])
  err = capsys.readouterr().err
  assert code == 2 and "Unknown DeepMind Control game(s): 'walker_fly'" in err
  assert 'walker_walk' in err
  # Runs per GPU are measured with an Atari task: a DMC sweep names K.
  code = sweep_cli.main(['--suite', 'dmc', '--logroot', str(fake / 'l')])
  err = capsys.readouterr().err
  assert code == 2 and 'give --per-gpu K.' in err
