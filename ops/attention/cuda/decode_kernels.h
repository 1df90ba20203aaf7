// Host-side declarations of the decode kernels' launchers (defined in the .cu files beside this),
// called by sparse_decode.cu in the order of a step.
#pragma once

#include <cuda_runtime_api.h>

#include "attention/cuda/decode_layout.cuh"

namespace ortsparse::cuda::detail {

// How a kernel is launched: grid, block, dynamic shared memory, stream, and whether it may start
// while the previous kernel drains (programmatic dependent launch, sm_90).
struct LaunchShape {
  dim3 grid;
  dim3 block;
  size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
  bool overlap_previous = false;
};

// Launches `kernel` with `shape`, through cudaLaunchKernelEx so that the overlap attribute can be set.
template <typename... Args>
cudaError_t LaunchKernel(void (*kernel)(Args...), const LaunchShape& shape, Args... args) {
  cudaLaunchConfig_t config = {};
  config.gridDim = shape.grid;
  config.blockDim = shape.block;
  config.dynamicSmemBytes = shape.shared_bytes;
  config.stream = shape.stream;
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute[0].val.programmaticStreamSerializationAllowed = 1;
  config.attrs = attribute;
  config.numAttrs = shape.overlap_previous ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, args...);
}

// Per segment: the row partition, the queries as the method scores with them, zeroed counters.
cudaError_t LaunchPrepare(const DecodeArgs& args, LaunchShape shape);
// Scores of the units covering each middle, with their top-digit histogram and threshold bucket:
// rows of keys or summaries (topk, loki, quest) or the keys' buckets (hash).
cudaError_t LaunchScoreRows(const DecodeArgs& args, LaunchShape shape);
cudaError_t LaunchScoreHash(const DecodeArgs& args, LaunchShape shape);
// Takes the units above the threshold bucket and resolves the bucket; the selection bitmap.
cudaError_t LaunchFilterUnits(const DecodeArgs& args, LaunchShape shape);
// saap: the middle keys of each cluster, then the taken clusters' keys as the bitmap.
cudaError_t LaunchClusterWeights(const DecodeArgs& args, LaunchShape shape);
cudaError_t LaunchExpandClusters(const DecodeArgs& args, LaunchShape shape);
// Split-K exact attention over the selection (or every visible key), merged by the last block;
// instantiated for __half, __nv_bfloat16 and float (tensor cores for the 16-bit types).
template <typename T>
cudaError_t LaunchDecodeAttentionOf(const DecodeArgs& args, const LaunchShape& shape);
// flags[segment][j] = whether the segment attended key j.
cudaError_t LaunchSelectedFlags(const DecodeArgs& args, bool* flags, LaunchShape shape);

// Query heads a scoring thread sums at once: the group rounded up to 1, 2, 4 or 8 (larger groups go
// round in tiles of 8).
int ScoringHeadsPerPass(int group);

}  // namespace ortsparse::cuda::detail
