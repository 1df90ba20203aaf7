#include "attention/cpu/key_selection.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "attention/cpu/element.h"

namespace ortsparse::cpu {

RowPartition PartitionRow(KeyRange visible, const SparseMethodParams& method) {
  RowPartition row;
  row.visible = visible;
  const int64_t n = visible.size();
  row.dense = n < method.dense_below;
  const int64_t sink_end = std::min(visible.end, visible.begin + method.sink);
  row.middle = {sink_end, std::max(sink_end, visible.end - method.window)};
  // In fp32, the attribute's type, so that e.g. budget 0.1 of 1000 keys is 100, not 101.
  const int64_t picks = method.budget <= 1.0f
                            ? static_cast<int64_t>(std::ceil(method.budget * static_cast<float>(n)))
                            : static_cast<int64_t>(std::floor(method.budget));
  row.picks = std::min(picks, row.middle.size());
  return row;
}

namespace {

bool IsCandidate(float score) { return score > -std::numeric_limits<float>::infinity(); }  // NaN is not

// A score that at least k of the candidates reach, as high as a strided sample of about kSample
// candidates allows with a wide margin (the sample's k-th best shifted by four standard deviations
// and more). -inf when the sample is too small to tell.
float EstimateLowerBound(const float* scores, int64_t count, int64_t k) {
  constexpr int64_t kSample = 1024;
  if (count < 4 * kSample) return -std::numeric_limits<float>::infinity();
  thread_local std::vector<float> sample;
  sample.clear();
  const int64_t stride = count / kSample;
  int64_t sampled = 0;  // positions, candidates or not
  for (int64_t i = 0; i < count; i += stride, ++sampled) {
    if (IsCandidate(scores[i])) sample.push_back(scores[i]);
  }
  const double expected_rank = static_cast<double>(k) * static_cast<double>(sampled) / static_cast<double>(count);
  const int64_t safe_rank = static_cast<int64_t>(expected_rank + 4.0 * std::sqrt(expected_rank) + 16.0);
  if (safe_rank >= static_cast<int64_t>(sample.size())) return -std::numeric_limits<float>::infinity();
  std::nth_element(sample.begin(), sample.begin() + safe_rank, sample.end(), std::greater<float>());
  return sample[safe_rank];
}

}  // namespace

void SelectTopK(const float* scores, int64_t count, int64_t k, bool later_first, std::vector<int32_t>* positions) {
  positions->clear();
  if (k <= 0) return;
  // Candidates at or above the bound, in position order; all of them if fewer than k reach it.
  float bound = EstimateLowerBound(scores, count, k);
  for (int pass = 0; pass < 2 && static_cast<int64_t>(positions->size()) < k; ++pass) {
    if (pass == 1) bound = -std::numeric_limits<float>::infinity();
    // Branch-free: which scores pass is unpredictable, and mispredicted branches cost more than
    // writing every position.
    positions->resize(static_cast<size_t>(count));
    int32_t* kept = positions->data();
    int64_t kept_count = 0;
    for (int64_t i = 0; i < count; ++i) {
      kept[kept_count] = static_cast<int32_t>(i);
      kept_count += (IsCandidate(scores[i]) & (scores[i] >= bound)) ? 1 : 0;
    }
    positions->resize(static_cast<size_t>(kept_count));
  }
  const int64_t kept = static_cast<int64_t>(positions->size());
  if (kept <= k) return;
  // The k-th best among them, and how many of the scores equal to it fit.
  thread_local std::vector<float> kept_scores;
  kept_scores.clear();
  for (int32_t i : *positions) kept_scores.push_back(scores[i]);
  std::nth_element(kept_scores.begin(), kept_scores.begin() + (k - 1), kept_scores.end(), std::greater<float>());
  const float threshold = kept_scores[k - 1];
  int64_t ties = k;
  for (int64_t i = 0; i < k; ++i) ties -= kept_scores[i] > threshold ? 1 : 0;
  // Ties are taken from the first positions scoring the threshold, or from the last.
  int64_t tie_begin = 0, tie_end = kept;  // indices into positions
  if (later_first) {
    for (int64_t i = kept - 1, left = ties; left > 0; --i) {
      if (scores[(*positions)[i]] == threshold && --left == 0) tie_begin = i;
    }
  } else {
    for (int64_t i = 0, left = ties; left > 0; ++i) {
      if (scores[(*positions)[i]] == threshold && --left == 0) tie_end = i + 1;
    }
  }
  int64_t taken = 0;
  for (int64_t i = 0; i < kept; ++i) {
    const float score = scores[(*positions)[i]];
    if (score > threshold || (score == threshold && i >= tie_begin && i < tie_end)) {
      (*positions)[taken++] = (*positions)[i];
    }
  }
  positions->resize(static_cast<size_t>(taken));
}

int32_t BestLeftOut(int32_t* ids, int64_t count, const UnitRanking& ranking, const int32_t* weights,
                    int64_t max_weight, int64_t needed) {
  int64_t taken = 0;
  int64_t held = 0;
  while (held < needed && taken < count) {
    // Units weigh at most max_weight: the next `batch` best are all needed to reach `needed`.
    const int64_t batch = std::max<int64_t>(1, (needed - held + max_weight - 1) / max_weight);
    const int64_t end = std::min(count, taken + batch);
    if (end < count) std::nth_element(ids + taken, ids + end, ids + count, ranking);
    for (int64_t i = taken; i < end; ++i) held += weights[ids[i]];
    taken = end;
  }
  return taken < count ? ids[taken] : -1;
}

void SelectedKeys::Reset(int64_t heads_per_tile, int64_t rows_per_tile, int64_t tile_count) {
  view_ = KeySelection();
  view_.heads_per_tile = heads_per_tile;
  view_.rows_per_tile = rows_per_tile;
  per_tile_.resize(static_cast<size_t>(tile_count));
  for (std::vector<KeySpan>& tile : per_tile_) tile.clear();
}

const KeySelection& SelectedKeys::Flatten() {
  offsets_.assign(1, 0);
  spans_.clear();
  for (const std::vector<KeySpan>& tile : per_tile_) {
    spans_.insert(spans_.end(), tile.begin(), tile.end());
    offsets_.push_back(static_cast<int64_t>(spans_.size()));
  }
  view_.span_offsets = offsets_.data();
  view_.spans = spans_.data();
  return view_;
}

namespace {

bool Hides(const AttentionMask& mask, DataType attention_type, int64_t offset) {
  switch (mask.type) {
    case DataType::kBool:
      return static_cast<const uint8_t*>(mask.data)[offset] == 0;
    default:
      return VisitAttentionType(attention_type, [&](auto element) {
        using T = decltype(element);
        return ToFloat(static_cast<const T*>(mask.data)[offset]) == -std::numeric_limits<float>::infinity();
      });
  }
}

}  // namespace

bool HiddenFromGroup(const AttentionMask& mask, DataType attention_type, int64_t b, int64_t first_head,
                     int64_t group_size, int64_t row, int64_t position) {
  if (mask.data == nullptr) return false;
  for (int64_t head = first_head; head < first_head + group_size; ++head) {
    const int64_t offset = b * mask.batch_stride + head * mask.head_stride + row * mask.row_stride + position;
    if (!Hides(mask, attention_type, offset)) return false;
  }
  return true;
}

}  // namespace ortsparse::cpu
