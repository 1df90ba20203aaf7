#!/usr/bin/env bash
# On the GPU host: builds libortsparse_ops.so with the CUDA kernels into BUILD (default build-gpu-ops,
# git-ignored, so kept between calls on the same machine), for CUDA_ARCHS (default 90, the H100).
# The ONNX Runtime headers come from the stage (STAGE/.deps/onnxruntime/include). Logs go to $OUT.
#   bash tests/gpu/build_ops_cuda.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
stage=${STAGE:-/root/gpu}
build=${BUILD:-build-gpu-ops}
out=${OUT:-gpu-run}
mkdir -p "$out"
[[ -f $stage/.deps/onnxruntime/include/onnxruntime_cxx_api.h ]] ||
  { echo "build_ops_cuda.sh: no ONNX Runtime headers under $stage/.deps (stage .deps/onnxruntime/include; tests/gpu/publish_for_gpu.sh prints the command)" >&2; exit 2; }
export PATH=/usr/local/cuda/bin:$PATH
cmake -S . -B "$build" -DORTSPARSE_CUDA=ON -DORTSPARSE_BUILD_TESTS=OFF -DORTSPARSE_DEPS_DIR="$stage/.deps" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" >"$out/ops-configure.log" 2>&1 || { tail -30 "$out/ops-configure.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" --target ortsparse_ops >"$out/ops-build.log" 2>&1 ||
  { grep -E "error" -A3 "$out/ops-build.log" | head -60; exit 1; }
echo "built $build/lib/libortsparse_ops.so"
