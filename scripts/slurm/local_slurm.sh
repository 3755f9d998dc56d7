#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for testing profiles/slurm (tests/test_slurm.py).
#
#   scripts/slurm/local_slurm.sh start  [STATE_DIR]   install (apt) if needed, configure, start, wait until idle
#   scripts/slurm/local_slurm.sh stop   [STATE_DIR]   stop the daemons started by `start` (by their PIDs)
#   scripts/slurm/local_slurm.sh status [STATE_DIR]   exit 0 when every daemon is alive and the node is up
#   scripts/slurm/local_slurm.sh env    [STATE_DIR]   print `export SLURM_CONF=...` for client commands
#
# STATE_DIR defaults to $INFSCALE_SLURM_DIR or /tmp/infscale-slurm; it holds the configuration, spool,
# logs, the accounting database and the PID file. Outside it, only the apt install and a symlink
# /etc/slurm/slurm.conf -> STATE_DIR/etc/slurm.conf (removed by `stop`) are made: the symlink is how
# `srun` inside a job finds the configuration, because the plugin's job step drops SLURM_* variables,
# SLURM_CONF included. An existing /etc/slurm/slurm.conf that is not such a symlink is never touched
# (start fails instead). Needs root (daemons run as root, no systemd). Debian/Ubuntu packages:
# slurm-wlm, slurmdbd, munge, mariadb-server.
#
# Accounting (slurmdbd + MariaDB) is part of the cluster on purpose: snakemake-executor-plugin-slurm
# checks job status with `sacct` whenever sacct is installed, and without an accounting database
# sacct fails and the plugin waits forever. With slurmdbd the profile runs exactly as on a real
# cluster, and `sacct` keeps a record of every job (with its TRES, incl. gres/gpu) for the test.
#
# The node gets the machine's real CPU layout and a fake GPU (gres `gpu:1` backed by /dev/null),
# enough for Slurm to schedule `--gpus=1` jobs. Its memory is declared as at least
# INFSCALE_SLURM_NODE_MEM_MB (default 65536) so that the profile's GPU-job memory request fits on
# small CI machines; nothing enforces memory here (task/none, no cgroups), so this is harmless.
set -euo pipefail

usage() { echo "usage: $0 {start|stop|status|env} [STATE_DIR]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
action=$1
STATE=$(realpath -m "${2:-${INFSCALE_SLURM_DIR:-/tmp/infscale-slurm}}")

CLUSTER=infscale
PARTITION=${INFSCALE_SLURM_LOCAL_PARTITION:-debug}
CTLD_PORT=${INFSCALE_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${INFSCALE_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${INFSCALE_SLURM_DBD_PORT:-6819}
DB_PORT=${INFSCALE_SLURM_DB_PORT:-13306}
NODE_MEM_MB=${INFSCALE_SLURM_NODE_MEM_MB:-65536}
START_TIMEOUT=${INFSCALE_SLURM_START_TIMEOUT:-120}

ETC=$STATE/etc
RUN=$STATE/run
LOG=$STATE/log
PIDFILE=$STATE/pids
MUNGE_SOCKET=$RUN/munge.socket
DB_SOCKET=$RUN/mysqld.sock
SYSTEM_CONF=/etc/slurm/slurm.conf
export SLURM_CONF=$ETC/slurm.conf

# Daemons in start order.
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)

log() { echo "local_slurm: $*" >&2; }
die() { log "error: $*"; exit 1; }

pid_of() {  # PID recorded for daemon $1, or nothing
  if [[ -f $PIDFILE ]]; then awk -v d="$1" '$1 == d { print $2 }' "$PIDFILE"; fi
}

alive() {  # daemon $1 is running under its recorded PID (guards against recycled PIDs)
  local pid; pid=$(pid_of "$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$1" ]]
}

node_state() {  # the node's state as sinfo reports it; empty when slurmctld is not ours and running
  if alive slurmctld; then timeout 10 sinfo -h -N -o %T 2>/dev/null | head -n1 || true; fi
}

all_up() {
  local d
  for d in "${DAEMONS[@]}"; do alive "$d" || return 1; done
  [[ $(node_state) == idle* || $(node_state) == mixed* || $(node_state) == allocated* ]]
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for $what (logs: $LOG)"
    sleep 0.5
  done
}

install_packages() {
  local missing=() bin pkg
  for pair in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client slurmdbd:slurmdbd \
              munged:munge mariadbd:mariadb-server; do
    bin=${pair%%:*}; pkg=${pair#*:}
    command -v "$bin" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  log "installing ${missing[*]} with apt-get"
  # Keep the packages' init scripts from starting system-wide daemons: we run our own.
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"; own_policy=1
  fi
  local rc=0
  {
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 ||
      { apt-get update -q >>"$STATE/apt.log" 2>&1 &&
        apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1; }
  } || rc=$?
  ((own_policy)) && rm -f "$policy"
  ((rc == 0)) || die "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
}

write_configs() {
  local host node_hw real_mem mem
  host=$(hostname -s)
  # The real CPU layout, as slurmd detects it ("CPUs=2 Boards=1 SocketsPerBoard=1 ...").
  node_hw=$(slurmd -C | head -n1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
  real_mem=$(slurmd -C | head -n1 | tr ' ' '\n' | sed -n 's/^RealMemory=//p')
  mem=$((real_mem > NODE_MEM_MB ? real_mem : NODE_MEM_MB))

  cat >"$ETC/slurm.conf" <<EOF
# Written by scripts/slurm/local_slurm.sh: single-node test cluster.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$STATE/spool/slurmctld
SlurmdSpoolDir=$STATE/spool/slurmd
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
# Keep finished jobs visible to squeue/scontrol for an hour, in case a client uses them.
MinJobAge=3600
ReturnToService=2
# Use the node definition below as is (declared memory may exceed the real one, see the header).
SlurmdParameters=config_overrides
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
# For slurmdbd connections this names the munge socket (else the system default is used).
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
# sacct then shows the plugin's per-job comment (rule_<name>_wildcards_<...>).
AccountingStoreFlags=job_comment
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 ${node_hw}RealMemory=$mem Gres=gpu:1 State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  cat >"$ETC/gres.conf" <<EOF
# A fake GPU: Slurm only needs a device file to hand out.
Name=gpu File=/dev/null
EOF

  # slurmdbd refuses a config file that others can read (it holds the DB password).
  install -m 600 /dev/null "$ETC/slurmdbd.conf"
  cat >"$ETC/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$LOG/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=infscale
StorageLoc=slurm_acct_db
EOF
}

link_system_conf() {  # /etc/slurm/slurm.conf -> ours, unless it is a real file or another live cluster's
  if [[ -L $SYSTEM_CONF ]]; then
    local target other
    target=$(readlink "$SYSTEM_CONF")
    other=${target%/etc/slurm.conf}
    if [[ $target != "$SLURM_CONF" && -f $other/pids ]] && "$0" status "$other" >/dev/null 2>&1; then
      die "another local Slurm is running from $other; stop it first: $0 stop $other"
    fi
  elif [[ -e $SYSTEM_CONF ]]; then
    die "$SYSTEM_CONF exists and is not ours: refusing to run a test cluster next to a real Slurm"
  fi
  mkdir -p "$(dirname "$SYSTEM_CONF")"
  ln -sfn "$SLURM_CONF" "$SYSTEM_CONF"
}

unlink_system_conf() {
  if [[ -L $SYSTEM_CONF && $(readlink "$SYSTEM_CONF") == "$SLURM_CONF" ]]; then rm -f "$SYSTEM_CONF"; fi
}

spawn() {  # spawn NAME COMMAND...: start a foreground daemon detached from us, record its PID
  local name=$1; shift
  setsid "$@" </dev/null >>"$LOG/$name.out" 2>&1 &
  echo "$name $!" >>"$PIDFILE"
}

start_munge() {
  [[ -f $STATE/munge/munge.key ]] || mungekey --create --keyfile="$STATE/munge/munge.key"
  chmod 600 "$STATE/munge/munge.key"
  # --force: the socket lives in our state dir, which munged would otherwise reject under /tmp.
  spawn munged munged --foreground --force --key-file="$STATE/munge/munge.key" \
    --socket="$MUNGE_SOCKET" --pid-file="$RUN/munged.pid" --seed-file="$STATE/munge/munged.seed" \
    --log-file="$LOG/munged.log"
  wait_for 20 munged test -S "$MUNGE_SOCKET"
}

# A smaller InnoDB redo log (default 96 MB): a state folder then takes ~100 MB instead of ~180 MB.
DB_SIZE_OPTS=(--innodb-log-file-size=8M --innodb-data-file-path=ibdata1:8M:autoextend)

db() { mariadb --no-defaults --socket="$DB_SOCKET" --user=root "$@"; }

start_mariadb() {
  if [[ ! -d $STATE/mysql/mysql ]]; then
    mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" "${DB_SIZE_OPTS[@]}" \
      --auth-root-authentication-method=normal --skip-test-db >"$LOG/mariadb-install.log" 2>&1 ||
      die "mariadb-install-db failed (see $LOG/mariadb-install.log)"
  fi
  spawn mariadbd mariadbd --no-defaults --user=root --datadir="$STATE/mysql" --socket="$DB_SOCKET" \
    --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$RUN/mariadbd.pid" \
    --log-error="$LOG/mariadbd.log" --innodb-buffer-pool-size=64M "${DB_SIZE_OPTS[@]}"
  wait_for 60 mariadbd db -e 'SELECT 1'
  db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'infscale';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurm() {
  spawn slurmdbd slurmdbd -D
  wait_for 60 slurmdbd timeout 10 sacctmgr -n list cluster
  if ! timeout 10 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER"; then
    timeout 10 sacctmgr -i add cluster "$CLUSTER" >/dev/null
  fi
  spawn slurmctld slurmctld -D -i
  wait_for 60 slurmctld timeout 10 scontrol ping
  spawn slurmd slurmd -D
  # shellcheck disable=SC2016  # expanded by the inner bash, on each try
  wait_for "$START_TIMEOUT" "node $(hostname -s) to become idle" bash -c '[[ $(timeout 10 sinfo -h -N -o %T) == idle* ]]'
}

do_start() {
  [[ $(id -u) == 0 ]] || die "needs root (the daemons run as root)"
  if all_up; then
    log "already running ($STATE)"
    return 0
  fi
  if [[ -f $PIDFILE ]]; then
    log "found a partly running cluster in $STATE, restarting it"
    do_stop
  fi
  mkdir -p "$ETC" "$RUN" "$LOG" "$STATE/spool/slurmctld" "$STATE/spool/slurmd" "$STATE/munge"
  chmod 700 "$STATE/munge"
  install_packages
  write_configs
  link_system_conf
  : >"$PIDFILE"
  local t0=$SECONDS
  start_munge
  start_mariadb
  start_slurm
  log "started in $((SECONDS - t0))s: $(sinfo -h -o '%P %D %T %G' | head -n1); SLURM_CONF=$SLURM_CONF"
}

terminate() {  # SIGTERM the given daemons together, wait up to 10 s, then SIGKILL what is left
  local d pids=()
  for d in "$@"; do alive "$d" && pids+=("$(pid_of "$d")"); done
  ((${#pids[@]})) || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 10)) pid left
  while :; do
    left=()
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left+=("$pid"); done
    ((${#left[@]})) || return 0
    ((SECONDS < deadline)) || break
    sleep 0.2
  done
  log "pids ${left[*]} ignored SIGTERM, killing"
  kill -KILL "${left[@]}" 2>/dev/null || true
}

do_stop() {
  [[ -f $PIDFILE ]] || { log "not running ($STATE)"; return 0; }
  if alive slurmctld; then  # running jobs would outlive slurmd
    timeout 10 scancel --full --user="$(id -un)" 2>/dev/null || true
  fi
  # Slurm first (slurmctld may flush accounting to slurmdbd), then what it depends on.
  terminate slurmd slurmctld
  terminate slurmdbd
  terminate mariadbd munged
  rm -f "$PIDFILE"
  unlink_system_conf
  log "stopped ($STATE)"
}

do_status() {
  local d rc=0
  for d in "${DAEMONS[@]}"; do
    if alive "$d"; then echo "$d: running (pid $(pid_of "$d"))"; else echo "$d: not running"; rc=1; fi
  done
  echo "node: $(node_state)"
  ((rc == 0)) && [[ -n $(node_state) ]]
}

case $action in
  start) do_start ;;
  stop) do_stop ;;
  status) do_status ;;
  env) echo "export SLURM_CONF=$SLURM_CONF" ;;
  *) usage ;;
esac
