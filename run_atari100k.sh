#!/usr/bin/env bash
# Atari 100K sweep of Harmony DreamerV3 and/or the DreamerV3 baseline:
# 26 games x 5 seeds on every visible GPU, resumable. Options: --help.
#   ./run_atari100k.sh --dry-run
#   ./run_atari100k.sh --both --per-gpu 2 --logroot ~/logdir/atari100k
# Python: $PYTHON if set, else this project's .venv/bin/python (what
# `make install` creates next to this script) if it exists, else `python`.
set -euo pipefail
here="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
  PYTHON=python
  [[ -x "$here/.venv/bin/python" ]] && PYTHON="$here/.venv/bin/python"
fi
exec "$PYTHON" -m harmony_v3.sweep "$@"
