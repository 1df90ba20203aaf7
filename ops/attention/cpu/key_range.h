// Which cache positions a query row may see: the rule shared by the attention kernel and the
// sparse methods' selection.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ortsparse/attention_params.h"

namespace ortsparse::cpu {

// Positions [begin, end).
struct KeyRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool empty() const { return begin >= end; }
  int64_t size() const { return end > begin ? end - begin : 0; }
};

// Keys that query row `row` of sequence `b` may see (causality, local window, cache length, mask
// columns); empty for rows past valid_query_rows[b]. Both ends are non-decreasing in `row`.
inline KeyRange VisibleKeys(const AttentionParams& p, int64_t b, int64_t row) {
  if (row >= p.valid_query_rows[b]) return {};
  const int64_t position = p.past_lengths[b] + row;
  int64_t end = p.key_counts[b];
  if (p.mask.data != nullptr) end = std::min(end, p.mask.length);
  if (p.causal) end = std::min(end, position + 1);
  const int64_t begin = p.local_window > 0 ? std::max<int64_t>(0, position - p.local_window + 1) : 0;
  return {begin, std::max(begin, end)};
}

}  // namespace ortsparse::cpu
