// Split-K exact attention of a decode row (flash-decoding), over every visible key or over the
// selection of a sparse method, for one (segment, tile of up to kMaxTileHeads query heads, split)
// per block.
//
// A segment's keys form one list: the sink (or, for a dense row, every visible key), the selected
// middle keys in position order (from the selection's bitmap and its block counts), the window.
// Each split takes an equal share of the list in tiles of kTileKeys keys (a block of a sparse row
// first lists its share's positions in shared memory), and each of the block's warps streams every
// kAttentionWarps-th tile of the share through its own ring of shared memory (cp.async, 16-byte
// chunks, kStages - 1 tiles ahead), so the warps never wait for each other.
//   16-bit caches: tensor cores (mma.m16n8k16, fp32 accumulation) with the tile's query heads as
//   the 16 rows: S = Q·Kᵀ, an online softmax in fp32 on the fragments, O += P·V with the weights P
//   split into a 16-bit value and its 16-bit remainder, so that they keep (nearly) fp32 precision.
//   fp32 caches: the same tiles on CUDA cores.
// The warps' and then the splits' partial results are merged; the block that finishes a (segment,
// head tile) last writes its output.
#pragma once

#include "attention/cuda/decode_kernels.h"
#include "attention/cuda/decode_select.cuh"

namespace ortsparse::cuda::detail {

constexpr int kAttentionWarps = kAttentionThreads / 32;

// The segment's key list: part 1 [first_begin, first_begin + first_count), then `middle` bitmap
// keys, then [last_begin, last_begin + last_count).
struct KeyList {
  int first_begin, first_count;
  int middle;
  int last_begin, last_count;
  __device__ int size() const { return first_count + middle + last_count; }
};

__device__ __forceinline__ KeyList KeyListOf(const DecodeArgs& args, const DecodeRow& row, int segment) {
  KeyList list;
  list.first_begin = row.visible_begin;
  list.first_count = row.middle_begin - row.visible_begin;
  list.middle = row.ranked ? __ldcg(&args.states[segment].middle_selected) : 0;
  list.last_begin = row.middle_end;
  list.last_count = row.visible_end - row.middle_end;
  return list;
}

// Bitmap words ListPositions counts at a time (its scratch: that many ints and 33 more).
constexpr int kListWindowWords = 2048;

// Writes the positions of list entries [first, first + count) to positions[0, count). Every thread
// of the block takes part: the middle entries are found window by window of the bitmap (popcounts
// and their block-wide prefix in `scratch`), each entry's word by binary search over that prefix and
// its bit by __fns, so the work is balanced whatever the runs of selected keys look like.
__device__ inline void ListPositions(const DecodeArgs& args, const KeyList& list, int segment, int first, int count,
                                     int* positions, int* found_block, int* scratch) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const int v = first + i;
    if (v < list.first_count) {
      positions[i] = list.first_begin + v;
    } else if (v >= list.first_count + list.middle) {
      positions[i] = list.last_begin + (v - list.first_count - list.middle);
    }
  }
  // The middle entries: the j-th selected keys for j in [j_begin, j_end).
  const int j_begin = Larger(first, list.first_count) - list.first_count;
  const int j_end = Smaller(first + count, list.first_count + list.middle) - list.first_count;
  if (j_begin >= j_end) return;
  // The bitmap block holding the j_begin-th selected key: the last one whose prefix is <= j_begin.
  const int* prefix = args.block_prefix + segment * (args.chunks + 1);
  if (threadIdx.x == 0) *found_block = 0;
  __syncthreads();
  for (int c = threadIdx.x; c < args.chunks; c += blockDim.x) {
    if (__ldcg(&prefix[c]) <= j_begin) atomicMax(found_block, c);
  }
  __syncthreads();
  const int block = *found_block;
  const uint32_t* bitmap = args.bitmap + segment * args.bitmap_words;
  int* word_prefix = scratch;  // inclusive count of selected keys up to each word of the window
  int* reduce = scratch + kListWindowWords;
  int64_t word = block * args.chunk_positions / 32;
  int base = __ldcg(&prefix[block]);  // selected keys before `word`
  while (base < j_end && word < args.bitmap_words) {
    const int words = static_cast<int>(Smaller<int64_t>(kListWindowWords, args.bitmap_words - word));
    const int per_thread = (words + blockDim.x - 1) / blockDim.x;
    const int own = threadIdx.x * per_thread;
    int mine = 0;
    for (int k = 0; k < per_thread && own + k < words; ++k) {
      mine += __popc(__ldcg(&bitmap[word + own + k]));
      word_prefix[own + k] = mine;
    }
    int total = 0;
    const int before = BlockExclusiveSum(mine, reduce, &total);
    for (int k = 0; k < per_thread && own + k < words; ++k) word_prefix[own + k] += before;
    __syncthreads();
    const int end = Smaller(j_end, base + total);
    for (int j = Larger(j_begin, base) + threadIdx.x; j < end; j += blockDim.x) {
      const int rank = j - base;  // among the window's selected keys
      int low = 0, high = words - 1;  // the first word whose inclusive count exceeds rank
      while (low < high) {
        const int middle = (low + high) / 2;
        if (word_prefix[middle] > rank) high = middle;
        else low = middle + 1;
      }
      const int earlier = low == 0 ? 0 : word_prefix[low - 1];
      const uint32_t bits = __ldcg(&bitmap[word + low]);
      positions[list.first_count + j - first] = static_cast<int>((word + low) * 32 + __fns(bits, 0, rank - earlier + 1));
    }
    base += total;
    word += words;
    __syncthreads();  // the window's prefix is read before the next one overwrites it
  }
}

// Shared memory of a block: each warp's ring of kStages tiles, a tile being kTileKeys key rows then
// kTileKeys value rows, each row padded by 16 bytes (conflict-free ldmatrix). After the loop the
// same memory holds the warps' partial sums, then the final merge's split weights (kMaxSplits at a
// time); before the loop, the listing's scratch.
template <typename T, int D>
struct AttentionGeometry {
  static constexpr int kVec = kChunkElements<T>;
  static constexpr int kRowChunks = D / kVec;
  static constexpr int kRowBytes = D * static_cast<int>(sizeof(T)) + 16;
  static constexpr int kStages = sizeof(T) == 2 ? 3 : 2;
  static constexpr int kStageBytes = 2 * kTileKeys * kRowBytes;
  static constexpr int kWarpBytes = kStages * kStageBytes;
  static constexpr int kRingBytes = kAttentionWarps * kWarpBytes;
  static constexpr int kMergeBytes = kAttentionWarps * kMaxTileHeads * D * 4;
  static constexpr int kFinalBytes = kMaxTileHeads * kMaxSplits * 4;
  static constexpr int kListBytes = (kListWindowWords + 33) * 4;
  static constexpr int kSharedBytes = Larger(Larger(kRingBytes, kListBytes), Larger(kMergeBytes, kFinalBytes));
};

template <typename T, int D, bool kWide>
__global__ void __launch_bounds__(kAttentionThreads, sizeof(T) == 2 ? 2 : 1) DecodeAttentionKernel(const DecodeArgs args) {
  using G = AttentionGeometry<T, D>;
  constexpr bool kTensor = sizeof(T) == 2;
  constexpr int kScalarHeads = kMaxTileHeads / 2;  // fp32: heads a lane scores (half-warps take odd, even)
  constexpr int kScalarDims = (D + 31) / 32;       // fp32: dimensions a lane accumulates
  extern __shared__ __align__(16) unsigned char shared[];
  __shared__ int positions[kListCapacity];  // of the block's share, for a sparse row
  __shared__ int found_block;
  __shared__ int tile_positions[kAttentionWarps][G::kStages][kTileKeys];
  __shared__ float2 merge_stats[kAttentionWarps][kMaxTileHeads];
  __shared__ float2 head_totals[kMaxTileHeads];
  __shared__ __align__(16) float scalar_query[kTensor ? 1 : kMaxTileHeads * D];  // read as float4
  __shared__ float scalar_weights[kAttentionWarps][kTensor ? 1 : kMaxTileHeads][kTileKeys];
  __shared__ float scalar_rescales[kAttentionWarps][kTensor ? 1 : kMaxTileHeads];
  __shared__ int last;

  const AttentionParams& a = args.attention;
  const int segment = blockIdx.y, tile = blockIdx.z, split = blockIdx.x;
  const int kv_heads = static_cast<int>(a.kv_num_heads);
  const int b = segment / kv_heads, kv_head = segment % kv_heads;
  const int first_head = kv_head * args.group + tile * kMaxTileHeads;
  const int heads = Smaller(kMaxTileHeads, args.group - tile * kMaxTileHeads);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gid = lane >> 2, tig = lane & 3;  // tensor fragments: row group, thread in group
  const bool exact_softmax = a.softcap > 0.0f || a.mask.data != nullptr;
  const T* query = static_cast<const T*>(a.query) + b * a.query_strides[0];

  // The query and the cache are final before this step's first kernel: read before waiting.
  // Tensor cores: A fragments of the tile's heads (rows gid, gid + 8; columns 2 tig, 2 tig + 8).
  uint32_t query_fragments[kTensor ? D / 16 : 1][4];
  if constexpr (kTensor) {
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int head = gid + (r & 1) * 8, column = ks * 16 + tig * 2 + (r >> 1) * 8;
        T low = FromFloat<T>(0.0f), high = low;
        if (head < heads) {
          const T* q = query + (first_head + head) * a.query_strides[2] + column;
          low = q[0];
          high = q[1];
        }
        query_fragments[ks][r] = PackElements(low, high);
      }
    }
  } else {  // scale (and log2 e) in the query, as the scores' units
    const float factor = exact_softmax ? a.scale : a.scale * kLog2e;
    for (int i = threadIdx.x; i < heads * D; i += blockDim.x) {
      scalar_query[i] = ToFloat(query[(first_head + i / D) * a.query_strides[2] + i % D]) * factor;
    }
  }
  const float score_scale = exact_softmax ? a.scale : a.scale * kLog2e;  // tensor cores: applied to S
  WaitForPreviousKernel();
  AllowNextKernel();
  __syncthreads();

  const DecodeRow row = PartitionDecodeRow(args, b);
  const KeyList list = KeyListOf(args, row, segment);
  const int total = list.size();
  const int share = ((total + args.splits - 1) / args.splits + kTileKeys - 1) / kTileKeys * kTileKeys;
  const int list_begin = Smaller(total, split * share);
  const int list_end = Smaller(total, list_begin + share);
  const int tiles = (list_end - list_begin + kTileKeys - 1) / kTileKeys;
  const int my_tiles = tiles > warp ? (tiles - warp + kAttentionWarps - 1) / kAttentionWarps : 0;
  const T* keys = static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + kv_head * a.key_strides[1];
  const T* values = static_cast<const T*>(a.value_cache) + b * a.value_strides[0] + kv_head * a.value_strides[1];
  const int64_t key_stride = a.key_strides[2], value_stride = a.value_strides[2];
  unsigned char* ring = shared + warp * G::kWarpBytes;
  // A sparse row's share (at most kListCapacity keys: the plan's splits) is listed first; a dense
  // row's keys are its two ranges.
  if (row.ranked) {  // the ring is free until the first copies: it holds the listing's scratch
    ListPositions(args, list, segment, list_begin, list_end - list_begin, positions, &found_block,
                  reinterpret_cast<int*>(shared));
    __syncthreads();
  }

  auto tile_start = [&](int i) { return list_begin + (warp + kAttentionWarps * i) * kTileKeys; };
  // Lane l < kTileKeys: the position of key l of the warp's i-th tile (-1: none).
  auto positions_of = [&](int i) {
    const int v = tile_start(i) + lane;
    if (lane >= kTileKeys || i >= my_tiles || v >= list_end) return -1;
    if (row.ranked) return positions[v - list_begin];
    return v < list.first_count ? list.first_begin + v : list.last_begin + (v - list.first_count);
  };
  auto issue = [&](int i, int position) {
    const int stage = i % G::kStages;
    unsigned char* base = ring + stage * G::kStageBytes;
    if (lane < kTileKeys) tile_positions[warp][stage][lane] = position;
#pragma unroll
    for (int c = 0; c < G::kRowChunks; ++c) {  // 2 x kTileKeys rows of kRowChunks chunks: kRowChunks per lane
      const int chunk = c * 32 + lane;
      const int which = chunk / (kTileKeys * G::kRowChunks);
      const int rest = chunk % (kTileKeys * G::kRowChunks);
      const int key = rest / G::kRowChunks, part = rest % G::kRowChunks;
      const int p = __shfl_sync(kFullWarp, position, key);
      const T* source = (which != 0 ? values : keys) + part * G::kVec;
      if (p >= 0) source += p * (which != 0 ? value_stride : key_stride);
      CopyAsync(base + (which * kTileKeys + key) * G::kRowBytes + part * 16, source, p >= 0);
    }
  };

  float running_max[kTensor ? 2 : kScalarHeads], weight_sum[kTensor ? 2 : kScalarHeads];
#pragma unroll
  for (int i = 0; i < (kTensor ? 2 : kScalarHeads); ++i) {
    running_max[i] = NegativeInfinity();
    weight_sum[i] = 0.0f;
  }
  float tensor_sums[kTensor ? D / 8 : 1][4] = {};
  float scalar_sums[kTensor ? 1 : kMaxTileHeads][kScalarDims] = {};

  // Tiles past the warp's last are issued too, as zero fills (no position): the whole warp always
  // takes the same path.
  int next = positions_of(0);
#pragma unroll
  for (int i = 0; i < G::kStages - 1; ++i) {
    issue(i, next);
    next = positions_of(i + 1);
    CommitCopies();
  }
  for (int t = 0; t < my_tiles; ++t) {
    issue(t + G::kStages - 1, next);
    next = positions_of(t + G::kStages);
    CommitCopies();
    WaitCopies<G::kStages - 1>();
    __syncwarp();
    const int stage = t % G::kStages;
    const unsigned char* key_tile = ring + stage * G::kStageBytes;
    const unsigned char* value_tile = key_tile + kTileKeys * G::kRowBytes;
    const int valid = Smaller(kTileKeys, list_end - tile_start(t));
    const int* positions = tile_positions[warp][stage];
    if constexpr (kTensor) {
      // S = Q·Kᵀ: two 8-key column tiles; per k-step, ldmatrix of keys {0-7, 8-15} x dims {+0, +8}.
      float s[2][4] = {};
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) {
        const int m = lane >> 3, r = lane & 7;
        uint32_t k[4];
        LoadMatrices(key_tile + ((m >> 1) * 8 + r) * G::kRowBytes + (ks * 16 + (m & 1) * 8) * 2, k);
        Mma(s[0], query_fragments[ks], k[0], k[1], T());
        Mma(s[1], query_fragments[ks], k[2], k[3], T());
      }
      // Scores in log2 units; element e of column tile n is head gid + 8 (e >> 1), key 8 n + 2 tig + (e & 1).
      float x[2][4];
#pragma unroll
      for (int n = 0; n < 2; ++n) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int key = n * 8 + tig * 2 + (e & 1), head = gid + (e >> 1) * 8;
          float value = s[n][e] * score_scale;
          if (key >= valid || head >= heads) {
            value = NegativeInfinity();
          } else if (exact_softmax) {
            if (a.softcap > 0.0f) value = a.softcap * tanhf(value / a.softcap);
            value = (value + MaskAddend(a, b, first_head + head, positions[key])) * kLog2e;
          }
          x[n][e] = value;
        }
      }
      float p[2][4];
      float rescale[2] = {1.0f, 1.0f};
#pragma unroll
      for (int half = 0; half < (kWide ? 2 : 1); ++half) {
        float largest = fmaxf(fmaxf(x[0][2 * half], x[0][2 * half + 1]), fmaxf(x[1][2 * half], x[1][2 * half + 1]));
        largest = fmaxf(largest, __shfl_xor_sync(kFullWarp, largest, 1));
        largest = fmaxf(largest, __shfl_xor_sync(kFullWarp, largest, 2));
        const float merged = fmaxf(running_max[half], largest);
        const float reference = merged == NegativeInfinity() ? 0.0f : merged;
        rescale[half] = exp2f(running_max[half] - reference);
        running_max[half] = merged;
        float sum = 0.0f;
#pragma unroll
        for (int n = 0; n < 2; ++n) {
#pragma unroll
          for (int e = 2 * half; e < 2 * half + 2; ++e) {
            p[n][e] = exp2f(x[n][e] - reference);
            sum += p[n][e];
          }
        }
        weight_sum[half] = weight_sum[half] * rescale[half] + sum;
      }
      if constexpr (!kWide) p[0][2] = p[0][3] = p[1][2] = p[1][3] = 0.0f;
#pragma unroll
      for (int n = 0; n < D / 8; ++n) {
        tensor_sums[n][0] *= rescale[0];
        tensor_sums[n][1] *= rescale[0];
        if constexpr (kWide) {
          tensor_sums[n][2] *= rescale[1];
          tensor_sums[n][3] *= rescale[1];
        }
      }
      // O += P·V, P as A fragments (its C layout), V by transposed ldmatrix: keys {0-7, 8-15} x dims {+0, +8}.
      uint32_t high[4], low[4];
      SplitPair(p[0][0], p[0][1], &high[0], &low[0], T());
      SplitPair(p[0][2], p[0][3], &high[1], &low[1], T());
      SplitPair(p[1][0], p[1][1], &high[2], &low[2], T());
      SplitPair(p[1][2], p[1][3], &high[3], &low[3], T());
#pragma unroll
      for (int jp = 0; jp < D / 16; ++jp) {
        const int m = lane >> 3, r = lane & 7;
        uint32_t v[4];
        LoadMatricesTransposed(value_tile + ((m & 1) * 8 + r) * G::kRowBytes + (jp * 16 + (m >> 1) * 8) * 2, v);
        Mma(tensor_sums[2 * jp], high, v[0], v[1], T());
        Mma(tensor_sums[2 * jp], low, v[0], v[1], T());
        Mma(tensor_sums[2 * jp + 1], high, v[2], v[3], T());
        Mma(tensor_sums[2 * jp + 1], low, v[2], v[3], T());
      }
    } else {
      // Lane: key (lane & 15) for heads (lane >> 4) + 2 i; then dimensions lane + 32 j for every head.
      const int key = lane & 15, parity = lane >> 4;
      const float4* key_row = reinterpret_cast<const float4*>(key_tile + key * G::kRowBytes);
#pragma unroll
      for (int i = 0; i < kScalarHeads; ++i) {
        const int head = parity + 2 * i;
        float value = NegativeInfinity();
        if (head < heads && key < valid) {
          const float4* q = reinterpret_cast<const float4*>(scalar_query + head * D);
          float dot = 0.0f;
#pragma unroll 8
          for (int d = 0; d < D / 4; ++d) {
            const float4 qq = q[d], kk = key_row[d];
            dot = fmaf(qq.x, kk.x, dot);
            dot = fmaf(qq.y, kk.y, dot);
            dot = fmaf(qq.z, kk.z, dot);
            dot = fmaf(qq.w, kk.w, dot);
          }
          value = dot;
          if (exact_softmax) {
            if (a.softcap > 0.0f) value = a.softcap * tanhf(value / a.softcap);
            value = (value + MaskAddend(a, b, first_head + head, positions[key])) * kLog2e;
          }
        }
        float largest = value;
#pragma unroll
        for (int offset = 8; offset > 0; offset /= 2) largest = fmaxf(largest, __shfl_xor_sync(kFullWarp, largest, offset));
        const float merged = fmaxf(running_max[i], largest);
        const float reference = merged == NegativeInfinity() ? 0.0f : merged;
        const float factor = exp2f(running_max[i] - reference);
        running_max[i] = merged;
        const float weight = exp2f(value - reference);
        weight_sum[i] = weight_sum[i] * factor + weight;
        if (head < heads) {
          scalar_weights[warp][head][key] = weight;
          if (key == 0) scalar_rescales[warp][head] = factor;
        }
      }
      __syncwarp();
#pragma unroll
      for (int head = 0; head < kMaxTileHeads; ++head) {
        if (head >= heads) continue;
        const float factor = scalar_rescales[warp][head];
#pragma unroll
        for (int j = 0; j < kScalarDims; ++j) scalar_sums[head][j] *= factor;
        for (int k = 0; k < kTileKeys; ++k) {
          const float weight = scalar_weights[warp][head][k];
          const float* value_row = reinterpret_cast<const float*>(value_tile + k * G::kRowBytes);
#pragma unroll
          for (int j = 0; j < kScalarDims; ++j) {
            if (lane + 32 * j < D) scalar_sums[head][j] = fmaf(weight, value_row[lane + 32 * j], scalar_sums[head][j]);
          }
        }
      }
    }
    __syncwarp();
  }
  WaitCopies<0>();
  __syncthreads();  // every warp is done with its ring: it holds the warps' partial sums now

  // The warp's partial result: sums[warp][head][d] and (running max, weight sum) per head.
  float* warp_sums = reinterpret_cast<float*>(shared);
  if constexpr (kTensor) {
#pragma unroll
    for (int half = 0; half < (kWide ? 2 : 1); ++half) {
      weight_sum[half] += __shfl_xor_sync(kFullWarp, weight_sum[half], 1);
      weight_sum[half] += __shfl_xor_sync(kFullWarp, weight_sum[half], 2);
      const int head = gid + 8 * half;
      if (head < heads) {
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          float* out = warp_sums + (warp * kMaxTileHeads + head) * D + n * 8 + tig * 2;
          out[0] = tensor_sums[n][2 * half];
          out[1] = tensor_sums[n][2 * half + 1];
        }
        if (tig == 0) merge_stats[warp][head] = make_float2(running_max[half], weight_sum[half]);
      }
    }
  } else {
    const int key = lane & 15, parity = lane >> 4;
#pragma unroll
    for (int i = 0; i < kScalarHeads; ++i) {
#pragma unroll
      for (int offset = 8; offset > 0; offset /= 2) weight_sum[i] += __shfl_xor_sync(kFullWarp, weight_sum[i], offset);
      const int head = parity + 2 * i;
      if (key == 0 && head < heads) merge_stats[warp][head] = make_float2(running_max[i], weight_sum[i]);
    }
#pragma unroll
    for (int head = 0; head < kMaxTileHeads; ++head) {
      if (head >= heads) continue;
#pragma unroll
      for (int j = 0; j < kScalarDims; ++j) {
        if (lane + 32 * j < D) warp_sums[(warp * kMaxTileHeads + head) * D + lane + 32 * j] = scalar_sums[head][j];
      }
    }
  }
  __syncthreads();

  // Merge the warps: this split's partial result.
  const int64_t tile_index = static_cast<int64_t>(segment) * args.head_tiles + tile;
  const int64_t split_index = tile_index * args.splits + split;
  float2* stats = args.partial_stats + split_index * kMaxTileHeads;
  float* partial = args.partial_sums + split_index * kMaxTileHeads * D;
  for (int i = threadIdx.x; i < heads * D; i += blockDim.x) {
    const int g = i / D, d = i % D;
    float merged = NegativeInfinity();
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) merged = fmaxf(merged, merge_stats[w][g].x);
    const float reference = merged == NegativeInfinity() ? 0.0f : merged;
    float sum = 0.0f, weight = 0.0f;
#pragma unroll
    for (int w = 0; w < kAttentionWarps; ++w) {
      const float factor = exp2f(merge_stats[w][g].x - reference);
      sum += warp_sums[(w * kMaxTileHeads + g) * D + d] * factor;
      weight += merge_stats[w][g].y * factor;
    }
    partial[i] = sum;
    if (d == 0) stats[g] = make_float2(merged, weight);
  }
  if (!FinishedLast(&args.attention_counters[tile_index], args.splits, &last)) return;

  // The last block of the tile merges the splits: weights exp2(max_s - max) / sum per (head, split),
  // kMaxSplits splits at a time into shared memory (the warps' sums are merged); each thread sums 4
  // consecutive dimensions of one head (16-byte loads, several splits in flight; splits without
  // keys weigh 0 and are not read).
  const float2* all_stats = args.partial_stats + tile_index * args.splits * kMaxTileHeads;
  const float* all_sums = args.partial_sums + tile_index * args.splits * kMaxTileHeads * D;
  for (int g = warp; g < heads; g += kAttentionWarps) {
    float merged = NegativeInfinity();
    for (int s = lane; s < args.splits; s += 32) merged = fmaxf(merged, __ldcg(&all_stats[s * kMaxTileHeads + g]).x);
    merged = WarpReduce(merged, [](float x, float y) { return fmaxf(x, y); });
    const float reference = merged == NegativeInfinity() ? 0.0f : merged;
    float weight = 0.0f;
    for (int s = lane; s < args.splits; s += 32) {
      const float2 st = __ldcg(&all_stats[s * kMaxTileHeads + g]);
      weight += st.y * exp2f(st.x - reference);
    }
    weight = WarpReduce(weight, [](float x, float y) { return x + y; });
    if (lane == 0) head_totals[g] = make_float2(reference, weight);
  }
  constexpr int kColumnsPerThread = (kMaxTileHeads * D / 4 + kAttentionThreads - 1) / kAttentionThreads;
  float4 acc[kColumnsPerThread];
#pragma unroll
  for (int k = 0; k < kColumnsPerThread; ++k) acc[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  float* split_weights = reinterpret_cast<float*>(shared);  // [head][split of the slice]
  for (int first_split = 0; first_split < args.splits; first_split += kMaxSplits) {
    const int slice = Smaller(kMaxSplits, args.splits - first_split);
    __syncthreads();
    for (int i = threadIdx.x; i < heads * slice; i += blockDim.x) {
      const int g = i / slice, s = first_split + i % slice;
      const float2 st = __ldcg(&all_stats[s * kMaxTileHeads + g]);
      const float2 totals = head_totals[g];
      split_weights[i] = st.y > 0.0f && totals.y > 0.0f ? exp2f(st.x - totals.x) / totals.y : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int k = 0; k < kColumnsPerThread; ++k) {
      const int column = threadIdx.x + k * kAttentionThreads;
      if (column >= heads * D / 4) continue;
      const float* weights = split_weights + column * 4 / D * slice;
      const float4* sums = reinterpret_cast<const float4*>(all_sums) + column;
      constexpr int kInFlight = 16;
      for (int s0 = 0; s0 < slice; s0 += kInFlight) {
        float w[kInFlight];
        float4 loaded[kInFlight];
#pragma unroll
        for (int i = 0; i < kInFlight; ++i) {
          w[i] = s0 + i < slice ? weights[s0 + i] : 0.0f;
          loaded[i] = w[i] != 0.0f ? __ldcg(sums + static_cast<int64_t>(first_split + s0 + i) * kMaxTileHeads * D / 4)
                                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int i = 0; i < kInFlight; ++i) {
          acc[k].x = fmaf(w[i], loaded[i].x, acc[k].x);
          acc[k].y = fmaf(w[i], loaded[i].y, acc[k].y);
          acc[k].z = fmaf(w[i], loaded[i].z, acc[k].z);
          acc[k].w = fmaf(w[i], loaded[i].w, acc[k].w);
        }
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kColumnsPerThread; ++k) {
    const int column = threadIdx.x + k * kAttentionThreads;
    if (column >= heads * D / 4) continue;
    const int g = column * 4 / D, d = column * 4 % D;
    T* out = static_cast<T*>(a.output) + b * a.output_strides[0] + (first_head + g) * a.output_strides[2] + d;
    out[0] = FromFloat<T>(acc[k].x);
    out[1] = FromFloat<T>(acc[k].y);
    out[2] = FromFloat<T>(acc[k].z);
    out[3] = FromFloat<T>(acc[k].w);
  }
}

// The ring is dynamic shared memory, opted in once per kernel beyond the default 48 KiB.
template <typename T, int D, bool kWide>
cudaError_t LaunchAttentionKernel(const DecodeArgs& args, LaunchShape shape) {
  using G = AttentionGeometry<T, D>;
  static const cudaError_t opted_in = cudaFuncSetAttribute(
      DecodeAttentionKernel<T, D, kWide>, cudaFuncAttributeMaxDynamicSharedMemorySize, G::kSharedBytes);
  ORTSPARSE_CUDA_RETURN_IF_ERROR(opted_in);
  shape.shared_bytes = G::kSharedBytes;
  return LaunchKernel(DecodeAttentionKernel<T, D, kWide>, shape, args);
}

// Tensor cores use the fragments' upper 8 rows only for groups of more than 8 heads; the fp32
// kernel handles every tile alike.
template <typename T, int D>
cudaError_t LaunchAttentionForHeads(const DecodeArgs& args, const LaunchShape& shape) {
  if constexpr (sizeof(T) == 2) {
    if (args.group > 8) return LaunchAttentionKernel<T, D, true>(args, shape);
  }
  return LaunchAttentionKernel<T, D, false>(args, shape);
}

template <typename T>
cudaError_t LaunchDecodeAttentionOf(const DecodeArgs& args, const LaunchShape& shape) {
  switch (args.attention.head_size) {
    case 64: return LaunchAttentionForHeads<T, 64>(args, shape);
    case 80: return LaunchAttentionForHeads<T, 80>(args, shape);
    case 96: return LaunchAttentionForHeads<T, 96>(args, shape);
    default: return LaunchAttentionForHeads<T, 128>(args, shape);
  }
}

}  // namespace ortsparse::cuda::detail
