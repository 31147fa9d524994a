"""The sweep of a benchmark (Atari 100K, or MinAtar with --suite minatar, or
DeepMind Control with --suite dmc):
every game x seed (x method), one trainer process
each, on this machine, a SLURM cluster or a Ray cluster.

One plan, and one small module per engine over it:
  suites.py      the benchmarks: Atari 100K (default), MinAtar and DMC
  plan.py        the runs, their folders and status; the plan file
  launch.py      one run's command line and environment; progress lines
  devices.py     which GPUs, and each run's share of a GPU's memory
  calibrate.py   how many runs share a GPU, measured (--per-gpu auto)
  engine.py      what the local and Ray engines share: exit reports,
                 signals, the end summary
  local.py       this machine: K trainer processes per GPU
  slurm.py       a SLURM job array: each element is one GPU running the
                 local engine on its slice of the plan
  ray_engine.py  a Ray cluster: one task per run, 1/K of a GPU each
  cli.py         the command line, `run_atari100k.sh`
"""
from .cli import main
from .devices import default_mem_fraction

__all__ = ['main', 'default_mem_fraction']
