#!/usr/bin/env bash
# A local dfs cluster in one command: installs what is missing, builds
# (Release), starts one NameNode and $DFS_DATANODES DataNodes on 127.0.0.1,
# uploads a sample text, lists it, prints the cluster report, runs a word
# count as a streaming job and mounts the cluster at $DFS_HOME/mnt (when FUSE
# is available).
#
#   scripts/quickstart.sh          start (again: does nothing to what runs)
#   scripts/quickstart.sh stop     stop every daemon it started
#   scripts/quickstart.sh status   show which daemons run
#
# State lives under $DFS_HOME (default ~/.dfs): namenode/, datanodeN/, and
# logs/ and pids/ with one file per daemon, so you can read or kill one node.
# $DFS_HOME/dfs.conf configures every daemon and the shell; the first start
# writes one for the local cluster (so an installed lab's /etc/dfs/dfs.conf
# is not used), and an existing one is kept.
#
# Environment: DFS_HOME, DFS_DATANODES (default 3), DFS_DATANODE_BASE_PORT
# (default 9866; DataNode i serves on base + 10*(i-1)), DFS_MOUNT (where to
# mount; default $DFS_HOME/mnt; "none" for no mount), DFS_BIN (use these
# binaries and skip the build; for tests).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DFS_HOME=${DFS_HOME:-$HOME/.dfs}
DFS_DATANODES=${DFS_DATANODES:-3}
BUILD=$ROOT/build-release
BIN=${DFS_BIN:-$BUILD/bin}
BASE_PORT=${DFS_DATANODE_BASE_PORT:-9866}
LOGS=$DFS_HOME/logs
PIDS=$DFS_HOME/pids
MOUNT=${DFS_MOUNT:-$DFS_HOME/mnt}
export DFS_HOME

say() { printf '\033[1m%s\033[0m\n' "$*"; }

running() {  # running NAME: is the daemon with that pid file alive?
  local f=$PIDS/$1.pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

mounted() { [ "$MOUNT" != none ] && grep -q " $(realpath -m "$MOUNT") " /proc/self/mountinfo 2>/dev/null; }

stop_all() {
  local any=0
  if mounted; then
    # Unmount first, while the cluster can still complete open files.
    "$BIN/dfs" umount "$MOUNT" && echo "unmounted $MOUNT" || echo "could not unmount $MOUNT (see above)" >&2
  fi
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || continue
    local name pid
    name=$(basename "$f" .pid)
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
      echo "stopped $name (pid $pid)"
      any=1
    fi
    rm -f "$f"
  done
  [ $any -eq 1 ] || echo "no dfs daemons were running (DFS_HOME=$DFS_HOME)"
}

status() {
  if mounted; then echo "mount: $MOUNT"; fi
  for f in "$PIDS"/*.pid; do
    [ -e "$f" ] || { echo "nothing started from $DFS_HOME"; return; }
    local name
    name=$(basename "$f" .pid)
    if running "$name"; then echo "$name: running (pid $(cat "$f"), log $LOGS/$name.log)";
    else echo "$name: stopped (see $LOGS/$name.log)"; fi
  done
}

start_daemon() {  # start_daemon NAME BINARY ARGS...
  local name=$1; shift
  if running "$name"; then
    echo "$name already running (pid $(cat "$PIDS/$name.pid"))"
    return
  fi
  nohup "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
  echo "started $name (pid $!, log $LOGS/$name.log)"
}

case "${1:-start}" in
  stop) stop_all; exit 0 ;;
  status) status; exit 0 ;;
  start) ;;
  *) echo "usage: scripts/quickstart.sh [start|stop|status]" >&2; exit 2 ;;
esac

if [ -z "${DFS_BIN:-}" ]; then
  say "==> Installing what is missing"
  scripts/install-deps.sh
  say "==> Building (Release) in $BUILD"
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDFS_BUILD_TESTS=OFF >/dev/null
  if ! cmake --build "$BUILD" -j2 --target dfs dfs-namenode dfs-datanode dfs-fuse >"$BUILD/build.log" 2>&1; then
    tail -n 30 "$BUILD/build.log" >&2
    echo "the build failed; the whole log is in $BUILD/build.log" >&2
    exit 1
  fi
fi
[ -x "$BIN/dfs" ] || { echo "no dfs binaries in $BIN" >&2; exit 1; }

mkdir -p "$LOGS" "$PIDS"
if [ ! -e "$DFS_HOME/dfs.conf" ]; then
  # The local cluster's own file, so that a machine's /etc/dfs/dfs.conf (an
  # installed lab's, see doc/lab.md) does not point these daemons elsewhere.
  {
    printf '# written by scripts/quickstart.sh for a local cluster of %s DataNode(s)\n' "$DFS_DATANODES"
    printf 'fs.defaultFS = dfs://127.0.0.1:8020\n'
    # Fewer DataNodes than the default 3 replicas: a close needs 2 of them
    # (dfs.namenode.replication.min), so ask for no more replicas than there are nodes.
    if [ "$DFS_DATANODES" -lt 3 ]; then printf 'dfs.replication = %s\n' "$DFS_DATANODES"; fi
  } >"$DFS_HOME/dfs.conf"
  say "==> Wrote $DFS_HOME/dfs.conf"
fi
say "==> Starting a NameNode and $DFS_DATANODES DataNode(s) on 127.0.0.1 (state in $DFS_HOME)"
start_daemon namenode "$BIN/dfs-namenode"
for i in $(seq 1 "$DFS_DATANODES"); do
  port=$((BASE_PORT + (i - 1) * 10))
  start_daemon "datanode$i" "$BIN/dfs-datanode" -D "dfs.datanode.address=127.0.0.1:$port" \
    -D "dfs.datanode.data.dir=$DFS_HOME/datanode$i"
done

DFS="$BIN/dfs"
say "==> Waiting for $DFS_DATANODES DataNode(s) to join"
for _ in $(seq 300); do
  if ! running namenode; then
    echo "the NameNode stopped; the end of its log ($LOGS/namenode.log):" >&2
    tail -n 15 "$LOGS/namenode.log" >&2
    exit 1
  fi
  live=$("$DFS" admin report 2>/dev/null | sed -n 's/^Live datanodes (\([0-9]*\)).*/\1/p' || true)
  if [ "${live:-0}" -ge "$DFS_DATANODES" ] && "$DFS" admin safemode get 2>/dev/null | grep -q OFF; then break; fi
  sleep 0.1
done
if [ "${live:-0}" -lt "$DFS_DATANODES" ]; then
  echo "only ${live:-0} of $DFS_DATANODES DataNodes joined; see $LOGS/" >&2
  tail -n 5 "$LOGS"/*.log >&2
  exit 1
fi

say "==> Uploading a sample text"
SAMPLE=$DFS_HOME/sample.txt
if [ ! -f "$SAMPLE" ]; then
  for n in $(seq 1 200); do
    echo "the quick brown fox jumps over the lazy dog $n times"
    echo "a distributed file system stores each block on three machines"
    echo "students write mappers and reducers that read stdin and write stdout"
  done >"$SAMPLE"
fi
"$DFS" mkdir -p "/user/$(id -un)"
"$DFS" put -f "$SAMPLE" sample.txt
"$DFS" ls
echo
"$DFS" admin report
echo

say "==> Running the classic word count as a streaming job"
EXAMPLES=$DFS_HOME/examples
mkdir -p "$EXAMPLES"
cat >"$EXAMPLES/mapper.py" <<'PY'
#!/usr/bin/env python3
"""Word count mapper: one `word<TAB>1` line per word read on stdin."""
import sys

for line in sys.stdin:
    for word in line.split():
        print(f"{word}\t1")
PY
cat >"$EXAMPLES/reducer.py" <<'PY'
#!/usr/bin/env python3
"""Word count reducer: its input is sorted by word, so equal words are adjacent."""
import sys

current, count = None, 0
for line in sys.stdin:
    word, value = line.rstrip("\n").split("\t", 1)
    if word != current:
        if current is not None:
            print(f"{current}\t{count}")
        current, count = word, 0
    count += int(value)
if current is not None:
    print(f"{current}\t{count}")
PY
chmod +x "$EXAMPLES/mapper.py" "$EXAMPLES/reducer.py"
(cd "$EXAMPLES" && "$DFS" streaming -input sample.txt -output wordcount -overwrite \
  -mapper mapper.py -reducer reducer.py -file mapper.py -file reducer.py 2>&1 | grep -v "^\s" )
echo "Top words:"
"$DFS" cat 'wordcount/part-*' | sort -t "$(printf '\t')" -k2,2nr | head -n 5
echo

MOUNT_HINT=""
if [ "$MOUNT" != none ]; then
  if mounted; then
    say "==> The cluster is mounted at $MOUNT"
  elif [ -r /dev/fuse ] && [ -w /dev/fuse ] && command -v fusermount3 >/dev/null; then
    say "==> Mounting the cluster at $MOUNT"
    mkdir -p "$MOUNT"
    "$DFS" mount "$MOUNT" --log "$LOGS/mount.log" || echo "the mount failed; see $LOGS/mount.log" >&2
  else
    echo "(FUSE is not available here, so the cluster is not mounted: /dev/fuse or fusermount3 is missing)"
  fi
  if mounted; then
    ls -l "$MOUNT/user/$(id -un)"
    echo "head -n 2 $MOUNT/user/$(id -un)/sample.txt:"
    head -n 2 "$MOUNT/user/$(id -un)/sample.txt"
    MOUNT_HINT="  ls $MOUNT/user/$(id -un)           # the mount: cp, grep, python open() work there
"
  fi
  echo
fi

say "Your cluster is running. Try:"
cat <<EOT
  export PATH=$BIN:\$PATH
  dfs ls /                          # what is in the file system
  dfs cat sample.txt | head         # relative paths live in /user/$(id -un)
  dfs put yourfile.txt /tmp/        # upload; dfs get /tmp/yourfile.txt . downloads
  dfs fsck / -files -blocks -locations
  dfs admin report                  # DataNodes, capacity, blocks
  cd $EXAMPLES && dfs streaming -input sample.txt -output wc2 \\
      -mapper mapper.py -reducer reducer.py -file mapper.py -file reducer.py
  dfs job -list all                 # jobs and their state; dfs job -logs <id> shows failures
${MOUNT_HINT}  scripts/quickstart.sh stop        # unmount and stop everything (data stays in $DFS_HOME)
Logs: $LOGS/   pids: $PIDS/
EOT
