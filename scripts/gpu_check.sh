#!/usr/bin/env bash
# The GPU figures the README asks for, measured in one command on one GPU.
#
#   scripts/gpu_check.sh OUTDIR [STAGE ...]
#   PROFILE=quick scripts/gpu_check.sh OUTDIR      # all in at most 8 minutes
#
# Stages (all of them, in this order, when none is named):
#   env         GPU, driver, Python, JAX and package versions
#   bench       DreamerV3 against Harmony: train updates/s, atari100k preset
#   vectorized  R = 1 2 4 8 runs in one vmapped update, aggregate updates/s
#   concurrent  K = 1 2 4 8 processes at once, aggregate updates/s
#   train       atari100k on Pong for $STEPS agent steps, Harmony then the
#               DreamerV3 baseline, each ending with a $EVAL_EPS-episode
#               evaluation
# Stages of the quick profile only (or named):
#   install     pip installs the wheelhouse ($WHEELHOUSE, default .whl) into
#               OUTDIR/site, offline, if the packages are not importable
#   study       python -m harmony_v3.study --quick on this machine's device
#
# PROFILE=quick runs install env bench train study, each under its own time
# limit (seconds: install 45, env 20, bench 140, train 170, study 100: 475 in
# all, for one H100/H200 with no internet), with a shorter bench (UPDATES
# 100, 2 rounds) and train (Harmony only, STEPS 1600, i.e. about 600 updates
# after the 1,024 prefill steps, then 10 evaluation episodes). LIMIT_<STAGE>
# (e.g. LIMIT_TRAIN=300) changes one limit; without a profile no stage has a
# limit unless one is given.
#
# Everything printed goes to OUTDIR/gpu_check.log as well; each stage writes
# OUTDIR/<stage>.json (the stage's status, time and limit when the stage
# itself wrote none, e.g. after a failure or timeout), and `train` also
# OUTDIR/train.md (run_summary's table). OUTDIR/stages.json lists every
# finished stage's status, rewritten after each stage. A failing stage is
# reported and the others still run (exit status 1). All stages share one
# persistent compilation cache in OUTDIR/jax_cache, so a stage compiles only
# what an earlier one did not.
#
# Environment: PYTHON (default python3), STEPS (default 2000), TASK (default
# atari_pong), UPDATES (timed updates per bench measurement, default 300),
# METHODS (train: default "harmony dreamerv3"), EVAL_EPS (default 100),
# CONFIGS (default atari100k; `tiny` makes a quick CPU smoke test of this
# script: PROFILE=quick CONFIGS=tiny runs the whole profile on a CPU).
set -uo pipefail

if [[ $# -lt 1 || $1 == -h || $1 == --help ]]; then
  sed -n '2,45p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
out=$(mkdir -p "$1" && cd "$1" && pwd)
shift
stages=("$@")
profile=${PROFILE:-}
declare -A limits=()
case $profile in
  '') [[ ${#stages[@]} -gt 0 ]] || stages=(env bench vectorized concurrent train) ;;
  quick)
    [[ ${#stages[@]} -gt 0 ]] || stages=(install env bench train study)
    limits=([install]=45 [env]=20 [bench]=140 [train]=170 [study]=100)
    : "${UPDATES:=100}" "${ROUNDS:=2}" "${STEPS:=1600}" "${METHODS:=harmony}"
    : "${EVAL_EPS:=10}" ;;
  *) echo "unknown PROFILE '$profile' (quick, or none)"; exit 2 ;;
esac
python=${PYTHON:-python3}
steps=${STEPS:-2000}
task=${TASK:-atari_pong}
updates=${UPDATES:-300}
rounds=${ROUNDS:-5}
methods=(${METHODS:-harmony dreamerv3})
eval_eps=${EVAL_EPS:-100}
configs=${CONFIGS:-atari100k}
wheelhouse=${WHEELHOUSE:-.whl}
cache=(--run.compilation_cache "$out/jax_cache")
log=$out/gpu_check.log
export PYTHONUNBUFFERED=1

say() { echo "[$(date '+%F %T')] $*" | tee -a "$log"; }
run() { say "\$ $*"; "$@" 2>&1 | tee -a "$log"; }
# run, within the current stage's time limit (if any): exit 124 on timeout.
deadline=
limited() {
  [[ -n $deadline ]] || { run "$@"; return; }
  local left=$((deadline - SECONDS))
  ((left > 0)) || { say "no time left in this stage for: $*"; return 124; }
  run timeout -k 10 "$left" "$@"
}

stage_install() {
  if "$python" -c 'import dreamerv3, gymnasium, ale_py, tensorboardX, ruamel.yaml, tensorflow_probability' 2>/dev/null; then
    say "packages already importable: nothing to install"
    return
  fi
  local wheels=("$wheelhouse"/*.whl)
  [[ -e ${wheels[0]} ]] || { say "no wheels in $wheelhouse (run make wheelhouse)"; return 1; }
  limited "$python" -m pip install --no-index --no-deps --quiet \
    --target "$out/site" "${wheels[@]}" || return
  export PYTHONPATH=$out/site${PYTHONPATH:+:$PYTHONPATH}
  say "installed ${#wheels[@]} wheels into $out/site (PYTHONPATH set)"
}

stage_env() {
  if command -v nvidia-smi >/dev/null; then
    run nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  else
    say "no nvidia-smi: no NVIDIA GPU here"
  fi
  limited "$python" -c 'import importlib.metadata as m, json, sys
import jax, harmony_v3
names = ["jax", "jaxlib", "optax", "dreamerv3", "tfp-nightly", "ale-py"]
info = {"python": sys.version.split()[0],
        **{n: m.version(n) for n in names},
        "devices": [str(d) for d in jax.devices()]}
print(json.dumps(info))
open(sys.argv[1], "w").write(json.dumps(info, indent=2))' "$out/env.json"
}

stage_bench() {
  limited "$python" -m harmony_v3.bench --configs "$configs" --task "$task" \
    --updates "$updates" --rounds "$rounds" --json "$out/bench.json" \
    "${cache[@]}"
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
  for method in "${methods[@]}"; do
    logdir=$out/runs/$method
    flags=()
    [[ $method == dreamerv3 ]] && flags=(--harmony.enabled False)
    limited "$python" -m harmony_v3.train --task "$task" --configs "$configs" \
      --logdir "$logdir" --run.steps "$steps" --run.eval_every "$steps" \
      --run.eval_eps "$eval_eps" \
      --run.eval_envs "$((eval_eps < 25 ? eval_eps : 25))" \
      --run.log_every 30 --run.progress lines "${cache[@]}" "${flags[@]}" \
      || return
    runs+=("$logdir")
  done
  "$python" -m harmony_v3.run.summary "${runs[@]}" --json "$out/train.json" \
    | tee "$out/train.md" | tee -a "$log"
}

stage_study() {
  limited "$python" -m harmony_v3.study --quick --out "$out/study" \
    --progress lines --json "$out/study.json"
}

# The status of a finished stage: OUTDIR/<stage>.json if the stage wrote
# none, and one entry of OUTDIR/stages.json.
record() {
  local stage=$1 code=$2 seconds=$3 status=ok
  ((code == 124 || code == 137)) && status=timeout
  ((code != 0 && code != 124 && code != 137)) && status=failed
  local entry="{\"stage\": \"$stage\", \"status\": \"$status\", \"exit_code\": $code, \"seconds\": $seconds, \"limit_s\": ${limits[$stage]:-null}}"
  [[ -s $out/$stage.json ]] || echo "$entry" > "$out/$stage.json"
  statuses+=("$entry")
  local IFS=,
  echo "{\"profile\": \"${profile:-none}\", \"stages\": [${statuses[*]}]}" \
    > "$out/stages.json.tmp" && mv "$out/stages.json.tmp" "$out/stages.json"
}

# A stage that fails is reported and the next one still runs: on a borrowed
# GPU, the minutes already spent should not be lost.
failed=()
statuses=()
for stage in "${stages[@]}"; do
  if ! declare -F "stage_$stage" >/dev/null; then
    say "unknown stage '$stage' (env, bench, vectorized, concurrent, train, install, study)"
    exit 2
  fi
  rm -f "$out/$stage.json"  # A stale one would hide this run's status.
done
for stage in "${stages[@]}"; do
  limit=${limits[$stage]:-}
  override=LIMIT_${stage^^}
  limit=${!override:-$limit}
  limits[$stage]=${limit:-}
  say "stage $stage${limit:+ (time limit ${limit} s)}"
  deadline=${limit:+$((SECONDS + limit))}
  start=$SECONDS
  "stage_$stage"
  code=$?
  ((code == 0)) || { say "stage $stage FAILED (exit $code$( ((code == 124 || code == 137)) && echo ', time limit'))"; failed+=("$stage"); }
  record "$stage" "$code" "$((SECONDS - start))"
done
if [[ ${#failed[@]} -gt 0 ]]; then
  say "done with failures in: ${failed[*]} (see $log)"
  exit 1
fi
say "done: $out"
