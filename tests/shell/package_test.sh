#!/usr/bin/env bash
# What a lab installs (doc/lab.md): `cmake --install` into a scratch root, the
# layout and systemd units it gives, the daemons started with the units' own
# command lines and the installed configuration, and the Debian package CPack
# makes (its files, dependencies and conffiles). Nothing is installed on the
# machine itself. Usage: package_test.sh <bin dir>
set -uo pipefail
BIN=$(cd "${1:?usage: package_test.sh <bin dir>}" && pwd)
BUILD=$(dirname "$BIN")
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
R=$T/root
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

pass=0 fail=0
check() {  # check "what" command...
  local what=$1; shift
  if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAILED: $what"; fi
}

PREFIX=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD/CMakeCache.txt")
if ! DESTDIR=$R cmake --install "$BUILD" >"$T/install.log" 2>&1; then
  cat "$T/install.log"
  echo "FAILED: cmake --install"
  exit 1
fi
for b in dfs dfs-namenode dfs-datanode dfs-fuse; do
  check "installs $b" [ -x "$R$PREFIX/bin/$b" ]
done
check "installs conf/dfs.conf as /etc/dfs/dfs.conf" cmp -s "$R/etc/dfs/dfs.conf" "$ROOT/conf/dfs.conf"
check "installs the lab guide" [ -s "$R$PREFIX/share/doc/dfs/lab.md" ]
UNITS=$R$PREFIX/lib/systemd/system
for d in namenode datanode; do
  u=$UNITS/dfs-$d.service
  check "installs dfs-$d.service" [ -s "$u" ]
  check "dfs-$d.service runs the installed binary with /etc/dfs/dfs.conf" \
    grep -qx "ExecStart=$PREFIX/bin/dfs-$d --conf /etc/dfs/dfs.conf" "$u"
  check "dfs-$d.service runs as dfs with its state in /var/lib/dfs" \
    grep -qx "Environment=DFS_HOME=/var/lib/dfs" "$u"
done

# The units' command lines, on the installed files, start a working cluster
# (state, addresses and ports moved into the scratch directory).
exec_of() {  # exec_of UNIT: its ExecStart, pointed at the scratch root
  sed -n 's/^ExecStart=//p' "$UNITS/$1" | sed "s#^#$R#; s# /etc/dfs/dfs.conf# $R/etc/dfs/dfs.conf#"
}
export DFS_HOME=$T/home DFS_CONF=
unset DFS_NAMENODE
mkdir -p "$DFS_HOME"
read -r -a nn <<<"$(exec_of dfs-namenode.service)"
"${nn[@]}" -D dfs.namenode.rpc-address=127.0.0.1:0 -D dfs.namenode.name.dir="$T/nn" \
  --port-file "$T/nn.ports" >"$T/nn.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$T/nn.ports" ] && break; sleep 0.1; done
port=$(sed -n 's/^rpc=//p' "$T/nn.ports")
check "the NameNode started from its unit's command line" [ -n "$port" ]
read -r -a dn <<<"$(exec_of dfs-datanode.service)"
"${dn[@]}" -D fs.defaultFS="127.0.0.1:$port" -D dfs.datanode.address=127.0.0.1:0 \
  -D dfs.datanode.data.dir="$T/dn" >"$T/dn.log" 2>&1 &
PIDS+=($!)
DFS=("$R$PREFIX/bin/dfs" --conf "$R/etc/dfs/dfs.conf" --namenode "127.0.0.1:$port" -D dfs.replication=1)
for _ in $(seq 100); do
  "${DFS[@]}" admin report 2>/dev/null | grep -q "Live datanodes (1)" && break
  sleep 0.1
done
head -c 300000 /dev/urandom >"$T/data"
check "the installed dfs puts a file" "${DFS[@]}" put "$T/data" /data
"${DFS[@]}" cat /data >"$T/back" 2>"$T/cat.err"
check "and reads it back" cmp -s "$T/data" "$T/back"

# The Debian package (needs dpkg-shlibdeps and file, which scripts/install-deps.sh installs).
if command -v dpkg-shlibdeps >/dev/null && command -v file >/dev/null; then
  if (cd "$T" && cpack --config "$BUILD/CPackConfig.cmake" -B "$T/pkg" >"$T/cpack.log" 2>&1); then
    deb=$(ls "$T"/pkg/dfs_*.deb 2>/dev/null | head -n 1)
    check "cpack makes dfs_<version>_<arch>.deb" [ -n "$deb" ]
    depends=$(dpkg-deb --field "$deb" Depends)
    check "the package depends on fuse3 and the libraries it links (protobuf: '$depends')" \
      grep -q "fuse3.*libprotobuf\|libprotobuf.*fuse3" <<<"$depends"
    files=$(dpkg-deb --contents "$deb")
    check "the package holds the binaries, configuration and units" \
      grep -q "$PREFIX/bin/dfs-datanode" <<<"$files"
    check "... /etc/dfs/dfs.conf" grep -q " ./etc/dfs/dfs.conf$" <<<"$files"
    check "... dfs-namenode.service" grep -q "/lib/systemd/system/dfs-namenode.service$" <<<"$files"
    mkdir -p "$T/ctrl"
    dpkg-deb --control "$deb" "$T/ctrl"
    check "/etc/dfs/dfs.conf is a conffile (an upgrade keeps the teacher's edits)" \
      grep -qx "/etc/dfs/dfs.conf" "$T/ctrl/conffiles"
    for s in postinst prerm postrm; do
      check "$s is executable" [ -x "$T/ctrl/$s" ]
      check "$s parses" sh -n "$T/ctrl/$s"
    done
    check "postinst makes the dfs user and /var/lib/dfs" grep -q "useradd --system.*dfs" "$T/ctrl/postinst"
  else
    tail -n 20 "$T/cpack.log"
    check "cpack makes the package" false
  fi
else
  echo "skipped: the Debian package (no dpkg-shlibdeps or file; scripts/install-deps.sh installs them)"
fi

if [ $fail -ne 0 ]; then
  echo "--- NameNode log"; tail -n 20 "$T/nn.log"
  echo "--- DataNode log"; tail -n 20 "$T/dn.log"
fi
echo "package_test: $pass passed, $fail failed"
[ $fail -eq 0 ]
