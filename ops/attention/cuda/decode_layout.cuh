// What the decode kernels share: the plan of a step (sizes fixed on the host from capacities), the
// workspace it lives in, and the rules every kernel applies the same way (row partition, unit keys).
//
// A decode step works per segment = (sequence b, KV head). Sparse methods rank *units* (keys for
// topk, loki and hash; pages for quest; clusters for saap) and take them in rank order until they
// hold `picks` middle keys. Ranking is by a 64-bit key, unique per unit: the high word orders the
// scores (OrderedBits, or the match count and position for hash) and the low word breaks ties by
// position as the CPU does. Selection is a radix select on that key: the scoring kernel builds a
// histogram of its top 11 bits, the filter kernel takes every unit above the threshold bucket and
// histograms the next 11 bits of the bucket's units (listing them when the bucket is small), a
// second filter pass does the same one level down for a large bucket, and the last block of the
// last pass resolves the few units left by pairwise ranks. The taken middle keys end up as a
// bitmap over positions, with per-block counts, from which each attention block lists the keys of
// its share.
#pragma once

#include <cstdint>

#include "attention/cuda/cuda_common.cuh"
#include "attention/cuda/selection_rules.cuh"
#include "ortsparse/attention_params.h"
#include "ortsparse/sparse_method_params.h"

namespace ortsparse::cuda::detail {

enum class UnitKind : int { kNone, kKey, kPage, kCluster };

constexpr int kDigitBits = 11;
constexpr int kBins = 1 << kDigitBits;
constexpr int kListCapacity = 1024;  // positions an attention block of a sparse row lists: its share
constexpr int kResolveCapacity = 128;  // candidates the last block ranks pairwise (O(n^2) work)
constexpr int kSelectThreads = 256;    // threads of the prepare, scoring and filter kernels
constexpr int kAttentionThreads = 128;  // 4 warps, each streaming its own tiles of keys
constexpr int kTileKeys = 16;           // keys of one attention tile
constexpr int kMaxTileHeads = 16;       // query heads of one attention block (the rows of an mma)
constexpr int kMaxSplits = 512;         // attention blocks per (segment, head tile)
constexpr int kMaxQueryBuckets = 1024;  // hash: group size x rounds

// How the row of one segment splits its keys (docs/ops.md, "Selection rules shared by the sparse
// methods"). sparse = 0: attend [visible_begin, visible_end); sparse = 1: the sink
// [visible_begin, middle_begin), the window [middle_end, visible_end), and, when ranked, the
// middle keys the selection took.
struct DecodeRow {
  int visible_begin, visible_end;
  int middle_begin, middle_end;
  int picks;
  int sparse;
  int ranked;
  int unit_begin, unit_end;  // units covering the middle (ranked rows)
};

// Selection progress of one segment; zeroed by the prepare kernel. Level 1 is the top digit of
// the rank keys (scoring kernel), level 2 the next one (first filter).
struct SelectionState {
  int scored_blocks;
  int filtered_blocks;
  int bucket_filtered_blocks;
  int threshold_bucket;   // level 1: top digit of the unit that reaches `picks`
  int take_whole_bucket;  //          that bucket is taken entirely
  int bucket_need;        //          weight still needed from the bucket
  int bucket_weight;      //          weight of the bucket
  int second_bucket;      // level 2, when the bucket is too large to list
  int take_whole_second;
  int second_need;
  int resolved;           // the selection is complete after the first filter
  int candidates;         // units listed in `candidates`
  int middle_selected;    // middle keys taken
  int unused[3];
};

// Threshold buckets of at most this weight are listed and resolved by the first filter's last
// block; larger ones by a second filter pass over the scores.
constexpr int kListedBucketWeight = 1024;

// Everything a decode kernel reads: the step, its plan and the workspace, by value.
struct DecodeArgs {
  AttentionParams attention;
  SparseMethodParams method;
  int segments, group, head_tiles, splits;
  UnitKind unit;
  int64_t key_capacity;
  int64_t units_capacity;   // unit ids are in [0, units_capacity)
  int64_t chunk_units;      // units per scoring/filter block
  int64_t chunk_positions;  // positions those units cover: the bitmap's block
  int64_t chunks;           // scoring/filter blocks per segment
  int64_t bitmap_words;     // per segment
  int feature_width;        // floats per query head in `features`
  int hash_shift;           // hash: positions >> shift fit 24 bits

  DecodeRow* rows;
  SelectionState* states;
  int* first_histogram;     // [segment][kBins]
  int* second_histogram;    // [segment][kBins]
  int* attention_counters;  // [segment][head tile]
  int* cluster_weights;     // saap: [segment][clusters]
  int* cluster_taken;       // saap: [segment][clusters]
  float* cluster_logits;    // saap: [segment][head of group][clusters]
  int classifier_blocks;    // saap: blocks per segment computing logits
  float* features;          // [segment][head of group][feature_width], or saap cluster scores
  int* query_buckets;       // hash: [segment][head of group][round]
  float* scores;            // [segment][units_capacity]
  int* candidates;          // [segment][units_capacity]
  uint32_t* bitmap;         // [segment][bitmap_words]
  int* block_counts;        // [segment][chunks]
  int* block_prefix;        // [segment][chunks + 1]
  float2* partial_stats;    // [segment][head tile][split][kMaxTileHeads]: running max, weight sum
  float* partial_sums;      // [segment][head tile][split][kMaxTileHeads][D]
};

// Whether `method` selects keys on decode steps; dense, block and hyper attend every visible key.
__host__ __device__ constexpr bool DecodeSelectsKeys(SparseMethod method) {
  switch (method) {
    case SparseMethod::kTopK:
    case SparseMethod::kStreaming:
    case SparseMethod::kLoki:
    case SparseMethod::kQuest:
    case SparseMethod::kSaap:
    case SparseMethod::kHash:
      return true;
    default:
      return false;
  }
}

// The keys the decode row of sequence b may see (the CPU's VisibleKeys for row 0).
__device__ __forceinline__ void VisibleDecodeKeys(const AttentionParams& a, int b, int* begin, int* end) {
  *begin = *end = 0;
  if (a.valid_query_rows != nullptr && a.valid_query_rows[b] <= 0) return;
  const int64_t position = a.past_lengths[b];
  int64_t last = a.key_counts[b];
  if (a.mask.data != nullptr) last = Smaller<int64_t>(last, a.mask.length);
  if (a.causal) last = Smaller<int64_t>(last, position + 1);
  const int64_t first = a.local_window > 0 ? Larger<int64_t>(0, position - a.local_window + 1) : 0;
  *begin = static_cast<int>(first);
  *end = static_cast<int>(Larger(first, last));
}

// The CPU's PartitionRow, with `ranks` = the method ranks units (every sparse method but streaming).
__device__ __forceinline__ DecodeRow PartitionDecodeRow(const DecodeArgs& args, int b) {
  const SparseMethodParams& m = args.method;
  DecodeRow row{};
  VisibleDecodeKeys(args.attention, b, &row.visible_begin, &row.visible_end);
  const RowSplit split = SplitRow(row.visible_begin, row.visible_end, m);
  row.sparse = DecodeSelectsKeys(m.method) && !split.dense;
  row.middle_begin = split.middle_begin;
  row.middle_end = split.middle_end;
  row.picks = split.picks;
  row.ranked = row.sparse && m.method != SparseMethod::kStreaming && row.middle_end > row.middle_begin;
  if (!row.sparse) row.middle_begin = row.middle_end = row.visible_end;
  switch (args.unit) {
    case UnitKind::kPage:
      row.unit_begin = static_cast<int>(row.middle_begin / m.page_size);
      row.unit_end = static_cast<int>((row.middle_end + m.page_size - 1) / m.page_size);
      break;
    case UnitKind::kCluster:
      row.unit_begin = 0;
      row.unit_end = static_cast<int>(m.clusters);
      break;
    default:
      row.unit_begin = row.middle_begin;
      row.unit_end = row.middle_end;
      break;
  }
  return row;
}

// The rank key of unit `unit` with score `score` (see the file comment).
__device__ __forceinline__ uint64_t UnitKey(const DecodeArgs& args, float score, int unit) {
  uint32_t high, low;
  if (args.method.method == SparseMethod::kHash) {  // more matching rounds first, then later positions
    const uint32_t rounds = score > 0.0f ? static_cast<uint32_t>(score) : 0u;
    high = rounds << 24 | static_cast<uint32_t>(unit) >> args.hash_shift;
    low = static_cast<uint32_t>(unit);
  } else {  // higher scores first, then earlier units
    high = OrderedBits(score);
    low = ~static_cast<uint32_t>(unit);
  }
  return static_cast<uint64_t>(high) << 32 | low;
}

// How many of the middle's keys unit `unit` holds for the ranking: 1 for a candidate key (a
// finite or +inf score, not masked), the page's middle keys, the cluster's middle keys.
__device__ __forceinline__ int UnitWeight(const DecodeArgs& args, const DecodeRow& row, int segment, int unit,
                                          float score) {
  switch (args.unit) {
    case UnitKind::kKey:
      return score > NegativeInfinity() ? 1 : 0;
    case UnitKind::kPage: {
      const int64_t page_begin = static_cast<int64_t>(unit) * args.method.page_size;
      return static_cast<int>(Smaller<int64_t>(row.middle_end, page_begin + args.method.page_size) -
                              Larger<int64_t>(row.middle_begin, page_begin));
    }
    default:
      return __ldcg(&args.cluster_weights[static_cast<int64_t>(segment) * args.method.clusters + unit]);
  }
}

__device__ __forceinline__ int TopDigit(uint64_t key) { return static_cast<int>(key >> (64 - kDigitBits)); }
__device__ __forceinline__ int SecondDigit(uint64_t key) {
  return static_cast<int>(key >> (64 - 2 * kDigitBits)) & (kBins - 1);
}

}  // namespace ortsparse::cuda::detail
