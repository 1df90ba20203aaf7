// Per-sequence lengths of a step, derived on the device from seqlens_k (docs/ops.md, "Positions,
// cache lengths and causality") so that the op never reads them on the host.
#include "attention/cuda/cuda_common.cuh"
#include "ortsparse/cuda_attention.h"

namespace ortsparse::cuda {
namespace {

__global__ void SequenceLengthsKernel(const SequenceLengthParams p) {
  const int64_t b = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (b >= p.batch) return;
  int64_t past = p.past_length, rows = p.query_length, appended = p.kv_length, keys = p.present_length;
  if (p.seqlens_k != nullptr) {
    // As the CPU's PlanSequences, with values out of range clamped to the cache instead of rejected.
    keys = Smaller<int64_t>(Larger<int64_t>(static_cast<int64_t>(p.seqlens_k[b]) + 1, 0), p.present_length);
    past = Smaller<int64_t>(Larger<int64_t>(keys - p.query_length, 0), p.past_length);
    keys = Smaller<int64_t>(keys, past + p.query_length);
    rows = keys - past;
    appended = rows;
  }
  p.past_lengths[b] = static_cast<int32_t>(past);
  p.valid_query_rows[b] = static_cast<int32_t>(rows);
  p.append_counts[b] = static_cast<int32_t>(appended);
  p.key_counts[b] = static_cast<int32_t>(keys);
}

}  // namespace

cudaError_t LaunchSequenceLengths(const SequenceLengthParams& params, cudaStream_t stream) {
  if (params.batch <= 0) return cudaSuccess;
  constexpr int kThreads = 128;
  const unsigned blocks = static_cast<unsigned>((params.batch + kThreads - 1) / kThreads);
  SequenceLengthsKernel<<<blocks, kThreads, 0, stream>>>(params);
  return cudaGetLastError();
}

}  // namespace ortsparse::cuda
