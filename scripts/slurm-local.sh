#!/usr/bin/env bash
# slurm-local.sh: a real single-node Slurm cluster on this machine, for `hpo launch slurm` tests and CI.
#
# Adapted from /work/shared/reference/slurm-local-setup.sh (see cluster-facts.md §1 for the pitfalls it avoids).
# Debian's packages (bookworm: Slurm 22.05, munge), daemons started by hand: no systemd. Run it as root.
#   munged -> [mariadbd -> slurmdbd] -> slurmctld -> slurmd
# The node is this host: CPUs = nproc, and 2 fake GPUs as GRES (char devices that behave like /dev/null), so
# `--gpus-per-task 1` jobs are scheduled and see CUDA_VISIBLE_DEVICES as on a GPU node.
#
# Usage: scripts/slurm-local.sh [start|status|stop|selftest|clean]
#   start     install the packages if missing, write the configs, start the daemons that are not running, wait for
#             the node to be idle (idempotent; 0.2 s when already up)
#   status    the daemons this script started and sinfo; exit 0 when the cluster answers with a usable node, 3 if not
#   stop      cancel every job, then stop only the daemons this script started, one PID at a time
#   selftest  sbatch --array=0-2 and a GRES job
#   clean     stop + delete Slurm state and logs
# Environment:
#   SLURM_LOCAL_ACCOUNTING=0  1: MariaDB + slurmdbd, so that sacct works (about 10 s more of apt). transfer-hpo needs
#                             no sacct: it watches squeue and the study, never submitit's job states.
#   SLURM_LOCAL_FAKE_GPUS=2   fake GPUs per node (GRES gpu); 0 turns GRES off
set -euo pipefail

ACTION=${1:-start}
ACCOUNTING=${SLURM_LOCAL_ACCOUNTING:-0}
FAKE_GPUS=${SLURM_LOCAL_FAKE_GPUS:-2}
CLUSTER=localcluster
NODE=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 * 3 / 4 ))
RUNDIR=/run/slurm-local            # PID files of the daemons this script started
STATE=/var/lib/slurm
LOGDIR=/var/log/slurm
DB_PASS=slurm-local                # local-only MariaDB user for slurmdbd

log() { printf '[slurm-local %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { [ -s "$1" ] && cat "$1" || true; }
running() { # running NAME PIDFILE: the PID in the file is alive and is NAME (not a reused PID)
  local pid; pid=$(pid_of "$2")
  alive "$pid" && [ "$(ps -o comm= -p "$pid" 2>/dev/null)" = "$1" ]
}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local t=$1 what=$2; shift 2
  for _ in $(seq $((t * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  die "timed out after ${t}s waiting for $what"
}
wait_job() { # wait_job JOBID: poll squeue until the job (all array tasks) left the queue (sbatch --wait is slower)
  for _ in $(seq 600); do [ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0; sleep 0.2; done
  die "job $1 still queued after 120 s"
}

install_packages() {
  local pkgs=(slurm-wlm slurmctld slurmd slurm-client munge) missing=()
  [ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server)
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_file_if_changed() { # write_file_if_changed PATH MODE < content; returns 0 if it changed
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return 1; fi
  install -m "$2" "$tmp" "$1"; rm -f "$tmp"; return 0
}

CONFIG_CHANGED=0
write_configs() { # sets CONFIG_CHANGED=1 if a config file changed
  local gres_types="" node_gres=""
  mkdir -p /etc/slurm "$STATE/slurmctld" "$STATE/slurmd-$NODE" "$LOGDIR" "$RUNDIR"
  if [ "$FAKE_GPUS" -gt 0 ]; then
    gres_types="GresTypes=gpu"; node_gres="Gres=gpu:$FAKE_GPUS"
    mkdir -p "$STATE/fake-gpu"
    for i in $(seq 0 $((FAKE_GPUS - 1))); do
      # gres.conf File= must be a character device; major 1 minor 3 is what /dev/null is
      [ -c "$STATE/fake-gpu/nvidia$i" ] || { rm -f "$STATE/fake-gpu/nvidia$i"; mknod "$STATE/fake-gpu/nvidia$i" c 1 3; }
    done
  fi
  local acct="AccountingStorageType=accounting_storage/none"
  [ "$ACCOUNTING" = 1 ] && acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu"
  write_file_if_changed /etc/slurm/slurm.conf 0644 <<EOF && CONFIG_CHANGED=1
# written by transfer-hpo scripts/slurm-local.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups: processes are tracked through /proc (a job step's whole process tree gets its signals)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
$acct
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# the default batch_sched_delay (3 s) holds every short job for about 3 s
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd-%n.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd-%n
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
MinJobAge=300
KillWait=5
InactiveLimit=0
Waittime=0
SlurmctldTimeout=30
SlurmdTimeout=30
$gres_types
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM_MB $node_gres State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  if [ "$FAKE_GPUS" -gt 0 ]; then
    write_file_if_changed /etc/slurm/gres.conf 0644 <<EOF && CONFIG_CHANGED=1
AutoDetect=off
NodeName=$NODE Name=gpu File=$STATE/fake-gpu/nvidia[0-$((FAKE_GPUS - 1))]
EOF
  elif [ -f /etc/slurm/gres.conf ]; then
    rm -f /etc/slurm/gres.conf; CONFIG_CHANGED=1
  fi
  if [ "$ACCOUNTING" = 1 ]; then
    # slurmdbd refuses a slurmdbd.conf that others can read
    write_file_if_changed /etc/slurm/slurmdbd.conf 0600 <<EOF && CONFIG_CHANGED=1
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
PidFile=/run/slurmdbd.pid
LogFile=$LOGDIR/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  fi
  return 0
}

start_daemon() { # start_daemon NAME PIDFILE COMMAND...: start a forking daemon, record its PID once it wrote it
  local name=$1 pidfile=$2; shift 2
  rm -f "$pidfile"                 # a stale file would name the old PID
  log "starting $name"
  "$@"
  wait_for 30 "$name to write $pidfile" running "${name%%-*}" "$pidfile"
  cp "$pidfile" "$RUNDIR/$name.pid"
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then  # Debian's postinst normally creates it
    log "creating /etc/munge/munge.key"
    mungekey --create --keyfile=/etc/munge/munge.key --force
  fi
  chown munge:munge /etc/munge/munge.key; chmod 0600 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return 0; fi   # one already answers
  start_daemon munged /run/munge/munged.pid runuser -u munge -- /usr/sbin/munged
  wait_for 10 munged sh -c 'munge -n | unmunge'
}

start_mariadb() {
  if ! mariadb-admin ping >/dev/null 2>&1; then   # a server of the machine's own is used as it is
    log "starting mariadbd"
    install -d -o mysql -g mysql -m 0755 /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    start-stop-daemon --start --background --make-pidfile --pidfile "$RUNDIR/mariadbd.pid" \
      --chuid mysql --exec /usr/sbin/mariadbd -- --user=mysql --bind-address=127.0.0.1
    wait_for 30 mariadbd mariadb-admin ping
  fi
  mariadb -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
              GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
}

start_slurmdbd() {
  running slurmdbd /run/slurmdbd.pid && return 0
  start_daemon slurmdbd /run/slurmdbd.pid slurmdbd
  wait_for 30 slurmdbd sacctmgr -n list cluster
  sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" || sacctmgr -i add cluster "$CLUSTER" >/dev/null
}

node_usable() { sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated|completing)'; }

start_slurm() {
  if ! running slurmctld /run/slurmctld.pid; then
    start_daemon slurmctld /run/slurmctld.pid slurmctld
    wait_for 30 slurmctld scontrol ping
  fi
  running slurmd "/run/slurmd-$NODE.pid" || start_daemon "slurmd-$NODE" "/run/slurmd-$NODE.pid" slurmd -N "$NODE"
  local st=""
  for _ in $(seq 150); do   # up to 30 s
    node_usable && return 0
    st=$(sinfo -h -N -n "$NODE" -o '%T' 2>/dev/null || true)
    if echo "$st" | grep -Eq '^(down|drained|draining)'; then
      scontrol update nodename="$NODE" state=resume 2>/dev/null || true
    fi
    sleep 0.2
  done
  die "node $NODE not usable ('$st'): see $LOGDIR/slurmd-$NODE.log and $LOGDIR/slurmctld.log"
}

stop_pid() { # stop_pid NAME PIDFILE: SIGTERM the recorded PID if it is still NAME, SIGKILL after 30 s
  local pid; pid=$(pid_of "$2")
  if running "$1" "$2"; then
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 150); do alive "$pid" || break; sleep 0.2; done
    alive "$pid" && { log "$1 did not stop in 30 s: SIGKILL"; kill -KILL "$pid"; }
  fi
  rm -f "$2"
}

do_stop() { # do_stop [slurm-only]
  if running slurmctld "$RUNDIR/slurmctld.pid"; then
    local jobs; jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then log "cancelling jobs $jobs"; scancel --full $jobs 2>/dev/null || true; fi
    for _ in $(seq 100); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
  fi
  local f
  for f in "$RUNDIR"/slurmd-*.pid; do [ -e "$f" ] && stop_pid slurmd "$f"; done
  stop_pid slurmctld "$RUNDIR/slurmctld.pid"
  stop_pid slurmdbd "$RUNDIR/slurmdbd.pid"
  [ "${1:-all}" = slurm-only ] && return 0
  stop_pid mariadbd "$RUNDIR/mariadbd.pid"
  stop_pid munged "$RUNDIR/munged.pid"
}

do_start() {
  local t0=$SECONDS
  install_packages
  write_configs
  if [ "$CONFIG_CHANGED" = 1 ] && [ -n "$(ls "$RUNDIR"/slurm*.pid 2>/dev/null)" ]; then
    log "config changed: restarting the Slurm daemons"   # a running daemon keeps its old config
    do_stop slurm-only
  fi
  start_munge
  if [ "$ACCOUNTING" = 1 ]; then start_mariadb; start_slurmdbd; fi
  start_slurm
  log "cluster up in $((SECONDS - t0)) s"
  sinfo
}

do_status() {
  local n f up=0
  for f in "$RUNDIR"/*.pid; do
    [ -e "$f" ] || continue
    n=$(basename "$f" .pid)
    if running "${n%%-*}" "$f"; then echo "$n: running (pid $(cat "$f"), started by this script)"
    else echo "$n: recorded, not running"; fi
  done
  if command -v scontrol >/dev/null && scontrol ping >/dev/null 2>&1 && node_usable; then up=1; fi
  command -v sinfo >/dev/null && { sinfo 2>&1 || true; }
  [ $up = 1 ] && { echo "cluster: up"; return 0; }
  echo "cluster: down"; return 3
}

do_selftest() {
  local dir jid
  dir=$(mktemp -d); chmod 0777 "$dir"
  jid=$(cd "$dir" && sbatch --parsable --array=0-2 -o "$dir/arr_%A_%a.out" --wrap 'echo $SLURM_ARRAY_TASK_ID')
  wait_job "$jid"
  [ "$(cat "$dir"/arr_"${jid}"_*.out | sort | tr '\n' ' ')" = "0 1 2 " ] || die "array output wrong"
  if [ "$FAKE_GPUS" -gt 0 ]; then
    jid=$(cd "$dir" && sbatch --parsable --ntasks=1 --gpus-per-task=1 -o "$dir/gpu.out" --wrap 'echo $CUDA_VISIBLE_DEVICES')
    wait_job "$jid"
    grep -q '^[0-9]' "$dir/gpu.out" || die "a GPU job saw no CUDA_VISIBLE_DEVICES"
  fi
  rm -rf "$dir"
  log "selftest passed"
}

do_clean() {
  do_stop
  rm -rf "${STATE:?}/slurmctld/"* "${STATE:?}"/slurmd-* "$LOGDIR"/*.log
  log "cleaned"
}

case "$ACTION" in
  start|stop|selftest|clean) [ "$(id -u)" = 0 ] || die "run as root"; mkdir -p "$RUNDIR" ;;
esac
case "$ACTION" in
  start) do_start ;;
  status) do_status ;;
  stop) do_stop ;;
  selftest) do_selftest ;;
  clean) do_clean ;;
  *) die "unknown action '$ACTION' (start|status|stop|selftest|clean)" ;;
esac
