// Plain parameter structs of the sparse methods (docs/ops.md, "Methods"): how keys are selected
// for attention, and the per-key state some methods keep next to the KV cache. They complement an
// AttentionParams that describes the cache, the queries and the output.
#pragma once

#include <cstdint>

namespace ortsparse {

enum class SparseMethod : uint8_t { kDense, kTopK, kStreaming, kLoki, kQuest, kSaap, kHash, kBlock, kHyper };

// loki, saap and hash summarise keys (and queries) as given, before the op's rotary embedding.
constexpr bool SummarisesRawKeys(SparseMethod method) {
  return method == SparseMethod::kLoki || method == SparseMethod::kSaap || method == SparseMethod::kHash;
}

// A method's state, [B, Hkv, rows, width] with rows addressed through strides[0..2] and the width
// contiguous: summaries in the attention type (quest, loki) or int32 indices (saap, hash).
struct MethodState {
  void* present = nullptr;  // updated for the keys of this step; read by the selection
  int64_t present_strides[3] = {};
  const void* past = nullptr;  // null: the state of the past keys is built from the cache
  int64_t past_strides[3] = {};
  bool in_place = false;  // present is the past's buffer: only the new rows are written
  int64_t width = 0;
  int64_t present_rows = 0;  // rows of the present: the cache capacity, or its pages for quest
};

struct SparseMethodParams {
  SparseMethod method = SparseMethod::kDense;

  // Selection rules shared by the methods.
  float budget = 0.0625f;  // <= 1: a fraction of the visible keys; > 1: a count
  int64_t sink = 4;
  int64_t window = 64;
  int64_t dense_below = 1024;

  int64_t page_size = 16;   // quest
  int64_t rank = 0;         // loki
  int64_t block_size = 64;  // block
  float gamma = 0.95f;      // block

  // Queries and the new key rows as given (SummarisesRawKeys): raw_query[b, i, h, d] and
  // raw_keys[b, i, h, d], the key that lands at past_lengths[b] + i (strides as
  // AttentionParams::query). With raw_keys null, keys are summarised from the cache.
  const void* raw_query = nullptr;
  int64_t raw_query_strides[3] = {};
  const void* raw_keys = nullptr;
  int64_t raw_keys_strides[3] = {};

  // Calibration (method_data_*), fp32, contiguous.
  const float* pca_basis = nullptr;  // loki: [Hkv, D, D], row i = the i-th principal component
  const float* centroids = nullptr;  // saap: [Hkv, C, D], unit norm
  int64_t clusters = 0;              // C
  const float* classifier_weights = nullptr;  // saap: [Hq, D, M]
  const float* classifier_bias = nullptr;     // saap: [Hq, M]
  const float* classifier_output = nullptr;   // saap: [Hq, M + 1, C], its bias as the last row
  int64_t classifier_hidden = 0;              // M
  const float* hash_projections = nullptr;    // hash: [Hkv, R, D, NB / 2]; hyper: [Hkv, 1, D, L] hyperplanes
  int64_t hash_rounds = 0;                    // R (hyper: 1)
  int64_t hash_half_buckets = 0;              // NB / 2 (hyper: L, the bits of a code)

  MethodState state;  // quest: summaries; loki: summaries; saap, hash: indices
};

}  // namespace ortsparse
