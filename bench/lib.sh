# Shell helpers shared by the benchmark scripts (sourced, not run). The script
# that sources it defines nothing these need; errors go through die().

die() { echo "$(basename "$0"): $*" >&2; exit 1; }
need_arg() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

# Sizes as the dfs config parses them: k/m/g/t are powers of 1024.
to_bytes() {
  local v=${1,,} mult=1
  case "$v" in
    *k) mult=1024; v=${v%k} ;;
    *m) mult=$((1024 ** 2)); v=${v%m} ;;
    *g) mult=$((1024 ** 3)); v=${v%g} ;;
    *t) mult=$((1024 ** 4)); v=${v%t} ;;
  esac
  [[ "$v" =~ ^[0-9]+$ ]] || die "not a size: '$1' (use e.g. 256m or 1g)"
  echo $((v * mult))
}

# wait_port_file FILE KEY PID LOG: prints the port the daemon PID wrote as
# KEY=port to FILE (--port-file); dies with the end of LOG if it exits or
# takes over 30 s.
wait_port_file() {
  local file=$1 key=$2 pid=$3 log=$4
  for _ in $(seq 300); do
    if [ -f "$file" ]; then
      local port
      port=$(sed -n "s/^$key=//p" "$file")
      if [ -n "$port" ]; then echo "$port"; return 0; fi
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$log" >&2
      die "$(basename "$log" .log) exited during start-up (log above: $log)"
    fi
    sleep 0.1
  done
  tail -n 20 "$log" >&2
  die "$(basename "$log" .log) did not write its port file within 30 s (log above: $log)"
}

# MB/s from dd's summary line on stdin.
dd_rate() { awk '/copied/ {for (i = 1; i <= NF; i++) if ($i == "s," || $i == "s") secs = $(i - 1); gsub(",", "", secs); if (secs > 0) printf "%.1f\n", $1 / secs / 1e6}'; }

# ratio A B: A/B with three decimals, "nan" when either is not a number or B is 0.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.]+$/ && b ~ /^[0-9.]+$/ && b > 0) printf "%.3f\n", a / b; else print "nan" }'; }

# ------------------------------------------------------------------ a local cluster
# The scripts that use these set DIR (a fresh directory), BIN (the binaries)
# and KEEP (1: keep everything), and own the PIDS array.

# need_free_kb KB: dies unless the disk of $DIR has KB free.
need_free_kb() {
  local avail
  avail=$(df -Pk "$DIR" | awk 'NR==2 {print $4}')
  [ "$avail" -ge "$1" ] ||
    die "$DIR has $((avail / 1024)) MiB free; the run needs about $(($1 / 1024)) MiB (--dir-parent picks another disk)"
}

# on_exit FN: runs FN when the script exits, Ctrl-C and SIGTERM included.
on_exit() {
  trap "$1" EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# finish_dir RC BULKY...: at the end of a run, removes $DIR; with --keep, or
# after a failure (RC != 0), keeps it for inspection, in the second case
# without the BULKY paths (globs under $DIR: data dirs, generated inputs).
finish_dir() {
  local rc=$1 p
  shift
  if [ "$KEEP" -eq 1 ] || [ "$rc" -ne 0 ]; then
    echo "# directory kept for inspection: $DIR (the daemons' logs are in it)" >&2
    if [ "$KEEP" -ne 1 ]; then
      for p in "$@"; do
        # shellcheck disable=SC2086  # p is a glob
        rm -rf "$DIR"/$p
      done
    fi
  else
    rm -rf "$DIR"
  fi
}

# stop_cluster: SIGTERM to every pid in PIDS, SIGKILL after 10 s.
stop_cluster() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "# pid $pid did not stop within 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}

# start_cluster N_DATANODES: one NameNode and N DataNodes on 127.0.0.1 with
# port 0, state and logs under $DIR; sets NN=127.0.0.1:port and waits (with
# a deadline) until the DataNodes are live and safe mode is off.
start_cluster() {
  local n=$1 i report=""
  mkdir -p "$DIR/logs"
  "$BIN/dfs-namenode" -D dfs.namenode.rpc-address=127.0.0.1:0 -D "dfs.namenode.name.dir=$DIR/nn" \
    --port-file "$DIR/nn.port" >"$DIR/logs/namenode.log" 2>&1 </dev/null &
  PIDS+=($!)
  NN=127.0.0.1:$(wait_port_file "$DIR/nn.port" rpc "${PIDS[0]}" "$DIR/logs/namenode.log")
  for i in $(seq 1 "$n"); do
    "$BIN/dfs-datanode" -D "fs.defaultFS=$NN" -D dfs.datanode.address=127.0.0.1:0 \
      -D "dfs.datanode.data.dir=$DIR/dn$i" --port-file "$DIR/dn$i.port" \
      >"$DIR/logs/datanode$i.log" 2>&1 </dev/null &
    PIDS+=($!)
  done
  for i in $(seq 1 "$n"); do wait_port_file "$DIR/dn$i.port" xfer "${PIDS[$i]}" "$DIR/logs/datanode$i.log" >/dev/null; done
  for _ in $(seq 300); do
    report=$("$BIN/dfs" --namenode "$NN" admin report 2>/dev/null || true)
    if echo "$report" | grep -q "Live datanodes ($n)" && ! echo "$report" | grep -qi "safe mode is on"; then return 0; fi
    sleep 0.1
  done
  die "the $n DataNodes did not come up within 30 s (logs: $DIR/logs/)"
}

# now / elapsed A B: wall-clock seconds, and B - A with three decimals.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
# median: of the numbers on stdin, one per line.
median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
