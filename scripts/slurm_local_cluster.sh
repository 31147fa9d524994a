#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for the sweep's SLURM tests
# (`make test-slurm`) and for trying `run_atari100k.sh --engine slurm`.
#
#   scripts/slurm_local_cluster.sh start    # install if needed, start, wait
#   scripts/slurm_local_cluster.sh stop     # scontrol shutdown, stop munged
#   scripts/slurm_local_cluster.sh status
#   eval "$(scripts/slurm_local_cluster.sh env)"   # SLURM_CONF for sbatch...
#
# Needs root. Installs Debian's slurmctld, slurmd, slurm-client and munge
# with apt-get when slurmctld is missing. Everything else lives in
# $HARMONY_SLURM_DIR (default /var/tmp/harmony_v3_slurm): its own munge key
# and socket, slurm.conf, gres.conf, state, logs, and fake GPU device nodes,
# so a system munge or SLURM set-up is neither used nor touched. The daemons
# are started directly (no systemd). One node, named after this host, with
# $HARMONY_SLURM_CPUS CPUs (default 8; slurmd takes the configured count) and
# $HARMONY_SLURM_GPUS fake GPUs (default 4): character device nodes made with
# mknod, listed in gres.conf with AutoDetect=off, so SLURM hands them out and
# sets CUDA_VISIBLE_DEVICES as for real GPUs.
#
# Exit status: 0 done; 3 cannot run here (not root, no apt-get), with the
# reason on stderr; 1 anything else (see the logs in $HARMONY_SLURM_DIR).
set -euo pipefail

DIR=${HARMONY_SLURM_DIR:-/var/tmp/harmony_v3_slurm}
CPUS=${HARMONY_SLURM_CPUS:-8}
GPUS=${HARMONY_SLURM_GPUS:-4}
NODE=$(hostname -s)
export SLURM_CONF=$DIR/slurm.conf

cannot() { echo "slurm_local_cluster: cannot run here: $*" >&2; exit 3; }
fail() { echo "slurm_local_cluster: $*" >&2; exit 1; }

install_slurm() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null && return
  command -v apt-get >/dev/null || cannot "slurmctld is not installed and there is no apt-get"
  echo "Installing Debian's slurmctld slurmd slurm-client munge ..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null
  } || fail "apt-get install of slurm failed"
}

write_config() {
  mkdir -p "$DIR"/{state,spool,dev,log}
  chmod 700 "$DIR"
  local gpu
  for ((gpu = 0; gpu < GPUS; gpu++)); do
    # A character device (as /dev/null's numbers): slurmd refuses plain files.
    [ -c "$DIR/dev/gpu$gpu" ] || mknod "$DIR/dev/gpu$gpu" c 1 3
  done
  local gres="" files=""
  if ((GPUS > 0)); then
    gres=" Gres=gpu:$GPUS"
    files="Name=gpu File=$DIR/dev/gpu[0-$((GPUS - 1))]"
  fi
  cat > "$DIR/slurm.conf" <<CONF
# Written by scripts/slurm_local_cluster.sh: one node, fake GPUs.
ClusterName=harmonytest
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$DIR/munge.socket
CryptoType=crypto/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
KillWait=30
MinJobAge=600
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=1000$gres State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  cat > "$DIR/gres.conf" <<CONF
AutoDetect=off
$files
CONF
}

start_munge() {
  if [ -S "$DIR/munge.socket" ] && munge -S "$DIR/munge.socket" -n </dev/null >/dev/null 2>&1; then
    return
  fi
  [ -f "$DIR/munge.key" ] || {
    dd if=/dev/urandom of="$DIR/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge.key"
  }
  munged --force --socket="$DIR/munge.socket" --key-file="$DIR/munge.key" \
    --log-file="$DIR/log/munged.log" --pid-file="$DIR/munged.pid" \
    --seed-file="$DIR/munged.seed" || fail "munged did not start: see $DIR/log/munged.log"
}

running() {
  local name=$1 pid
  [ -f "$DIR/$name.pid" ] && pid=$(cat "$DIR/$name.pid") && kill -0 "$pid" 2>/dev/null
}

start() {
  [ "$(id -u)" = 0 ] || cannot "needs root (it installs packages and starts slurmd as root)"
  install_slurm
  if running slurmctld && running slurmd; then
    echo "SLURM already running. export SLURM_CONF=$SLURM_CONF"
    return
  fi
  write_config
  start_munge
  running slurmctld || slurmctld -c -i || fail "slurmctld did not start: see $DIR/log/slurmctld.log"
  running slurmd || slurmd || fail "slurmd did not start: see $DIR/log/slurmd.log"
  local state=""
  for _ in $(seq 100); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
    [ "$state" = idle ] && break
    sleep 0.2
  done
  [ "$state" = idle ] || fail "node not idle after 20 s (state '$state'); see $DIR/log"
  echo "SLURM up: node $NODE, $CPUS CPUs, $GPUS fake GPUs. export SLURM_CONF=$SLURM_CONF"
}

stop() {
  local name pids=""
  for name in slurmctld slurmd munged; do
    if running $name; then pids="$pids $(cat "$DIR/$name.pid")"; fi
  done
  if running slurmctld || running slurmd; then
    scontrol shutdown >/dev/null 2>&1 || true
  fi
  if running munged; then kill "$(cat "$DIR/munged.pid")" || true; fi
  local pid
  for _ in $(seq 100); do  # Until every daemon has exited (20 s at most).
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && break; pid=""; done
    [ -z "$pid" ] && break
    sleep 0.2
  done
  [ -z "$pid" ] || fail "a daemon did not stop within 20 s (pids:$pids); see $DIR/log"
  echo "SLURM stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) running slurmctld && running slurmd && sinfo && squeue ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) echo "usage: $0 start|stop|status|env" >&2; exit 2 ;;
esac
