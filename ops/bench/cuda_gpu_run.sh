#!/usr/bin/env bash
# On the GPU host: builds the CUDA kernels' test and benchmark, runs the tests, then the decode
# benchmark and PyTorch's SDPA on the same shapes. Logs go to $OUT (or ./gpu-run).
#   ops/bench/cuda_gpu_run.sh [tests] [bench] [sdpa] [profile]      (default: all but profile)
# Environment: CONTEXTS, BATCHES, STEPS (benchmark shapes and timed steps), TEST_FILTER (gtest filter),
# BUILD (build dir), PROFILE_METHODS.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-run}
build=${BUILD:-/tmp/ortsparse-cuda}
contexts=${CONTEXTS:-4096,16384,32768,65536,131072,262144,524288}
batches=${BATCHES:-1,8}
steps=${*:-tests bench sdpa}
mkdir -p "$out"

cmake -S . -B "$build" -DORTSPARSE_CUDA=ON -DORTSPARSE_DEPS_DIR="$PWD/.deps" -DCMAKE_BUILD_TYPE=Release \
  -DORTSPARSE_GTEST_SOURCE_DIR="$PWD/.gpu/googletest" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target cuda_attention_test attention_decode_bench_cuda >"$out/build.log" 2>&1 ||
  { grep -E "error" -A3 "$out/build.log" | head -60; exit 1; }
grep -E "warning" "$out/build.log" | head

for step in $steps; do
  case $step in
    tests)
      timeout 500 "$build/bin/cuda_attention_test" --gtest_brief=1 --gtest_filter="${TEST_FILTER:-*}" >"$out/test.log" 2>&1
      echo "cuda_attention_test exit $?"
      grep -E "Failure|FAILED|Expected|Which is|differs|segment|Value of" "$out/test.log" | cut -c1-300 | head -40
      tail -3 "$out/test.log" ;;
    bench)
      timeout 500 "$build/bin/attention_decode_bench_cuda" --contexts "$contexts" --batches "$batches" \
        --steps "${STEPS:-50}" 2>&1 | tee "$out/bench.log" ;;
    sdpa)
      timeout 300 python3 ops/bench/sdpa_decode_baseline.py --contexts "$contexts" --batches "$batches" \
        --steps "${STEPS:-50}" 2>&1 | tee "$out/sdpa.log" ;;
    profile)  # per-kernel times of a few steps of each of PROFILE_METHODS at the first context
      for method in ${PROFILE_METHODS:-dense topk quest}; do
        echo "== $method, context ${contexts%%,*}, batch 1"
        timeout 120 ncu --metrics gpu__time_duration.sum --csv --print-units base \
          "$build/bin/attention_decode_bench_cuda" --contexts "${contexts%%,*}" --batches 1 --steps 2 --methods "$method" \
          >"$out/profile-$method.csv" 2>&1
        python3 ops/bench/profile_summary.py "$out/profile-$method.csv"
      done ;;
  esac
done
