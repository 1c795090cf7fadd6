#!/usr/bin/env bash
# The recovery benchmark: how long a four-DataNode cluster takes to restore
# full replication after a DataNode dies, and how fast a put runs while that
# re-replication is going on. Builds Release; every round starts two fresh
# clusters (one NameNode, four DataNodes) in a throwaway directory, writes
# --size of random data to each, and kill -9s the DataNode holding most of its
# replicas: on the first, it times the death to full replication; on the
# second, it puts --size/2 before the kill and again while the copies run.
# Prints `name value unit` lines with the baselines measured in the same round
# (dd write+fsync on the same disk; the same put on the healthy cluster).
# See bench/README.md for what every line means.
#
#   bench/recovery_bench.sh [--size 1g] [--block-size 128m] [--replication 3]
#                           [--dead-interval 10] [--heartbeat 1]
#                           [--replication-interval 3] [--max-streams 2]
#                           [--runs 3] [--timeout 600] [--dir-parent DIR]
#                           [--no-build] [--keep]
#
# Intervals are in seconds. Lines starting with '#' are notes, not
# measurements. Exit status: 0 when every measurement ran (whether or not the
# target is met), non-zero on errors.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SIZE=1g
BLOCK=128m
REPL=3
DEAD=10
HEARTBEAT=1
REPL_INTERVAL=3
MAX_STREAMS=2
RUNS=3
TIMEOUT=600
PARENT=${TMPDIR:-/tmp}
BUILD_IT=1
KEEP=0
DATANODES=4

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --size) need_arg "$@"; SIZE=$2; shift 2 ;;
    --block-size) need_arg "$@"; BLOCK=$2; shift 2 ;;
    --replication) need_arg "$@"; REPL=$2; shift 2 ;;
    --dead-interval) need_arg "$@"; DEAD=$2; shift 2 ;;
    --heartbeat) need_arg "$@"; HEARTBEAT=$2; shift 2 ;;
    --replication-interval) need_arg "$@"; REPL_INTERVAL=$2; shift 2 ;;
    --max-streams) need_arg "$@"; MAX_STREAMS=$2; shift 2 ;;
    --runs) need_arg "$@"; RUNS=$2; shift 2 ;;
    --timeout) need_arg "$@"; TIMEOUT=$2; shift 2 ;;
    --dir-parent) need_arg "$@"; PARENT=$2; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

SIZE_BYTES=$(to_bytes "$SIZE")
[ "$SIZE_BYTES" -ge $((2 * 1024 * 1024)) ] || die "--size must be at least 2m"
SIZE_MIB=$((SIZE_BYTES / 1024 / 1024))
HALF_BYTES=$((SIZE_BYTES / 2))
to_bytes "$BLOCK" >/dev/null
for opt in RUNS TIMEOUT DEAD HEARTBEAT REPL_INTERVAL MAX_STREAMS REPL; do
  [[ "${!opt}" =~ ^[1-9][0-9]*$ ]] || die "--$(echo "${opt,,}" | tr _ -) must be a positive whole number"
done
[ "$REPL" -lt "$DATANODES" ] || die "--replication must be below $DATANODES, or a dead DataNode's replicas have nowhere to go"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${DFS_BUILD_DIR:-$ROOT/build-release}
BIN=$BUILD/bin
export LC_ALL=C

# ------------------------------------------------------------------ build
if [ "$BUILD_IT" -eq 1 ]; then
  echo "# building Release in $BUILD" >&2
  BUILD_LOG=$(mktemp)
  if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDFS_BUILD_TESTS=OFF &&
         cmake --build "$BUILD" -j2 --target dfs-namenode dfs-datanode core_bench recovery_bench; } >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    rm -f "$BUILD_LOG"
    die "the build failed (output above)"
  fi
  rm -f "$BUILD_LOG"
fi
for b in dfs-namenode dfs-datanode core_bench recovery_bench; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build it (or drop --no-build)"
done

# ------------------------------------------------------------------ directory and cleanup
mkdir -p "$PARENT"
DIR=$(mktemp -d "$PARENT/dfs-recovery-bench.XXXXXX") || die "cannot create a directory under $PARENT"
PIDS=()        # the daemons of the cluster that is up (the killed one too, until it is reaped)
WATCH_PID=     # a background watch, while one runs
# stop_daemons: SIGTERM every daemon started, SIGKILL after 10 s, and reap them.
stop_daemons() {
  stop_cluster
  PIDS=()
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$WATCH_PID" ]; then kill -TERM "$WATCH_PID" 2>/dev/null || true; wait "$WATCH_PID" 2>/dev/null || true; fi
  stop_daemons
  rm -f "$DIR/ddfile" "$DIR"/data.*
  finish_dir $rc '*/dn*/' '*/nn/'
  exit $rc
}
on_exit cleanup

# The largest moment: the file's replicas, the copies replacing the dead
# node's (whose own stay on disk), two half-size files, the two local data
# files, plus slack.
NEED_KB=$(( (SIZE_BYTES * (REPL + 1) + HALF_BYTES * (REPL + 1) + SIZE_BYTES + HALF_BYTES) / 1024 + 512 * 1024 ))
need_free_kb "$NEED_KB"

# Keep the user's config and NameNode out of it.
unset DFS_CONF DFS_NAMENODE


# start_cluster NAME: a fresh NameNode and $DATANODES DataNodes under $DIR/NAME.
# Sets CL (the cluster's directory), NN (host:port), PIDS (NameNode first, then
# DataNode i at index i), and waits until every DataNode is live.
start_cluster() {
  CL=$DIR/$1
  mkdir -p "$CL/logs"
  export DFS_HOME=$CL
  local timing=(-D "dfs.heartbeat.interval=${HEARTBEAT}s")
  "$BIN/dfs-namenode" -D dfs.namenode.rpc-address=127.0.0.1:0 -D "dfs.namenode.name.dir=$CL/nn" "${timing[@]}" \
    -D "dfs.namenode.datanode.dead.interval=${DEAD}s" \
    -D "dfs.namenode.replication.interval=${REPL_INTERVAL}s" \
    -D "dfs.namenode.replication.max-streams=$MAX_STREAMS" \
    --port-file "$CL/nn.port" >"$CL/logs/namenode.log" 2>&1 </dev/null &
  PIDS=($!)
  NN=127.0.0.1:$(wait_port_file "$CL/nn.port" rpc "${PIDS[0]}" "$CL/logs/namenode.log")
  local i
  for i in $(seq "$DATANODES"); do
    "$BIN/dfs-datanode" -D "fs.defaultFS=$NN" -D dfs.datanode.address=127.0.0.1:0 "${timing[@]}" \
      -D "dfs.datanode.data.dir=$CL/dn$i" --port-file "$CL/dn$i.port" \
      >"$CL/logs/datanode$i.log" 2>&1 </dev/null &
    PIDS+=($!)
  done
  for i in $(seq "$DATANODES"); do
    wait_port_file "$CL/dn$i.port" xfer "${PIDS[$i]}" "$CL/logs/datanode$i.log" >/dev/null
  done
  CLIENT=(--namenode "$NN" -D "dfs.blocksize=$BLOCK" -D "dfs.replication=$REPL")
  run 90 core_bench wait --datanodes "$DATANODES" --timeout 60 >&2
}

# stop_cluster: stops it and frees its disk space (logs stay while --keep).
stop_cluster() {
  stop_daemons
  if [ "$KEEP" -eq 1 ]; then return; fi
  rm -rf "$CL"/dn*/ "$CL"/nn/
}

# run SECONDS PROGRAM ARGS...: a bench program against the cluster that is up,
# with a deadline and a clear error.
run() {
  local secs=$1 prog=$2; shift 2
  local rc=0
  timeout --kill-after=10 "$secs" "$BIN/$prog" "${CLIENT[@]}" "$@" || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then die "$prog $1 did not finish within $secs s; daemon logs: $CL/logs/"; fi
  [ $rc -eq 0 ] || die "$prog $1 failed (exit $rc); daemon logs: $CL/logs/"
}

# kill_holder PATH: kill -9 the DataNode holding the most replicas of PATH.
# Sets VICTIM (IP:XFERPORT), KILLED_AT (nanoseconds since the epoch) and
# LIVE_DIRS (--data-dir options for the watch: the other DataNodes' block dirs).
kill_holder() {
  local line port i
  line=$(run 60 recovery_bench holders "$1" | head -n 1)
  [ -n "$line" ] || die "no DataNode holds a replica of $1"
  VICTIM=${line%% *}
  port=${VICTIM##*:}
  for i in $(seq "$DATANODES"); do
    if [ "$(sed -n 's/^xfer=//p' "$CL/dn$i.port")" = "$port" ]; then
      # Reap it at once, and quietly (bash reports a job killed by a signal
      # on stderr), and forget its pid.
      {
        kill -KILL "${PIDS[$i]}"
        KILLED_AT=$(date +%s%N)
        wait "${PIDS[$i]}" || true
      } 2>/dev/null
      echo "# killed DataNode $i ($VICTIM, pid ${PIDS[$i]}; held $(echo "$line" | awk '{print $2}') block(s) of $1)" >&2
      unset "PIDS[$i]"
      LIVE_DIRS=()
      local j
      for j in $(seq "$DATANODES"); do [ "$j" -eq "$i" ] || LIVE_DIRS+=(--data-dir "$CL/dn$j"); done
      return 0
    fi
  done
  die "no DataNode of this cluster serves $VICTIM"
}

value_in() { awk -v n="$2" '$1 == n {print $2; exit}' "$1"; }
echo "# recovery_bench size=$SIZE block_size=$BLOCK replication=$REPL datanodes=$DATANODES runs=$RUNS dir=$DIR"
echo "# host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), disk $(df -P "$DIR" | awk 'NR==2 {print $1}'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "dead_interval $DEAD s"
echo "heartbeat_interval $HEARTBEAT s"
echo "replication_interval $REPL_INTERVAL s"
echo "replication_max_streams $MAX_STREAMS streams"

# Random (incompressible) data, generated once, read by every put from the page cache.
echo "# generating $SIZE_MIB MiB + $((HALF_BYTES / 1048576)) MiB of random data" >&2
head -c "$SIZE_BYTES" /dev/urandom >"$DIR/data.big"
head -c "$HALF_BYTES" /dev/urandom >"$DIR/data.half"

# round N: one of each measurement, in the same noise conditions, as
# `name value unit` lines in $DIR/round.N.
round() {
  local out=$DIR/round.$1 dd_out watch_out=$DIR/watch.$1 started=$DIR/started.$1 done=$DIR/done.$1
  : >"$out"

  # The disk's own ceiling, on the disk the DataNodes write to.
  sync
  dd_out=$(dd if=/dev/zero of="$DIR/ddfile" bs=1M count="$SIZE_MIB" conv=fsync 2>&1) || die "dd write failed: $dd_out"
  rm -f "$DIR/ddfile"
  echo "disk_write_fsync_ceiling $(echo "$dd_out" | dd_rate) MB/s" >>"$out"
  sync

  # 1. Death to full replication, on an otherwise idle cluster.
  echo "# round $1: re-replication on an idle cluster" >&2
  start_cluster "a$1"
  run 1800 recovery_bench put "$DIR/data.big" /bench/big --replication "$REPL" --block-size "$BLOCK" |
    awk '$1 == "put_throughput" {print}' >>"$out"
  kill_holder /bench/big
  run $((TIMEOUT + 60)) recovery_bench watch /bench/big --node "$VICTIM" --since "$KILLED_AT" \
    --timeout "$TIMEOUT" "${LIVE_DIRS[@]}" >>"$out"
  stop_cluster

  # 2. A put of half the size on the healthy cluster, then the same put from
  #    the moment the re-replication of a killed DataNode's replicas is seen at
  #    work until it is done (the put then closes its file early, or ends first).
  echo "# round $1: put during re-replication" >&2
  start_cluster "b$1"
  run 1800 recovery_bench put "$DIR/data.big" /bench/big --replication "$REPL" --block-size "$BLOCK" >/dev/null
  run 1800 recovery_bench put "$DIR/data.half" /bench/half0 --replication "$REPL" --block-size "$BLOCK" |
    awk '$1 == "put_throughput" {print "put_healthy_throughput", $2, $3}' >>"$out"
  run 60 core_bench rm /bench/half0  # not part of what gets re-replicated
  kill_holder /bench/big
  rm -f "$started" "$done"
  timeout --kill-after=10 $((TIMEOUT + 60)) "$BIN/recovery_bench" "${CLIENT[@]}" watch /bench/big \
    --node "$VICTIM" --since "$KILLED_AT" --timeout "$TIMEOUT" "${LIVE_DIRS[@]}" \
    --started-file "$started" --done-file "$done" >"$watch_out" &
  WATCH_PID=$!
  while [ ! -e "$started" ] && kill -0 "$WATCH_PID" 2>/dev/null; do sleep 0.05; done
  if [ ! -e "$started" ]; then
    wait "$WATCH_PID" || true
    WATCH_PID=
    die "re-replication was never seen at work (the watch's error is above); daemon logs: $CL/logs/"
  fi
  run 1800 recovery_bench put "$DIR/data.half" /bench/half1 --replication "$REPL" --block-size "$BLOCK" \
    --until-file "$done" | awk '
      {v[$1] = $2}
      END {
        # No byte written: the copies were done before the put began (a tiny --size).
        print "put_during_rereplication_throughput", (v["put_bytes"] > 0 ? v["put_throughput"] : "nan"), "MB/s"
        print "put_during_rereplication_bytes", v["put_bytes"], "bytes"
        print "put_during_rereplication_s", v["put_seconds"], "s"
      }' >>"$out"
  local rc=0
  wait "$WATCH_PID" || rc=$?
  WATCH_PID=
  [ $rc -eq 0 ] || die "the watch of the re-replication during the put failed (exit $rc); daemon logs: $CL/logs/"
  stop_cluster
  echo "rereplication_total_during_put_s $(value_in "$watch_out" rereplication_total_s) s" >>"$out"

  # Ratios, per round (each pair was measured back to back).
  echo "rereplication_vs_disk_ceiling $(ratio "$(value_in "$out" rereplication_mb_per_s)" \
    "$(value_in "$out" disk_write_fsync_ceiling)") ratio" >>"$out"
  echo "put_during_rereplication_ratio $(ratio "$(value_in "$out" put_during_rereplication_throughput)" \
    "$(value_in "$out" put_healthy_throughput)") ratio" >>"$out"
}

for r in $(seq 1 "$RUNS"); do
  round "$r"
done

# The median of the rounds for every line; each round's values as a note.
RESULTS=$DIR/results
: >"$RESULTS"
for name in disk_write_fsync_ceiling put_throughput \
    rereplication_detect_s rereplication_start_s rereplication_copy_s rereplication_total_s \
    rereplicated_blocks rereplicated_bytes rereplication_mb_per_s rereplication_vs_disk_ceiling \
    rereplication_transfer_s rereplication_transfer_mb_per_s \
    put_healthy_throughput put_during_rereplication_throughput put_during_rereplication_bytes \
    put_during_rereplication_s put_during_rereplication_ratio rereplication_total_during_put_s; do
  unit=$(awk -v n="$name" '$1 == n {print $3; exit}' "$DIR/round.1")
  # nan (nothing to measure in that round) is left out of the median.
  vals=$(awk -v n="$name" '$1 == n && $2 != "nan" {print $2}' "$DIR"/round.* | sort -g)
  count=$(echo "$vals" | grep -c . || true)
  case "$unit" in MB/s) fmt=%.1f ;; s) fmt=%.2f ;; ratio) fmt=%.3f ;; *) fmt=%.0f ;; esac
  median=nan
  [ "$count" -eq 0 ] || median=$(echo "$vals" | awk -v c="$count" -v f="$fmt\n" \
    'NR == int((c + 1) / 2) {m = $1} NR == int(c / 2) + 1 {n = $1} END {printf f, (m + n) / 2}')
  [ "$RUNS" -gt 1 ] && echo "# $name per round: $(for r in $(seq 1 "$RUNS"); do value_in "$DIR/round.$r" "$name" | tr '\n' ' '; done)"
  echo "$name $median $unit" | tee -a "$RESULTS"
done

RATIO=$(value_in "$RESULTS" put_during_rereplication_ratio)
echo "# ratios are the median of the per-round ratios (each pair measured back to back in one round)"
echo "# rereplication_detect_s is dead_interval plus up to one heartbeat and one NameNode check; the rest is rereplication_copy_s"
VERDICT=$(awk -v v="$RATIO" 'BEGIN { print (v ~ /^[0-9.]+$/ && v + 0 >= 0.5) ? "met" : "missed" }')
echo "# target put_during_rereplication_ratio>=0.50 $RATIO $VERDICT (suggested: re-replication is rate-bounded, so the cluster stays usable)"
if [ "$(value_in "$RESULTS" put_during_rereplication_bytes)" = 0 ]; then
  echo "# the re-replication was done before the put could write anything: try a larger --size"
elif awk -v s="$(value_in "$RESULTS" put_during_rereplication_s)" 'BEGIN { exit !(s < 1) }'; then
  echo "# the put ran only $(value_in "$RESULTS" put_during_rereplication_s) s alongside the re-replication: too short to judge (its create and close dominate); use a larger --size"
elif [ "$(value_in "$RESULTS" put_during_rereplication_bytes)" -ge "$HALF_BYTES" ]; then
  echo "# the put wrote all its $((HALF_BYTES / 1048576)) MiB before the re-replication was done"
else
  echo "# the put was closed when the re-replication was done, after $(value_in "$RESULTS" put_during_rereplication_bytes) of its $HALF_BYTES bytes"
fi
