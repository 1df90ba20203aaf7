// The row selections of hash and hyper prefill on the GPU, as docs/ops.md defines them and the CPU's
// RunHashPrefill / RunHyperPrefill compute them (prefill_selection.cc). Every row of a sequence and
// KV head gets a bitmap of the keys it attends: the visible keys when the row is dense, else its
// sink, its window and its picks from the middle:
//   hash:  every middle key sharing a bucket with one of the group's raw queries in some round
//          (the keys' buckets are the method state), not hidden from the whole group;
//   hyper: for each query head of the group, the middle keys nearest to the query in sortLSH order
//          (the cached keys sorted once per step by (Gray rank of their code, position)), walked
//          outwards alternately left and right from the query's insertion point, plus evenly spaced
//          sampled columns of the middle; keys hidden from the whole group are passed over.
// A selection block handles kRowBlock rows of one (sequence, KV head), the rows of one attention
// block, and also records which key tiles any of its rows attends, so that the attention visits
// only those. The buckets and codes are the CPU's sums in the same order (fmaf over d), so that
// the selections agree exactly where the arithmetic is exact.
#include "attention/cuda/cuda_common.cuh"
#include "attention/cuda/prefill_kernels.h"
#include "attention/cuda/prefill_rows.cuh"
#include "attention/cuda/selection_rules.cuh"

namespace ortsparse::cuda::prefill {
namespace {

constexpr int kWarps = kSelectThreads / 32;
constexpr int kDigitBits = 8, kDigits = 1 << kDigitBits;
constexpr int kScanThreads = 1024;

// The partition of one row: visible keys [begin, end), middle [middle_begin, middle_end).
struct RowPlan {
  int begin, end;
  int middle_begin, middle_end;
  int picks;
  int dense;
};

__device__ __forceinline__ RowPlan PlanRow(const SequenceView& sequence, const SparseMethodParams& m, int row) {
  RowPlan plan;
  sequence.Visible(row, plan.begin, plan.end);
  const RowSplit split = SplitRow(plan.begin, plan.end, m);
  plan.middle_begin = split.middle_begin;
  plan.middle_end = split.middle_end;
  plan.picks = split.picks;
  plan.dense = split.dense ? 1 : 0;
  return plan;
}

// Bits of the 32 positions [32 w, 32 w + 32) that a row attends without picking: its visible keys
// when dense, else its sink and window.
__device__ __forceinline__ uint32_t FixedBits(const RowPlan& plan, int w) {
  auto span = [&](int begin, int end) -> uint32_t {  // bits of [begin, end) within the word
    begin = max(begin, 32 * w);
    end = min(end, 32 * w + 32);
    if (begin >= end) return 0u;
    const int count = end - begin;
    return (count == 32 ? ~0u : (1u << count) - 1u) << (begin - 32 * w);
  };
  if (plan.dense) return span(plan.begin, plan.end);
  return span(plan.begin, plan.middle_begin) | span(plan.middle_end, plan.end);
}

// The selection block's row, the shared flags of its kept key tiles, and their flush to `kept`.
__device__ __forceinline__ uint32_t* RowWords(const RowSelectArgs& args, int b, int kv_head, int row) {
  return args.row_keys + ((static_cast<int64_t>(b) * args.attention.kv_num_heads + kv_head) * args.slab_rows +
                          (row - args.row_begin)) *
                             static_cast<int64_t>(args.row_words);
}
__device__ __forceinline__ void FlushKeptTiles(const RowSelectArgs& args, int b, int kv_head, const uint32_t* tiles) {
  uint32_t* kept = args.kept + ((static_cast<int64_t>(b) * args.attention.kv_num_heads + kv_head) * args.query_blocks +
                                blockIdx.x) *
                                   static_cast<int64_t>(args.tile_words);
  for (int w = static_cast<int>(threadIdx.x); w < args.tile_words; w += blockDim.x) kept[w] = tiles[w];
}

// ---- hash ---------------------------------------------------------------------------------------

// Dynamic shared memory: per row of the block, the buckets its group's queries fall in, as flags
// [round][bucket word]; then the kept-tile flags.
template <typename T>
__global__ void __launch_bounds__(kSelectThreads) HashRowsKernel(const RowSelectArgs args) {
  const AttentionParams& a = args.attention;
  const SparseMethodParams& m = args.method;
  const int b = static_cast<int>(blockIdx.z), kv_head = static_cast<int>(blockIdx.y);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int rounds = static_cast<int>(m.hash_rounds), half = static_cast<int>(m.hash_half_buckets);
  const int D = static_cast<int>(a.head_size);
  const int mask_words = rounds * args.bucket_words;  // per row
  extern __shared__ __align__(16) uint32_t hash_shared[];
  uint32_t* query_flags = hash_shared;                        // [kRowBlock][mask_words]
  uint32_t* tiles = hash_shared + kRowBlock * mask_words;     // [tile_words]
  __shared__ RowPlan plans[kRowBlock];

  const SequenceView sequence(a, b);
  const int first_row = args.row_begin + static_cast<int>(blockIdx.x) * kRowBlock;
  const int rows = max(0, min(kRowBlock, sequence.valid - first_row));
  for (int i = static_cast<int>(threadIdx.x); i < rows; i += blockDim.x) plans[i] = PlanRow(sequence, m, first_row + i);
  for (int i = static_cast<int>(threadIdx.x); i < kRowBlock * mask_words; i += blockDim.x) query_flags[i] = 0;
  for (int w = static_cast<int>(threadIdx.x); w < args.tile_words; w += blockDim.x) tiles[w] = 0;
  __syncthreads();

  // The buckets of every (row, query head of the group, round) of the rows that pick.
  const int group = args.group;
  for (int item = static_cast<int>(threadIdx.x); item < rows * group * rounds; item += blockDim.x) {
    const int i = item / (group * rounds), g = item / rounds % group, r = item % rounds;
    if (plans[i].dense || plans[i].middle_begin >= plans[i].middle_end) continue;
    const T* query = static_cast<const T*>(m.raw_query) + b * m.raw_query_strides[0] +
                     (first_row + i) * m.raw_query_strides[1] + (kv_head * group + g) * m.raw_query_strides[2];
    const float* projections = m.hash_projections + (static_cast<int64_t>(kv_head) * rounds + r) * D * half;
    const int bucket = HashBucket(projections, D, half, FloatRow<T>{query});
    atomicOr(&query_flags[i * mask_words + r * args.bucket_words + bucket / 32], 1u << (bucket % 32));
  }
  __syncthreads();

  if (rows > 0) {
    // Words over the keys any row sees; a warp per word, a lane per key.
    const int word_begin = plans[0].begin / 32, word_end = (plans[rows - 1].end + 31) / 32;
    const int* key_buckets = static_cast<const int*>(m.state.present) + b * m.state.present_strides[0] +
                             kv_head * m.state.present_strides[1];
    const int key_count = a.key_counts[b];
    for (int w = word_begin + warp; w < word_end; w += kWarps) {
      const int j = 32 * w + lane;
      // Rows (bit i) whose queries share a bucket with key j in some round.
      uint64_t matched = 0;
      if (j < key_count) {
        for (int r = 0; r < rounds; ++r) {
          const int bucket = key_buckets[j * m.state.present_strides[2] + r];
          if (bucket < 0 || bucket >= 2 * half) continue;  // not a bucket: matches nothing
          const int word = r * args.bucket_words + bucket / 32, bit = bucket % 32;
          for (int i = 0; i < rows; ++i) matched |= static_cast<uint64_t>((query_flags[i * mask_words + word] >> bit) & 1u) << i;
        }
      }
      bool any = false;
      for (int i = 0; i < rows; ++i) {
        const RowPlan plan = plans[i];
        if (w < plan.begin / 32 || 32 * w >= plan.end) continue;  // none of the row's keys (warp-uniform)
        const bool picked = !plan.dense && j >= plan.middle_begin && j < plan.middle_end && ((matched >> i) & 1u) &&
                            !HiddenFromGroup(a, group, b, kv_head, first_row + i, j);
        const uint32_t word = FixedBits(plan, w) | __ballot_sync(kFullWarp, picked);
        if (lane == 0) RowWords(args, b, kv_head, first_row + i)[w] = word;
        any = any || word != 0;
      }
      if (lane == 0 && any) atomicOr(&tiles[w / 64], 1u << (w / 2 % 32));
    }
  }
  __syncthreads();
  FlushKeptTiles(args, b, kv_head, tiles);
}

// ---- hyper: sorting the keys -------------------------------------------------------------------

// Entries (Gray rank of the key's code) << 32 | position, in position order; a warp per key.
template <typename T>
__global__ void __launch_bounds__(kSelectThreads) CodeKeysKernel(const SortArgs args) {
  const AttentionParams& a = args.attention;
  const int segment = static_cast<int>(blockIdx.y);
  const int b = segment / static_cast<int>(a.kv_num_heads), kv_head = segment % static_cast<int>(a.kv_num_heads);
  const int j = static_cast<int>(blockIdx.x) * kWarps + static_cast<int>(threadIdx.x >> 5);
  if (j >= a.key_counts[b]) return;
  const int D = static_cast<int>(a.head_size), bits = static_cast<int>(args.method.hash_half_buckets);
  const T* key = static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + kv_head * a.key_strides[1] +
                 static_cast<int64_t>(j) * a.key_strides[2];
  const uint32_t code = WarpHyperCode(args.method.hash_projections + static_cast<int64_t>(kv_head) * D * bits, D, bits,
                                      FloatRow<T>{key});
  if ((threadIdx.x & 31) == 0) {
    args.entries[0][static_cast<int64_t>(segment) * args.key_capacity + j] =
        static_cast<uint64_t>(GrayRank(code)) << 32 | static_cast<uint32_t>(j);
  }
}

__device__ __forceinline__ int Digit(uint64_t entry, int pass) {
  return static_cast<int>((entry >> (32 + kDigitBits * pass)) & (kDigits - 1));
}

// Counts of each digit in each chunk of each segment: counts[segment][digit][chunk].
__global__ void __launch_bounds__(kDigits) CountDigitsKernel(const SortArgs args, int pass) {
  __shared__ int histogram[kDigits];
  const int chunk = static_cast<int>(blockIdx.x), segment = static_cast<int>(blockIdx.y);
  const int count = args.attention.key_counts[segment / args.attention.kv_num_heads];
  const uint64_t* entries = args.entries[pass % 2] + static_cast<int64_t>(segment) * args.key_capacity;
  histogram[threadIdx.x] = 0;
  __syncthreads();
  for (int i = chunk * kSortChunk + static_cast<int>(threadIdx.x); i < min(count, (chunk + 1) * kSortChunk); i += kDigits) {
    atomicAdd(&histogram[Digit(entries[i], pass)], 1);
  }
  __syncthreads();
  args.counts[(static_cast<int64_t>(segment) * kDigits + threadIdx.x) * args.chunks + chunk] = histogram[threadIdx.x];
}

// The counts of a segment turned into their exclusive prefix sums, digit-major: where each
// (digit, chunk) starts in the output.
__global__ void __launch_bounds__(kScanThreads) ScanCountsKernel(const SortArgs args) {
  __shared__ int scratch[33];
  int* counts = args.counts + static_cast<int64_t>(blockIdx.x) * kDigits * args.chunks;
  const int total = kDigits * args.chunks;
  int running = 0;
  for (int begin = 0; begin < total; begin += kScanThreads) {
    const int i = begin + static_cast<int>(threadIdx.x);
    const int value = i < total ? counts[i] : 0;
    int sum = 0;
    const int before = BlockExclusiveSum(value, scratch, &sum);
    if (i < total) counts[i] = running + before;
    running += sum;
  }
}

// Stable scatter by digit: each warp ranks its share of the chunk (kSortChunk / kWarps entries, in
// order) among equal digits, the warps' counts are prefixed, and every entry goes to its digit's
// offset for the chunk plus its rank.
__global__ void __launch_bounds__(kSelectThreads) ScatterDigitsKernel(const SortArgs args, int pass) {
  constexpr int kPerWarp = kSortChunk / kWarps, kRounds = kPerWarp / 32;
  __shared__ int warp_counts[kWarps][kDigits];
  const int chunk = static_cast<int>(blockIdx.x), segment = static_cast<int>(blockIdx.y);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int count = args.attention.key_counts[segment / args.attention.kv_num_heads];
  const uint64_t* in = args.entries[pass % 2] + static_cast<int64_t>(segment) * args.key_capacity;
  uint64_t* out = args.entries[(pass + 1) % 2] + static_cast<int64_t>(segment) * args.key_capacity;
  for (int d = static_cast<int>(threadIdx.x); d < kWarps * kDigits; d += blockDim.x) (&warp_counts[0][0])[d] = 0;
  __syncthreads();
  uint64_t entry[kRounds];
  int digit[kRounds], rank[kRounds];
  const unsigned lanes_before = (1u << lane) - 1u;
#pragma unroll
  for (int round = 0; round < kRounds; ++round) {
    const int i = chunk * kSortChunk + warp * kPerWarp + round * 32 + lane;
    entry[round] = i < count ? in[i] : 0;
    digit[round] = i < count ? Digit(entry[round], pass) : kDigits;  // absent entries only match each other
    const unsigned peers = __match_any_sync(kFullWarp, digit[round]);
    const int base = digit[round] < kDigits ? warp_counts[warp][digit[round]] : 0;
    rank[round] = base + __popc(peers & lanes_before);
    __syncwarp();
    if (digit[round] < kDigits && (peers & lanes_before) == 0) warp_counts[warp][digit[round]] = base + __popc(peers);
    __syncwarp();
  }
  __syncthreads();
  for (int d = static_cast<int>(threadIdx.x); d < kDigits; d += blockDim.x) {  // the warps' counts, prefixed
    int running = 0;
    for (int w = 0; w < kWarps; ++w) {
      const int c = warp_counts[w][d];
      warp_counts[w][d] = running;
      running += c;
    }
  }
  __syncthreads();
  const int* offsets = args.counts + static_cast<int64_t>(segment) * kDigits * args.chunks;
#pragma unroll
  for (int round = 0; round < kRounds; ++round) {
    if (digit[round] >= kDigits) continue;
    out[offsets[digit[round] * args.chunks + chunk] + warp_counts[warp][digit[round]] + rank[round]] = entry[round];
  }
}

// ---- hyper: the selection ----------------------------------------------------------------------

// Walks one side of a query's insertion point in the sorted entries (dir -1: left, from `start`
// down; +1: right, from `start` up), a warp at a time, over the entries whose positions lie in
// [middle_begin, middle_end) and that `admits`: returns how many there are, at most `limit`, and
// with `mark` sets the bits of the first `limit` of them in `words` (indexed by position).
template <typename Admits>
__device__ int WalkSide(const uint64_t* entries, int count, int start, int dir, int middle_begin, int middle_end,
                        const Admits& admits, int limit, bool mark, uint32_t* words) {
  const int lane = static_cast<int>(threadIdx.x) & 31;
  const unsigned lanes_before = (1u << lane) - 1u;
  int found = 0;
  for (int base = start; found < limit; base += 32 * dir) {
    const int index = base + dir * lane;
    const bool inside = index >= 0 && index < count;
    if (!__any_sync(kFullWarp, inside)) break;
    int j = -1;
    bool ok = false;
    if (inside) {
      j = static_cast<int>(entries[index] & 0xffffffffu);
      ok = j >= middle_begin && j < middle_end && admits(j);
    }
    const unsigned ballot = __ballot_sync(kFullWarp, ok);
    if (mark && ok && found + __popc(ballot & lanes_before) < limit) atomicOr(&words[j / 32], 1u << (j % 32));
    found += __popc(ballot);
  }
  return min(found, limit);
}

// The first index of `entries` whose entry exceeds `value` (count if none); every lane gets it.
__device__ __forceinline__ int UpperBound(const uint64_t* entries, int count, uint64_t value) {
  int low = 0, high = count;
  while (low < high) {
    const int middle = (low + high) / 2;
    if (entries[middle] <= value) {
      low = middle + 1;
    } else {
      high = middle;
    }
  }
  return low;
}

// A warp per row at a time: the row's fixed bits, then its picks (atomics on its words), then the
// key tiles its words touch.
template <typename T>
__global__ void __launch_bounds__(kSelectThreads) HyperRowsKernel(const RowSelectArgs args) {
  extern __shared__ __align__(16) uint32_t tiles[];  // [tile_words]
  const AttentionParams& a = args.attention;
  const SparseMethodParams& m = args.method;
  const int b = static_cast<int>(blockIdx.z), kv_head = static_cast<int>(blockIdx.y);
  const int lane = static_cast<int>(threadIdx.x) & 31, warp = static_cast<int>(threadIdx.x) >> 5;
  const int group = args.group, D = static_cast<int>(a.head_size), bits = static_cast<int>(m.hash_half_buckets);
  for (int w = static_cast<int>(threadIdx.x); w < args.tile_words; w += blockDim.x) tiles[w] = 0;
  __syncthreads();

  const SequenceView sequence(a, b);
  const int first_row = args.row_begin + static_cast<int>(blockIdx.x) * kRowBlock;
  const int rows = max(0, min(kRowBlock, sequence.valid - first_row));
  const int count = a.key_counts[b];
  const uint64_t* entries = args.sorted + (static_cast<int64_t>(b) * a.kv_num_heads + kv_head) * args.key_capacity;
  const float* hyperplanes = m.hash_projections + static_cast<int64_t>(kv_head) * D * bits;
  for (int i = warp; i < rows; i += kWarps) {
    const int row = first_row + i;
    const RowPlan plan = PlanRow(sequence, m, row);
    uint32_t* words = RowWords(args, b, kv_head, row);
    const int word_begin = plan.begin / 32, word_end = (plan.end + 31) / 32;
    for (int w = word_begin + lane; w < word_end; w += 32) words[w] = FixedBits(plan, w);
    __syncwarp();
    if (!plan.dense && plan.picks > 0) {
      const int lsh = (plan.picks + 1) / 2, samples = plan.picks - lsh;
      const int per_head = (lsh + group - 1) / group;
      const bool masked = a.mask.data != nullptr;
      auto admits = [&](int j) { return !masked || !HiddenFromGroup(a, group, b, kv_head, row, j); };
      for (int g = 0; g < group; ++g) {
        const T* query = static_cast<const T*>(a.query) + b * a.query_strides[0] + row * a.query_strides[1] +
                         (kv_head * group + g) * a.query_strides[2];
        const uint32_t code = WarpHyperCode(hyperplanes, D, bits, FloatRow<T>{query});
        // After every key of a rank up to the query's: the first entry of a higher rank.
        const int insertion = UpperBound(entries, count, static_cast<uint64_t>(GrayRank(code)) << 32 | 0xffffffffu);
        // Alternating turns, left first, a side that ran out leaving its turns to the other: the
        // first `left` admissible keys on the left and `right` on the right.
        const int available_left =
            WalkSide(entries, count, insertion - 1, -1, plan.middle_begin, plan.middle_end, admits, per_head, false, words);
        const int available_right =
            WalkSide(entries, count, insertion, 1, plan.middle_begin, plan.middle_end, admits, per_head, false, words);
        const int left = min(available_left, max((per_head + 1) / 2, per_head - available_right));
        const int right = min(available_right, max(per_head / 2, per_head - available_left));
        WalkSide(entries, count, insertion - 1, -1, plan.middle_begin, plan.middle_end, admits, left, true, words);
        WalkSide(entries, count, insertion, 1, plan.middle_begin, plan.middle_end, admits, right, true, words);
      }
      // Evenly spaced sampled columns of the middle.
      const int64_t middle_size = plan.middle_end - plan.middle_begin;
      for (int t = lane; t < samples; t += 32) {
        const int j = plan.middle_begin + static_cast<int>((2 * static_cast<int64_t>(t) + 1) * middle_size / (2 * samples));
        if (admits(j)) atomicOr(&words[j / 32], 1u << (j % 32));
      }
    }
    __syncwarp();
    for (int w = word_begin + lane; w < word_end; w += 32) {
      if (__ldcg(&words[w]) != 0) atomicOr(&tiles[w / 64], 1u << (w / 2 % 32));
    }
  }
  __syncthreads();
  FlushKeptTiles(args, b, kv_head, tiles);
}

template <typename T>
cudaError_t LaunchHashOf(const RowSelectArgs& args, cudaStream_t stream) {
  const size_t shared = HashSelectSharedBytes(args);
  ORTSPARSE_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(HashRowsKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  const dim3 grid(static_cast<unsigned>(args.query_blocks), static_cast<unsigned>(args.attention.kv_num_heads),
                  static_cast<unsigned>(args.attention.batch));
  HashRowsKernel<T><<<grid, kSelectThreads, shared, stream>>>(args);
  return cudaGetLastError();
}

template <typename T>
cudaError_t LaunchSortOf(const SortArgs& args, cudaStream_t stream) {
  const unsigned segments = static_cast<unsigned>(args.attention.batch * args.attention.kv_num_heads);
  const dim3 code_grid(static_cast<unsigned>((args.key_capacity + kWarps - 1) / kWarps), segments);
  CodeKeysKernel<T><<<code_grid, kSelectThreads, 0, stream>>>(args);
  ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const dim3 chunk_grid(static_cast<unsigned>(args.chunks), segments);
  for (int pass = 0; pass < args.passes; ++pass) {
    CountDigitsKernel<<<chunk_grid, kDigits, 0, stream>>>(args, pass);
    ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    ScanCountsKernel<<<segments, kScanThreads, 0, stream>>>(args);
    ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    ScatterDigitsKernel<<<chunk_grid, kSelectThreads, 0, stream>>>(args, pass);
    ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t LaunchHyperOf(const RowSelectArgs& args, cudaStream_t stream) {
  const size_t shared = HyperSelectSharedBytes(args);
  ORTSPARSE_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(HyperRowsKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  const dim3 grid(static_cast<unsigned>(args.query_blocks), static_cast<unsigned>(args.attention.kv_num_heads),
                  static_cast<unsigned>(args.attention.batch));
  HyperRowsKernel<T><<<grid, kSelectThreads, shared, stream>>>(args);
  return cudaGetLastError();
}

// `launch` instantiated for the attention type.
template <template <typename> class Launcher, typename Args>
cudaError_t ForType(DataType type, const Args& args, cudaStream_t stream) {
  switch (type) {
    case DataType::kFloat16: return Launcher<__half>::Run(args, stream);
    case DataType::kBFloat16: return Launcher<__nv_bfloat16>::Run(args, stream);
    case DataType::kFloat32: return Launcher<float>::Run(args, stream);
    default: return cudaErrorInvalidValue;
  }
}
template <typename T>
struct HashLauncher {
  static cudaError_t Run(const RowSelectArgs& args, cudaStream_t stream) { return LaunchHashOf<T>(args, stream); }
};
template <typename T>
struct SortLauncher {
  static cudaError_t Run(const SortArgs& args, cudaStream_t stream) { return LaunchSortOf<T>(args, stream); }
};
template <typename T>
struct HyperLauncher {
  static cudaError_t Run(const RowSelectArgs& args, cudaStream_t stream) { return LaunchHyperOf<T>(args, stream); }
};

}  // namespace

size_t HashSelectSharedBytes(const RowSelectArgs& args) {
  return sizeof(uint32_t) * (static_cast<size_t>(kRowBlock) * args.method.hash_rounds * args.bucket_words + args.tile_words);
}
size_t HyperSelectSharedBytes(const RowSelectArgs& args) { return sizeof(uint32_t) * args.tile_words; }

cudaError_t LaunchHashSelection(const RowSelectArgs& args, cudaStream_t stream) {
  return ForType<HashLauncher>(args.attention.type, args, stream);
}
cudaError_t LaunchHyperSort(const SortArgs& args, cudaStream_t stream) {
  return ForType<SortLauncher>(args.attention.type, args, stream);
}
cudaError_t LaunchHyperSelection(const RowSelectArgs& args, cudaStream_t stream) {
  return ForType<HyperLauncher>(args.attention.type, args, stream);
}

}  // namespace ortsparse::cuda::prefill
