"""The world-model study: the paper's Finding 1 on real Atari data, offline.

  python -m harmony_v3.study                 # the default study (<= 60 min on 2 CPU cores)
  python -m harmony_v3.study --quick         # a tiny one for tests and the GPU check

It collects a fixed dataset of random-play Atari 100K episodes from a few
games (saved once, reused), trains world models only (no actor-critic) on it,
with the same data, batches, model and seeds for every arm, and evaluates
them on held-out episodes:

- reward prediction error, teacher-forced from the posterior, and open-loop
  over the imagination horizon from a few context frames;
- observation loss, KL;
- each harmonizer's weight next to the App. B optimum of its running mean loss.

Arms: DreamerV3 with reward weight 1, 10 and 100 (Finding 1), Harmony
DreamerV3 as in the paper, and two opt-in variants that are NOT the paper's
setting (harmony.lr, harmony.mode closed_form). A reference row always
predicts the training set's mean reward. It writes a table (Markdown, CSV)
and figures. Rerunning the same command resumes: finished (arm, seed)
results are kept, the dataset is reused.

Modules: settings (arms, sizes), data (dataset), model (the world model under
jit), runs (one arm and seed), evaluate (metrics), report (table, figures),
cli (command line, resume, progress).
"""
