// Plain-loop fp64 reference of the sparse methods (docs/ops.md, "Methods"): the state each method
// keeps and the keys each query row attends, written from the contract and independent of the
// kernels: every score is materialised and ranked with a full sort.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "reference_attention.h"

namespace ortsparse::testing {

struct ReferenceMethod {
  std::string name = "dense";
  float budget = 0.0625f;  // the op's attribute type: k is derived from the fp32 value
  int64_t sink = 4, window = 64, dense_below = 1024;
  int64_t page_size = 16;                                                   // quest
  int64_t rank = 0;                                                         // loki
  int64_t block_size = 64;                                                  // block
  double gamma = 0.95;                                                      // block
  std::vector<double> pca_basis;                                            // loki: [Hkv, D, D]
  int64_t clusters = 0, hidden = 0;                                         // saap: C, M
  std::vector<double> centroids;                                            // [Hkv, C, D]
  std::vector<double> classifier_weights, classifier_bias, classifier_output;  // [Hq, D, M], [Hq, M], [Hq, M + 1, C]
  int64_t hash_rounds = 0, hash_half_buckets = 0;                           // hash: R, NB / 2
  std::vector<double> hash_projections;                                     // [Hkv, R, D, NB / 2]
  int64_t hyper_bits = 0;                                                   // hyper: L
  std::vector<double> hyper_hyperplanes;                                    // [Hkv, 1, D, L]
  // hyper codes the queries as the op attends them: rotated, then stored in the attention type.
  RoundStored stored_query = Unrounded;
};

// The state rows and width of a method for a cache of `length` positions (0 x 0 without state).
int64_t ReferenceStateRows(const ReferenceMethod& method, int64_t length);
int64_t ReferenceStateWidth(const ReferenceMethod& method, int64_t head_size);

// The state, [B, Hkv, rows, width], of the first key_counts[b] keys of each sequence: quest from
// the cache `cached_keys`, loki / saap / hash from `raw_keys` (the keys as given, before rotary);
// both [B, Hkv, length, D]. Rows of positions without keys are 0.
std::vector<double> ReferenceState(const ReferenceMethod& method, int64_t batch, int64_t kv_num_heads, int64_t head_size,
                                   int64_t length, const std::vector<int64_t>& key_counts,
                                   const std::vector<double>& cached_keys, const std::vector<double>& raw_keys);

// Whether (b, i, h) attends key j, [B, S, Hq, T_cap], for one step of `problem`: `present_key` is
// the step's cache (ReferenceAttention's) and `state` ReferenceState of it.
std::vector<uint8_t> ReferenceSelection(const ReferenceProblem& problem, const ReferenceMethod& method,
                                        const std::vector<double>& present_key, const std::vector<double>& state);

}  // namespace ortsparse::testing
