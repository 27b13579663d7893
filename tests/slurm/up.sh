#!/usr/bin/env bash
# A one-node Slurm cluster on this machine for the tests: Debian's slurm-wlm (22.05) with munge, as root.
#
#   tests/slurm/up.sh        install if needed, write the config, start munged, slurmctld and slurmd,
#                            wait until the node is idle and a `sbatch --wrap` job has run
#   tests/slurm/up.sh down   stop the daemons this script started (recorded in $STATE/started)
#
# Idempotent: a daemon already running is left alone (and not recorded as ours). No accounting
# database (JobAcctGather/AccountingStorage none): the cockpit must not rely on sacct, and many
# clusters have none either.
set -euo pipefail

STATE=${GOEMO_SLURM_STATE:-/var/lib/goemo-slurm}
CONF=/etc/slurm/slurm.conf
say() { echo "slurm-up: $*"; }

if [ "$(id -u)" != 0 ]; then
    say "needs root (apt-get, munge key, daemons); the Slurm tests skip without a cluster" >&2
    exit 1
fi
mkdir -p "$STATE"
touch "$STATE/started"

stop_ours() {
    for daemon in slurmd slurmctld munged; do
        if grep -qx "$daemon" "$STATE/started" 2>/dev/null && pkill -x "$daemon"; then
            # Wait for it to go: a following `up` must not find it still shutting down.
            for _ in $(seq 1 30); do pgrep -x "$daemon" >/dev/null || break; sleep 0.5; done
            pkill -9 -x "$daemon" 2>/dev/null || true
            say "stopped $daemon"
        fi
    done
    : > "$STATE/started"
}

if [ "${1:-up}" = down ]; then
    stop_ours
    exit 0
fi

if ! command -v sbatch >/dev/null || ! command -v slurmctld >/dev/null; then
    say "installing slurm-wlm"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm >/dev/null 2>&1 \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm >/dev/null; }
fi

# munge: one key, owned by the munge user, then the daemon.
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -x munged >/dev/null; then
    su -s /bin/sh munge -c "munged --force" 2>/dev/null || munged --force
    echo munged >> "$STATE/started"
    say "started munged"
fi

HOST=$(hostname -s)
CPUS=$(nproc)
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$CONF.new" <<CONF
# Written by tests/slurm/up.sh: a one-node cluster for goemo-cockpit's tests.
ClusterName=goemo
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
KillWait=10
SlurmdTimeout=60
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
if ! cmp -s "$CONF.new" "$CONF" 2>/dev/null; then
    mv "$CONF.new" "$CONF"
    # A running controller reads a changed config only on reconfigure.
    if pgrep -x slurmctld >/dev/null; then scontrol reconfigure || true; fi
else
    rm -f "$CONF.new"
fi

if ! pgrep -x slurmctld >/dev/null; then
    slurmctld
    echo slurmctld >> "$STATE/started"
    say "started slurmctld"
fi
if ! pgrep -x slurmd >/dev/null; then
    slurmd
    echo slurmd >> "$STATE/started"
    say "started slurmd"
fi

for _ in $(seq 1 60); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
    case "$state" in
        idle*|mixed*|allocated*) break ;;
        down*|drain*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null || true)
case "$state" in
    idle*|mixed*|allocated*) ;;
    *) say "node $HOST is '${state:-unknown}', not idle; see /var/log/slurm/" >&2; exit 1 ;;
esac

out=$(mktemp -d)
if ! timeout 60 sbatch --quiet --wait --output "$out/probe.out" --wrap "echo slurm-ok" >/dev/null \
        || ! grep -qx slurm-ok "$out/probe.out"; then
    say "a sbatch --wrap job did not run; see /var/log/slurm/" >&2
    exit 1
fi
rm -rf "$out"
say "one-node cluster up: $HOST, $CPUS CPUs, partition debug ($(sinfo --version))"
