#!/usr/bin/env bash
# Stop the daemons scripts/slurm-up.sh started (by their pid files only) and remove its directory.
set -euo pipefail

DIR=${EVOSELFCODE_SLURM_DIR:-/tmp/evoselfcode-slurm}

stop() {
    local pidfile=$DIR/$1.pid
    [[ -f $pidfile ]] || return 0
    local pid
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
        for _ in $(seq 40); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}

# slurmd first, so its jobs' steps end before the controller goes away.
stop slurmd
stop slurmctld
# munged only if slurm-up started it (it then copied munged's pid file here).
stop munged
if [[ $(readlink /etc/slurm/slurm.conf 2>/dev/null) == "$DIR/slurm.conf" ]]; then
    rm -f /etc/slurm/slurm.conf
fi
rm -rf "$DIR"
