// Selection of the two sparse prefills (S > 1):
//   hash:  per (sequence, KV head, row): sink, window, and every middle key sharing a bucket with
//          one of the group's queries in some round (no budget);
//   block: per (sequence, query head, block of rows): the key blocks that carry `gamma` of the
//          estimated attention mass (mean query against mean keys), block 0 and the diagonal.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

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

}  // namespace ortsparse::cpu
