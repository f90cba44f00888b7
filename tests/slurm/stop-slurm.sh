#!/usr/bin/env bash
# Stop the one-node Slurm started by tests/slurm/start-slurm.sh: cancel leftover jobs, then stop slurmd,
# slurmctld and munged by their pidfiles (never by process name).
set -uo pipefail
stop_pidfile() { # $1 pidfile, $2 daemon name
  local pidfile=$1 pid
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$2 ($pid) did not stop, sending KILL" >&2
      kill -KILL "$pid"
    fi
  fi
  rm -f "$pidfile"
}
if command -v scancel >/dev/null; then timeout 10 scancel --user=root --quiet 2>/dev/null || true; fi
stop_pidfile /run/slurmd.pid slurmd
stop_pidfile /run/slurmctld.pid slurmctld
stop_pidfile /run/munge/munged.pid munged
echo "slurm stopped"
