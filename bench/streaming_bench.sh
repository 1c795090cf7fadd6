#!/usr/bin/env bash
# The streaming MapReduce benchmark: builds Release, starts a fresh cluster of
# one NameNode and three DataNodes in a throwaway directory, and prints
# `name value unit` lines for
#   - a Python word count over a generated text (--size, default 256m) run as a
#     cluster job, and in the same run the hand-made single pipeline
#     `cat input | python3 mapper.py | LC_ALL=C sort | python3 reducer.py`,
#     with the ratio cluster / pipeline (target <= 0.6); both answers are
#     compared, and a mismatch fails the run;
#   - the end-to-end time of a trivial job (one small file, `cat` mapper,
#     map-only), the median of --trivial-runs runs (target < 0.5 s).
#
#   bench/streaming_bench.sh [--size 256m] [--block-size 128m] [--reduces 2]
#                            [--runs 1] [--trivial-runs 5] [--combiner]
#                            [--dir-parent DIR] [--no-build] [--keep]
#
# Lines starting with '#' are notes, not measurements. Exit status: 0 when
# every measurement ran (whether or not targets are met), non-zero on errors.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

SIZE=256m
BLOCK=128m
REDUCES=2
RUNS=1
TRIVIAL_RUNS=5
COMBINER=0
PARENT=${TMPDIR:-/tmp}
BUILD_IT=1
KEEP=0

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --size) need_arg "$@"; SIZE=$2; shift 2 ;;
    --block-size) need_arg "$@"; BLOCK=$2; shift 2 ;;
    --reduces) need_arg "$@"; REDUCES=$2; shift 2 ;;
    --runs) need_arg "$@"; RUNS=$2; shift 2 ;;
    --trivial-runs) need_arg "$@"; TRIVIAL_RUNS=$2; shift 2 ;;
    --combiner) COMBINER=1; shift ;;
    --dir-parent) need_arg "$@"; PARENT=$2; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done

SIZE_BYTES=$(to_bytes "$SIZE")
[ "$SIZE_BYTES" -ge $((1024 * 1024)) ] || die "--size must be at least 1m"
to_bytes "$BLOCK" >/dev/null
[[ "$REDUCES" =~ ^[1-9][0-9]*$ ]] || die "--reduces must be a positive number"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number"
[[ "$TRIVIAL_RUNS" =~ ^[1-9][0-9]*$ ]] || die "--trivial-runs must be a positive number"
command -v python3 >/dev/null || die "python3 is needed (apt-get install python3)"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${DFS_BUILD_DIR:-$ROOT/build-release}
BIN=$BUILD/bin
export LC_ALL=C

# ------------------------------------------------------------------ build
if [ "$BUILD_IT" -eq 1 ]; then
  echo "# building Release in $BUILD" >&2
  BUILD_LOG=$(mktemp)
  if ! { cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDFS_BUILD_TESTS=OFF &&
         cmake --build "$BUILD" -j2 --target dfs-namenode dfs-datanode dfs; } >"$BUILD_LOG" 2>&1; then
    tail -n 30 "$BUILD_LOG" >&2
    rm -f "$BUILD_LOG"
    die "the build failed (output above)"
  fi
  rm -f "$BUILD_LOG"
fi
for b in dfs-namenode dfs-datanode dfs; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build it (or drop --no-build)"
done

# ------------------------------------------------------------------ cluster dir and cleanup
mkdir -p "$PARENT"
DIR=$(mktemp -d "$PARENT/dfs-sbench.XXXXXX") || die "cannot create a directory under $PARENT"
PIDS=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_cluster
  finish_dir $rc 'dn*/' nn/ input.txt
  exit $rc
}
on_exit cleanup

# Input (1x), its 3 replicas, the pipeline's sort temporaries and both outputs.
NEED_KB=$(( SIZE_BYTES * 6 / 1024 + 512 * 1024 ))
need_free_kb "$NEED_KB"

mkdir -p "$DIR/job"
export DFS_HOME=$DIR
unset DFS_CONF DFS_NAMENODE
# The pipeline gets the environment a task gets: an inherited
# PYTHONUNBUFFERED=1 (set on some machines) makes the mapper's print() flush
# per line and the pipeline many times slower, which would flatter the ratio.
unset PYTHONUNBUFFERED

# ------------------------------------------------------------------ the scripts, as students write them
cat >"$DIR/job/mapper.py" <<'EOF'
#!/usr/bin/env python3
import sys
for line in sys.stdin:
    for word in line.split():
        print(f"{word}\t1")
EOF
cat >"$DIR/job/reducer.py" <<'EOF'
#!/usr/bin/env python3
import sys
current, count = None, 0
for line in sys.stdin:
    word, _, n = line.rstrip("\n").partition("\t")
    if word == current:
        count += int(n)
    else:
        if current is not None:
            print(f"{current}\t{count}")
        current, count = word, int(n)
if current is not None:
    print(f"{current}\t{count}")
EOF
chmod +x "$DIR/job/mapper.py" "$DIR/job/reducer.py"

# ------------------------------------------------------------------ the input: Zipf-distributed words
echo "# generating $SIZE of text" >&2
timeout 600 python3 - "$DIR/input.txt" "$SIZE_BYTES" <<'EOF'
import random, sys
path, size = sys.argv[1], int(sys.argv[2])
rng = random.Random(42)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 11))) for _ in range(50000)]
cum, total = [], 0.0
for i in range(len(vocab)):
    total += 1.0 / (i + 1)
    cum.append(total)
# One 8 MiB chunk of lines of 4..16 words, repeated (with the lines of each
# copy shuffled) until the size is reached: cheap to make, realistic to count.
lines, n = [], 0
while n < 8 << 20:
    words = rng.choices(vocab, cum_weights=cum, k=rng.randint(4, 16))
    line = " ".join(words) + "\n"
    lines.append(line)
    n += len(line)
with open(path, "w") as f:
    written = 0
    while written < size:
        rng.shuffle(lines)
        for line in lines:
            if written + len(line) > size:
                break
            f.write(line)
            written += len(line)
        else:
            continue
        break
EOF

echo "# cluster in $DIR: 1 NameNode + 3 DataNodes, block size $BLOCK" >&2
start_cluster 3

DFS=("$BIN/dfs" --namenode "$NN")
# dfs_step SECONDS ARGS...: a dfs command with a deadline and a clear error.
dfs_step() {
  local secs=$1; shift
  local rc=0
  timeout --kill-after=10 "$secs" "${DFS[@]}" "$@" || rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then die "dfs $1 did not finish within $secs s (logs: $DIR/logs/)"; fi
  [ $rc -eq 0 ] || die "dfs $1 failed (exit $rc); daemon logs: $DIR/logs/"
}

dfs_step 30 mkdir -p /bench
dfs_step 600 -D "dfs.blocksize=$BLOCK" put "$DIR/input.txt" /bench/input.txt

RESULTS=$DIR/results
: >"$RESULTS"
emit() { echo "$1 $2 $3" | tee -a "$RESULTS"; }

SPLITS=$(( (SIZE_BYTES + $(to_bytes "$BLOCK") - 1) / $(to_bytes "$BLOCK") ))
echo "# streaming_bench size=$SIZE block_size=$BLOCK maps=$SPLITS reduces=$REDUCES combiner=$COMBINER runs=$RUNS dir=$DIR"
echo "# host: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), $(python3 --version)"

JOB_ARGS=(-D "mapreduce.job.reduces=$REDUCES" -input /bench/input.txt -output /bench/wc -overwrite
          -mapper mapper.py -reducer reducer.py -file mapper.py -file reducer.py)
[ "$COMBINER" -eq 1 ] && JOB_ARGS+=(-combiner reducer.py)

for r in $(seq 1 "$RUNS"); do
  echo "# round $r of $RUNS: single pipeline" >&2
  t0=$(now)
  (cd "$DIR/job" && timeout 3600 sh -c 'cat "$1" | python3 mapper.py | LC_ALL=C sort | python3 reducer.py >"$2"' \
      sh "$DIR/input.txt" "$DIR/pipeline.out") || die "the single pipeline failed"
  t1=$(now)
  echo "pipeline $(elapsed "$t0" "$t1")" >>"$DIR/times"

  echo "# round $r of $RUNS: cluster job" >&2
  t0=$(now)
  (cd "$DIR/job" && timeout --kill-after=10 3600 "${DFS[@]}" streaming "${JOB_ARGS[@]}") \
    >"$DIR/logs/job.$r.out" 2>&1 || { tail -n 30 "$DIR/logs/job.$r.out" >&2; die "the cluster job failed (output above)"; }
  t1=$(now)
  echo "cluster $(elapsed "$t0" "$t1")" >>"$DIR/times"

  # Both must give the same answer.
  dfs_step 600 cat '/bench/wc/part-*' | sort >"$DIR/cluster.out"
  sort "$DIR/pipeline.out" | cmp -s - "$DIR/cluster.out" ||
    die "the cluster job's answer differs from the pipeline's (compare $DIR/pipeline.out and $DIR/cluster.out)"
done

PIPE=$(awk '$1 == "pipeline" {print $2}' "$DIR/times" | median)
CLUSTER=$(awk '$1 == "cluster" {print $2}' "$DIR/times" | median)
[ "$RUNS" -gt 1 ] && echo "# per round: $(tr '\n' ' ' <"$DIR/times")"
emit wordcount_pipeline_time "$PIPE" s
emit wordcount_cluster_time "$CLUSTER" s
RATIO=$(ratio "$CLUSTER" "$PIPE")
emit wordcount_cluster_over_pipeline "$RATIO" ratio

# ------------------------------------------------------------------ trivial job
printf 'hello dfs\nhello students\n' >"$DIR/small.txt"
dfs_step 60 put "$DIR/small.txt" /bench/small.txt
: >"$DIR/trivial"
for r in $(seq 1 "$TRIVIAL_RUNS"); do
  t0=$(now)
  timeout --kill-after=10 120 "${DFS[@]}" streaming -input /bench/small.txt -output /bench/trivial -overwrite \
    -mapper cat -reducer NONE >"$DIR/logs/trivial.out" 2>&1 ||
    { tail -n 30 "$DIR/logs/trivial.out" >&2; die "the trivial job failed (output above)"; }
  t1=$(now)
  elapsed "$t0" "$t1" >>"$DIR/trivial"
done
[ "$TRIVIAL_RUNS" -gt 1 ] && echo "# trivial job per run: $(tr '\n' ' ' <"$DIR/trivial")"
TRIVIAL=$(median <"$DIR/trivial")
emit trivial_job_time "$TRIVIAL" s

# ------------------------------------------------------------------ targets
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { if (v == "nan") print "unknown"; else print ((v + 0 <= t + 0) ? "met" : "MISSED") }'; }
echo "# target wordcount_cluster_over_pipeline <= 0.6: $(verdict "$RATIO" 0.6)"
echo "# target trivial_job_time < 0.5 s: $(verdict "$TRIVIAL" 0.5)"
