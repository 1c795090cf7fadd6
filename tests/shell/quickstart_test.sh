#!/usr/bin/env bash
# scripts/quickstart.sh as a user runs it: start, start again, kill a node,
# status, stop. Uses the already-built binaries (DFS_BIN) and private ports.
# Usage: quickstart_test.sh <bin dir>
set -uo pipefail
BIN=$(cd "${1:?usage: quickstart_test.sh <bin dir>}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
export DFS_HOME=$T/home DFS_BIN=$BIN DFS_DATANODES=2
# Below the kernel's ephemeral range (32768+), so no client socket holds it.
NN_PORT=$((20000 + RANDOM % 10000))
export DFS_DATANODE_BASE_PORT=$((NN_PORT + 1))
mkdir -p "$DFS_HOME"
echo "fs.defaultFS = 127.0.0.1:$NN_PORT" >"$DFS_HOME/dfs.conf"
trap '"$ROOT/scripts/quickstart.sh" stop >/dev/null 2>&1; rm -rf "$T"' EXIT

pass=0 fail=0
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $what"; fi
}

out=$("$ROOT/scripts/quickstart.sh" 2>&1); rc=$?
[ $rc -eq 0 ] || printf '%s\n' "$out" | tail -n 20
check "first start exits 0" [ $rc -eq 0 ]
check "sample listed" grep -q "sample.txt" <<<"$out"
check "two live DataNodes reported" grep -q "Live datanodes (2)" <<<"$out"
check "tells what to type next" grep -q "Your cluster is running" <<<"$out"
check "one log per daemon" [ -s "$DFS_HOME/logs/namenode.log" -a -s "$DFS_HOME/logs/datanode2.log" ]

MNT=$DFS_HOME/mnt
if [ -r /dev/fuse ] && [ -w /dev/fuse ] && command -v fusermount3 >/dev/null; then
  check "says where it mounted" grep -q "Mounting the cluster at $MNT" <<<"$out"
  check "the mount shows the sample" grep -q "quick brown fox" "$MNT/user/$(id -un)/sample.txt"
else
  echo "note: no FUSE here (/dev/fuse or fusermount3 missing); the mount is not checked"
fi

out=$("$ROOT/scripts/quickstart.sh" 2>&1); rc=$?
check "second start exits 0" [ $rc -eq 0 ]
check "second start keeps the running daemons" grep -q "namenode already running" <<<"$out"
check "sample still readable" bash -c "'$BIN/dfs' cat sample.txt | grep -q 'quick brown fox'"

victim=$(cat "$DFS_HOME/pids/datanode2.pid")
kill -9 "$victim"
for _ in $(seq 100); do kill -0 "$victim" 2>/dev/null || break; sleep 0.05; done
out=$("$ROOT/scripts/quickstart.sh" status 2>&1)
check "status shows the killed node stopped" grep -q "datanode2: stopped" <<<"$out"
check "status shows the others running" grep -q "namenode: running" <<<"$out"

pids=$(cat "$DFS_HOME"/pids/*.pid)
out=$("$ROOT/scripts/quickstart.sh" stop 2>&1)
check "stop stops the rest" grep -q "stopped namenode" <<<"$out"
alive=0
for p in $pids; do kill -0 "$p" 2>/dev/null && alive=1; done
check "no daemon left" [ $alive -eq 0 ]
check "nothing left mounted" bash -c "! grep -q ' $MNT ' /proc/self/mountinfo"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
