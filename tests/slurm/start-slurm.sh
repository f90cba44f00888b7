#!/usr/bin/env bash
# Start a throw-away one-node Slurm (munged + slurmctld + slurmd) on 127.0.0.1 for tests/test_slurm.py.
# Debian 12, as root, no systemd: the daemons are started directly and tracked by their pidfiles, so
# tests/slurm/stop-slurm.sh stops exactly them. Installs slurmctld, slurmd, slurm-client and munge with apt when
# they are missing. Safe to run again while the cluster is up (it then only checks it).
# Knobs (environment): SLURM_NODE_CPUS (nproc), SLURM_NODE_MEM (90% of MemTotal, MiB), SLURM_FAKE_GPUS (1).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
NODE=localhost
CPUS=${SLURM_NODE_CPUS:-$(nproc)}
# RealMemory must not exceed what slurmd detects, or the node is set INVAL
MEM=${SLURM_NODE_MEM:-$(awk '/MemTotal/{printf "%d", $2/1024*0.9}' /proc/meminfo)}
FAKE_GPUS=${SLURM_FAKE_GPUS:-1}
LOGDIR=/var/log/slurm

running() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# 1. packages (Debian 12: Slurm 22.05, munge 0.5)
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v squeue >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      slurmctld slurmd slurm-client munge
fi

# 2. munge: the Debian package creates /etc/munge/munge.key; make one if it is absent
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
fi
if ! running /run/munge/munged.pid; then
  rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
  runuser -u munge -- /usr/sbin/munged
fi
for _ in $(seq 50); do munge -n </dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.2; done
munge -n </dev/null | unmunge >/dev/null

# 3. configuration (only when the controller is not running: a live cluster keeps its configuration)
if ! running /run/slurmctld.pid; then
  install -d -m 0755 /etc/slurm "$LOGDIR"
  install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld
  install -d -m 0755 /var/spool/slurmd
  GRES_TYPES=""
  GRES_NODE=""
  if [ "$FAKE_GPUS" -gt 0 ]; then
    # Slurm wants one File= per GPU and checks that it is a character device; with task/none nothing
    # confines the device, so nodes with /dev/null's numbers (1:3) do. A gpu job gets CUDA_VISIBLE_DEVICES.
    install -d -m 0755 /run/fakegpu
    for ((g = 0; g < FAKE_GPUS; g++)); do
      [ -c "/run/fakegpu/gpu$g" ] || { rm -f "/run/fakegpu/gpu$g"; mknod -m 0666 "/run/fakegpu/gpu$g" c 1 3; }
    done
    if [ "$FAKE_GPUS" -eq 1 ]; then files=/run/fakegpu/gpu0; else files="/run/fakegpu/gpu[0-$((FAKE_GPUS - 1))]"; fi
    printf 'AutoDetect=off\nNodeName=%s Name=gpu File=%s\n' "$NODE" "$files" > /etc/slurm/gres.conf
    GRES_TYPES="GresTypes=gpu"
    GRES_NODE="Gres=gpu:$FAKE_GPUS"
  else
    rm -f /etc/slurm/gres.conf
  fi
  sed -e "s|@LOGDIR@|$LOGDIR|g" -e "s|@NODE@|$NODE|g" -e "s|@CPUS@|$CPUS|g" -e "s|@MEM@|$MEM|g" \
      -e "s|@DEF_MEM_PER_CPU@|$((MEM / CPUS))|g" -e "s|@GRES_TYPES@|$GRES_TYPES|g" \
      -e "s|@GRES_NODE@|$GRES_NODE|g" "$HERE/slurm.conf.in" > /etc/slurm/slurm.conf
  # -c: cold start, so a node left INVAL/DRAIN by an earlier bad configuration starts clean
  /usr/sbin/slurmctld -c -i
fi
for _ in $(seq 50); do scontrol ping 2>/dev/null | grep -q UP && break; sleep 0.2; done
scontrol ping | grep -q UP || { echo "slurmctld is not up, see $LOGDIR/slurmctld.log" >&2; exit 1; }
running /run/slurmd.pid || /usr/sbin/slurmd -N "$NODE"

# 4. wait until the node takes jobs
state=""
for _ in $(seq 60); do
  state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true)
  case "$state" in idle | mix | alloc) break ;; esac
  sleep 0.5
done
case "$state" in
  idle | mix | alloc) ;;
  *)
    echo "node $NODE is '$state', see $LOGDIR/slurmd.log and $LOGDIR/slurmctld.log" >&2
    scontrol show node "$NODE" | grep -i reason >&2 || true
    exit 1
    ;;
esac
sinfo -N -o '%N %P %t %c %m %G'
