#!/usr/bin/env bash
# On the GPU host: builds the op library with CUDA and runs the GPU tests: the kernels against the
# CPU kernels (cuda_attention_test: decode; cuda_prefill_test: prefill) and the op in ONNX Runtime
# sessions on the CUDA provider (ort_cuda_session_test). ONNX Runtime's CUDA build, GoogleTest and
# the ONNX Runtime headers come from ../shared/gpu/stage.sh:
#   ../shared/gpu/stage.sh --with-ort-cuda .gpu/googletest .deps/onnxruntime/include
# unstaged into STAGE (default /root/gpu). Logs go to $OUT (or ./gpu-run).
#   bash ops/tests/cuda/run_gpu_tests.sh [gtest filter for cuda_attention_test]
set -uo pipefail
cd "$(dirname "$0")/../../.."
stage=${STAGE:-/root/gpu}
out=${OUT:-gpu-run}
build=${BUILD:-/tmp/ortsparse-gpu-tests}
mkdir -p "$out"
cmake -S . -B "$build" -DORTSPARSE_CUDA=ON -DORTSPARSE_DEPS_DIR="$stage/.deps" -DCMAKE_BUILD_TYPE=Release \
  -DORTSPARSE_GTEST_SOURCE_DIR="$stage/.gpu/googletest" >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target ortsparse_ops ort_cuda_session_test cuda_attention_test cuda_prefill_test \
  >"$out/build.log" 2>&1 ||
  { grep -E "error" -A3 "$out/build.log" | head -60; exit 1; }
status=0
ORTSPARSE_ORT_CUDA_DIR="$stage/ort" timeout 300 "$build/bin/ort_cuda_session_test" >"$out/ort_cuda_session_test.log" 2>&1 || status=1
grep -E "^\[  (PASSED|FAILED|SKIPPED) |Failure|Expected|Which is|error" "$out/ort_cuda_session_test.log" | cut -c1-300 | head -40
timeout 300 "$build/bin/cuda_attention_test" --gtest_brief=1 --gtest_filter="${1:-*}" >"$out/cuda_attention_test.log" 2>&1 || status=1
grep -E "Failure|FAILED" "$out/cuda_attention_test.log" | cut -c1-300 | head -20
tail -3 "$out/cuda_attention_test.log"
timeout 300 "$build/bin/cuda_prefill_test" --gtest_brief=1 >"$out/cuda_prefill_test.log" 2>&1 || status=1
grep -E "Failure|FAILED" "$out/cuda_prefill_test.log" | cut -c1-300 | head -20
tail -3 "$out/cuda_prefill_test.log"
exit $status
