#!/usr/bin/env bash
# Builds everything and runs every test: the native kernel tests (Release, then again under
# AddressSanitizer + UndefinedBehaviorSanitizer) and the xunit suites.
set -euo pipefail
cd "$(dirname "$0")"
./build.sh
jobs=$(nproc 2>/dev/null || echo 2)
log=$(mktemp -d); trap 'rm -rf "$log"' EXIT

echo "== native tests (Release)"
ctest --test-dir build-native --output-on-failure -j"$jobs" | tee "$log/native.txt"

echo "== native tests (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DORTSPARSE_SANITIZE=ON >/dev/null
cmake --build build-sanitize -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-sanitize --output-on-failure -j"$jobs" | tee "$log/sanitize.txt"

echo "== xunit tests"
dotnet test OrtSparse.sln -c Release --no-build --nologo 2>&1 | tee "$log/dotnet.txt"

# One closing line over all suites.
native=$(cat "$log/native.txt" "$log/sanitize.txt" | sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1 \2/p' | awk '{f+=$1; t+=$2} END {print t-f, f}')
managed=$(grep -hoE 'Failed: +[0-9]+, Passed: +[0-9]+' "$log/dotnet.txt" | awk -F'[:,]' '{f+=$2; p+=$4} END {print p+0, f+0}')
read -r np nf <<<"$native"; read -r mp mf <<<"$managed"
echo "all suites: $((np + mp)) passed, $((nf + mf)) failed"
