// Device versions of the selection rules the decode and the prefill kernels share, each computed as
// the CPU computes it (key_selection.cc, key_summaries.h): the split of a row's keys into sink,
// middle and window, mask lookups, hash buckets and hyper codes.
#pragma once

#include "attention/cuda/cuda_common.cuh"
#include "ortsparse/attention_params.h"
#include "ortsparse/sparse_method_params.h"

namespace ortsparse::cuda {

// The CPU's PartitionRow for the visible keys [begin, end): the sink is [begin, middle_begin), the
// window [middle_end, end); `picks` middle keys are chosen; fewer than dense_below keys: dense.
struct RowSplit {
  int middle_begin, middle_end;
  int picks;
  bool dense;
};

__host__ __device__ __forceinline__ RowSplit SplitRow(int begin, int end, const SparseMethodParams& m) {
  RowSplit split;
  const int64_t n = end > begin ? end - begin : 0;
  split.dense = n < m.dense_below;
  const int64_t sink_end = Smaller<int64_t>(end, begin + m.sink);
  split.middle_begin = static_cast<int>(sink_end);
  split.middle_end = static_cast<int>(Larger<int64_t>(sink_end, end - m.window));
  // In fp32, the attribute's type, as the CPU: budget 0.1 of 1000 keys is 100, not 101.
  const int64_t picks = m.budget <= 1.0f ? static_cast<int64_t>(ceilf(m.budget * static_cast<float>(n)))
                                         : static_cast<int64_t>(floorf(m.budget));
  split.picks = static_cast<int>(Smaller<int64_t>(picks, split.middle_end - split.middle_begin));
  return split;
}

// What the mask adds to head `head`'s score of key `position` on query row `row` (0 without a
// mask; -inf hides the key).
__device__ __forceinline__ float MaskAddend(const AttentionParams& a, int b, int head, int position, int row = 0) {
  const AttentionMask& mask = a.mask;
  if (mask.data == nullptr) return 0.0f;
  const int64_t offset = b * mask.batch_stride + head * mask.head_stride + row * mask.row_stride + position;
  switch (mask.type) {
    case DataType::kBool:
      return static_cast<const uint8_t*>(mask.data)[offset] != 0 ? 0.0f : NegativeInfinity();
    default:
      switch (a.type) {
        case DataType::kFloat16: return __half2float(static_cast<const __half*>(mask.data)[offset]);
        case DataType::kBFloat16: return __bfloat162float(static_cast<const __nv_bfloat16*>(mask.data)[offset]);
        default: return static_cast<const float*>(mask.data)[offset];
      }
  }
}

// Whether every query head of KV head `kv_head`'s group (of `group` heads) has key `position` of
// query row `row` masked out.
__device__ __forceinline__ bool HiddenFromGroup(const AttentionParams& a, int group, int b, int kv_head, int row,
                                                int position) {
  if (a.mask.data == nullptr) return false;
  for (int g = 0; g < group; ++g) {
    if (MaskAddend(a, b, kv_head * group + g, position, row) != NegativeInfinity()) return false;
  }
  return true;
}

// A row of `T` elements read as fp32, x[d].
template <typename T>
struct FloatRow {
  const T* row;
  __device__ __forceinline__ float operator[](int d) const { return ToFloat(row[d]); }
};

// hash: the bucket of `x` (D values, x[d]) in one round's projections [D, half], as the CPU's
// HashBucket: argmax of [x·W, -x·W], the first on ties; the products summed over d in order.
template <typename Vector>
__device__ __forceinline__ int HashBucket(const float* projections, int D, int half, const Vector& x) {
  int best_positive = 0, best_negative = 0;
  float positive = 0.0f, negative = NegativeInfinity();
  for (int i = 0; i < half; ++i) {
    float product = 0.0f;
    for (int d = 0; d < D; ++d) product = fmaf(x[d], projections[d * half + i], product);
    if (i == 0 || product > positive) {
      positive = product;
      best_positive = i;
    }
    if (-product > negative) {
      negative = -product;
      best_negative = i;
    }
  }
  return negative > positive ? half + best_negative : best_positive;
}

// hyper: code(x) = Σ_i [x·W[:, i] > 0]·2^i over the `bits` (<= 32) hyperplanes of one KV head,
// W = method_data_0's [D, bits] slice, computed by a whole warp (lane i sums x·W[:, i] over d in
// order; NaN gives 0). Every lane gets the code.
template <typename Vector>
__device__ __forceinline__ uint32_t WarpHyperCode(const float* hyperplanes, int D, int bits, const Vector& x) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  float product = 0.0f;
  if (lane < bits) {
    for (int d = 0; d < D; ++d) product = fmaf(x[d], hyperplanes[d * bits + lane], product);
  }
  return __ballot_sync(kFullWarp, lane < bits && product > 0.0f);
}

// hyper: the sortLSH rank of a code, its Gray-code decoding (the CPU's GrayRank).
__host__ __device__ __forceinline__ uint32_t GrayRank(uint32_t code) {
  uint32_t rank = code;
  for (uint32_t shifted = code >> 1; shifted != 0; shifted >>= 1) rank ^= shifted;
  return rank;
}

}  // namespace ortsparse::cuda
