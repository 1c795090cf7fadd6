#!/usr/bin/env bash
# End-to-end test of the `dfs` shell, used the way a student uses it, on a real
# cluster: one NameNode and three DataNodes started from <bin dir> on loopback
# with port 0, in a fresh temporary directory that is removed afterwards.
#
#   bash tests/shell/cli_test.sh <bin dir>        (ctest runs it this way)
#
# Every wait has a deadline; a failed check prints what the command said and
# the run goes on. The last line is "N passed, N failed"; the exit code is 1
# when anything failed.
set -u

BIN=$(cd "${1:?usage: cli_test.sh <bin dir>}" && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/dfs_cli_test.XXXXXX")
DAEMON_PIDS=()

cleanup() {
  for pid in "${DAEMON_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for pid in "${DAEMON_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# No user or machine configuration may leak in (an empty $DFS_HOME/dfs.conf
# hides /etc/dfs/dfs.conf); the user (and so the home directory) is fixed.
export DFS_HOME=$T/home DFS_USER=student
unset DFS_CONF DFS_NAMENODE
mkdir -p "$DFS_HOME" "$T/local"
: >"$DFS_HOME/dfs.conf"
L=$T/local
ME=/user/student

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $1"
  [ -s "$T/out" ] && sed 's/^/     out: /' "$T/out" | head -n 8
  [ -s "$T/err" ] && sed 's/^/     err: /' "$T/err" | head -n 8
  return 0
}
# run CMD...: runs CMD with its output in $T/out and $T/err, then keeps a copy
# in $T/last.out and $T/last.err for the checks that follow ("... says so").
run() {
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  cp "$T/out" "$T/last.out"
  cp "$T/err" "$T/last.err"
  return $rc
}
# check NAME CMD...: CMD exits 0.
check() {
  local name=$1; shift
  if run "$@"; then pass "$name"; else fail "$name (exit $?)"; fi
}
# check_rc NAME RC CMD...: CMD exits with RC.
check_rc() {
  local name=$1 want=$2; shift 2
  run "$@"
  local rc=$?
  if [ "$rc" -eq "$want" ]; then pass "$name"; else fail "$name (exit $rc, wanted $want)"; fi
}
# check_out NAME EXPECTED CMD...: CMD exits 0 and prints exactly EXPECTED.
check_out() {
  local name=$1 want=$2; shift 2
  if run "$@" && [ "$(cat "$T/out")" = "$want" ]; then pass "$name"
  else echo "     wanted: $want"; fail "$name"; fi
}
# wait_for SECONDS CMD...: polls CMD every 0.2 s until it succeeds or the deadline passes.
wait_for() {
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.2
  done
}
port_of() { sed -n "s/^$2=//p" "$1" 2>/dev/null; }
die() {
  echo "FAIL $*"
  for f in "$T"/*.log; do echo "--- $f"; tail -n 20 "$f"; done
  echo "$PASSED passed, $((FAILED + 1)) failed"
  exit 1
}

for b in dfs dfs-namenode dfs-datanode; do
  [ -x "$BIN/$b" ] || die "$BIN/$b is missing; build it first"
done

# ---- the cluster ----------------------------------------------------------------
COMMON=(-D dfs.heartbeat.interval=200ms -D dfs.blocksize=1m -D dfs.namenode.replication.interval=500ms)
"$BIN/dfs-namenode" "${COMMON[@]}" -D dfs.namenode.rpc-address=127.0.0.1:0 -D "dfs.namenode.name.dir=$T/nn" \
  --port-file "$T/nn.port" >"$T/nn.log" 2>&1 &
DAEMON_PIDS+=($!)
wait_for 30 grep -q '^rpc=' "$T/nn.port" || die "the NameNode did not write its port"
NN=127.0.0.1:$(port_of "$T/nn.port" rpc)

for i in 1 2 3; do
  "$BIN/dfs-datanode" "${COMMON[@]}" -D "fs.defaultFS=$NN" -D dfs.datanode.address=127.0.0.1:0 \
    -D "dfs.datanode.data.dir=$T/dn$i" --port-file "$T/dn$i.port" >"$T/dn$i.log" 2>&1 &
  DAEMON_PIDS+=($!)
done

# As a student types it, with the test cluster's address and small blocks.
dfs() { "$BIN/dfs" -fs "$NN" -D dfs.blocksize=1m "$@"; }
three_live() { dfs admin report | grep -q '^Live datanodes (3):'; }
wait_for 60 three_live || die "3 DataNodes did not come up"
wait_for 60 dfs admin safemode wait || die "the NameNode stayed in safe mode"
pass "cluster up at $NN with 3 live DataNodes"

# ---- files in and out -------------------------------------------------------------
printf 'hello dfs\nsecond line\n' >"$L/small.txt"
head -c 3500000 /dev/urandom >"$L/big.bin"   # 4 blocks of 1 MiB

check "mkdir -p home" dfs mkdir -p "$ME/in"
check "test -d" dfs test -d "$ME/in"
check "put small" dfs put "$L/small.txt" "$ME/in/small.txt"
check_out "cat small" "$(cat "$L/small.txt")" dfs cat "$ME/in/small.txt"
check "get small" dfs get "$ME/in/small.txt" "$L/small.back"
check "get round trip" cmp "$L/small.txt" "$L/small.back"
check "ls shows one item" sh -c "'$BIN/dfs' -fs $NN ls $ME/in | head -n 1 | grep -qx 'Found 1 items'"
check "ls line" sh -c "'$BIN/dfs' -fs $NN -ls $ME/in | grep -Eq '^-rw-r--r-- +3 student +[^ ]+ +22 [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2} $ME/in/small.txt\$'"

check "put multi-block" dfs put "$L/big.bin" /big.bin
check_out "stat size and block size" "3500000 1048576 3" dfs stat "%b %o %r" /big.bin
check "get multi-block" dfs get /big.bin "$L/big.back"
check "multi-block round trip" cmp "$L/big.bin" "$L/big.back"
check "cat multi-block" sh -c "'$BIN/dfs' -fs $NN cat /big.bin | cmp - '$L/big.bin'"
check "tail is the last KB" bash -c "'$BIN/dfs' -fs $NN tail /big.bin | cmp - <(tail -c 1024 '$L/big.bin')"
check "fsck sees 4 blocks" sh -c "'$BIN/dfs' -fs $NN fsck /big.bin -files -blocks | grep -q '^/big.bin 3500000 bytes, replicated: replication=3, 4 block(s):  OK'"

printf 'replacement\n' >"$L/other.txt"
check_rc "put onto an existing file fails" 1 dfs put "$L/other.txt" "$ME/in/small.txt"
check_out "... with File exists" "dfs: '$ME/in/small.txt': File exists" cat "$T/last.err"
check_out "... and leaves the original" "$(cat "$L/small.txt")" dfs cat "$ME/in/small.txt"
check "put -f overwrites" dfs put -f "$L/other.txt" "$ME/in/small.txt"
check_out "... the new content" "replacement" dfs cat "$ME/in/small.txt"
check_rc "no ._COPYING_ left behind" 1 sh -c "'$BIN/dfs' -fs $NN ls -R / | grep -q _COPYING_"

check "put from stdin" sh -c "printf 'piped\n' | '$BIN/dfs' -fs $NN put - /stdin.txt"
check_out "cat stdin upload" "piped" dfs cat /stdin.txt

# appendToFile: new blocks after the old ones, which stay as they are (the 4th partial).
head -c 1500000 /dev/urandom >"$L/more.bin"
check "put for appending" dfs put "$L/big.bin" /app.bin
check "appendToFile two local files" dfs appendToFile "$L/more.bin" "$L/small.txt" /app.bin
check "... the bytes follow the old ones" bash -c "'$BIN/dfs' -fs $NN cat /app.bin | cmp - <(cat '$L/big.bin' '$L/more.bin' '$L/small.txt')"
check_out "... the length adds up" "5000022" dfs stat %b /app.bin
check "... fsck sees 4 + 2 blocks, healthy" sh -c "'$BIN/dfs' -fs $NN fsck /app.bin -files -blocks | grep -q '^/app.bin 5000022 bytes, replicated: replication=3, 6 block(s):  OK'"
check "appendToFile from stdin creates the file" sh -c "printf 'one\n' | '$BIN/dfs' -fs $NN appendToFile - /log.txt"
check "... and appends to it" sh -c "printf 'two\n' | '$BIN/dfs' -fs $NN appendToFile - /log.txt"
check_out "... both lines" "$(printf 'one\ntwo')" dfs cat /log.txt
check_rc "appendToFile to a directory exits 1" 1 dfs appendToFile "$L/small.txt" "$ME/in"
check_out "... saying so" "dfs: '$ME/in': Is a directory" cat "$T/last.err"

check "put -D dfs.replication=1" dfs -D dfs.replication=1 put "$L/small.txt" /rep1.txt
check_out "replication 1 from -D" "1" dfs stat %r /rep1.txt

# Relative paths live under /user/<name>.
check "a new student's first put creates their home directory" \
  env DFS_USER=newstudent "$BIN/dfs" -fs "$NN" put "$L/small.txt"
check "... and the file is in it" dfs test -f /user/newstudent/small.txt
check "put relative" dfs put "$L/small.txt" rel.txt
check_out "cat relative" "$(cat "$L/small.txt")" dfs cat "$ME/rel.txt"
check "ls relative prints relative names" sh -c "'$BIN/dfs' -fs $NN ls | grep -q ' rel.txt\$'"

# ---- namespace --------------------------------------------------------------------
check "mkdir -p deep" dfs mkdir -p /a/b/c
check "test -d deep" dfs test -d /a/b/c
check_rc "mkdir without -p on a missing parent" 1 dfs mkdir /x/y
check "mv rename" dfs mv /stdin.txt /a/renamed.txt
check_rc "... source gone" 1 dfs test -e /stdin.txt
check "mv into a directory" dfs mv /a/renamed.txt /a/b
check "... lands inside" dfs test -f /a/b/renamed.txt
check "cp" dfs cp /big.bin /a/big.copy
check "... same bytes" sh -c "'$BIN/dfs' -fs $NN cat /a/big.copy | cmp - '$L/big.bin'"
check "touchz" dfs touchz /a/empty
check "test -z on it" dfs test -z /a/empty
check_rc "test -e on a missing path" 1 dfs test -e /no/such/thing
check_out "test prints nothing" "" cat "$T/last.out" "$T/last.err"
check_out "du -s" "3500000  10500000  /a/big.copy" dfs du -s /a/big.copy
check "count" sh -c "'$BIN/dfs' -fs $NN count /a | grep -Eq '^ +3 +3 +3500006 /a\$'"

mkdir -p "$L/tree/sub"
printf 'one\n' >"$L/tree/part-0"
printf 'two\n' >"$L/tree/part-1"
printf 'three\n' >"$L/tree/sub/x"
check "put a local directory" dfs put "$L/tree" /tree
check "... recursively" dfs test -f /tree/sub/x
check_out "glob cat" "$(printf 'one\ntwo')" dfs cat '/tree/part-*'
check "getmerge -nl" dfs getmerge -nl /tree "$L/merged"
check_out "... merged content" "$(printf 'one\n\ntwo\n')" cat "$L/merged"

check "rm -r" dfs rm -r /a
check_rc "... gone" 1 dfs test -e /a

# ---- errors -----------------------------------------------------------------------
check_rc "cat of a missing path exits 1" 1 dfs cat /missing
check_out "... with Hadoop's message" "dfs: '/missing': No such file or directory" cat "$T/last.err"
check_rc "an unknown option exits 2" 2 dfs ls -x /
check_rc "an unknown command exits 2" 2 dfs frobnicate

# ---- replication and health -------------------------------------------------------
check "setrep -w 3 (re-replication)" timeout 120 "$BIN/dfs" -fs "$NN" setrep -w 3 /rep1.txt
check "... waited" grep -q '^Waiting for /rep1.txt \.* done$' "$T/last.out"
check_out "... replication is 3" "3" dfs stat %r /rep1.txt
check "... fsck counts 3 live replicas" bash -c "'$BIN/dfs' -fs $NN fsck /rep1.txt -blocks | grep -q 'Live_repl=3'"
check "fsck / is HEALTHY" dfs fsck /
check "... says so" grep -qx "The filesystem under path '/' is HEALTHY" "$T/last.out"
check "admin report" dfs dfsadmin -report
cp "$T/last.out" "$T/report"
check "... lists 3 live DataNodes" grep -q '^Live datanodes (3):' "$T/report"
check "... every one in service" test "$(grep -c '^Decommission Status : Normal$' "$T/report")" -eq 3

# ---- decommissioning ----------------------------------------------------------------
check_rc "decommission of an unknown DataNode exits 1" 1 dfs admin decommission 10.9.9.9:1
check "... naming the accepted forms" grep -q "uuid, ip:xferport or hostname:xferport" "$T/last.err"
DN1=127.0.0.1:$(port_of "$T/dn1.port" xfer)
check "decommission with too few DataNodes left" dfs admin decommission "$DN1"
check "... warns that it cannot finish" grep -q '^WARNING: .*only 2 DataNode(s) are in service' "$T/last.out"
check "recommission" dfs dfsadmin -recommission "$DN1"
check "... back in service" grep -q 'is back in service' "$T/last.out"
"$BIN/dfs-datanode" "${COMMON[@]}" -D "fs.defaultFS=$NN" -D dfs.datanode.address=127.0.0.1:0 \
  -D "dfs.datanode.data.dir=$T/dn4" --port-file "$T/dn4.port" >"$T/dn4.log" 2>&1 &
DAEMON_PIDS+=($!)
four_live() { dfs admin report | grep -q '^Live datanodes (4):'; }
wait_for 60 four_live || die "the 4th DataNode did not come up"
check "decommission -w drains a DataNode" timeout 120 "$BIN/dfs" -fs "$NN" admin decommission -w "$DN1"
check "... and waited for it" grep -q 'done: safe to switch off$' "$T/last.out"
check "report" dfs admin report
cp "$T/last.out" "$T/report"
check "... says Decommissioned" sh -c "grep -A2 '^Name: $DN1 ' '$T/report' | grep -q '^Decommission Status : Decommissioned\$'"
check "... and no block is under-replicated" grep -q $'^\tUnder replicated blocks: 0$' "$T/report"
check "fsck counts its replicas as decommissioned" dfs fsck /
check "... DecommissionedReplicas" grep -q $'^ DecommissionedReplicas:\t[1-9]' "$T/last.out"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
