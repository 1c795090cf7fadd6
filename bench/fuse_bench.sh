#!/usr/bin/env bash
# The FUSE mount benchmark: builds Release, starts a fresh cluster of one
# NameNode and three DataNodes in a throwaway directory, mounts it with
# dfs-fuse, and prints `name value unit` lines for
#   - sequential write and read of a --size file (default 1g) through the
#     mount with `dd bs=1M`, and in the same round `dfs put` and `dfs get` of
#     the same local file, with the ratios mount / dfs (targets: read >= 0.8,
#     write >= 0.7); every copy is checked byte for byte;
#   - creating, stat-ing and deleting --files small files (default 5000)
#     through the mount, in ops/s.
#
#   bench/fuse_bench.sh [--size 1g] [--files 5000] [--runs 3]
#                       [--dir-parent DIR] [--no-build] [--keep]
#
# Needs /dev/fuse and fusermount3 (apt-get install fuse3). Lines starting with
# '#' are notes. Exit status: 0 when every measurement ran (whether or not
# targets are met), non-zero on errors.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SIZE=1g
FILES=5000
RUNS=3
PARENT=${TMPDIR:-/tmp}
BUILD_IT=1
KEEP=0

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --size) need_arg "$@"; SIZE=$2; shift 2 ;;
    --files) need_arg "$@"; FILES=$2; shift 2 ;;
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
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number"
[ -r /dev/fuse ] && [ -w /dev/fuse ] || die "/dev/fuse is not available: FUSE cannot be benchmarked here"
command -v fusermount3 >/dev/null || die "fusermount3 is missing (apt-get install fuse3)"
command -v python3 >/dev/null || die "python3 is needed (apt-get install python3)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${DFS_BUILD_DIR:-$ROOT/build-release}
BIN=$BUILD/bin
export LC_ALL=C

if [ "$BUILD_IT" -eq 1 ]; then
  echo "# building Release in $BUILD" >&2
  BUILD_LOG=$(mktemp)
  if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDFS_BUILD_TESTS=OFF &&
         cmake --build "$BUILD" -j2 --target dfs-namenode dfs-datanode dfs dfs-fuse; } >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    rm -f "$BUILD_LOG"
    die "the build failed (output above)"
  fi
  rm -f "$BUILD_LOG"
fi
for b in dfs-namenode dfs-datanode dfs dfs-fuse; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build it (or drop --no-build)"
done

mkdir -p "$PARENT"
DIR=$(mktemp -d "$PARENT/dfs-fbench.XXXXXX") || die "cannot create a directory under $PARENT"
MNT=$DIR/mnt
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if grep -q " $MNT " /proc/self/mountinfo 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || fusermount3 -uz "$MNT" 2>/dev/null || true
  fi
  stop_cluster
  finish_dir $rc 'dn*/' nn/ local
  exit $rc
}
on_exit cleanup

# The local file, 3 replicas of two cluster copies, and two local copies back.
NEED_KB=$(( SIZE_BYTES * 9 / 1024 + 512 * 1024 ))
need_free_kb "$NEED_KB"

export DFS_HOME=$DIR
unset DFS_CONF DFS_NAMENODE
echo "# cluster in $DIR: 1 NameNode + 3 DataNodes" >&2
start_cluster 3
mkdir -p "$MNT" "$DIR/local"
# The mount daemon runs in the foreground under our control (its pid is ours to stop).
"$BIN/dfs-fuse" -f --namenode "$NN" "$MNT" >"$DIR/logs/fuse.log" 2>&1 </dev/null &
PIDS+=($!)
for _ in $(seq 200); do grep -q " $MNT " /proc/self/mountinfo && break; sleep 0.1; done
grep -q " $MNT " /proc/self/mountinfo || { tail -n 20 "$DIR/logs/fuse.log" >&2; die "dfs-fuse did not mount within 20 s"; }

DFS=("$BIN/dfs" --namenode "$NN")
step() {  # step SECONDS CMD...: a command with a deadline and a clear error
  local secs=$1; shift
  local rc=0
  timeout --kill-after=10 "$secs" "$@" || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then die "'$*' did not finish within $secs s (logs: $DIR/logs/)"; fi
  [ $rc -eq 0 ] || die "'$*' failed (exit $rc); logs: $DIR/logs/"
}
mbps() { awk -v b="$SIZE_BYTES" -v s="$1" 'BEGIN { if (s > 0) printf "%.1f\n", b / s / 1e6; else print "nan" }'; }

echo "# generating a $SIZE local file" >&2
head -c "$SIZE_BYTES" /dev/urandom >"$DIR/local/src"

echo "# fuse_bench size=$SIZE files=$FILES runs=$RUNS dir=$DIR"
echo "# host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), disk $(df -P "$DIR" | awk 'NR==2 {print $1}')"

# round N: dfs put, dfs get, dd into the mount, dd out of it (each copy
# checked), as `name value unit` lines in $DIR/round.N. Every timed copy
# starts after a `sync`, so that none pays for the write-back of the one
# before it.
round() {
  local out=$DIR/round.$1 t0 t1
  : >"$out"
  sync
  t0=$(now); step 1800 "${DFS[@]}" put -f "$DIR/local/src" /bench-put; t1=$(now)
  echo "dfs_put_throughput $(mbps "$(elapsed "$t0" "$t1")") MB/s" >>"$out"
  rm -f "$DIR/local/get"
  sync
  t0=$(now); step 1800 "${DFS[@]}" get /bench-put "$DIR/local/get"; t1=$(now)
  echo "dfs_get_throughput $(mbps "$(elapsed "$t0" "$t1")") MB/s" >>"$out"
  cmp -s "$DIR/local/src" "$DIR/local/get" || die "dfs get returned different bytes"
  rm -f "$DIR/local/get"
  sync
  # dd's close completes the file: the time includes every replica's ack.
  t0=$(now); step 1800 dd if="$DIR/local/src" of="$MNT/bench-dd" bs=1M status=none; t1=$(now)
  echo "mount_write_throughput $(mbps "$(elapsed "$t0" "$t1")") MB/s" >>"$out"
  sync
  t0=$(now); step 1800 dd if="$MNT/bench-dd" of="$DIR/local/get" bs=1M status=none; t1=$(now)
  echo "mount_read_throughput $(mbps "$(elapsed "$t0" "$t1")") MB/s" >>"$out"
  cmp -s "$DIR/local/src" "$DIR/local/get" || die "reading through the mount returned different bytes"
  rm -f "$DIR/local/get" "$MNT/bench-dd"
  step 60 "${DFS[@]}" rm /bench-put
}

for r in $(seq 1 "$RUNS"); do
  echo "# round $r of $RUNS" >&2
  round "$r"
done

RESULTS=$DIR/results
: >"$RESULTS"
emit() { echo "$1 $2 $3" | tee -a "$RESULTS"; }
value_of() { awk -v n="$1" '$1 == n {print $2; exit}' "$RESULTS"; }
for name in dfs_put_throughput dfs_get_throughput mount_write_throughput mount_read_throughput; do
  [ "$RUNS" -gt 1 ] && echo "# $name per round: $(for r in $(seq 1 "$RUNS"); do awk -v n="$name" '$1 == n {printf "%s ", $2}' "$DIR/round.$r"; done)"
  emit "$name" "$(awk -v n="$name" '$1 == n {print $2}' "$DIR"/round.* | median)" MB/s
done
# Ratios per round (each pair ran back to back), then their median.
ratios() {
  for r in $(seq 1 "$RUNS"); do
    ratio "$(awk -v n="$1" '$1 == n {print $2}' "$DIR/round.$r")" "$(awk -v n="$2" '$1 == n {print $2}' "$DIR/round.$r")"
  done | median
}
READ_RATIO=$(ratios mount_read_throughput dfs_get_throughput)
WRITE_RATIO=$(ratios mount_write_throughput dfs_put_throughput)
emit mount_read_over_dfs_get "$READ_RATIO" ratio
emit mount_write_over_dfs_put "$WRITE_RATIO" ratio

# ------------------------------------------------------------------ small files
echo "# $FILES small files through the mount" >&2
step 1800 python3 - "$MNT/small" "$FILES" >>"$RESULTS.small" <<'EOF'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
names = [os.path.join(d, "f%06d" % i) for i in range(n)]
t = time.monotonic()
for p in names:
    with open(p, "w") as f:
        f.write("x")
create = time.monotonic() - t
t = time.monotonic()
for p in names:
    os.stat(p)
stat = time.monotonic() - t
t = time.monotonic()
for p in names:
    os.unlink(p)
delete = time.monotonic() - t
os.rmdir(d)
print("mount_create_ops %.0f ops/s" % (n / create))
print("mount_stat_ops %.0f ops/s" % (n / stat))
print("mount_delete_ops %.0f ops/s" % (n / delete))
EOF
while read -r name value unit; do emit "$name" "$value" "$unit"; done <"$RESULTS.small"

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "nan") print "unknown"; else print ((v + 0 >= t + 0) ? "met" : "MISSED") }'; }
echo "# target mount_read_over_dfs_get >= 0.8: $(verdict "$READ_RATIO" 0.8)"
echo "# target mount_write_over_dfs_put >= 0.7: $(verdict "$WRITE_RATIO" 0.7)"
