#!/usr/bin/env bash
# Atari 100K sweep of Harmony DreamerV3 and/or the DreamerV3 baseline:
# 26 games x 5 seeds on every visible GPU, resumable. Options: --help.
#   ./run_atari100k.sh --dry-run
#   ./run_atari100k.sh --both --per-gpu 2 --logroot ~/logdir/atari100k
# Uses $PYTHON if set, else the `python` on PATH.
set -euo pipefail
exec "${PYTHON:-python}" -m harmony_v3.sweep "$@"
