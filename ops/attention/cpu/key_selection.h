// Building blocks shared by the sparse methods (docs/ops.md, "Selection rules shared by the sparse
// methods"): the partition of a row's keys into sink, middle and window; the partial selection of
// the best-ranked units (keys, pages, clusters); and the span lists the exact-attention kernel reads.
#pragma once

#include <atomic>
#include <cstdint>
#include <limits>
#include <new>
#include <vector>

#include "attention/cpu/key_range.h"
#include "ortsparse/attention_params.h"
#include "ortsparse/parallel.h"
#include "ortsparse/sparse_method_params.h"
#include "ortsparse/status.h"

namespace ortsparse::cpu {

// How one query row splits the keys it may see.
struct RowPartition {
  KeyRange visible;
  KeyRange middle;    // sink = [visible.begin, middle.begin), window = [middle.end, visible.end)
  int64_t picks = 0;  // k, at most the middle's size
  bool dense = false;  // fewer than dense_below visible keys: the row attends all of them
};

RowPartition PartitionRow(KeyRange visible, const SparseMethodParams& method);

// Rank order of units by score, better first; equal scores put the lower id first. NaN ranks as
// -inf, so that the order stays strict and weak.
struct UnitRanking {
  const float* scores;  // indexed by unit id

  bool operator()(int32_t a, int32_t b) const {
    const float score_a = Sanitized(scores[a]), score_b = Sanitized(scores[b]);
    if (score_a != score_b) return score_a > score_b;
    return a < b;
  }
  static float Sanitized(float score) { return score == score ? score : -std::numeric_limits<float>::infinity(); }
};

// The positions of the k best of scores[0, count), in increasing order. Equal scores rank the
// earlier position first, or the later one with later_first; scores of -inf (and NaN) are never
// taken. Partial selection, never a sort: a bound estimated from a sample keeps a little more than
// k candidates in one pass, and nth_element picks among those.
void SelectTopK(const float* scores, int64_t count, int64_t k, bool later_first, std::vector<int32_t>* positions);

// Takes units of ids[0, count) in rank order until their weights (weights[id], none above
// max_weight, none zero) sum to at least `needed`, or all are taken. Partial selection
// (nth_element), never a full sort; reorders ids. Returns the best unit left out, or -1 when every
// unit is taken: the taken units are then exactly those u with IsTaken(u, result, ranking).
int32_t BestLeftOut(int32_t* ids, int64_t count, const UnitRanking& ranking, const int32_t* weights,
                    int64_t max_weight, int64_t needed);

inline bool IsTaken(int32_t unit, int32_t best_left_out, const UnitRanking& ranking) {
  return best_left_out < 0 || ranking(unit, best_left_out);
}

// Appends increasing, disjoint ranges to a span list, merging the ones that touch.
class SpanAppender {
 public:
  explicit SpanAppender(std::vector<KeySpan>* spans) : spans_(spans) {}
  void Add(int64_t begin, int64_t end) {
    if (begin >= end) return;
    if (!spans_->empty() && spans_->back().end == begin) {
      spans_->back().end = static_cast<int32_t>(end);
    } else {
      spans_->push_back({static_cast<int32_t>(begin), static_cast<int32_t>(end)});
    }
  }

 private:
  std::vector<KeySpan>* spans_;
};

// The selection of every tile, filled tile by tile (in parallel), then flattened for the kernel.
class SelectedKeys {
 public:
  // Empties every tile's list, keeping the lists' memory for the next step.
  void Reset(int64_t heads_per_tile, int64_t rows_per_tile, int64_t tile_count);
  std::vector<KeySpan>& tile(int64_t index) { return per_tile_[static_cast<size_t>(index)]; }
  const std::vector<KeySpan>& tile(int64_t index) const { return per_tile_[static_cast<size_t>(index)]; }
  // Flattens the tiles' lists; the view stays valid until the next Reset or Flatten.
  const KeySelection& Flatten();

 private:
  std::vector<std::vector<KeySpan>> per_tile_;
  std::vector<int64_t> offsets_;
  std::vector<KeySpan> spans_;
  KeySelection view_;
};

// Appends sink, window and the picks of `middle` (a callback adding increasing middle ranges to a
// SpanAppender) to `spans`; a dense row gets its visible keys as one span.
template <typename AddMiddle>
void AppendRowSpans(const RowPartition& row, std::vector<KeySpan>* spans, AddMiddle&& add_middle) {
  SpanAppender out(spans);
  if (row.dense) {
    out.Add(row.visible.begin, row.visible.end);
    return;
  }
  out.Add(row.visible.begin, row.middle.begin);
  add_middle(out);
  out.Add(row.middle.end, row.visible.end);
}

// Whether every query head of a KV head's group has key `position` of row `row` masked out.
bool HiddenFromGroup(const AttentionMask& mask, DataType attention_type, int64_t b, int64_t first_head,
                     int64_t group_size, int64_t row, int64_t position);

// ParallelFor for bodies that allocate: a std::bad_alloc in any call becomes an error status
// (the pool's threads must not see exceptions).
template <typename Body>
Status ParallelForAllocating(const ParallelRunner& runner, size_t total, Body& body) {
  std::atomic<bool> out_of_memory{false};
  auto guarded = [&](size_t index) {
    try {
      body(index);
    } catch (const std::bad_alloc&) {
      out_of_memory = true;
    }
  };
  ParallelFor(runner, total, guarded);
  if (out_of_memory) return Status::Error("SparseAttention: out of memory for the key selection");
  return Status::Ok();
}

}  // namespace ortsparse::cpu
