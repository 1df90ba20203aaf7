// The decode attention kernels for float caches (one file per type so that they compile in parallel).
#include "attention/cuda/decode_attention.cuh"

namespace ortsparse::cuda::detail {

template cudaError_t LaunchDecodeAttentionOf<float>(const DecodeArgs& args, const LaunchShape& shape);

}  // namespace ortsparse::cuda::detail
