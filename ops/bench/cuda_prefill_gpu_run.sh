#!/usr/bin/env bash
# On the GPU host: builds the CUDA prefill kernels' test and benchmark, runs the tests, then the
# prefill benchmark (dense, block, hash and hyper, planted-structure inputs) and PyTorch's SDPA causal prefill on
# the same shapes, in one run. Logs go to $OUT (or ./gpu-run).
#   ops/bench/cuda_prefill_gpu_run.sh [tests] [bench] [sdpa]      (default: all three)
# Environment: CONTEXTS (default 8192,32768,131072), TEST_FILTER (gtest filter), BUILD (build dir),
# BENCH_ARGS (more flags for attention_prefill_bench_cuda, e.g. "--gamma 0.9 --block-size 128").
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-run}
build=${BUILD:-/tmp/ortsparse-cuda-prefill}
contexts=${CONTEXTS:-8192,32768,131072}
steps=${*:-tests bench sdpa}
mkdir -p "$out"

cmake -S . -B "$build" -DORTSPARSE_CUDA=ON -DORTSPARSE_DEPS_DIR="$PWD/.deps" -DCMAKE_BUILD_TYPE=Release \
  -DORTSPARSE_GTEST_SOURCE_DIR="$PWD/.gpu/googletest" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target cuda_prefill_test attention_prefill_bench_cuda >"$out/build.log" 2>&1 ||
  { grep -E "error" -A3 "$out/build.log" | head -60; exit 1; }

for step in $steps; do
  case $step in
    tests)
      timeout 300 "$build/bin/cuda_prefill_test" --gtest_brief=1 --gtest_filter="${TEST_FILTER:-*}" >"$out/prefill_test.log" 2>&1
      echo "cuda_prefill_test exit $?"
      grep -E "Failure|FAILED|Expected|Which is|gpu keeps|blocks kept|keys selected|only the gpu|not written" "$out/prefill_test.log" | cut -c1-400 | head -40
      tail -3 "$out/prefill_test.log" ;;
    bench)
      # shellcheck disable=SC2086
      timeout 300 "$build/bin/attention_prefill_bench_cuda" --contexts "$contexts" ${BENCH_ARGS:-} 2>&1 | tee "$out/prefill_bench.log" ;;
    sdpa)
      timeout 300 python3 ops/bench/sdpa_prefill_baseline.py --contexts "$contexts" 2>&1 | grep -v Warning |
        tee "$out/sdpa_prefill.log" ;;
  esac
done
