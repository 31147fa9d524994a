"""One training run and what keeps it safe.

  runner.py        the Trainer (the loop) and `train`, the entry of a run
  folder.py        the run folder: locking it, checking the config against it
  saving.py        checkpoints, rollback to them, and the disk errors of saving
  records.py       what a run writes as it goes: episodes, evaluations, metrics
  checkpoint.py    the checkpoint file: written whole, read with clear errors
  replay_files.py  the checkpoint's manifest of replay chunk files
  run_lock.py      one trainer per run folder (.trainer.lock)
  stop_signals.py  SIGTERM and Ctrl-C: one clean save, exit 130
  evaluation.py    batched evaluation episodes
  logs.py          JSON lines and TensorBoard files that can be cut back
  progress.py      the progress bar or lines
  atomic_files.py  files written whole or not at all
  errors.py        errors that end a run with one message (exit 2)
  faults.py        fault points for the fault-injection tests
  vectorized.py    R runs' train updates in one vmapped call
  summary.py       python -m harmony_v3.run.summary: speed, weights, time to optimum
  tracking.py      --run.track wandb: scalars, config and harmonizer weights to W&B

Nothing is imported here: `import harmony_v3.run` stays cheap.
"""
