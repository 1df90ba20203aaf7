// Split-K exact attention of a decode row (flash-decoding), over every visible key or over the
// selection of a sparse method, for one (segment, tile of kHeads query heads, split) per block.
//
// A segment's keys form one list: the sink (or, for a dense row, every visible key), the selected
// middle keys in position order (from the bitmap and its block counts), the window. Each split
// takes an equal share of the list. A block lists its share's positions in shared memory, then
// each warp streams kUnroll x kSlots keys a step, kStages - 1 steps ahead through cp.async into a
// shared-memory ring: kLanes lanes hold a key row and a value row in 16-byte chunks, sum the
// group's dot products with shuffles, and keep an online softmax per head in fp32. The warps' and
// then the splits' partial results are merged; the block that finishes a segment's tile last
// writes the output.
#pragma once

#include "attention/cuda/decode_kernels.h"
#include "attention/cuda/decode_select.cuh"

namespace ortsparse::cuda::detail {

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

// Writes the positions of list entries [first, first + count) to positions[0, count).
__device__ inline void ListPositions(const DecodeArgs& args, const KeyList& list, int segment, int first, int count,
                              int* positions, int* found_block) {
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
  if (threadIdx.x >= 32) return;
  const int block = *found_block;
  const int lane = threadIdx.x;
  const uint32_t* bitmap = args.bitmap + segment * args.bitmap_words;
  int64_t word = block * args.chunk_positions / 32;
  int skip = j_begin - __ldcg(&prefix[block]);  // selected keys of the block before j_begin
  int written = 0;
  int* out = positions + (list.first_count + j_begin - first);
  const int wanted = j_end - j_begin;
  // 128 words (4 per lane) at a time, in position order.
  while (written < wanted && word < args.bitmap_words) {
    const int64_t lane_word = word + 4 * lane;
    uint4 bits = make_uint4(0, 0, 0, 0);
    if (lane_word < args.bitmap_words) bits = __ldcg(reinterpret_cast<const uint4*>(bitmap + lane_word));
    const uint32_t words[4] = {bits.x, bits.y, bits.z, bits.w};
    const int mine = __popc(words[0]) + __popc(words[1]) + __popc(words[2]) + __popc(words[3]);
    const int inclusive = WarpInclusiveSum(mine);
    const int total = __shfl_sync(kFullWarp, inclusive, 31);
    int rank = inclusive - mine - skip;  // of this lane's first bit among the keys still wanted
#pragma unroll
    for (int w = 0; w < 4; ++w) {
      uint32_t remaining = words[w];
      while (remaining != 0) {
        const int bit = __ffs(remaining) - 1;
        remaining &= remaining - 1;
        const int index = written + rank;
        if (rank >= 0 && index < wanted) out[index] = static_cast<int>((lane_word + w) * 32 + bit);
        ++rank;
      }
    }
    const int used = Larger(0, total - skip);
    written += used;
    skip = Larger(0, skip - total);
    word += 128;
  }
}

// Asynchronous 16-byte copy global -> shared (zero-filled when !valid), and its group fences.
__device__ __forceinline__ void CopyAsync(void* shared, const void* global, bool valid) {
  const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(shared));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(address), "l"(global), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CommitCopies() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int kPending>
__device__ __forceinline__ void WaitCopies() {
  asm volatile("cp.async.wait_group %0;" ::"n"(kPending) : "memory");
}

// Key/value chunks a warp has in flight: kStages - 1 steps ahead of the one it computes.
constexpr int kAttentionStages = 4;
constexpr int kAttentionUnroll = 2;  // keys per lane slot and step
constexpr int kAttentionWarps = kAttentionThreads / 32;
constexpr size_t kAttentionRingBytes =
    sizeof(uint4) * kAttentionWarps * kAttentionStages * kAttentionUnroll * 2 * 32;

template <typename T, int kLanes, int kHeads>
__global__ void __launch_bounds__(kAttentionThreads, kHeads >= 8 ? 2 : 4) DecodeAttentionKernel(const DecodeArgs args) {
  constexpr int kVec = kChunkElements<T>;
  constexpr int kSlots = 32 / kLanes;  // keys a warp reads at once
  constexpr int kUnroll = kAttentionUnroll;
  constexpr int kStages = kAttentionStages;
  constexpr int kWarps = kAttentionWarps;
  constexpr int kMaxHeadSize = 128;
  // Per warp and lane, a ring of kStages x kUnroll (key, value) chunks: each lane reads back only
  // what it copied, so the warps never wait for each other.
  extern __shared__ uint4 ring[];
  __shared__ int positions[kListCapacity];
  __shared__ float merge_sums[kWarps][kHeads][kMaxHeadSize];
  __shared__ float2 merge_stats[kWarps][kHeads];
  __shared__ float split_weights[kHeads][kAttentionThreads];
  __shared__ int found_block;
  __shared__ int last;

  const AttentionParams& a = args.attention;
  const int segment = blockIdx.y, tile = blockIdx.z, split = blockIdx.x;
  const int kv_heads = static_cast<int>(a.kv_num_heads);
  const int b = segment / kv_heads, kv_head = segment % kv_heads;
  const int D = static_cast<int>(a.head_size);
  const int first_head = kv_head * args.group + tile * kHeads;
  const int heads = Smaller(kHeads, args.group - tile * kHeads);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int slot = lane / kLanes, part = lane % kLanes;
  const bool active = part * kVec < D;

  // The query and the cache are final before this step's first kernel: read before waiting.
  float query[kHeads][kVec];
#pragma unroll
  for (int g = 0; g < kHeads; ++g) {
#pragma unroll
    for (int e = 0; e < kVec; ++e) query[g][e] = 0.0f;
    if (g < heads && active) {
      const T* q = static_cast<const T*>(a.query) + b * a.query_strides[0] + (first_head + g) * a.query_strides[2] + part * kVec;
      LoadChunk(q, kVec, reinterpret_cast<uintptr_t>(q) % 16 == 0, query[g]);
#pragma unroll
      for (int e = 0; e < kVec; ++e) query[g][e] *= a.scale;
    }
  }
  const bool exact_softmax = a.softcap > 0.0f || a.mask.data != nullptr;
  if (!exact_softmax) {  // scores straight in log2 units
#pragma unroll
    for (int g = 0; g < kHeads; ++g) {
#pragma unroll
      for (int e = 0; e < kVec; ++e) query[g][e] *= kLog2e;
    }
  }
  WaitForPreviousKernel();
  AllowNextKernel();

  const DecodeRow row = args.rows != nullptr ? args.rows[segment] : PartitionDecodeRow(args, b);
  const KeyList list = KeyListOf(args, row, segment);
  const int total = list.size();
  const int share = (total + args.splits - 1) / args.splits;
  const int list_begin = Smaller(total, split * share);
  const int list_end = Smaller(total, list_begin + share);
  const T* keys = static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + kv_head * a.key_strides[1] + part * kVec;
  const T* values = static_cast<const T*>(a.value_cache) + b * a.value_strides[0] + kv_head * a.value_strides[1] + part * kVec;
  uint4* my_ring = ring + warp * kStages * kUnroll * 2 * 32 + lane;  // [stage][u][key, value][lane]

  float running_max[kHeads], weight_sum[kHeads], sums[kHeads][kVec];
#pragma unroll
  for (int g = 0; g < kHeads; ++g) {
    running_max[g] = NegativeInfinity();
    weight_sum[g] = 0.0f;
#pragma unroll
    for (int e = 0; e < kVec; ++e) sums[g][e] = 0.0f;
  }

  constexpr int kWarpStep = kSlots * kUnroll;  // keys of one warp step
  for (int piece = list_begin; piece < list_end; piece += kListCapacity) {
    const int count = Smaller(kListCapacity, list_end - piece);
    __syncthreads();
    ListPositions(args, list, segment, piece, count, positions, &found_block);
    __syncthreads();
    const int first = warp * kWarpStep;
    const int steps = first < count ? (count - first + kWarps * kWarpStep - 1) / (kWarps * kWarpStep) : 0;
    auto issue = [&](int step) {
      uint4* stage = my_ring + (step % kStages) * kUnroll * 2 * 32;
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int index = first + step * kWarps * kWarpStep + u * kSlots + slot;
        const bool valid = index < count && active;
        const int position = valid ? positions[index] : 0;
        CopyAsync(stage + (2 * u) * 32, keys + position * a.key_strides[2], valid);
        CopyAsync(stage + (2 * u + 1) * 32, values + position * a.value_strides[2], valid);
      }
    };
#pragma unroll
    for (int step = 0; step < kStages - 1; ++step) {
      if (step < steps) issue(step);
      CommitCopies();
    }
    for (int step = 0; step < steps; ++step) {
      if (step + kStages - 1 < steps) issue(step + kStages - 1);
      CommitCopies();
      WaitCopies<kStages - 1>();
      const uint4* stage = my_ring + (step % kStages) * kUnroll * 2 * 32;
      int position[kUnroll];
      float score[kUnroll][kHeads];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int index = first + step * kWarps * kWarpStep + u * kSlots + slot;
        position[u] = index < count ? positions[index] : -1;
        float k[kVec];
        ChunkAsFloat<T>(stage[(2 * u) * 32], k);
#pragma unroll
        for (int g = 0; g < kHeads; ++g) {
          float dot = 0.0f;
#pragma unroll
          for (int e = 0; e < kVec; ++e) dot = fmaf(query[g][e], k[e], dot);
#pragma unroll
          for (int offset = kLanes / 2; offset > 0; offset /= 2) dot += __shfl_xor_sync(kFullWarp, dot, offset);
          score[u][g] = dot;
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
#pragma unroll
        for (int g = 0; g < kHeads; ++g) {
          if (position[u] < 0 || g >= heads) {
            score[u][g] = NegativeInfinity();
          } else if (exact_softmax) {
            float s = score[u][g];
            if (a.softcap > 0.0f) s = a.softcap * tanhf(s / a.softcap);
            s += MaskAddend(a, b, first_head + g, position[u]);
            score[u][g] = s * kLog2e;
          }
        }
      }
      float v[kUnroll][kVec];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) ChunkAsFloat<T>(stage[(2 * u + 1) * 32], v[u]);
#pragma unroll
      for (int g = 0; g < kHeads; ++g) {
        float block_max = running_max[g];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) block_max = fmaxf(block_max, score[u][g]);
        const float reference = block_max == NegativeInfinity() ? 0.0f : block_max;
        const float rescale = exp2f(running_max[g] - reference);
        running_max[g] = block_max;
        weight_sum[g] *= rescale;
#pragma unroll
        for (int e = 0; e < kVec; ++e) sums[g][e] *= rescale;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const float p = exp2f(score[u][g] - reference);
          weight_sum[g] += p;
#pragma unroll
          for (int e = 0; e < kVec; ++e) sums[g][e] = fmaf(p, v[u][e], sums[g][e]);
        }
      }
    }
    WaitCopies<0>();
  }

  // Merge the warp's slots (lanes kLanes apart hold the same dimensions).
#pragma unroll
  for (int offset = kLanes; offset < 32; offset *= 2) {
#pragma unroll
    for (int g = 0; g < kHeads; ++g) {
      const float other_max = __shfl_xor_sync(kFullWarp, running_max[g], offset);
      const float other_sum = __shfl_xor_sync(kFullWarp, weight_sum[g], offset);
      const float merged = fmaxf(running_max[g], other_max);
      const float reference = merged == NegativeInfinity() ? 0.0f : merged;
      const float mine_scale = exp2f(running_max[g] - reference), other_scale = exp2f(other_max - reference);
      running_max[g] = merged;
      weight_sum[g] = weight_sum[g] * mine_scale + other_sum * other_scale;
#pragma unroll
      for (int e = 0; e < kVec; ++e) {
        const float other = __shfl_xor_sync(kFullWarp, sums[g][e], offset);
        sums[g][e] = sums[g][e] * mine_scale + other * other_scale;
      }
    }
  }
  if (slot == 0) {
#pragma unroll
    for (int g = 0; g < kHeads; ++g) {
      if (active) {
#pragma unroll
        for (int e = 0; e < kVec; ++e) merge_sums[warp][g][part * kVec + e] = sums[g][e];
      }
      if (part == 0) merge_stats[warp][g] = make_float2(running_max[g], weight_sum[g]);
    }
  }
  __syncthreads();

  // Merge the warps: this split's partial result.
  const int64_t split_index = (static_cast<int64_t>(segment) * args.head_tiles + tile) * args.splits + split;
  float2* stats = args.partial_stats + split_index * kHeads;
  float* partial = args.partial_sums + split_index * kHeads * D;
  for (int i = threadIdx.x; i < heads * D; i += blockDim.x) {
    const int g = i / D, d = i % D;
    float merged = NegativeInfinity();
#pragma unroll
    for (int w = 0; w < kWarps; ++w) merged = fmaxf(merged, merge_stats[w][g].x);
    const float reference = merged == NegativeInfinity() ? 0.0f : merged;
    float sum = 0.0f, weight = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float scale = exp2f(merge_stats[w][g].x - reference);
      sum += merge_sums[w][g][d] * scale;
      weight += merge_stats[w][g].y * scale;
    }
    partial[i] = sum;
    if (d == 0) stats[g] = make_float2(merged, weight);
  }
  if (!FinishedLast(&args.attention_counters[segment * args.head_tiles + tile], args.splits, &last)) return;

  // The last block of the tile merges the splits: weights exp2(max_s - max) / sum, in slices of
  // kAttentionThreads splits.
  const float2* all_stats = args.partial_stats + (static_cast<int64_t>(segment) * args.head_tiles + tile) * args.splits * kHeads;
  const float* all_sums = args.partial_sums + (static_cast<int64_t>(segment) * args.head_tiles + tile) * args.splits * kHeads * D;
  __shared__ float2 head_totals[kHeads];
  for (int g = warp; g < heads; g += kWarps) {
    float merged = NegativeInfinity();
    for (int s = lane; s < args.splits; s += 32) merged = fmaxf(merged, __ldcg(&all_stats[s * kHeads + g]).x);
    merged = WarpReduce(merged, [](float x, float y) { return fmaxf(x, y); });
    const float reference = merged == NegativeInfinity() ? 0.0f : merged;
    float weight = 0.0f;
    for (int s = lane; s < args.splits; s += 32) {
      const float2 st = __ldcg(&all_stats[s * kHeads + g]);
      weight += st.y * exp2f(st.x - reference);
    }
    weight = WarpReduce(weight, [](float x, float y) { return x + y; });
    if (lane == 0) head_totals[g] = make_float2(reference, weight);
  }
  __syncthreads();
  // Each thread sums 4 consecutive dimensions of one head over every split (16-byte loads, a
  // slice of splits in flight at once); weights per (head, split) in shared memory.
  const int columns = heads * D / 4;
  for (int first_split = 0; first_split < args.splits; first_split += kAttentionThreads) {
    const int s = first_split + threadIdx.x;
    for (int g = 0; g < heads; ++g) {
      float w = 0.0f;
      if (s < args.splits && head_totals[g].y > 0.0f) {
        const float2 st = __ldcg(&all_stats[s * kHeads + g]);
        w = st.y > 0.0f ? exp2f(st.x - head_totals[g].x) / head_totals[g].y : 0.0f;
      }
      split_weights[g][threadIdx.x] = w;
    }
    __syncthreads();
    const int slice = Smaller(kAttentionThreads, args.splits - first_split);
    for (int column = threadIdx.x; column < columns; column += kAttentionThreads) {
      const int g = column * 4 / D;
      const float4* sums_of = reinterpret_cast<const float4*>(all_sums + static_cast<int64_t>(first_split) * kHeads * D) + column;
      float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      constexpr int kInFlight = 16;
      for (int t0 = 0; t0 < slice; t0 += kInFlight) {
        float4 loaded[kInFlight];
#pragma unroll
        for (int i = 0; i < kInFlight; ++i) {
          loaded[i] = t0 + i < slice ? __ldcg(sums_of + static_cast<int64_t>(t0 + i) * kHeads * D / 4)
                                     : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int i = 0; i < kInFlight; ++i) {
          const float w = t0 + i < slice ? split_weights[g][t0 + i] : 0.0f;
          if (w != 0.0f) {  // splits without keys weigh 0
            sum.x = fmaf(w, loaded[i].x, sum.x);
            sum.y = fmaf(w, loaded[i].y, sum.y);
            sum.z = fmaf(w, loaded[i].z, sum.z);
            sum.w = fmaf(w, loaded[i].w, sum.w);
          }
        }
      }
      float* out_sums = reinterpret_cast<float*>(&merge_sums[0][0][0]);  // the warps' merge is done
      if (first_split == 0) {
        reinterpret_cast<float4*>(out_sums)[column] = sum;
      } else {
        float4& acc = reinterpret_cast<float4*>(out_sums)[column];
        acc.x += sum.x, acc.y += sum.y, acc.z += sum.z, acc.w += sum.w;
      }
    }
    __syncthreads();
  }
  const float* merged = &merge_sums[0][0][0];
  for (int index = threadIdx.x; index < heads * D; index += kAttentionThreads) {
    const int g = index / D, d = index % D;
    T* out = static_cast<T*>(a.output) + b * a.output_strides[0] + (first_head + g) * a.output_strides[2] + d;
    *out = FromFloat<T>(merged[index]);
  }
}

}  // namespace ortsparse::cuda::detail

namespace ortsparse::cuda::detail {

// The ring is dynamic shared memory: with the static arrays it passes the default 48 KiB limit.
template <typename T, int kLanes, int kHeads>
cudaError_t LaunchAttentionKernel(const DecodeArgs& args, LaunchShape shape) {
  static const cudaError_t opted_in = cudaFuncSetAttribute(
      DecodeAttentionKernel<T, kLanes, kHeads>, cudaFuncAttributeMaxDynamicSharedMemorySize, kAttentionRingBytes);
  ORTSPARSE_CUDA_RETURN_IF_ERROR(opted_in);
  shape.shared_bytes = kAttentionRingBytes;
  return LaunchKernel(DecodeAttentionKernel<T, kLanes, kHeads>, shape, args);
}

template <typename T, int kLanes>
cudaError_t LaunchAttentionForLanes(int heads_per_tile, const DecodeArgs& args, const LaunchShape& shape) {
  switch (heads_per_tile) {
    case 1: return LaunchAttentionKernel<T, kLanes, 1>(args, shape);
    case 2: return LaunchAttentionKernel<T, kLanes, 2>(args, shape);
    case 4: return LaunchAttentionKernel<T, kLanes, 4>(args, shape);
    default: return LaunchAttentionKernel<T, kLanes, 8>(args, shape);
  }
}

// Lanes per key row: the row's 16-byte chunks rounded up to 8, 16 or 32.
template <typename T>
cudaError_t LaunchDecodeAttentionOf(const DecodeArgs& args, const LaunchShape& shape) {
  const int chunks = static_cast<int>(args.attention.head_size) / kChunkElements<T>;
  if (chunks <= 8) return LaunchAttentionForLanes<T, 8>(args.heads_per_tile, args, shape);
  if (chunks <= 16) return LaunchAttentionForLanes<T, 16>(args.heads_per_tile, args, shape);
  return LaunchAttentionForLanes<T, 32>(args.heads_per_tile, args, shape);
}

}  // namespace ortsparse::cuda::detail
