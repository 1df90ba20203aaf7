// The decode selection kernels other than the scoring of rows: prepare (per segment), hash scores,
// the filter with its last-block resolution, the saap cluster kernels, and the selection flags.
#include "attention/cuda/decode_kernels.h"
#include "attention/cuda/decode_select.cuh"

namespace ortsparse::cuda::detail {
namespace {

template <typename T>
__device__ __forceinline__ float QueryElement(const void* query, const int64_t* strides, int b, int head, int d) {
  return ToFloat(static_cast<const T*>(query)[b * strides[0] + head * strides[2] + d]);
}

// saap, one query head's logits z = W2ᵀ·relu(W1ᵀ·q + b1) + b2 for the clusters of one slice (one
// cluster per thread), accumulated in the CPU's order. `shared` holds D + M floats.
template <typename T>
__device__ void ClusterLogits(const DecodeArgs& args, int b, int head, int first_cluster, float* logits,
                              float* shared) {
  const SparseMethodParams& m = args.method;
  const int D = static_cast<int>(args.attention.head_size);
  const int M = static_cast<int>(m.classifier_hidden), C = static_cast<int>(m.clusters);
  float* query = shared;
  float* hidden = query + D;
  for (int d = threadIdx.x; d < D; d += blockDim.x) query[d] = QueryElement<T>(m.raw_query, m.raw_query_strides, b, head, d);
  __syncthreads();
  const float* weights = m.classifier_weights + static_cast<int64_t>(head) * D * M;
  for (int i = threadIdx.x; i < M; i += blockDim.x) {
    float sum = m.classifier_bias[static_cast<int64_t>(head) * M + i];
    for (int d = 0; d < D; ++d) sum = fmaf(query[d], weights[d * M + i], sum);
    hidden[i] = fmaxf(sum, 0.0f);
  }
  __syncthreads();
  const int c = first_cluster + threadIdx.x;
  if (c < C) {
    const float* output = m.classifier_output + static_cast<int64_t>(head) * (M + 1) * C;
    float logit = output[static_cast<int64_t>(M) * C + c];
    for (int i = 0; i < M; ++i) logit = fmaf(hidden[i], output[static_cast<int64_t>(i) * C + c], logit);
    logits[c] = logit;
  }
}

// saap: scores[c] = max over the group's heads of softmax(z_h)[c], from the logits.
__device__ void ClusterScores(const DecodeArgs& args, int segment, float* scores) {
  const int C = static_cast<int>(args.method.clusters);
  __shared__ float reduce[32];
  const int warps = static_cast<int>(blockDim.x >> 5);
  for (int c = threadIdx.x; c < C; c += blockDim.x) scores[c] = 0.0f;
  for (int g = 0; g < args.group; ++g) {
    const float* logits = args.cluster_logits + (static_cast<int64_t>(segment) * args.group + g) * C;
    float largest = NegativeInfinity();
    for (int c = threadIdx.x; c < C; c += blockDim.x) largest = fmaxf(largest, __ldcg(&logits[c]));
    largest = WarpReduce(largest, [](float x, float y) { return fmaxf(x, y); });
    if ((threadIdx.x & 31) == 0) reduce[threadIdx.x >> 5] = largest;
    __syncthreads();
    largest = NegativeInfinity();
    for (int w = 0; w < warps; ++w) largest = fmaxf(largest, reduce[w]);
    __syncthreads();
    float sum = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) sum += expf(__ldcg(&logits[c]) - largest);
    sum = WarpReduce(sum, [](float x, float y) { return x + y; });
    if ((threadIdx.x & 31) == 0) reduce[threadIdx.x >> 5] = sum;
    __syncthreads();
    sum = 0.0f;
    for (int w = 0; w < warps; ++w) sum += reduce[w];
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      scores[c] = fmaxf(scores[c], expf(__ldcg(&logits[c]) - largest) / sum);
    }
    __syncthreads();
  }
}

template <typename T>
__global__ void __launch_bounds__(kSelectThreads) PrepareKernel(const DecodeArgs args) {
  extern __shared__ float shared[];
  __shared__ DecodeRow row;
  WaitForPreviousKernel();
  AllowNextKernel();
  const int segment = blockIdx.x;
  const int kv_heads = static_cast<int>(args.attention.kv_num_heads);
  const int b = segment / kv_heads, kv_head = segment % kv_heads;
  if (threadIdx.x == 0) {
    row = PartitionDecodeRow(args, b);
    args.rows[segment] = row;
  }
  int* state = reinterpret_cast<int*>(&args.states[segment]);
  for (int i = threadIdx.x; i < static_cast<int>(sizeof(SelectionState) / sizeof(int)); i += blockDim.x) state[i] = 0;
  for (int i = threadIdx.x; i < kBins; i += blockDim.x) {
    args.first_histogram[segment * kBins + i] = 0;
    args.second_histogram[segment * kBins + i] = 0;
  }
  for (int i = threadIdx.x; i < args.head_tiles; i += blockDim.x) args.attention_counters[segment * args.head_tiles + i] = 0;
  if (args.unit == UnitKind::kCluster) {
    for (int c = threadIdx.x; c < args.method.clusters; c += blockDim.x) args.cluster_weights[segment * args.method.clusters + c] = 0;
  }
  __syncthreads();
  if (!row.ranked) return;

  const SparseMethodParams& m = args.method;
  const int D = static_cast<int>(args.attention.head_size);
  float* features = args.features + static_cast<int64_t>(segment) * args.group * args.feature_width;
  switch (m.method) {
    case SparseMethod::kTopK:
    case SparseMethod::kQuest:  // they bound the cached keys: queries as attended
      for (int i = threadIdx.x; i < args.group * D; i += blockDim.x) {
        const int g = i / D, d = i % D;
        features[i] = QueryElement<T>(args.attention.query, args.attention.query_strides, b, kv_head * args.group + g, d) *
                      args.attention.scale;
      }
      break;
    case SparseMethod::kLoki: {
      const float* basis = m.pca_basis + static_cast<int64_t>(kv_head) * D * D;
      const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
      for (int g = 0; g < args.group; ++g) {
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
          shared[d] = QueryElement<T>(m.raw_query, m.raw_query_strides, b, kv_head * args.group + g, d);
        }
        __syncthreads();
        for (int i = warp; i < m.rank; i += warps) {
          float dot = 0.0f;
          for (int d = lane; d < D; d += 32) dot = fmaf(basis[i * D + d], shared[d], dot);
          dot = WarpReduce(dot, [](float x, float y) { return x + y; });
          if (lane == 0) features[g * args.feature_width + i] = dot * args.attention.scale;
        }
        __syncthreads();
      }
      break;
    }
    case SparseMethod::kHash: {
      const int rounds = static_cast<int>(m.hash_rounds), half = static_cast<int>(m.hash_half_buckets);
      int* buckets = args.query_buckets + static_cast<int64_t>(segment) * args.group * rounds;
      for (int g = 0; g < args.group; ++g) {
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
          shared[d] = QueryElement<T>(m.raw_query, m.raw_query_strides, b, kv_head * args.group + g, d);
        }
        __syncthreads();
        for (int r = threadIdx.x; r < rounds; r += blockDim.x) {
          const float* projections = m.hash_projections + (static_cast<int64_t>(kv_head) * rounds + r) * D * half;
          buckets[g * rounds + r] = HashBucket(projections, D, half, shared);
        }
        __syncthreads();
      }
      break;
    }
    default:  // saap classifies in ClusterWeightsKernel's extra blocks
      break;
  }
}

// Keys of one chunk: their matching rounds (hash), one thread per key.
__global__ void __launch_bounds__(kSelectThreads) ScoreHashKernel(const DecodeArgs args) {
  __shared__ int histogram[kBins];
  __shared__ int query_buckets[kMaxQueryBuckets];
  __shared__ int scratch[33];
  __shared__ int last;
  __shared__ Threshold threshold;
  const auto [segment, chunk, b, kv_head, row] = BeginChunkBlock(args);
  if (!row.ranked) return;
  const SparseMethodParams& m = args.method;
  const int rounds = static_cast<int>(m.hash_rounds);
  for (int i = threadIdx.x; i < kBins; i += blockDim.x) histogram[i] = 0;
  for (int i = threadIdx.x; i < args.group * rounds; i += blockDim.x) {
    query_buckets[i] = args.query_buckets[static_cast<int64_t>(segment) * args.group * rounds + i];
  }
  uint32_t* bitmap = args.bitmap + segment * args.bitmap_words + chunk * args.chunk_positions / 32;
  for (int i = threadIdx.x; i < args.chunk_positions / 32; i += blockDim.x) bitmap[i] = 0;
  __syncthreads();
  const int64_t chunk_begin = chunk * args.chunk_units;
  const int begin = static_cast<int>(Larger<int64_t>(chunk_begin, row.unit_begin));
  const int end = static_cast<int>(Smaller<int64_t>(chunk_begin + args.chunk_units, row.unit_end));
  const int* key_buckets = static_cast<const int*>(m.state.present) + b * m.state.present_strides[0] +
                           kv_head * m.state.present_strides[1];
  // The first rounds of kLoads keys loaded together, the rest as they come.
  constexpr int kLoads = 4, kPrefetchedRounds = 4;
  for (int first = begin + threadIdx.x; first < end; first += kLoads * blockDim.x) {
    int prefetched[kLoads][kPrefetchedRounds];
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int j = first + i * blockDim.x;
#pragma unroll
      for (int r = 0; r < kPrefetchedRounds; ++r) {
        prefetched[i][r] = j < end && r < rounds ? key_buckets[j * m.state.present_strides[2] + r] : -1;
      }
    }
#pragma unroll
    for (int i = 0; i < kLoads; ++i) {
      const int j = first + i * blockDim.x;
      if (j >= end) continue;
      int matches = 0;
      for (int r = 0; r < rounds; ++r) {
        int bucket = -1;
#pragma unroll
        for (int p = 0; p < kPrefetchedRounds; ++p) bucket = r == p ? prefetched[i][p] : bucket;
        if (r >= kPrefetchedRounds) bucket = key_buckets[j * m.state.present_strides[2] + r];
        bool match = false;
        for (int g = 0; g < args.group; ++g) match |= bucket == query_buckets[g * rounds + r];
        matches += match ? 1 : 0;
      }
      float score = matches > 0 ? static_cast<float>(matches) : NegativeInfinity();
      if (HiddenFromGroup(args, b, kv_head, j)) score = NegativeInfinity();
      args.scores[segment * args.units_capacity + j] = score;
      if (score > NegativeInfinity()) atomicAdd(&histogram[TopDigit(UnitKey(args, score, j))], 1);
    }
  }
  FinishScoring(args, segment, row, histogram, scratch, &last, &threshold);
}

// Units (of one chunk) a filter thread looks at: chunk_units <= 4096 over 256 threads.
constexpr int kUnitsPerThread = 16;

// Loads the scores of this thread's units of chunk `chunk` (all loads first), -inf outside the
// middle's units.
__device__ __forceinline__ void LoadChunkScores(const DecodeArgs& args, const DecodeRow& row, int segment, int chunk,
                                                float (&scores)[kUnitsPerThread]) {
  const int64_t chunk_begin = chunk * args.chunk_units;
  const float* segment_scores = args.scores + segment * args.units_capacity;
#pragma unroll
  for (int i = 0; i < kUnitsPerThread; ++i) {
    const int64_t unit = chunk_begin + threadIdx.x + i * kSelectThreads;
    const bool inside = i * kSelectThreads < args.chunk_units && unit >= row.unit_begin && unit < row.unit_end;
    scores[i] = inside ? segment_scores[unit] : NegativeInfinity();
  }
}

// Marks the units of the chunk that `takes` (returning whether to take, and whether to list the
// unit as a candidate): keys by warp votes on their bitmap word, pages one by one; lists the
// candidates; adds their weight to the chunk's count and candidates' to `histogram` when given.
template <typename Rule>
__device__ __forceinline__ void FilterChunk(const DecodeArgs& args, const DecodeRow& row, int segment, int chunk,
                                            const float (&scores)[kUnitsPerThread], int* histogram, Rule rule,
                                            int* scratch) {
  const int64_t chunk_begin = chunk * args.chunk_units;
  int* candidates = args.candidates + segment * args.units_capacity;
  uint32_t* bitmap = args.bitmap + segment * args.bitmap_words;
  const int lane = threadIdx.x & 31;
  int taken_weight = 0;
#pragma unroll
  for (int i = 0; i < kUnitsPerThread; ++i) {
    if (i * kSelectThreads >= args.chunk_units) break;  // uniform: whole warps vote together
    const int unit = static_cast<int>(chunk_begin + threadIdx.x + i * kSelectThreads);
    const bool inside = unit >= row.unit_begin && unit < row.unit_end;
    const int weight = inside ? UnitWeight(args, row, segment, unit, scores[i]) : 0;
    bool take = false, listed = false;
    if (weight > 0) {
      const uint64_t key = UnitKey(args, scores[i], unit);
      rule(key, &take, &listed);
      if (listed && histogram != nullptr) atomicAdd(&histogram[SecondDigit(key)], weight);
    }
    const unsigned listed_votes = __ballot_sync(kFullWarp, listed);
    if (listed_votes != 0) {
      int base = 0;
      if (lane == 0) base = atomicAdd(&args.states[segment].candidates, __popc(listed_votes));
      base = __shfl_sync(kFullWarp, base, 0);
      if (listed) candidates[base + __popc(listed_votes & ((1u << lane) - 1u))] = unit;
    }
    if (take) taken_weight += weight;
    if (args.unit == UnitKind::kKey) {  // a warp's 32 units are one bitmap word
      const unsigned take_votes = __ballot_sync(kFullWarp, take);
      if (lane == 0 && take_votes != 0) atomicOr(&bitmap[unit >> 5], take_votes);
    } else if (take) {
      MarkUnit(args, row, segment, unit);
    }
  }
  int total = 0;
  BlockExclusiveSum(taken_weight, scratch, &total);
  if (threadIdx.x == 0 && total != 0) args.block_counts[segment * args.chunks + chunk] += total;
}

// Level 1: takes the units above the threshold bucket and histograms the bucket's next digit (and
// lists its units when it is small). The last block finds the level-2 bucket; it finishes the
// selection when the bucket was listed (or taken whole), else FilterBucketKernel does.
__global__ void __launch_bounds__(kSelectThreads) FilterUnitsKernel(const DecodeArgs args) {
  __shared__ int histogram[kBins];
  __shared__ int scratch[33];
  __shared__ int last;
  __shared__ Threshold threshold;
  __shared__ ResolveScratch resolve;
  const auto [segment, chunk, b, kv_head, row] = BeginChunkBlock(args);
  if (!row.ranked) return;
  const SelectionState state = args.states[segment];
  float scores[kUnitsPerThread];
  LoadChunkScores(args, row, segment, chunk, scores);
  for (int i = threadIdx.x; i < kBins; i += blockDim.x) histogram[i] = 0;
  if (threadIdx.x == 0) args.block_counts[segment * args.chunks + chunk] = 0;
  __syncthreads();
  const bool list = state.bucket_weight <= kListedBucketWeight;
  FilterChunk(args, row, segment, chunk, scores, state.take_whole_bucket ? nullptr : histogram,
              [&](uint64_t key, bool* take, bool* listed) {
                const int digit = TopDigit(key);
                *take = digit > state.threshold_bucket || (state.take_whole_bucket && digit == state.threshold_bucket);
                *listed = !*take && list && digit == state.threshold_bucket;
              },
              scratch);
  if (!state.take_whole_bucket && !list) {  // the large bucket's histogram, without listing
    for (int i = 0; i < kUnitsPerThread; ++i) {
      if (i * kSelectThreads >= args.chunk_units) break;
      const int unit = static_cast<int>(chunk * args.chunk_units + threadIdx.x + i * kSelectThreads);
      if (unit < row.unit_begin || unit >= row.unit_end) continue;
      const int weight = UnitWeight(args, row, segment, unit, scores[i]);
      const uint64_t key = UnitKey(args, scores[i], unit);
      if (weight > 0 && TopDigit(key) == state.threshold_bucket) atomicAdd(&histogram[SecondDigit(key)], weight);
    }
  }
  if (!state.take_whole_bucket) FlushHistogram(histogram, args.second_histogram + segment * kBins);
  if (!FinishedLast(&args.states[segment].filtered_blocks, static_cast<int>(args.chunks), &last)) return;

  if (!state.take_whole_bucket) {
    const Threshold t =
        FindThreshold<true>(args.second_histogram + segment * kBins, kBins, state.bucket_need, scratch, &threshold);
    if (!list) {  // FilterBucketKernel goes on
      if (threadIdx.x == 0) {
        args.states[segment].second_bucket = t.bucket;
        args.states[segment].take_whole_second = t.whole;
        args.states[segment].second_need = state.bucket_need - t.above;
      }
      return;
    }
    const int* candidates = args.candidates + segment * args.units_capacity;
    const int count = __ldcg(&args.states[segment].candidates);
    for (int i = threadIdx.x; i < count; i += blockDim.x) {
      const int unit = __ldcg(&candidates[i]);
      const float score = StoredScore(args, segment, unit);
      const int digit = SecondDigit(UnitKey(args, score, unit));
      if (digit > t.bucket || (t.whole && digit == t.bucket)) {
        TakeUnit(args, row, segment, unit, UnitWeight(args, row, segment, unit, score));
      }
    }
    __syncthreads();
    if (!t.whole) {
      const uint64_t prefix = static_cast<uint64_t>(state.threshold_bucket) << (64 - kDigitBits) |
                              static_cast<uint64_t>(t.bucket) << (64 - 2 * kDigitBits);
      ResolveRemaining(args, row, segment, candidates, count, prefix, 2 * kDigitBits, state.bucket_need - t.above,
                       resolve);
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) args.states[segment].resolved = 1;
  FinishBlockCounts(args, segment, scratch);
}

// Level 2 of a large threshold bucket: takes its units above the level-2 bucket and lists that
// bucket's (few) units; the last block resolves them and finishes the selection.
__global__ void __launch_bounds__(kSelectThreads) FilterBucketKernel(const DecodeArgs args) {
  __shared__ int scratch[33];
  __shared__ int last;
  __shared__ ResolveScratch resolve;
  const auto [segment, chunk, b, kv_head, row] = BeginChunkBlock(args);
  if (!row.ranked) return;
  const SelectionState state = args.states[segment];
  if (state.resolved) return;
  float scores[kUnitsPerThread];
  LoadChunkScores(args, row, segment, chunk, scores);
  FilterChunk(args, row, segment, chunk, scores, nullptr,
              [&](uint64_t key, bool* take, bool* listed) {
                const int digit = SecondDigit(key);
                const bool in_bucket = TopDigit(key) == state.threshold_bucket;
                *take = in_bucket && (digit > state.second_bucket ||
                                      (state.take_whole_second && digit == state.second_bucket));
                *listed = in_bucket && !state.take_whole_second && digit == state.second_bucket;
              },
              scratch);
  if (!FinishedLast(&args.states[segment].bucket_filtered_blocks, static_cast<int>(args.chunks), &last)) return;
  if (!state.take_whole_second) {
    const uint64_t prefix = static_cast<uint64_t>(state.threshold_bucket) << (64 - kDigitBits) |
                            static_cast<uint64_t>(state.second_bucket) << (64 - 2 * kDigitBits);
    ResolveRemaining(args, row, segment, args.candidates + segment * args.units_capacity,
                     __ldcg(&args.states[segment].candidates), prefix, 2 * kDigitBits, state.second_need, resolve);
  }
  __syncthreads();
  FinishBlockCounts(args, segment, scratch);
}

// saap: blocks [0, chunks) count the middle keys of each cluster (its weight), the next
// `classifier_blocks` compute the logits of one query head for one slice of clusters; the last
// block turns the logits into cluster scores and ranks the clusters.
template <typename T>
__global__ void __launch_bounds__(kSelectThreads) ClusterWeightsKernel(const DecodeArgs args) {
  extern __shared__ float shared[];  // max(C ints, D + M floats)
  __shared__ int last;
  __shared__ int listed;
  __shared__ ResolveScratch resolve;
  const auto [segment, chunk, b, kv_head, row] = BeginChunkBlock(args);
  if (!row.ranked) return;
  const SparseMethodParams& m = args.method;
  const int C = static_cast<int>(m.clusters);
  int* weights = args.cluster_weights + static_cast<int64_t>(segment) * C;
  if (chunk >= args.chunks) {
    const int classifier = static_cast<int>(chunk - args.chunks);
    const int slices = (C + kSelectThreads - 1) / kSelectThreads;
    const int g = classifier / slices, slice = classifier % slices;
    ClusterLogits<T>(args, b, kv_head * args.group + g, slice * kSelectThreads,
                     args.cluster_logits + (static_cast<int64_t>(segment) * args.group + g) * C, shared);
  } else {
    int* cluster_histogram = reinterpret_cast<int*>(shared);
    for (int c = threadIdx.x; c < C; c += blockDim.x) cluster_histogram[c] = 0;
    __syncthreads();
    const int64_t chunk_begin = chunk * args.chunk_positions;
    const int begin = static_cast<int>(Larger<int64_t>(chunk_begin, row.middle_begin));
    const int end = static_cast<int>(Smaller<int64_t>(chunk_begin + args.chunk_positions, row.middle_end));
    const int* cluster_of = static_cast<const int*>(m.state.present) + b * m.state.present_strides[0] +
                            kv_head * m.state.present_strides[1];
    constexpr int kLoads = 8;  // loads in flight per thread
    for (int first = begin + threadIdx.x; first < end; first += kLoads * blockDim.x) {
      int clusters[kLoads];
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        const int j = first + i * blockDim.x;
        clusters[i] = j < end ? cluster_of[j * m.state.present_strides[2]] : -1;
      }
#pragma unroll
      for (int i = 0; i < kLoads; ++i) {
        if (clusters[i] >= 0 && clusters[i] < C) atomicAdd(&cluster_histogram[clusters[i]], 1);
      }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      if (cluster_histogram[c] != 0) atomicAdd(&weights[c], cluster_histogram[c]);
    }
  }
  if (!FinishedLast(&args.states[segment].scored_blocks, static_cast<int>(args.chunks + args.classifier_blocks),
                    &last)) {
    return;
  }

  float* scores = args.scores + segment * args.units_capacity;
  ClusterScores(args, segment, scores);
  int* taken = args.cluster_taken + static_cast<int64_t>(segment) * C;
  int* listed_clusters = args.candidates + segment * args.units_capacity;
  if (threadIdx.x == 0) listed = 0;
  __syncthreads();
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    taken[c] = 0;
    if (__ldcg(&weights[c]) > 0) listed_clusters[atomicAdd(&listed, 1)] = c;
  }
  __threadfence();
  __syncthreads();
  ResolveRemaining(args, row, segment, listed_clusters, listed, 0, 0, row.picks, resolve);
}

// saap: the bitmap of the middle keys whose cluster was taken.
__global__ void __launch_bounds__(kSelectThreads) ExpandClustersKernel(const DecodeArgs args) {
  __shared__ int scratch[33];
  __shared__ int last;
  const auto [segment, chunk, b, kv_head, row] = BeginChunkBlock(args);
  if (!row.ranked) return;
  const SparseMethodParams& m = args.method;
  const int C = static_cast<int>(m.clusters);
  const int* taken = args.cluster_taken + static_cast<int64_t>(segment) * C;
  const int* cluster_of = static_cast<const int*>(m.state.present) + b * m.state.present_strides[0] +
                          kv_head * m.state.present_strides[1];
  uint32_t* bitmap = args.bitmap + segment * args.bitmap_words;
  const int64_t chunk_begin = chunk * args.chunk_positions;
  int selected = 0;
  for (int64_t offset = threadIdx.x; offset < args.chunk_positions; offset += blockDim.x) {
    const int j = static_cast<int>(chunk_begin + offset);
    bool take = false;
    if (j >= row.middle_begin && j < row.middle_end) {
      const int cluster = cluster_of[j * m.state.present_strides[2]];
      take = cluster >= 0 && cluster < C && taken[cluster] != 0;
    }
    const unsigned votes = __ballot_sync(kFullWarp, take);
    if ((threadIdx.x & 31) == 0) bitmap[j >> 5] = votes;
    selected += take ? 1 : 0;
  }
  int total = 0;
  BlockExclusiveSum(selected, scratch, &total);
  if (threadIdx.x == 0) args.block_counts[segment * args.chunks + chunk] = total;
  if (!FinishedLast(&args.states[segment].filtered_blocks, static_cast<int>(args.chunks), &last)) return;
  FinishBlockCounts(args, segment, scratch);
}

__global__ void SelectedFlagsKernel(const DecodeArgs args, bool* flags) {
  const int segment = blockIdx.y;
  const int kv_heads = static_cast<int>(args.attention.kv_num_heads);
  const DecodeRow row = args.rows != nullptr ? args.rows[segment] : PartitionDecodeRow(args, segment / kv_heads);
  const uint32_t* bitmap = args.bitmap + segment * args.bitmap_words;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < args.key_capacity;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    bool selected = (j >= row.visible_begin && j < row.middle_begin) || (j >= row.middle_end && j < row.visible_end);
    if (row.ranked && j >= row.middle_begin && j < row.middle_end) selected = (bitmap[j >> 5] >> (j & 31)) & 1u;
    flags[segment * args.key_capacity + j] = selected;
  }
}

}  // namespace

cudaError_t LaunchPrepare(const DecodeArgs& args, LaunchShape shape) {
  switch (args.attention.type) {
    case DataType::kFloat16: return LaunchKernel(PrepareKernel<__half>, shape, args);
    case DataType::kBFloat16: return LaunchKernel(PrepareKernel<__nv_bfloat16>, shape, args);
    default: return LaunchKernel(PrepareKernel<float>, shape, args);
  }
}

cudaError_t LaunchFilterUnits(const DecodeArgs& args, LaunchShape shape) {
  ORTSPARSE_CUDA_RETURN_IF_ERROR(LaunchKernel(FilterUnitsKernel, shape, args));
  return LaunchKernel(FilterBucketKernel, shape, args);
}

cudaError_t LaunchScoreHash(const DecodeArgs& args, LaunchShape shape) {
  return LaunchKernel(ScoreHashKernel, shape, args);
}

cudaError_t LaunchClusterWeights(const DecodeArgs& args, LaunchShape shape) {
  const int64_t D = args.attention.head_size, M = args.method.classifier_hidden, C = args.method.clusters;
  shape.grid.x = static_cast<unsigned>(args.chunks + args.classifier_blocks);
  shape.shared_bytes = sizeof(float) * static_cast<size_t>(Larger(C, D + M));
  switch (args.attention.type) {
    case DataType::kFloat16: return LaunchKernel(ClusterWeightsKernel<__half>, shape, args);
    case DataType::kBFloat16: return LaunchKernel(ClusterWeightsKernel<__nv_bfloat16>, shape, args);
    default: return LaunchKernel(ClusterWeightsKernel<float>, shape, args);
  }
}

cudaError_t LaunchExpandClusters(const DecodeArgs& args, LaunchShape shape) {
  return LaunchKernel(ExpandClustersKernel, shape, args);
}

cudaError_t LaunchSelectedFlags(const DecodeArgs& args, bool* flags, LaunchShape shape) {
  return LaunchKernel(SelectedFlagsKernel, shape, args, flags);
}

}  // namespace ortsparse::cuda::detail
