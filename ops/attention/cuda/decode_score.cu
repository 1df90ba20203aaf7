// Scores of rows for the decode selection: topk scores keys, loki their low-rank summaries (max
// over the group of feature · row), quest bounds pages (max over the group of
// Σ_d max(q_d·min_d, q_d·max_d)).
#include "attention/cuda/decode_kernels.h"
#include "attention/cuda/decode_select.cuh"

namespace ortsparse::cuda::detail {
namespace {

// Lanes past a row's width read this far beyond the last head's features (and multiply by 0).
constexpr int kFeaturePadding = 256;
constexpr int kPrefetchChunks = 16;  // 16-byte chunks of a row a thread loads before using them

// One thread per unit: it reads the unit's row in 16-byte chunks (kPrefetchChunks at a time, all
// loads first) and scores it against kHeads query heads at once, their features read from shared
// memory (every thread of a warp reads the same address: a broadcast). Larger groups go round in
// tiles of kHeads heads. No lane exchanges; the row's chunks come through L1.
template <typename T, int kHeads, bool kPageBound>
__global__ void __launch_bounds__(kSelectThreads) ScoreRowsKernel(const DecodeArgs args) {
  constexpr int kVec = kChunkElements<T>;
  extern __shared__ float features[];  // [group][feature_width], then kFeaturePadding zeros
  __shared__ int histogram[kBins];
  __shared__ int scratch[33];
  __shared__ int last;
  __shared__ Threshold threshold;
  const auto [segment, chunk, b, kv_head, row] = BeginChunkBlock(args);
  if (!row.ranked) return;
  const SparseMethodParams& m = args.method;
  const int D = static_cast<int>(args.attention.head_size);
  const int feature_count = args.group * args.feature_width;

  for (int i = threadIdx.x; i < kBins; i += blockDim.x) histogram[i] = 0;
  const float* segment_features = args.features + static_cast<int64_t>(segment) * feature_count;
  for (int i = threadIdx.x; i < feature_count + kFeaturePadding; i += blockDim.x) {
    features[i] = i < feature_count ? segment_features[i] : 0.0f;
  }
  uint32_t* bitmap = args.bitmap + segment * args.bitmap_words + chunk * args.chunk_positions / 32;
  for (int i = threadIdx.x; i < args.chunk_positions / 32; i += blockDim.x) bitmap[i] = 0;
  __syncthreads();

  const T* rows;
  int64_t stride;
  int width;
  if (m.method == SparseMethod::kTopK) {
    rows = static_cast<const T*>(args.attention.key_cache) + b * args.attention.key_strides[0] +
           kv_head * args.attention.key_strides[1];
    stride = args.attention.key_strides[2];
    width = D;
  } else {
    rows = static_cast<const T*>(m.state.present) + b * m.state.present_strides[0] +
           kv_head * m.state.present_strides[1];
    stride = m.state.present_strides[2];
    width = kPageBound ? D : static_cast<int>(m.rank);
  }
  // Chunks of the row (of each half for quest pages); with rows not 16-byte aligned or a width not
  // a multiple of kVec, the last chunk (or every one) is read element by element.
  const bool aligned = (stride * sizeof(T)) % 16 == 0 && reinterpret_cast<uintptr_t>(rows) % 16 == 0 &&
                       (!kPageBound || (D * sizeof(T)) % 16 == 0);
  const int chunks = (width + kVec - 1) / kVec;

  const int64_t chunk_begin = chunk * args.chunk_units;
  const int begin = static_cast<int>(Larger<int64_t>(chunk_begin, row.unit_begin));
  const int end = static_cast<int>(Smaller<int64_t>(chunk_begin + args.chunk_units, row.unit_end));
  for (int unit = begin + threadIdx.x; unit < end; unit += blockDim.x) {
    const T* unit_row = rows + unit * stride;
    float best = NegativeInfinity();
    for (int first_head = 0; first_head < args.group; first_head += kHeads) {
      float sums[kHeads];
#pragma unroll
      for (int g = 0; g < kHeads; ++g) sums[g] = 0.0f;
      for (int first_chunk = 0; first_chunk < chunks; first_chunk += kPrefetchChunks / (kPageBound ? 2 : 1)) {
        constexpr int kBatch = kPrefetchChunks / (kPageBound ? 2 : 1);
        uint4 low[kBatch], high[kBatch];
#pragma unroll
        for (int i = 0; i < kBatch; ++i) {
          const int c = first_chunk + i;
          low[i] = high[i] = make_uint4(0, 0, 0, 0);
          if (aligned && c * kVec + kVec <= width) {
            low[i] = __ldg(reinterpret_cast<const uint4*>(unit_row + c * kVec));
            if (kPageBound) high[i] = __ldg(reinterpret_cast<const uint4*>(unit_row + D + c * kVec));
          }
        }
#pragma unroll
        for (int i = 0; i < kBatch; ++i) {
          const int c = first_chunk + i;
          if (c >= chunks) break;
          float x[kVec], y[kVec];
          ChunkAsFloat<T>(low[i], x);
          ChunkAsFloat<T>(high[i], y);
          if (!(aligned && c * kVec + kVec <= width)) {  // element by element
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
              const bool inside = c * kVec + e < width;
              x[e] = inside ? ToFloat(unit_row[c * kVec + e]) : 0.0f;
              if (kPageBound) y[e] = inside ? ToFloat(unit_row[D + c * kVec + e]) : 0.0f;
            }
          }
#pragma unroll
          for (int g = 0; g < kHeads; ++g) {
            if (first_head + g >= args.group) break;
            const float* f = features + (first_head + g) * args.feature_width + c * kVec;
#pragma unroll
            for (int e = 0; e < kVec; ++e) {
              sums[g] += kPageBound ? fmaxf(f[e] * x[e], f[e] * y[e]) : f[e] * x[e];
            }
          }
        }
      }
#pragma unroll
      for (int g = 0; g < kHeads; ++g) {
        if (first_head + g < args.group) best = fmaxf(best, sums[g]);
      }
    }
    if (!kPageBound && HiddenFromGroup(args, b, kv_head, unit)) best = NegativeInfinity();
    args.scores[segment * args.units_capacity + unit] = best;
    const int weight = UnitWeight(args, row, segment, unit, best);
    if (weight > 0) atomicAdd(&histogram[TopDigit(UnitKey(args, best, unit))], weight);
  }
  FinishScoring(args, segment, row, histogram, scratch, &last, &threshold);
}

template <typename T, bool kPageBound>
cudaError_t LaunchForHeads(const DecodeArgs& args, const LaunchShape& shape) {
  switch (ScoringHeadsPerPass(args.group)) {
    case 1: return LaunchKernel(ScoreRowsKernel<T, 1, kPageBound>, shape, args);
    case 2: return LaunchKernel(ScoreRowsKernel<T, 2, kPageBound>, shape, args);
    case 4: return LaunchKernel(ScoreRowsKernel<T, 4, kPageBound>, shape, args);
    default: return LaunchKernel(ScoreRowsKernel<T, 8, kPageBound>, shape, args);
  }
}

template <typename T>
cudaError_t LaunchForType(const DecodeArgs& args, LaunchShape shape) {
  shape.shared_bytes = (static_cast<size_t>(args.group) * args.feature_width + kFeaturePadding) * sizeof(float);
  return args.method.method == SparseMethod::kQuest ? LaunchForHeads<T, true>(args, shape)
                                                    : LaunchForHeads<T, false>(args, shape);
}

}  // namespace

cudaError_t LaunchScoreRows(const DecodeArgs& args, LaunchShape shape) {
  switch (args.attention.type) {
    case DataType::kFloat16: return LaunchForType<__half>(args, shape);
    case DataType::kBFloat16: return LaunchForType<__nv_bfloat16>(args, shape);
    default: return LaunchForType<float>(args, shape);
  }
}

}  // namespace ortsparse::cuda::detail
