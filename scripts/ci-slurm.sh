#!/usr/bin/env bash
# A single-node Slurm cluster on this machine for the Slurm job-array test (tests/TinyGrow.Host.Tests,
# SlurmTests): Debian's slurm-wlm with munge, controller and node daemon both here, state under
# $TINYGROW_SLURM_DIR (default /var/tmp/tinygrow-slurm). Idempotent: installs only what is missing,
# starts only what is not running, and leaves a slurm.conf it did not write alone. Run as root.
# Exit 0 once `sinfo` shows the node up; non-zero with the reason otherwise.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then echo "ci-slurm: run as root (it installs packages and starts daemons)" >&2; exit 1; fi
state=${TINYGROW_SLURM_DIR:-/var/tmp/tinygrow-slurm}
conf=/etc/slurm/slurm.conf
host=$(hostname -s)

if ! command -v slurmctld >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
  echo "ci-slurm: installing Debian package slurm-wlm (brings munge and its key)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm >/dev/null
fi

mkdir -p /run/munge && chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
  [ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create 2>/dev/null || /usr/sbin/create-munge-key; }
  runuser -u munge -- /usr/sbin/munged
fi

# Ours is marked; a slurm.conf without the mark belongs to a real cluster and is not replaced.
marker="# written by tinygrow scripts/ci-slurm.sh"
if [ -f "$conf" ] && ! head -1 "$conf" | grep -qF "$marker"; then
  echo "ci-slurm: $conf exists and was not written by this script; using it as it is"
else
  mkdir -p "$state/spool" "$state/state" /etc/slurm
  cat > "$conf.tmp" <<EOF
$marker
ClusterName=tinygrow
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
# Tasks of one array share the node, one CPU each (select/linear would run them one at a time).
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
JobRequeue=1
# A requeued or stopped task gets this long between SIGTERM and SIGKILL: room for the checkpoint.
KillWait=30
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
StateSaveLocation=$state/state
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
NodeName=$host CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$conf.tmp" "$conf"
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
running "$state/slurmctld.pid" || slurmctld
running "$state/slurmd.pid" || slurmd

for _ in $(seq 1 30); do
  if sinfo -h -N -o "%T" 2>/dev/null | grep -qE "idle|mixed|allocated"; then
    echo "ci-slurm: single-node cluster up ($host, $(nproc) CPUs; logs in $state)"
    exit 0
  fi
  # A node left down by an earlier run of the daemons comes back here.
  scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
  sleep 1
done
echo "ci-slurm: the node did not come up; see $state/slurmctld.log and $state/slurmd.log" >&2
sinfo >&2 || true
exit 1
