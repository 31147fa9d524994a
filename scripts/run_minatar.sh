#!/usr/bin/env bash
# The MinAtar sweep on this machine's CPU: 5 games x 5 seeds of Harmony
# DreamerV3 (--both adds the DreamerV3 baseline), preset minatar, one run per
# core at a time (--cpu-workers N), resumable; at the end the finished runs'
# data files go to <logroot>/benchmark and the report to <logroot>/report.
# It is `run_atari100k.sh --suite minatar --cpu`: every option of that
# script works here (--help). See docs/minatar_benchmark.md.
#   scripts/run_minatar.sh --dry-run --both
#   scripts/run_minatar.sh --both --logroot ~/logdir/minatar
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
exec "$here/../run_atari100k.sh" --suite minatar --cpu "$@"
