// The decode attention kernels for bfloat16 caches (one file per type so that they compile in parallel).
#include "attention/cuda/decode_attention.cuh"

namespace ortsparse::cuda::detail {

template cudaError_t LaunchDecodeAttentionOf<__nv_bfloat16>(const DecodeArgs& args, const LaunchShape& shape);

}  // namespace ortsparse::cuda::detail
