#!/usr/bin/env bash
# Builds the Debian package a lab installs on its server and every classroom
# machine (doc/lab.md): installs what is missing, builds Release in
# build-release/ (installed under /usr), and runs CPack. Prints the .deb's path.
#
#   scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$PWD/build-release

say() { printf '\033[1m%s\033[0m\n' "$*"; }

say "==> Installing what is missing"
scripts/install-deps.sh
say "==> Building (Release) in $BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDFS_BUILD_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr >/dev/null
if ! cmake --build "$BUILD" -j2 --target dfs dfs-namenode dfs-datanode dfs-fuse >"$BUILD/build.log" 2>&1; then
  tail -n 30 "$BUILD/build.log" >&2
  echo "the build failed; the whole log is in $BUILD/build.log" >&2
  exit 1
fi
say "==> Packaging"
rm -f "$BUILD"/dfs_*.deb
if ! (cd "$BUILD" && cpack -G DEB >"$BUILD/package.log" 2>&1); then
  tail -n 30 "$BUILD/package.log" >&2
  echo "packaging failed; the whole log is in $BUILD/package.log" >&2
  exit 1
fi
deb=$(ls "$BUILD"/dfs_*.deb)
say "==> Built $deb"
dpkg-deb --field "$deb" Package Version Depends
cat <<MSG

Next, on the server and on every classroom machine (doc/lab.md):
  sudo apt install ./$(basename "$deb")
  edit /etc/dfs/dfs.conf (fs.defaultFS = dfs://<server>:8020, ...)
  sudo systemctl enable --now dfs-namenode    # on the server
  sudo systemctl enable --now dfs-datanode    # on every machine lending its disk
MSG
