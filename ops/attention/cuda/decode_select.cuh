// Device building blocks of the decode selection (see decode_layout.cuh): masks, the threshold
// bucket of a weighted histogram, taking units, resolving the threshold bucket, and the per-block
// counts of the selection bitmap. Every function here is called by all threads of a block.
#pragma once

#include "attention/cuda/decode_layout.cuh"

namespace ortsparse::cuda::detail {

// Whether every query head of KV head `kv_head`'s group has key `position` masked out.
__device__ __forceinline__ bool HiddenFromGroup(const DecodeArgs& args, int b, int kv_head, int position) {
  return cuda::HiddenFromGroup(args.attention, args.group, b, kv_head, /*row=*/0, position);
}

// Where a block of a chunked selection kernel (grid: chunks x segments) works, read once the
// previous kernel's results are visible.
struct ChunkBlock {
  int segment, chunk;
  int b, kv_head;
  DecodeRow row;
};

__device__ __forceinline__ ChunkBlock BeginChunkBlock(const DecodeArgs& args) {
  WaitForPreviousKernel();
  AllowNextKernel();
  const int segment = static_cast<int>(blockIdx.y);
  const int kv_heads = static_cast<int>(args.attention.kv_num_heads);
  return {segment, static_cast<int>(blockIdx.x), segment / kv_heads, segment % kv_heads, args.rows[segment]};
}

struct Threshold {
  int bucket;      // units above it are taken
  int whole;       // the bucket is taken too
  int above;       // weight of the units above it
};

// In a histogram of `bins` weights, the bucket of the unit at which the weight taken in rank order
// (higher buckets first) reaches `need`; with less than `need` in all, every bucket is taken.
// `histogram` is global (read through L2) or shared memory.
template <bool kGlobal>
__device__ Threshold FindThreshold(const int* histogram, int bins, int need, int* scratch, Threshold* result) {
  const int per_thread = (bins + blockDim.x - 1) / blockDim.x;
  const int top = bins - threadIdx.x * per_thread;  // this thread's bins: [top - per_thread, top)
  auto weight = [&](int bin) { return kGlobal ? __ldcg(&histogram[bin]) : histogram[bin]; };
  int mine = 0;
  for (int bin = top - 1; bin >= top - per_thread && bin >= 0; --bin) mine += weight(bin);
  int total = 0;
  int running = BlockExclusiveSum(mine, scratch, &total);
  if (threadIdx.x == 0 && total < need) *result = {0, 1, 0};
  if (total >= need) {
    for (int bin = top - 1; bin >= top - per_thread && bin >= 0; --bin) {
      const int w = weight(bin);
      if (running < need && need <= running + w) *result = {bin, need == running + w, running};
      running += w;
    }
  }
  __syncthreads();
  const Threshold found = *result;
  __syncthreads();
  return found;
}

// Adds a block's histogram to the segment's (only its non-empty bins).
__device__ __forceinline__ void FlushHistogram(const int* block_histogram, int* histogram) {
  __syncthreads();
  for (int bin = threadIdx.x; bin < kBins; bin += blockDim.x) {
    const int w = block_histogram[bin];
    if (w != 0) atomicAdd(&histogram[bin], w);
  }
}

// Marks the middle keys of unit `unit` in the bitmap (keys, pages), or the cluster as taken.
__device__ __forceinline__ void MarkUnit(const DecodeArgs& args, const DecodeRow& row, int segment, int unit) {
  uint32_t* bitmap = args.bitmap + segment * args.bitmap_words;
  switch (args.unit) {
    case UnitKind::kKey:
      atomicOr(&bitmap[unit >> 5], 1u << (unit & 31));
      break;
    case UnitKind::kPage: {
      const int64_t page_begin = static_cast<int64_t>(unit) * args.method.page_size;
      int begin = static_cast<int>(Larger<int64_t>(row.middle_begin, page_begin));
      const int end = static_cast<int>(Smaller<int64_t>(row.middle_end, page_begin + args.method.page_size));
      while (begin < end) {  // word by word
        const int word_end = Smaller((begin | 31) + 1, end);
        const int bits = word_end - begin;
        atomicOr(&bitmap[begin >> 5], (bits == 32 ? 0xffffffffu : (1u << bits) - 1u) << (begin & 31));
        begin = word_end;
      }
      break;
    }
    default:
      args.cluster_taken[static_cast<int64_t>(segment) * args.method.clusters + unit] = 1;
      break;
  }
}

// MarkUnit, and the unit's weight added to the count of its bitmap block (after the filter blocks
// have stored theirs).
__device__ __forceinline__ void TakeUnit(const DecodeArgs& args, const DecodeRow& row, int segment, int unit,
                                         int weight) {
  MarkUnit(args, row, segment, unit);
  if (args.unit == UnitKind::kCluster) return;
  const int64_t first_position = args.unit == UnitKind::kPage ? static_cast<int64_t>(unit) * args.method.page_size : unit;
  atomicAdd(&args.block_counts[segment * args.chunks + first_position / args.chunk_positions], weight);
}

// Flushes a scoring block's histogram; the last block of the segment finds the threshold bucket.
__device__ __forceinline__ void FinishScoring(const DecodeArgs& args, int segment, const DecodeRow& row,
                                              const int* histogram, int* scratch, int* last, Threshold* threshold) {
  FlushHistogram(histogram, args.first_histogram + segment * kBins);
  if (!FinishedLast(&args.states[segment].scored_blocks, static_cast<int>(args.chunks), last)) return;
  const Threshold t = FindThreshold<true>(args.first_histogram + segment * kBins, kBins, row.picks, scratch, threshold);
  if (threadIdx.x == 0) {
    args.states[segment].threshold_bucket = t.bucket;
    args.states[segment].take_whole_bucket = t.whole;
    args.states[segment].bucket_need = row.picks - t.above;
    args.states[segment].bucket_weight = __ldcg(&args.first_histogram[segment * kBins + t.bucket]);
  }
}

// The score of unit `unit` as the scoring kernels stored it (clusters: by the prepare kernel).
__device__ __forceinline__ float StoredScore(const DecodeArgs& args, int segment, int unit) {
  return __ldcg(&args.scores[segment * args.units_capacity + unit]);
}

// Shared memory of ResolveRemaining.
struct ResolveScratch {
  uint64_t keys[kResolveCapacity];
  int weights[kResolveCapacity];
  int units[kResolveCapacity];
  int histogram[kBins];
  int count;
  int reduce[33];
  Threshold threshold;
};

// Takes, among the `count` units listed in `units` whose keys start with the `resolved` high bits
// of `prefix`, the best ones until their weight reaches `need`: pairwise ranks once they fit in
// shared memory, one more 11-bit digit at a time before that.
__device__ inline void ResolveRemaining(const DecodeArgs& args, const DecodeRow& row, int segment, const int* units,
                                 int count, uint64_t prefix, int resolved, int need, ResolveScratch& s) {
  while (need > 0) {
    const uint64_t resolved_mask = resolved == 0 ? 0 : ~uint64_t{0} << (64 - resolved);
    if (threadIdx.x == 0) s.count = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
      const int unit = __ldcg(&units[i]);
      const float score = StoredScore(args, segment, unit);
      const uint64_t key = UnitKey(args, score, unit);
      if ((key & resolved_mask) != prefix) continue;
      const int slot = atomicAdd(&s.count, 1);
      if (slot < kResolveCapacity) {
        s.keys[slot] = key;
        s.weights[slot] = UnitWeight(args, row, segment, unit, score);
        s.units[slot] = unit;
      }
    }
    __syncthreads();
    const int matching = s.count;
    if (matching <= kResolveCapacity) {
      // Unit i is taken iff the units ranked above it weigh less than `need`.
      for (int i = threadIdx.x; i < matching; i += blockDim.x) {
        const uint64_t key = s.keys[i];
        int better = 0;
        for (int j = 0; j < matching; ++j) better += s.keys[j] > key ? s.weights[j] : 0;
        if (better < need) TakeUnit(args, row, segment, s.units[i], s.weights[i]);
      }
      __syncthreads();
      return;
    }
    const int width = Smaller(kDigitBits, 64 - resolved);
    const int shift = 64 - resolved - width;
    const int bins = 1 << width;
    for (int bin = threadIdx.x; bin < bins; bin += blockDim.x) s.histogram[bin] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
      const int unit = __ldcg(&units[i]);
      const float score = StoredScore(args, segment, unit);
      const uint64_t key = UnitKey(args, score, unit);
      if ((key & resolved_mask) != prefix) continue;
      atomicAdd(&s.histogram[(key >> shift) & (bins - 1)], UnitWeight(args, row, segment, unit, score));
    }
    __syncthreads();
    const Threshold t = FindThreshold<false>(s.histogram, bins, need, s.reduce, &s.threshold);
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
      const int unit = __ldcg(&units[i]);
      const float score = StoredScore(args, segment, unit);
      const uint64_t key = UnitKey(args, score, unit);
      if ((key & resolved_mask) != prefix) continue;
      const int digit = static_cast<int>((key >> shift) & (bins - 1));
      if (digit > t.bucket || (t.whole && digit == t.bucket)) {
        TakeUnit(args, row, segment, unit, UnitWeight(args, row, segment, unit, score));
      }
    }
    __syncthreads();
    if (t.whole) return;
    need -= t.above;
    prefix |= static_cast<uint64_t>(t.bucket) << shift;
    resolved += width;
  }
}

// The exclusive prefix of the segment's block counts, and its total: the middle keys selected.
__device__ inline void FinishBlockCounts(const DecodeArgs& args, int segment, int* scratch) {
  const int* counts = args.block_counts + segment * args.chunks;
  int* prefix = args.block_prefix + segment * (args.chunks + 1);
  int running = 0;
  for (int64_t begin = 0; begin < args.chunks; begin += blockDim.x) {
    const int64_t c = begin + threadIdx.x;
    const int count = c < args.chunks ? __ldcg(&counts[c]) : 0;
    int total = 0;
    const int before = BlockExclusiveSum(count, scratch, &total);
    if (c < args.chunks) prefix[c] = running + before;
    running += total;
  }
  if (threadIdx.x == 0) {
    prefix[args.chunks] = running;
    args.states[segment].middle_selected = running;
  }
}

}  // namespace ortsparse::cuda::detail
