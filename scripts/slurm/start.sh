#!/usr/bin/env bash
# Bring up a real single-node SLURM cluster on this Debian 12 machine (for tests and CI):
# munge + MariaDB + slurmdbd (so that `sacct` works) + slurmctld + slurmd, with a generic
# GPU resource (gres gpu:4 backed by fake device files) so that `--gres=gpu:k` requests schedule.
#
# Idempotent: a second call with the cluster up and its configuration unchanged returns in
# well under a second; a fresh machine takes about a minute (packages). Needs root (or
# passwordless sudo). Daemons are started directly (no systemd needed). Memory: ~150 MB in all
# (MariaDB's buffer pool is kept at 64 MB).
#
#   bash scripts/slurm/start.sh            # install if needed, configure, start, wait until idle
#   SLURM_FAKE_GPUS=8 SLURM_CPUS=16 bash scripts/slurm/start.sh
#
# Stop everything with scripts/slurm/stop.sh.
set -euo pipefail

FAKE_GPUS="${SLURM_FAKE_GPUS:-4}"
# Logical CPUs the node advertises; more than the real ones is fine (config_overrides), it only
# lets more small jobs run side by side.
NODE_CPUS="${SLURM_CPUS:-8}"
CLUSTER=pipeline
NODE="$(hostname -s)"
CONF_DIR=/etc/slurm
DB_PASS=slurmdb
START_TIMEOUT=90

log() { printf '[slurm/start] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ $(id -u) -ne 0 ]]; then
  # CI runners often are a user with passwordless sudo.
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then exec sudo -n -E bash "$0" "$@"; fi
  die "run as root (it installs packages and starts daemons): sudo bash $0"
fi

alive() { # alive PIDFILE: is the process in PIDFILE running?
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_ready() { # the node is up (idle, mixed or allocated) and accounting answers
  local state
  state="$(timeout 5 sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1)" || return 1
  [[ $state =~ ^(idle|mixed|allocated|completing)$ ]] || return 1
  timeout 10 sacct -n -X -S now >/dev/null 2>&1
}

# ---------------------------------------------------------------- packages
PKGS=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
missing=()
for bin in munged mariadbd slurmdbd slurmctld slurmd sbatch; do
  command -v "$bin" >/dev/null 2>&1 || [[ -x /usr/sbin/$bin ]] || missing+=("$bin")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null 2>&1 ||
    die "missing ${missing[*]} and no apt-get: this script sets up Debian's slurm-wlm; elsewhere install SLURM (with slurmdbd) yourself"
  log "installing ${PKGS[*]} (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt may be running on a shared machine: wait for its lock instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
fi

# ---------------------------------------------------------------- configuration
mem_mib=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
gpu_last=$((FAKE_GPUS - 1))
# Memory a job gets without --mem: enough for real stages (torch, tiny models), while all
# NODE_CPUS one-CPU jobs still fit side by side.
def_mem=$((mem_mib / NODE_CPUS))
((def_mem > 2048)) && def_mem=2048

slurm_conf="# Written by scripts/slurm/start.sh: a single-node test cluster. Do not edit by hand.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
# No cgroups in containers: track processes through /proc, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
# Test cluster: start jobs right after submission, look at pending ones every 2 s (default 60 s).
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$def_mem
GresTypes=gpu
# Advertise the configured CPUs/memory even if the hardware has fewer.
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs leave slurmctld's memory quickly (sacct keeps them); short kill grace.
MinJobAge=30
KillWait=2
OverTimeLimit=0
InactiveLimit=0
Waittime=0
SlurmdTimeout=300
SlurmctldTimeout=120
# Accounting: sacct reads slurmdbd (MariaDB). Peak memory (MaxRSS) from /proc sampling.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStorageTRES=gres/gpu
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$NODE_CPUS RealMemory=$mem_mib Gres=gpu:$FAKE_GPUS State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE DefaultTime=10 State=UP
"
gres_conf="# Written by scripts/slurm/start.sh: fake GPUs (character devices like /dev/null).
NodeName=$NODE Name=gpu File=/dev/slurm-fake-gpu[0-$gpu_last]
"
cgroup_conf="# Written by scripts/slurm/start.sh: cgroups are not used (proctrack/linuxproc, task/none).
CgroupPlugin=autodetect
"
slurmdbd_conf="# Written by scripts/slurm/start.sh.
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=slurm
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/run/slurm/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
"

changed=0
write_conf() { # write_conf FILE CONTENT MODE OWNER: only when the content differs
  local file=$1 content=$2 mode=$3 owner=$4
  if [[ ! -f $file ]] || [[ "$(cat "$file")" != "${content%$'\n'}" ]]; then
    printf '%s' "$content" >"$file"
    changed=1
    log "wrote $file"
  fi
  chmod "$mode" "$file"
  chown "$owner" "$file"
}

mkdir -p "$CONF_DIR" /run/slurm /var/log/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd \
  /run/munge /var/log/munge /var/lib/munge /run/mysqld
write_conf "$CONF_DIR/slurm.conf" "$slurm_conf" 644 root:root
write_conf "$CONF_DIR/gres.conf" "$gres_conf" 644 root:root
write_conf "$CONF_DIR/cgroup.conf" "$cgroup_conf" 644 root:root
write_conf "$CONF_DIR/slurmdbd.conf" "$slurmdbd_conf" 600 slurm:slurm
chown slurm:slurm /run/slurm /var/log/slurm /var/lib/slurm/slurmctld
chown munge:munge /run/munge /var/log/munge /var/lib/munge
chown mysql:mysql /run/mysqld
for ((i = 0; i < FAKE_GPUS; i++)); do
  [[ -c /dev/slurm-fake-gpu$i ]] || mknod -m 666 "/dev/slurm-fake-gpu$i" c 1 3
done

# ---------------------------------------------------------------- fast path
if ((changed == 0)) && alive /run/slurm/slurmctld.pid && alive /run/slurm/slurmd.pid && node_ready; then
  log "already running: node $NODE $(sinfo -h -n "$NODE" -o '%T %c CPUs %G')"
  exit 0
fi

wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not come up within ${secs}s (see /var/log/slurm/ and /var/log/munge/)"
    sleep 0.5
  done
}

stop_pidfile() { # stop_pidfile PIDFILE: terminate a daemon we restart after a config change
  if alive "$1"; then
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

if ((changed)); then
  stop_pidfile /run/slurm/slurmd.pid
  stop_pidfile /run/slurm/slurmctld.pid
  stop_pidfile /run/slurm/slurmdbd.pid
fi

# ---------------------------------------------------------------- munge
if ! pgrep -x munged >/dev/null; then
  [[ -s /etc/munge/munge.key ]] || runuser -u munge -- mungekey --create
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
fi
wait_for munge 20 bash -c 'munge -n | unmunge'

# ---------------------------------------------------------------- MariaDB + slurmdbd
if ! mariadb-admin ping >/dev/null 2>&1; then
  log "starting MariaDB"
  setsid /usr/sbin/mariadbd --user=mysql --bind-address=127.0.0.1 --innodb-buffer-pool-size=64M \
    --performance-schema=OFF </dev/null >>/var/log/slurm/mariadb.log 2>&1 &
  wait_for MariaDB 60 mariadb-admin ping
fi
mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
  CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"

if ! alive /run/slurm/slurmdbd.pid; then
  log "starting slurmdbd"
  /usr/sbin/slurmdbd
fi
wait_for slurmdbd 60 sacctmgr -n list cluster
if ! sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
fi

# ---------------------------------------------------------------- slurmctld + slurmd
if ! alive /run/slurm/slurmctld.pid; then
  log "starting slurmctld"
  /usr/sbin/slurmctld
fi
wait_for slurmctld 60 scontrol ping
if ! alive /run/slurm/slurmd.pid; then
  log "starting slurmd"
  /usr/sbin/slurmd -N "$NODE"
fi

deadline=$((SECONDS + START_TIMEOUT))
until node_ready; do
  state="$(sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n1 || true)"
  # A node left down/drained by an earlier run (e.g. after a config change) is put back.
  if [[ $state =~ ^(down|drain|drained|draining|down\*|drained\*)$ ]]; then
    scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true
  fi
  ((SECONDS < deadline)) || die "node $NODE is '${state:-unknown}' after ${START_TIMEOUT}s (see /var/log/slurm/slurmd.log, slurmctld.log)"
  sleep 0.5
done
log "ready: node $NODE $(sinfo -h -n "$NODE" -o '%T %c CPUs %G')"
