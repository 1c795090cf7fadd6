#!/usr/bin/env bash
# The core file-system benchmark: builds Release, starts a fresh cluster of one
# NameNode and three DataNodes in a throwaway directory, and prints
# `name value unit` lines for put/get throughput, metadata ops/s, the
# machine's own ceilings (dd write+fsync and read on the same disk, raw
# loopback TCP), the ratios the targets are about, and which targets are met.
# See bench/README.md for what every line means.
#
#   bench/core_bench.sh [--size 1g] [--files 10000] [--clients 8]
#                       [--block-size 128m] [--replication 3] [--runs 3]
#                       [--dir-parent DIR] [--no-build] [--keep]
#
# Lines starting with '#' are notes, not measurements. Exit status: 0 when
# every measurement ran (whether or not targets are met), non-zero on errors.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SIZE=1g
FILES=10000
CLIENTS=8
BLOCK=128m
REPL=3
RUNS=3
PARENT=${TMPDIR:-/tmp}
BUILD_IT=1
KEEP=0

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --size) need_arg "$@"; SIZE=$2; shift 2 ;;
    --files) need_arg "$@"; FILES=$2; shift 2 ;;
    --clients) need_arg "$@"; CLIENTS=$2; shift 2 ;;
    --block-size) need_arg "$@"; BLOCK=$2; shift 2 ;;
    --replication) need_arg "$@"; REPL=$2; shift 2 ;;
    --runs) need_arg "$@"; RUNS=$2; shift 2 ;;
    --dir-parent) need_arg "$@"; PARENT=$2; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

SIZE_BYTES=$(to_bytes "$SIZE")
[ "$SIZE_BYTES" -ge $((1024 * 1024)) ] || die "--size must be at least 1m"
SIZE_MIB=$((SIZE_BYTES / 1024 / 1024))
[[ "$FILES" =~ ^[1-9][0-9]*$ ]] || die "--files must be a positive number"
[[ "$CLIENTS" =~ ^[1-9][0-9]*$ ]] || die "--clients must be a positive number"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${DFS_BUILD_DIR:-$ROOT/build-release}
BIN=$BUILD/bin
export LC_ALL=C

# ------------------------------------------------------------------ build
if [ "$BUILD_IT" -eq 1 ]; then
  echo "# building Release in $BUILD" >&2
  BUILD_LOG=$(mktemp)
  if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDFS_BUILD_TESTS=OFF &&
         cmake --build "$BUILD" -j2 --target dfs-namenode dfs-datanode core_bench; } >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    rm -f "$BUILD_LOG"
    die "the build failed (output above)"
  fi
  rm -f "$BUILD_LOG"
fi
for b in dfs-namenode dfs-datanode core_bench; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build it (or drop --no-build)"
done

# ------------------------------------------------------------------ cluster dir and cleanup
mkdir -p "$PARENT"
DIR=$(mktemp -d "$PARENT/dfs-bench.XXXXXX") || die "cannot create a directory under $PARENT"
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_cluster
  rm -f "$DIR/ddfile"
  finish_dir $rc 'dn*/' nn/
  exit $rc
}
on_exit cleanup

# About 3 replicas + the dd file, plus slack.
NEED_KB=$(( (SIZE_BYTES * (REPL + 1)) / 1024 + 512 * 1024 ))
need_free_kb "$NEED_KB"

mkdir -p "$DIR/logs"
# Keep the user's config and NameNode out of it.
export DFS_HOME=$DIR
unset DFS_CONF DFS_NAMENODE


echo "# cluster in $DIR: 1 NameNode + 3 DataNodes, block size $BLOCK, replication $REPL" >&2
"$BIN/dfs-namenode" -D dfs.namenode.rpc-address=127.0.0.1:0 -D "dfs.namenode.name.dir=$DIR/nn" \
  --port-file "$DIR/nn.port" >"$DIR/logs/namenode.log" 2>&1 </dev/null &
PIDS+=($!)
NN_PORT=$(wait_port_file "$DIR/nn.port" rpc "${PIDS[0]}" "$DIR/logs/namenode.log")
NN=127.0.0.1:$NN_PORT
for i in 1 2 3; do
  "$BIN/dfs-datanode" -D "fs.defaultFS=$NN" -D dfs.datanode.address=127.0.0.1:0 \
    -D "dfs.datanode.data.dir=$DIR/dn$i" --port-file "$DIR/dn$i.port" \
    >"$DIR/logs/datanode$i.log" 2>&1 </dev/null &
  PIDS+=($!)
done
for i in 1 2 3; do wait_port_file "$DIR/dn$i.port" xfer "${PIDS[$i]}" "$DIR/logs/datanode$i.log" >/dev/null; done

BENCH=("$BIN/core_bench" --namenode "$NN" -D "dfs.blocksize=$BLOCK" -D "dfs.replication=$REPL")
# run_bench SECONDS ARGS...: the bench program with a deadline and a clear error.
run_bench() {
  local secs=$1; shift
  local rc=0
  timeout --kill-after=10 "$secs" "${BENCH[@]}" "$@" || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then die "core_bench $1 did not finish within $secs s"; fi
  [ $rc -eq 0 ] || die "core_bench $1 failed (exit $rc); daemon logs: $DIR/logs/"
}
run_bench 90 wait --datanodes 3 --timeout 60 >&2

RESULTS=$DIR/results
: >"$RESULTS"
emit() { echo "$1 $2 $3" | tee -a "$RESULTS"; }
value_of() { awk -v n="$1" '$1 == n {print $2; exit}' "$RESULTS"; }

echo "# core_bench size=$SIZE files=$FILES clients=$CLIENTS block_size=$BLOCK replication=$REPL runs=$RUNS dir=$DIR"
echo "# host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), disk $(df -P "$DIR" | awk 'NR==2 {print $1}')"

# ------------------------------------------------------------------ throughput rounds
CAN_DROP=0
if sync && { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then CAN_DROP=1; fi

# round N: one of each throughput measurement, in the same noise conditions,
# as `name value unit` lines in $DIR/round.N.
round() {
  local out=$DIR/round.$1 dd_out rate
  : >"$out"
  sync
  dd_out=$(dd if=/dev/zero of="$DIR/ddfile" bs=1M count="$SIZE_MIB" conv=fsync 2>&1) || die "dd write failed: $dd_out"
  rate=$(echo "$dd_out" | dd_rate)
  [ -n "$rate" ] || die "could not parse dd's output: $dd_out"
  echo "disk_write_fsync_ceiling $rate MB/s" >>"$out"
  if [ $CAN_DROP -eq 1 ]; then
    sync
    echo 3 >/proc/sys/vm/drop_caches
    dd_out=$(dd if="$DIR/ddfile" of=/dev/null bs=1M 2>&1) || die "dd read failed: $dd_out"
  else
    dd_out=$(dd if="$DIR/ddfile" of=/dev/null bs=1M iflag=direct 2>&1) ||
      dd_out=$(dd if="$DIR/ddfile" of=/dev/null bs=1M 2>&1) || die "dd read failed: $dd_out"
  fi
  echo "disk_read_ceiling $(echo "$dd_out" | dd_rate) MB/s" >>"$out"
  rm -f "$DIR/ddfile"
  sync
  run_bench 300 loopback --size "$SIZE" >>"$out"
  run_bench 1800 put "$SIZE" /bench/big --replication "$REPL" --block-size "$BLOCK" >>"$out"
  # get reads what put just wrote: the DataNodes serve it from the page cache,
  # which is why it is compared with loopback TCP and not with the disk.
  run_bench 1800 get /bench/big --expect "$SIZE" >>"$out"
  # Free the blocks before the next round (deleted asynchronously by the DataNodes).
  run_bench 60 rm /bench/big >>"$out"
}

for r in $(seq 1 "$RUNS"); do
  echo "# round $r of $RUNS" >&2
  round "$r"
done
if [ $CAN_DROP -eq 1 ]; then
  echo "# disk_read_ceiling: page cache dropped before each read (cold read)"
elif dd if=/dev/null of=/dev/null iflag=direct 2>/dev/null; then
  echo "# disk_read_ceiling: cannot drop the page cache (not permitted); read with O_DIRECT (uncached)"
else
  echo "# disk_read_ceiling: cannot drop the page cache: the read may be CACHED (memory speed)"
fi
# The median of the rounds for every throughput line; each round's values as a note.
for name in disk_write_fsync_ceiling disk_read_ceiling loopback_tcp_ceiling put_throughput get_throughput; do
  vals=$(awk -v n="$name" '$1 == n {print $2}' "$DIR"/round.* | sort -g)
  count=$(echo "$vals" | grep -c . || true)
  [ "$count" -gt 0 ] || die "no $name measured"
  median=$(echo "$vals" | awk -v c="$count" 'NR == int((c + 1) / 2) {m = $1} NR == int(c / 2) + 1 {n = $1} END {printf "%.1f\n", (m + n) / 2}')
  [ "$RUNS" -gt 1 ] && echo "# $name per round: $(for r in $(seq 1 "$RUNS"); do awk -v n="$name" '$1 == n {printf "%s ", $2}' "$DIR/round.$r"; done)"
  emit "$name" "$median" MB/s
done

# ------------------------------------------------------------------ metadata
# Every create is two durable NameNode mutations (CREATE, then COMPLETE on
# close), each waiting for a WAL fdatasync, and each client does one at a time.
# The latency of a 4 KiB O_DSYNC append (dd oflag=dsync) is shown for context:
# it is noisy (it also pays for ext4 journal commits a RocksDB WAL may not).
sync
dd_out=$(dd if=/dev/zero of="$DIR/syncfile" bs=4k count=500 oflag=dsync 2>&1) || die "dd dsync failed: $dd_out"
rm -f "$DIR/syncfile"
SYNC_MS=$(echo "$dd_out" | awk '/copied/ {for (i = 1; i <= NF; i++) if ($i == "s," || $i == "s") secs = $(i - 1); gsub(",", "", secs); printf "%.3f\n", secs / 500 * 1000}')
emit disk_sync_write_latency "$SYNC_MS" ms
run_bench 1800 meta --files "$FILES" --clients "$CLIENTS" --dir /bench/meta | tee -a "$RESULTS"

# ------------------------------------------------------------------ ratios and targets
PUT=$(value_of put_throughput)
GET=$(value_of get_throughput)
LOOP=$(value_of loopback_tcp_ceiling)
CREATE=$(value_of create_ops)
STAT=$(value_of stat_ops)
DISK_W=$(value_of disk_write_fsync_ceiling)
PUT_RATIO=$(ratio "$PUT" "$(awk -v w="$DISK_W" -v r="$REPL" 'BEGIN {print w / r}')")
GET_RATIO=$(ratio "$GET" "$LOOP")
emit put_vs_disk_ceiling_div$REPL "$PUT_RATIO" ratio
emit get_vs_loopback "$GET_RATIO" ratio
# What creates/s would be if every WAL sync served all clients at once, took
# what the NameNode's own syncs took during the creates (dd's latency if the
# NameNode did not say), and nothing else took any time.
JOURNAL_MS=$(value_of create_journal_sync_latency)
[ -n "$JOURNAL_MS" ] || JOURNAL_MS=$SYNC_MS
SYNC_BOUND=$(awk -v c="$CLIENTS" -v ms="$JOURNAL_MS" 'BEGIN { if (ms > 0) printf "%.1f\n", c / (2 * ms / 1000); else print "n/a" }')
emit create_sync_bound "$SYNC_BOUND" ops/s
emit create_vs_sync_bound "$(ratio "$CREATE" "$SYNC_BOUND")" ratio

MET=0
TOTAL=0
target() {  # target NAME VALUE THRESHOLD
  local verdict
  verdict=$(awk -v v="$2" -v t="$3" 'BEGIN { print (v ~ /^[0-9.]+$/ && v + 0 >= t + 0) ? "met" : "missed" }')
  TOTAL=$((TOTAL + 1))
  [ "$verdict" = met ] && MET=$((MET + 1))
  echo "target $1>=$3 $2 $verdict"
}
target put_vs_disk_ceiling_div$REPL "$PUT_RATIO" 0.60
target get_vs_loopback "$GET_RATIO" 0.70
target stat_ops "$STAT" 30000
target create_ops "$CREATE" 5000
echo "targets_met $MET/$TOTAL"
