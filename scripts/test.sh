#!/usr/bin/env bash
# scripts/test.sh — configure, build and run every test with CTest.
#   scripts/test.sh             Release build in build/, all tests
#   scripts/test.sh --sanitize  ASan + UBSan build in build-asan/
# Fixtures come from ../shared (override with VRWKV_SHARED_DIR); tests that need them skip
# loudly when it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
dir=build
opts=(-DCMAKE_BUILD_TYPE=Release)
ctest_opts=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  opts=(-DCMAKE_BUILD_TYPE=Debug -DVRWKV_SANITIZE=ON -DVRWKV_CUDA=OFF)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # the cluster sweep measures memory growth over 1000 cancelled requests, which ASan's
  # quarantine of freed memory would distort; it runs in the plain pass (it passes under ASan
  # otherwise, sanitizer-clean)
  ctest_opts=(-E '^cluster$')
fi
shared="${VRWKV_SHARED_DIR:-$(cd .. && pwd)/shared}"
cmake -S . -B "$dir" "${opts[@]}" -DVRWKV_SHARED_DIR="$shared" >/dev/null
cmake --build "$dir" -j"$(nproc)"
ctest --test-dir "$dir" --output-on-failure -j2 "${ctest_opts[@]}"
