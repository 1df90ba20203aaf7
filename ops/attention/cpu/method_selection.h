// Internal to the sparse methods: the selection of decode steps and of the three sparse prefills,
// and the pieces they share. See sparse_methods.h for the entry points.
#pragma once

#include <cstdint>
#include <vector>

#include "attention/cpu/element.h"
#include "attention/cpu/key_selection.h"
#include "attention/cpu/key_summaries.h"
#include "ortsparse/attention_params.h"
#include "ortsparse/sparse_method_params.h"

namespace ortsparse::cpu {

// Decode steps (S = 1) of topk, streaming, loki, quest, saap and hash: one tile per (b, KV head).
Status SelectForDecode(const AttentionParams& attention, const SparseMethodParams& method,
                       const ParallelRunner& runner, SelectedKeys* selected);

// hash prefill (S > 1): one tile per (b, KV head, row).
Status SelectHashPrefill(const AttentionParams& attention, const SparseMethodParams& method,
                         const ParallelRunner& runner, SelectedKeys* selected);

// block prefill (S > 1): one tile per (b, query head, block of block_size rows).
Status SelectBlockPrefill(const AttentionParams& attention, const SparseMethodParams& method,
                          const ParallelRunner& runner, SelectedKeys* selected);

// hyper: every cached key of each (sequence, KV head) in sortLSH order, by (rank of its code,
// position). Built once per step; the row slabs of a prefill share it.
struct SortedKeyCodes {
  static constexpr uint64_t kPositionMask = 0xffffffffu;
  int64_t kv_num_heads = 0;
  int64_t stride = 0;  // entries per (b, KV head): the longest sequence's keys
  // [(b * Hkv + h) * stride + i] for i < key_counts[b]: rank << 32 | position, increasing.
  std::vector<uint64_t> entries;
  std::vector<float> hyperplanes;  // [Hkv, L, D]: the columns of method_data_0 as rows

  const uint64_t* Of(int64_t b, int64_t kv_head) const {
    return entries.data() + (b * kv_num_heads + kv_head) * stride;
  }
  const float* HyperplanesOf(int64_t kv_head, int64_t bits, int64_t head_size) const {
    return hyperplanes.data() + kv_head * bits * head_size;
  }
};

// hyper: codes and sorts the cached keys key_counts[b] of every (b, KV head), in parallel.
Status SortKeyCodes(const AttentionParams& attention, const SparseMethodParams& method, const ParallelRunner& runner,
                    SortedKeyCodes* codes);

// hyper prefill (S > 1) over the keys sorted by SortKeyCodes: one tile per (b, KV head, row).
Status SelectHyperPrefill(const AttentionParams& attention, const SparseMethodParams& method,
                          const SortedKeyCodes& codes, const ParallelRunner& runner, SelectedKeys* selected);

// Row `row` of sequence b, query head `head`, as fp32: the raw query (before rotary) or the
// attended one.
template <typename T>
void QueryAsFloat(const void* query, const int64_t* strides, int64_t b, int64_t row, int64_t head, int64_t width,
                  float* out) {
  RowToFloat(static_cast<const T*>(query) + b * strides[0] + row * strides[1] + head * strides[2], width, out);
}

// hash: the buckets of the raw queries of the heads of KV head `kv_head`'s group, out[g * R + r].
// `scratch` holds D + NB / 2 floats.
template <typename T>
void GroupQueryBuckets(const AttentionParams& a, const SparseMethodParams& m, int64_t b, int64_t row, int64_t kv_head,
                       float* scratch, int32_t* out) {
  const int64_t group = a.num_heads / a.kv_num_heads;
  const int64_t D = a.head_size;
  for (int64_t g = 0; g < group; ++g) {
    QueryAsFloat<T>(m.raw_query, m.raw_query_strides, b, row, kv_head * group + g, D, scratch);
    for (int64_t r = 0; r < m.hash_rounds; ++r) {
      const float* projections = m.hash_projections + (kv_head * m.hash_rounds + r) * D * m.hash_half_buckets;
      out[g * m.hash_rounds + r] = HashBucket(projections, D, m.hash_half_buckets, scratch, scratch + D);
    }
  }
}

// hash: the rounds in which a key's buckets match the bucket of some query of the group.
inline int64_t MatchingRounds(const int32_t* key_buckets, const int32_t* query_buckets, int64_t group, int64_t rounds) {
  int64_t matches = 0;
  for (int64_t r = 0; r < rounds; ++r) {
    bool match = false;
    for (int64_t g = 0; g < group; ++g) match |= key_buckets[r] == query_buckets[g * rounds + r];
    matches += match ? 1 : 0;
  }
  return matches;
}

// hash: the buckets state row of key j of (b, h).
inline const int32_t* KeyBuckets(const SparseMethodParams& m, int64_t b, int64_t h, int64_t j) {
  const int64_t* strides = m.state.present_strides;
  return static_cast<const int32_t*>(m.state.present) + b * strides[0] + h * strides[1] + j * strides[2];
}

}  // namespace ortsparse::cpu
