#!/usr/bin/env bash
# Start a single-node SLURM cluster on this machine (root, Debian) for tests/test_slurm.py.
# Everything it writes lives in $EVOSELFCODE_SLURM_DIR, plus a symlink /etc/slurm/slurm.conf to its config:
# the executor plugin drops SLURM_* variables (SLURM_CONF too) before the srun inside each job, so
# clients must find the config at the compiled-in path, as on a real cluster.
# No accounting database: `sacct` fails, so profiles must query job states with squeue
# (slurm-status-command: squeue), which sees finished jobs for MinJobAge seconds.
set -euo pipefail

DIR=${EVOSELFCODE_SLURM_DIR:-/tmp/evoselfcode-slurm}
PARTITION=${EVOSELFCODE_SLURM_PARTITION:-debug}

if [[ $(id -u) -ne 0 ]]; then
    echo "slurm-up: must run as root (installs packages, starts munged/slurmctld/slurmd)" >&2
    exit 1
fi

missing=()
for exe in slurmctld slurmd sinfo munged; do
    command -v "$exe" >/dev/null || missing+=("$exe")
done
if ((${#missing[@]})); then
    echo "slurm-up: installing slurm and munge (missing: ${missing[*]})" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi

mkdir -p "$DIR"/{state,spool,log}
SLURM_CONF=$DIR/slurm.conf
if [[ -e /etc/slurm/slurm.conf && $(readlink /etc/slurm/slurm.conf) != "$SLURM_CONF" ]]; then
    echo "slurm-up: /etc/slurm/slurm.conf exists and is not ours; not replacing a real cluster's config" >&2
    exit 1
fi

# munged refuses to run as root or with a socket directory it does not own.
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    if command -v mungekey >/dev/null; then
        runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
fi
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid
    cp /run/munge/munged.pid "$DIR/munged.pid"
fi

# The node line is what slurmd detects here, so the config matches any machine it runs on.
host=$(hostname -s)
node=$(slurmd -C | head -n1)
cat >"$SLURM_CONF" <<EOF
ClusterName=evoselfcode
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs that ask for no memory must not take the whole node.
DefMemPerCPU=512
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# squeue is the only job-state source without accounting; keep finished jobs visible for 5 min.
MinJobAge=300
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

mkdir -p /etc/slurm
ln -sfn "$SLURM_CONF" /etc/slurm/slurm.conf

# -c: a clean start, without jobs or state left by an earlier run.
pgrep -F "$DIR/slurmctld.pid" >/dev/null 2>&1 || slurmctld -c -f "$SLURM_CONF"
pgrep -F "$DIR/slurmd.pid" >/dev/null 2>&1 || slurmd -c -f "$SLURM_CONF"

for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -n1 || true)
    if [[ $state == idle || $state == mix || $state == alloc ]]; then
        echo "slurm-up: node $host is $state in partition $PARTITION ($SLURM_CONF)" >&2
        exit 0
    fi
    sleep 0.5
done
echo "slurm-up: the node did not become idle; see $DIR/log/" >&2
sinfo -N -l >&2 || true
exit 1
