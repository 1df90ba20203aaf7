// The prefill attention kernel for bf16 inputs (one file per type: they compile in parallel).
#include "attention/cuda/prefill_attention.cuh"

namespace ortsparse::cuda::prefill {

cudaError_t LaunchPrefillAttentionBf16(const AttentionArgs& args, int row_tiles, cudaStream_t stream) {
  return LaunchPrefillAttentionOf<__nv_bfloat16>(args, row_tiles, stream);
}

}  // namespace ortsparse::cuda::prefill
