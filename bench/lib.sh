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
