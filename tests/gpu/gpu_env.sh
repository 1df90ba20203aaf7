# Sourced by the GPU-host scripts (run from the repository root): finds what tests/gpu/publish_for_gpu.sh
# and ../shared/gpu/stage.sh put under STAGE (default /root/gpu) and sets up the environment of the
# published apps. Sets: stage, app, out, build; exports ORTSPARSE_OPS_LIBRARY (default
# $build/lib/libortsparse_ops.so, built by tests/gpu/build_ops_cuda.sh), ORTSPARSE_CUDA_PROVIDER and
# LD_LIBRARY_PATH.
stage=${STAGE:-/root/gpu}
app=$stage/out/gpu-publish/app
out=${OUT:-gpu-run}
build=${BUILD:-build-gpu-ops}
mkdir -p "$out"
if [[ ! -x $app/OrtSparse.GraphRewriter.Tests || ! -f $stage/ort/libonnxruntime_providers_cuda.so ]]; then
  echo "gpu_env.sh: $app or $stage/ort is missing: publish with tests/gpu/publish_for_gpu.sh, stage with the command it prints, and unstage into $stage" >&2
  return 2
fi
# The apps load libonnxruntime.so from their own folder, and ONNX Runtime loads its provider bridge
# from beside itself; the staged ort/ holds the same 1.29.0 build they were published with.
ln -sf "$stage/ort/libonnxruntime.so" "$stage/ort/libonnxruntime_providers_shared.so" "$app/"
export ORTSPARSE_OPS_LIBRARY=${ORTSPARSE_OPS_LIBRARY:-$PWD/$build/lib/libortsparse_ops.so}
export ORTSPARSE_CUDA_PROVIDER=$stage/ort/libonnxruntime_providers_cuda.so
# The provider links libcudart, libcublas, libcublasLt (CUDA 13) and libcurand.
export LD_LIBRARY_PATH=/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export DOTNET_CLI_TELEMETRY_OPTOUT=1
