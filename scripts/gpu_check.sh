#!/usr/bin/env bash
# The GPU figures the README asks for, measured in one command on one GPU.
#
#   scripts/gpu_check.sh OUTDIR [STAGE ...]
#
# Stages (all of them, in this order, when none is named):
#   env         GPU, driver, Python, JAX and package versions
#   bench       DreamerV3 against Harmony: train updates/s, atari100k preset
#   vectorized  R = 1 2 4 8 runs in one vmapped update, aggregate updates/s
#   concurrent  K = 1 2 4 8 processes at once, aggregate updates/s
#   train       atari100k on Pong for $STEPS agent steps, Harmony then the
#               DreamerV3 baseline, each ending with a 100-episode evaluation
#
# Everything printed goes to OUTDIR/gpu_check.log as well; each stage writes
# OUTDIR/<stage>.json, and `train` also OUTDIR/train.md (run_summary's table).
# A failing stage is reported and the others still run (exit status 1).
# All stages share one persistent compilation cache in OUTDIR/jax_cache, so
# a stage compiles only what an earlier one did not.
#
# Environment: PYTHON (default python3), STEPS (default 2000), TASK (default
# atari_pong), UPDATES (timed updates per bench measurement, default 300),
# CONFIGS (default atari100k; `tiny` makes a quick CPU smoke test of this
# script).
set -uo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
stages=("$@")
[[ ${#stages[@]} -gt 0 ]] || stages=(env bench vectorized concurrent train)
python=${PYTHON:-python3}
steps=${STEPS:-2000}
task=${TASK:-atari_pong}
updates=${UPDATES:-300}
configs=${CONFIGS:-atari100k}
cache=(--run.compilation_cache "$out/jax_cache")
log=$out/gpu_check.log
export PYTHONUNBUFFERED=1

say() { echo "[$(date '+%F %T')] $*" | tee -a "$log"; }
run() { say "\$ $*"; "$@" 2>&1 | tee -a "$log"; }

stage_env() {
  if command -v nvidia-smi >/dev/null; then
    run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  else
    say "no nvidia-smi: no NVIDIA GPU here"
  fi
  run "$python" -c 'import importlib.metadata as m, json, sys
import jax, harmony_v3
names = ["jax", "jaxlib", "optax", "dreamerv3", "tfp-nightly", "ale-py"]
info = {"python": sys.version.split()[0],
        **{n: m.version(n) for n in names},
        "devices": [str(d) for d in jax.devices()]}
print(json.dumps(info))
open(sys.argv[1], "w").write(json.dumps(info, indent=2))' "$out/env.json"
}

stage_bench() {
  run "$python" -m harmony_v3.bench --configs "$configs" --task "$task" \
    --updates "$updates" --json "$out/bench.json" "${cache[@]}"
}

stage_vectorized() {
  run "$python" -m harmony_v3.bench --configs "$configs" --task "$task" \
    --vectorized 1 2 4 8 --updates $((updates / 3)) --rounds 2 \
    --json "$out/vectorized.json" "${cache[@]}"
}

stage_concurrent() {
  run "$python" -m harmony_v3.bench --configs "$configs" --task "$task" \
    --concurrency 1 2 4 8 --updates $((updates * 2 / 3)) --rounds 2 \
    --json "$out/concurrent.json" "${cache[@]}"
}

stage_train() {
  local runs=() method logdir flags
  for method in harmony dreamerv3; do
    logdir=$out/runs/$method
    flags=()
    [[ $method == dreamerv3 ]] && flags=(--harmony.enabled False)
    run "$python" -m harmony_v3.train --task "$task" --configs "$configs" \
      --logdir "$logdir" --run.steps "$steps" --run.eval_every "$steps" \
      --run.log_every 30 --run.progress lines "${cache[@]}" "${flags[@]}" \
      || return
    runs+=("$logdir")
  done
  "$python" -m harmony_v3.run_summary "${runs[@]}" --json "$out/train.json" \
    | tee "$out/train.md" | tee -a "$log"
}

# A stage that fails is reported and the next one still runs: on a borrowed
# GPU, the minutes already spent should not be lost.
failed=()
for stage in "${stages[@]}"; do
  if ! declare -F "stage_$stage" >/dev/null; then
    say "unknown stage '$stage' (env, bench, vectorized, concurrent, train)"
    exit 2
  fi
done
for stage in "${stages[@]}"; do
  say "stage $stage"
  "stage_$stage" || { say "stage $stage FAILED (exit $?)"; failed+=("$stage"); }
done
if [[ ${#failed[@]} -gt 0 ]]; then
  say "done with failures in: ${failed[*]} (see $log)"
  exit 1
fi
say "done: $out"
