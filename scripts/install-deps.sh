#!/usr/bin/env bash
# Installs the Debian packages dfs needs to build and run. Idempotent: does
# nothing when everything is present. Uses apt-get as root, sudo otherwise.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libboost-dev libprotobuf-dev protobuf-compiler librocksdb-dev libxxhash-dev
  libspdlog-dev libfmt-dev catch2 libcli11-dev libfuse3-dev fuse3
  python3 iproute2 dpkg-dev file
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "Installing: ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO=sudo; else
    echo "error: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
