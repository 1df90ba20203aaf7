#!/usr/bin/env bash
# On the GPU host: `ortsparse bench attention --device cuda --compare-onnxruntime` (every method and
# ONNX Runtime's GroupQueryAttention on the same inputs) for each batch and context given. Tables go
# to stdout and $OUT/bench_b<B>_t<T>.txt; every row is appended to out/gpu-bench/bench_cuda.csv
# (git-ignored, so kept between calls on the same machine), which is copied to $OUT after each run.
# Builds the CUDA op library first if it is missing.
#   bash tests/gpu/run_bench_gpu.sh CONTEXTS BATCHES [bench options]
#   bash tests/gpu/run_bench_gpu.sh 4096,8192,16384,32768,65536 1,8 --steps 30
set -uo pipefail
cd "$(dirname "$0")/../.."
contexts=${1:?usage: run_bench_gpu.sh CONTEXTS BATCHES [bench options]}
batches=${2:?usage: run_bench_gpu.sh CONTEXTS BATCHES [bench options]}
shift 2
source tests/gpu/gpu_env.sh || exit 2
[[ -f $ORTSPARSE_OPS_LIBRARY ]] || bash tests/gpu/build_ops_cuda.sh || exit 1
csv=out/gpu-bench/bench_cuda.csv
mkdir -p "$(dirname "$csv")"
status=0
for batch in ${batches//,/ }; do
  for context in ${contexts//,/ }; do
    name=bench_b${batch}_t${context}
    echo "== batch $batch, context $context"
    started=$SECONDS
    timeout "${BENCH_TIMEOUT:-540}" "$app/ortsparse" bench attention --device cuda --compare-onnxruntime \
      --context "$context" --batch "$batch" --csv "$csv" "$@" >"$out/$name.txt" 2>"$out/$name.log"
    code=$?
    cat "$out/$name.txt"
    if ((code != 0)); then
      status=1
      echo "exit $code; last lines of $name.log:"
      tail -5 "$out/$name.log"
    fi
    echo "($((SECONDS - started)) s)"
  done
done
[[ -f $csv ]] && cp "$csv" "$out/"
exit $status
