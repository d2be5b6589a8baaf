#!/usr/bin/env bash
# Stop the single-node SLURM cluster started by scripts/slurm/start.sh (slurmd, slurmctld,
# slurmdbd, MariaDB, munged). Job records stay in MariaDB; start.sh brings everything back.
set -uo pipefail
log() { printf '[slurm/stop] %s\n' "$*" >&2; }

stop_pid() { # stop_pid NAME PID
  local name=$1 pid=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  log "stopping $name ($pid)"
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}

for d in slurmd slurmctld slurmdbd; do
  f=/run/slurm/$d.pid
  [[ -s $f ]] && stop_pid "$d" "$(cat "$f")"
  rm -f "$f"
done
[[ -s /run/mysqld/mysqld.pid ]] && stop_pid mariadbd "$(cat /run/mysqld/mysqld.pid)"
[[ -s /run/munge/munged.pid ]] && stop_pid munged "$(cat /run/munge/munged.pid)"
exit 0
