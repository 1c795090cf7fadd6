#!/usr/bin/env bash
# The whole test suite: installs what is missing, configures, builds with -j2
# and runs every test through ctest.
#
#   scripts/test.sh            RelWithDebInfo build in build/
#   scripts/test.sh --asan     AddressSanitizer + UBSan build in build-asan/
#   scripts/test.sh --fast     leave out the fault-injection tests (ctest label
#                              `fault`: real processes, kill -9, netns); CI runs all
#   scripts/test.sh -- -R cli  extra arguments after -- go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
ctest_args=()
fast_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --asan) build=build-asan; cmake_args+=(-DDFS_SANITIZE=ON) ;;
    --fast) fast_args=(-LE fault) ;;
    --) shift; ctest_args=("$@"); break ;;
    *) echo "usage: scripts/test.sh [--asan] [--fast] [-- ctest args]" >&2; exit 2 ;;
  esac
  shift
done

scripts/install-deps.sh
cmake -S . -B "$build" "${cmake_args[@]}" >/dev/null
cmake --build "$build" -j2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
cd "$build"
ctest -j2 --output-on-failure --timeout 600 "${fast_args[@]}" "${ctest_args[@]}"
