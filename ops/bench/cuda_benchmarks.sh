#!/usr/bin/env bash
# On the GPU host, in one run: the decode and prefill benchmarks of the CUDA kernels next to PyTorch's
# SDPA (FlashAttention backend) on the same shapes, as CSV files for docs/benchmarks.md and its plots.
#   bash ops/bench/cuda_benchmarks.sh [decode] [prefill] [profile]     (default: decode prefill)
# Writes to $OUT (default ./gpu-run): decode.csv (every method at the op's default parameters),
# decode_small.csv (quest page 64 and loki rank 8 at budget 1/32: at most 5% of the cache read),
# sdpa_decode.csv, prefill.csv, sdpa_prefill.csv and a .log of each printed table.
# Environment: BUILD (build folder; configured and built here when it has no benchmarks yet),
# CONTEXTS / BATCHES (decode, default 4096..524288 and 1,8), PREFILL_CONTEXTS (default 8192..131072),
# STEPS (decode steps per timing, default 30); profile: PROFILE_CONTEXT (default 131072) and
# PROFILE_METHODS (default "quest loki saap"): each decode kernel's time under Nsight Compute.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-gpu-run}
build=${BUILD:-/tmp/ortsparse-bench}
contexts=${CONTEXTS:-4096,16384,32768,65536,131072,262144,524288}
batches=${BATCHES:-1,8}
prefill_contexts=${PREFILL_CONTEXTS:-8192,16384,32768,65536,131072}
steps=${STEPS:-30}
parts=${*:-decode prefill}
mkdir -p "$out"

if [[ ! -x "$build/bin/attention_decode_bench_cuda" || ! -x "$build/bin/attention_prefill_bench_cuda" ]]; then
  cmake -S . -B "$build" -DORTSPARSE_CUDA=ON -DORTSPARSE_DEPS_DIR="$PWD/.deps" -DCMAKE_BUILD_TYPE=Release \
    -DORTSPARSE_GTEST_SOURCE_DIR="$PWD/.gpu/googletest" >"$out/bench-configure.log" 2>&1 ||
    { tail -30 "$out/bench-configure.log"; exit 1; }
  cmake --build "$build" -j"$(nproc)" --target attention_decode_bench_cuda attention_prefill_bench_cuda \
    >"$out/bench-build.log" 2>&1 || { grep -E "error" -A3 "$out/bench-build.log" | head -40; exit 1; }
fi

for part in $parts; do
  case $part in
    decode)
      rm -f "$out/decode.csv" "$out/decode_small.csv" "$out/sdpa_decode.csv"
      timeout 400 "$build/bin/attention_decode_bench_cuda" --contexts "$contexts" --batches "$batches" --steps "$steps" \
        --csv "$out/decode.csv" | tee "$out/decode.log"
      for small in "quest --page-size 64 --label -p64" "loki --rank 8 --label -r8"; do
        read -r method rest <<<"$small"
        # shellcheck disable=SC2086
        timeout 200 "$build/bin/attention_decode_bench_cuda" --contexts "$contexts" --batches "$batches" --steps "$steps" \
          --budget 0.03125 --methods "$method" $rest --csv "$out/decode_small.csv" | tee -a "$out/decode_small.log"
      done
      timeout 300 python3 ops/bench/sdpa_decode_baseline.py --contexts "$contexts" --batches "$batches" --steps "$steps" \
        --csv "$out/sdpa_decode.csv" | tee "$out/sdpa_decode.log" ;;
    prefill)
      rm -f "$out/prefill.csv" "$out/sdpa_prefill.csv"
      timeout 400 "$build/bin/attention_prefill_bench_cuda" --contexts "$prefill_contexts" --csv "$out/prefill.csv" |
        tee "$out/prefill.log"
      timeout 200 python3 ops/bench/sdpa_prefill_baseline.py --contexts "$prefill_contexts" --csv "$out/sdpa_prefill.csv" |
        tee "$out/sdpa_prefill.log" ;;
    profile)
      for method in ${PROFILE_METHODS:-quest loki saap}; do
        echo "== $method, context ${PROFILE_CONTEXT:-131072}, batch 1 (kernel times under ncu: base clocks, no overlap)"
        timeout 120 ncu --metrics gpu__time_duration.sum --csv --print-units base "$build/bin/attention_decode_bench_cuda" \
          --contexts "${PROFILE_CONTEXT:-131072}" --batches 1 --steps 2 --methods "$method" >"$out/profile-$method.csv" 2>&1
        python3 ops/bench/profile_summary.py "$out/profile-$method.csv"
      done ;;
    *) echo "cuda_benchmarks.sh: unknown part '$part' (decode, prefill, profile)" >&2; exit 2 ;;
  esac
done
