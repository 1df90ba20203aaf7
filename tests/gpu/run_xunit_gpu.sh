#!/usr/bin/env bash
# On the GPU host: runs the xunit suite published by tests/gpu/publish_for_gpu.sh with our op on ONNX
# Runtime's CUDA provider (ORTSPARSE_TEST_DEVICE=cuda): the golden and equivalence tests, the method
# end-to-end checks and the bench tests, against references computed on the CPU. Cases the CUDA op
# documents as not implemented are skipped with the reason. Builds the CUDA op library first if it is
# missing. Prints failures, skip reasons and the summary; the full log and xunit XML go to $OUT.
#   bash tests/gpu/run_xunit_gpu.sh [xunit options, e.g. -class "*BenchTests"]
#   SUITE=OrtSparse.Runtime.Tests bash tests/gpu/run_xunit_gpu.sh     (the runtime's suite; default GraphRewriter)
# Environment: STAGE (default /root/gpu, the unstaged folder), BUILD, ORTSPARSE_OPS_LIBRARY (see gpu_env.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
source tests/gpu/gpu_env.sh || exit 2
[[ -f $ORTSPARSE_OPS_LIBRARY ]] || bash tests/gpu/build_ops_cuda.sh || exit 1
export ORTSPARSE_TEST_DEVICE=cuda
export ORTSPARSE_REPOSITORY_ROOT=$PWD  # the test runner works in its own folder; test data lives here
suite=${SUITE:-OrtSparse.GraphRewriter.Tests}
timeout "${XUNIT_TIMEOUT:-480}" "$app/$suite" -noColor -noLogo -xml "$out/xunit-$suite.xml" "$@" >"$out/xunit-$suite.log" 2>&1
status=$?
((status == 124)) && echo "run_xunit_gpu.sh: the suite ran past ${XUNIT_TIMEOUT:-480} s"
echo "== failed"
grep -A3 "\[FAIL\]" "$out/xunit-$suite.log" | cut -c1-300 | head -80
echo "== skipped (count, reason)"
awk '/\[SKIP\]/ { getline reason; sub(/^ +/, "", reason); print substr(reason, 1, 150) }' "$out/xunit-$suite.log" | sort | uniq -c | sort -rn
echo "== summary"
grep -A1 "TEST EXECUTION SUMMARY" "$out/xunit-$suite.log" | tail -1
exit $status
