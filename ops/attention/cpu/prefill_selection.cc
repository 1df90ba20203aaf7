// Selection of the three sparse prefills (S > 1):
//   hash:  per (sequence, KV head, row): sink, window, and every middle key sharing a bucket with
//          one of the group's queries in some round (no budget);
//   block: per (sequence, query head, block of rows): the key blocks that carry `gamma` of the
//          estimated attention mass (mean query against mean keys), block 0 and the diagonal;
//   hyper: per (sequence, KV head, row): sink, window, for each query head of the group the middle
//          keys nearest to the query in sortLSH order (keys sorted once per step), and evenly
//          spaced sampled columns.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "attention/cpu/cpu_features.h"
#include "attention/cpu/key_summaries.h"
#include "attention/cpu/method_selection.h"
#include "attention/cpu/vector_math.h"

namespace ortsparse::cpu {
namespace {

template <typename T>
Status RunHashPrefill(const AttentionParams& a, const SparseMethodParams& m, const ParallelRunner& runner,
                      SelectedKeys* selected) {
  const int64_t group = a.num_heads / a.kv_num_heads, S = a.query_length;
  selected->Reset(group, 1, a.batch * a.kv_num_heads * S);
  auto select_row = [&](size_t item) {  // tile (b, KV head, row)
    const int64_t b = static_cast<int64_t>(item) / (a.kv_num_heads * S);
    const int64_t kv_head = static_cast<int64_t>(item) / S % a.kv_num_heads;
    const int64_t row = static_cast<int64_t>(item) % S;
    const RowPartition partition = PartitionRow(VisibleKeys(a, b, row), m);
    thread_local std::vector<float> scratch;
    thread_local std::vector<int32_t> query_buckets;
    if (!partition.dense) {
      scratch.resize(static_cast<size_t>(a.head_size + m.hash_half_buckets));
      query_buckets.resize(static_cast<size_t>(group * m.hash_rounds));
      GroupQueryBuckets<T>(a, m, b, row, kv_head, scratch.data(), query_buckets.data());
    }
    AppendRowSpans(partition, &selected->tile(static_cast<int64_t>(item)), [&](SpanAppender& out) {
      for (int64_t j = partition.middle.begin; j < partition.middle.end; ++j) {
        if (MatchingRounds(KeyBuckets(m, b, kv_head, j), query_buckets.data(), group, m.hash_rounds) > 0 &&
            !HiddenFromGroup(a.mask, a.type, b, kv_head * group, group, row, j)) {
          out.Add(j, j + 1);
        }
      }
    });
  };
  return ParallelForAllocating(runner, static_cast<size_t>(a.batch * a.kv_num_heads * S), select_row);
}

template <typename T>
Status RunBlockPrefill(const AttentionParams& a, const SparseMethodParams& m, const ParallelRunner& runner,
                       SelectedKeys* selected) {
  const int64_t D = a.head_size, block = m.block_size, group = a.num_heads / a.kv_num_heads;
  const int64_t query_blocks = (a.query_length + block - 1) / block;
  int64_t key_blocks = 0;  // per (b, KV head), the most any sequence has
  for (int64_t b = 0; b < a.batch; ++b) key_blocks = std::max<int64_t>(key_blocks, (a.key_counts[b] + block - 1) / block);

  // Mean key of every key block of every (b, KV head), over the block's cached keys.
  std::vector<float> mean_keys(static_cast<size_t>(a.batch * a.kv_num_heads * key_blocks * D));
  auto average_keys = [&](size_t item) {
    const int64_t b = static_cast<int64_t>(item) / a.kv_num_heads, kv_head = static_cast<int64_t>(item) % a.kv_num_heads;
    const T* keys = static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + kv_head * a.key_strides[1];
    thread_local std::vector<float> key;
    key.resize(static_cast<size_t>(D));
    for (int64_t c = 0; c * block < a.key_counts[b]; ++c) {
      float* mean = mean_keys.data() + (item * key_blocks + c) * D;
      const int64_t end = std::min<int64_t>(a.key_counts[b], (c + 1) * block);
      std::fill(mean, mean + D, 0.0f);
      for (int64_t j = c * block; j < end; ++j) {
        RowToFloat(keys + j * a.key_strides[2], D, key.data());
        for (int64_t d = 0; d < D; ++d) mean[d] += key[d];
      }
      ScaleInPlace(mean, D, 1.0f / static_cast<float>(end - c * block));
    }
  };
  ORTSPARSE_RETURN_IF_ERROR(ParallelForAllocating(runner, static_cast<size_t>(a.batch * a.kv_num_heads), average_keys));

  selected->Reset(1, block, a.batch * a.num_heads * query_blocks);
  auto select_blocks = [&](size_t item) {  // tile (b, query head, query block)
    const int64_t b = static_cast<int64_t>(item) / (a.num_heads * query_blocks);
    const int64_t head = static_cast<int64_t>(item) / query_blocks % a.num_heads;
    const int64_t first_row = static_cast<int64_t>(item) % query_blocks * block;
    const int64_t end_row = std::min<int64_t>({a.query_length, first_row + block, a.valid_query_rows[b]});
    if (first_row >= end_row) return;
    KeyRange seen = VisibleKeys(a, b, first_row);  // by any row of the block; both ends grow with the row
    seen.end = std::max(seen.end, VisibleKeys(a, b, end_row - 1).end);
    if (seen.empty()) return;
    SpanAppender out(&selected->tile(static_cast<int64_t>(item)));
    if (PartitionRow(VisibleKeys(a, b, first_row), m).dense) {  // the block's rows see the fewest keys first
      out.Add(seen.begin, seen.end);
      return;
    }
    const int64_t first_block = seen.begin / block, end_block = (seen.end - 1) / block + 1;
    thread_local std::vector<float> scores, query, mean_query;
    thread_local std::vector<int32_t> order;
    query.resize(static_cast<size_t>(D));
    mean_query.assign(static_cast<size_t>(D), 0.0f);
    for (int64_t row = first_row; row < end_row; ++row) {
      QueryAsFloat<T>(a.query, a.query_strides, b, row, head, D, query.data());
      for (int64_t d = 0; d < D; ++d) mean_query[d] += query[d];
    }
    ScaleInPlace(mean_query.data(), D, a.scale / static_cast<float>(end_row - first_row));
    // Scores and their softmax over the visible key blocks, indexed by block - first_block.
    const int64_t blocks = end_block - first_block;
    const float* means = mean_keys.data() + ((b * a.kv_num_heads + head / group) * key_blocks + first_block) * D;
    scores.resize(static_cast<size_t>(blocks));
    for (int64_t c = 0; c < blocks; ++c) scores[c] = Dot(mean_query.data(), means + c * D, D);
    order.resize(static_cast<size_t>(blocks));
    std::iota(order.begin(), order.end(), 0);
    const UnitRanking ranking{scores.data()};
    std::sort(order.begin(), order.end(), ranking);  // a few hundred blocks at most
    const float best = scores[order[0]];
    float total = 0.0f;
    for (int64_t c = 0; c < blocks; ++c) total += std::exp(scores[c] - best);
    // Blocks taken in rank order until they hold gamma of the mass, then block 0 and the diagonal.
    thread_local std::vector<uint8_t> kept;
    kept.assign(static_cast<size_t>(blocks), 0);
    float mass = 0.0f;
    for (int32_t c : order) {
      kept[c] = 1;
      mass += std::exp(scores[c] - best) / total;
      if (mass >= m.gamma) break;
    }
    if (first_block == 0) kept[0] = 1;
    const int64_t first_position = a.past_lengths[b] + first_row, last_position = a.past_lengths[b] + end_row - 1;
    for (int64_t c = std::max(first_block, first_position / block); c <= std::min(end_block - 1, last_position / block);
         ++c) {
      kept[c - first_block] = 1;
    }
    for (int64_t c = 0; c < blocks; ++c) {
      const int64_t block_begin = (first_block + c) * block;
      if (kept[c]) out.Add(std::max(seen.begin, block_begin), std::min(seen.end, block_begin + block));
    }
  };
  return ParallelForAllocating(runner, static_cast<size_t>(a.batch * a.num_heads * query_blocks), select_blocks);
}

// hyper: codes[i] = code of rows[i * stride, :] (keys of the cache, or the query heads of a row)
// against the hyperplanes [bits, D]. `scratch` holds kCodeBlock * D + bits floats.
constexpr int64_t kCodeBlock = 64;

template <typename T>
ORTSPARSE_ALWAYS_INLINE void CodeRowsBody(const T* rows, int64_t stride, int64_t count, const float* hyperplanes,
                                          int64_t bits, int64_t D, float* scratch, uint32_t* codes) {
  float* products = scratch + kCodeBlock * D;
  for (int64_t begin = 0; begin < count; begin += kCodeBlock) {
    const int64_t n = std::min(kCodeBlock, count - begin);
    const FloatRows block = BlockAsFloat(rows + begin * stride, stride, n, D, scratch);
    for (int64_t i = 0; i < n; ++i) {
      codes[begin + i] = HyperCode(hyperplanes, bits, D, block.data + i * block.stride, products);
    }
  }
}

template <typename T>
ORTSPARSE_TARGET_AVX2_FMA void CodeRowsAvx2(const T* rows, int64_t stride, int64_t count, const float* hyperplanes,
                                            int64_t bits, int64_t D, float* scratch, uint32_t* codes) {
  CodeRowsBody(rows, stride, count, hyperplanes, bits, D, scratch, codes);
}

template <typename T>
void CodeRowsBaseline(const T* rows, int64_t stride, int64_t count, const float* hyperplanes, int64_t bits, int64_t D,
                      float* scratch, uint32_t* codes) {
  CodeRowsBody(rows, stride, count, hyperplanes, bits, D, scratch, codes);
}

template <typename T>
void CodeRows(const T* rows, int64_t stride, int64_t count, const float* hyperplanes, int64_t bits, int64_t D,
              uint32_t* codes) {
  thread_local std::vector<float> scratch;
  scratch.resize(std::max(scratch.size(), static_cast<size_t>(kCodeBlock * D + bits)));
  if (UseAvx2FmaKernels()) {
    CodeRowsAvx2(rows, stride, count, hyperplanes, bits, D, scratch.data(), codes);
  } else {
    CodeRowsBaseline(rows, stride, count, hyperplanes, bits, D, scratch.data(), codes);
  }
}

template <typename T>
Status RunSortKeyCodes(const AttentionParams& a, const SparseMethodParams& m, const ParallelRunner& runner,
                       SortedKeyCodes* codes) {
  const int64_t D = a.head_size, bits = m.hash_half_buckets, Hkv = a.kv_num_heads;
  codes->kv_num_heads = Hkv;
  codes->stride = *std::max_element(a.key_counts, a.key_counts + a.batch);
  codes->entries.resize(static_cast<size_t>(a.batch * Hkv * codes->stride));
  codes->hyperplanes.resize(static_cast<size_t>(Hkv * bits * D));
  for (int64_t h = 0; h < Hkv; ++h) {  // [Hkv, 1, D, L] -> [Hkv, L, D]
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t i = 0; i < bits; ++i) {
        codes->hyperplanes[(h * bits + i) * D + d] = m.hash_projections[(h * D + d) * bits + i];
      }
    }
  }
  auto sort_keys = [&](size_t item) {  // (b, KV head)
    const int64_t b = static_cast<int64_t>(item) / Hkv, h = static_cast<int64_t>(item) % Hkv;
    const int64_t count = a.key_counts[b];
    thread_local std::vector<uint32_t> key_codes;
    key_codes.resize(static_cast<size_t>(count));
    const T* keys = static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + h * a.key_strides[1];
    CodeRows(keys, a.key_strides[2], count, codes->HyperplanesOf(h, bits, D), bits, D, key_codes.data());
    uint64_t* entries = codes->entries.data() + item * codes->stride;
    for (int64_t j = 0; j < count; ++j) entries[j] = uint64_t{GrayRank(key_codes[j])} << 32 | static_cast<uint64_t>(j);
    std::sort(entries, entries + count);
  };
  return ParallelForAllocating(runner, static_cast<size_t>(a.batch * Hkv), sort_keys);
}

// hyper: walks a (b, KV head)'s sorted entries outwards from a query's insertion point, one side
// at a time, yielding the positions a row may pick: in its middle, not hidden from the group. A
// run of one rank whose positions lie outside the middle is skipped by a galloping search
// (positions increase within a rank), so rows that see few of the cached keys do not scan the
// others, and short runs cost a step or two.
template <typename Admits>
class SortedWalk {
 public:
  SortedWalk(const uint64_t* entries, int64_t count, int64_t insertion, KeyRange middle, const Admits& admits)
      : entries_(entries), count_(count), left_(insertion - 1), right_(insertion), middle_(middle), admits_(admits) {}

  // The next admissible position to the left (or right), -1 when that side has none left.
  int64_t Left() {
    while (left_ >= 0) {
      const uint64_t entry = entries_[left_];
      const int64_t j = static_cast<int64_t>(entry & SortedKeyCodes::kPositionMask);
      const uint64_t rank_base = entry & ~uint64_t{SortedKeyCodes::kPositionMask};
      if (j >= middle_.end) {  // to the last key of this rank before the middle's end
        left_ = FindBackward(left_, rank_base | static_cast<uint64_t>(middle_.end)) - 1;
      } else if (j < middle_.begin) {  // the rest of this rank is earlier still: to the previous rank
        left_ = FindBackward(left_, rank_base) - 1;
      } else {
        --left_;
        if (admits_(j)) return j;
      }
    }
    return -1;
  }
  int64_t Right() {
    while (right_ < count_) {
      const uint64_t entry = entries_[right_];
      const int64_t j = static_cast<int64_t>(entry & SortedKeyCodes::kPositionMask);
      const uint64_t rank_base = entry & ~uint64_t{SortedKeyCodes::kPositionMask};
      if (j < middle_.begin) {  // to the first key of this rank in the middle
        right_ = FindForward(right_, rank_base | static_cast<uint64_t>(middle_.begin));
      } else if (j >= middle_.end) {  // the rest of this rank is later still: to the next rank
        right_ = FindForward(right_, rank_base + (uint64_t{1} << 32));
      } else {
        ++right_;
        if (admits_(j)) return j;
      }
    }
    return -1;
  }

 private:
  // The first index whose entry is at least `value`, given that the entry at `from` is: searched
  // backwards in doubling steps, then by bisection.
  int64_t FindBackward(int64_t from, uint64_t value) const {
    int64_t high = from, low = from - 1;  // entries_[high] >= value; entries_[low] < value once found
    for (int64_t step = 1; low >= 0 && entries_[low] >= value; step *= 2) {
      high = low;
      low = high - step;
    }
    return std::lower_bound(entries_ + std::max<int64_t>(low + 1, 0), entries_ + high, value) - entries_;
  }
  // The first index whose entry is at least `value` (count_ if none), given that the entry at
  // `from` is less: searched forwards in doubling steps, then by bisection.
  int64_t FindForward(int64_t from, uint64_t value) const {
    int64_t low = from, high = from + 1;  // entries_[low] < value; entries_[high] >= value once found
    for (int64_t step = 1; high < count_ && entries_[high] < value; step *= 2) {
      low = high;
      high = low + step;
    }
    return std::lower_bound(entries_ + low + 1, entries_ + std::min(high, count_), value) - entries_;
  }

  const uint64_t* entries_;
  int64_t count_, left_, right_;
  KeyRange middle_;
  const Admits& admits_;
};

// Marks on positions [begin, begin + 64 * words), emitted as spans of consecutive marks: the
// picks of a row, deduplicated and in order without a sort.
class PositionMarks {
 public:
  void Reset(KeyRange range) {
    begin_ = range.begin;
    words_.assign(static_cast<size_t>((range.size() + 63) / 64), 0);
  }
  void Mark(int64_t position) {
    const int64_t i = position - begin_;
    words_[static_cast<size_t>(i >> 6)] |= uint64_t{1} << (i & 63);
  }
  void AddRuns(SpanAppender& out) const {
    for (size_t w = 0; w < words_.size(); ++w) {
      for (uint64_t bits = words_[w]; bits != 0;) {
        const int first = __builtin_ctzll(bits);
        const uint64_t rest = ~(bits >> first);  // zeros over the run of marks from `first`
        const int end = rest == 0 ? 64 : first + __builtin_ctzll(rest);
        const int64_t position = begin_ + static_cast<int64_t>(w) * 64;
        out.Add(position + first, position + end);
        bits = end == 64 ? 0 : bits & (~uint64_t{0} << end);
      }
    }
  }

 private:
  int64_t begin_ = 0;
  std::vector<uint64_t> words_;
};

template <typename T>
Status RunHyperPrefill(const AttentionParams& a, const SparseMethodParams& m, const SortedKeyCodes& codes,
                       const ParallelRunner& runner, SelectedKeys* selected) {
  const int64_t group = a.num_heads / a.kv_num_heads, S = a.query_length, D = a.head_size, bits = m.hash_half_buckets;
  selected->Reset(group, 1, a.batch * a.kv_num_heads * S);
  auto select_row = [&](size_t item) {  // tile (b, KV head, row)
    const int64_t b = static_cast<int64_t>(item) / (a.kv_num_heads * S);
    const int64_t kv_head = static_cast<int64_t>(item) / S % a.kv_num_heads;
    const int64_t row = static_cast<int64_t>(item) % S;
    const RowPartition partition = PartitionRow(VisibleKeys(a, b, row), m);
    const KeyRange middle = partition.middle;
    const bool picks = !partition.dense && partition.picks > 0;
    thread_local PositionMarks marks;
    thread_local std::vector<uint32_t> query_codes;
    if (picks) {
      marks.Reset(middle);
      const int64_t lsh = (partition.picks + 1) / 2, samples = partition.picks - lsh;
      const int64_t per_head = (lsh + group - 1) / group;
      const bool masked = a.mask.data != nullptr;
      auto admits = [&](int64_t j) {
        return !masked || !HiddenFromGroup(a.mask, a.type, b, kv_head * group, group, row, j);
      };
      // The nearest keys of each query head of the group, its queries as attended.
      query_codes.resize(static_cast<size_t>(group));
      const T* queries = static_cast<const T*>(a.query) + b * a.query_strides[0] + row * a.query_strides[1] +
                         kv_head * group * a.query_strides[2];
      CodeRows(queries, a.query_strides[2], group, codes.HyperplanesOf(kv_head, bits, D), bits, D, query_codes.data());
      const uint64_t* entries = codes.Of(b, kv_head);
      const int64_t count = a.key_counts[b];
      for (int64_t g = 0; g < group; ++g) {
        // After every key of a rank up to the query's: the first entry of a higher rank.
        const uint64_t last_of_rank = uint64_t{GrayRank(query_codes[g])} << 32 | SortedKeyCodes::kPositionMask;
        const int64_t insertion = std::upper_bound(entries, entries + count, last_of_rank) - entries;
        SortedWalk<decltype(admits)> walk(entries, count, insertion, middle, admits);
        bool left_turn = true;
        for (int64_t taken = 0; taken < per_head; ++taken, left_turn = !left_turn) {
          int64_t j = left_turn ? walk.Left() : walk.Right();
          if (j < 0) j = left_turn ? walk.Right() : walk.Left();
          if (j < 0) break;  // both ends ran out
          marks.Mark(j);
        }
      }
      // Evenly spaced sampled columns of the middle.
      for (int64_t t = 0; t < samples; ++t) {
        const int64_t j = middle.begin + (2 * t + 1) * middle.size() / (2 * samples);
        if (admits(j)) marks.Mark(j);
      }
    }
    AppendRowSpans(partition, &selected->tile(static_cast<int64_t>(item)), [&](SpanAppender& out) {
      if (picks) marks.AddRuns(out);
    });
  };
  return ParallelForAllocating(runner, static_cast<size_t>(a.batch * a.kv_num_heads * S), select_row);
}

}  // namespace

Status SelectHashPrefill(const AttentionParams& attention, const SparseMethodParams& method,
                         const ParallelRunner& runner, SelectedKeys* selected) {
  return VisitAttentionType(attention.type, [&](auto element) {
    return RunHashPrefill<decltype(element)>(attention, method, runner, selected);
  });
}

Status SelectBlockPrefill(const AttentionParams& attention, const SparseMethodParams& method,
                          const ParallelRunner& runner, SelectedKeys* selected) {
  return VisitAttentionType(attention.type, [&](auto element) {
    return RunBlockPrefill<decltype(element)>(attention, method, runner, selected);
  });
}

Status SortKeyCodes(const AttentionParams& attention, const SparseMethodParams& method, const ParallelRunner& runner,
                    SortedKeyCodes* codes) {
  return VisitAttentionType(attention.type, [&](auto element) {
    return RunSortKeyCodes<decltype(element)>(attention, method, runner, codes);
  });
}

Status SelectHyperPrefill(const AttentionParams& attention, const SparseMethodParams& method,
                          const SortedKeyCodes& codes, const ParallelRunner& runner, SelectedKeys* selected) {
  return VisitAttentionType(attention.type, [&](auto element) {
    return RunHyperPrefill<decltype(element)>(attention, method, codes, runner, selected);
  });
}

}  // namespace ortsparse::cpu
