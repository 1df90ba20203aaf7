// Decode-step selection (S = 1), per (sequence, KV head). The methods differ only in what they rank
// and how they score it; the rest is shared:
//   1. the group's queries are prepared once (scaled, projected, hashed, or classified);
//   2. the units covering the row's middle are scored in parallel chunks: keys (topk, loki, hash),
//      quest pages, or saap clusters (scored in step 1);
//   3. units are taken in rank order until they hold k middle keys, and expanded to key spans, by
//      whichever task completes the group's scores, while other groups are still being scored.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "attention/cpu/cpu_features.h"
#include "attention/cpu/method_selection.h"
#include "attention/cpu/vector_math.h"

namespace ortsparse::cpu {
namespace {

constexpr int64_t kScanFloatsPerTask = int64_t{1} << 16;  // cache or state floats one scoring item reads
constexpr int64_t kScanBlock = 64;                         // rows converted and scored together
constexpr int64_t kScanPrefetchRows = 32;                  // rows a scan asks for ahead of their use
constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();

enum class Unit { kKey, kPage, kCluster };

Unit UnitOf(SparseMethod method) {
  switch (method) {
    case SparseMethod::kQuest: return Unit::kPage;
    case SparseMethod::kSaap: return Unit::kCluster;
    default: return Unit::kKey;
  }
}

// The decode row of one KV head's group, and what it ranks.
struct Group {
  int64_t b = 0;
  int64_t kv_head = 0;
  RowPartition row;
  bool ranked = false;  // a sparse row whose method ranks units (not streaming) and whose middle has keys
  KeyRange units;       // ids of the units covering the middle; scores are indexed by id - units.begin
  int64_t scores_offset = 0;
};

template <typename T>
struct DecodeJob {
  const AttentionParams& a;
  const SparseMethodParams& m;
  Unit unit;
  int64_t group_size;
  int64_t feature_width;  // floats per query head: D (topk), 2D (quest), rank (loki); hash buckets are ints
  std::vector<Group> groups;
  std::vector<float> features;         // [group][head of group][feature_width]
  std::vector<int32_t> query_buckets;  // hash: [group][head of group][round]
  float* scores = nullptr;  // every unit's is written before it is read

  float* FeaturesOf(int64_t group) { return features.data() + group * group_size * feature_width; }
  int32_t* BucketsOf(int64_t group) { return query_buckets.data() + group * group_size * m.hash_rounds; }
  const T* KeyRows(const Group& g) const {
    return static_cast<const T*>(a.key_cache) + g.b * a.key_strides[0] + g.kv_head * a.key_strides[1];
  }
  const T* SummaryRows(const Group& g) const {
    const int64_t* strides = m.state.present_strides;
    return static_cast<const T*>(m.state.present) + g.b * strides[0] + g.kv_head * strides[1];
  }
  const int32_t* ClusterOfKey(const Group& g) const {
    const int64_t* strides = m.state.present_strides;
    return static_cast<const int32_t*>(m.state.present) + g.b * strides[0] + g.kv_head * strides[1];
  }
};

// Units covering the middle: its keys, the pages it overlaps, or every cluster.
KeyRange UnitsOf(Unit unit, const SparseMethodParams& m, KeyRange middle) {
  switch (unit) {
    case Unit::kKey: return middle;
    case Unit::kPage: return {middle.begin / m.page_size, (middle.end + m.page_size - 1) / m.page_size};
    default: return {0, m.clusters};
  }
}

// saap: scores[c] = max over the group's heads of softmax(z_h)[c], z_h = W2ᵀ·relu(W1ᵀ·q_h + b1) + b2.
// W2 is by far the largest calibration tensor a step reads ([M + 1, C] per head): rows whose unit
// is inactive (relu gives 0) add nothing and are not read.
template <typename T>
ORTSPARSE_ALWAYS_INLINE void ClassifyClustersBody(const DecodeJob<T>& job, const Group& g, float* scratch,
                                                  float* scores) {
  const SparseMethodParams& m = job.m;
  const int64_t D = job.a.head_size, M = m.classifier_hidden, C = m.clusters;
  float* query = scratch;
  float* hidden = query + D;
  float* logits = hidden + M;
  std::fill(scores, scores + C, 0.0f);
  for (int64_t head = g.kv_head * job.group_size; head < (g.kv_head + 1) * job.group_size; ++head) {
    QueryAsFloat<T>(m.raw_query, m.raw_query_strides, g.b, 0, head, D, query);
    const float* weights = m.classifier_weights + head * D * M;
    std::copy(m.classifier_bias + head * M, m.classifier_bias + (head + 1) * M, hidden);
    for (int64_t d = 0; d < D; ++d) {
      for (int64_t i = 0; i < M; ++i) hidden[i] += query[d] * weights[d * M + i];
    }
    const float* output = m.classifier_output + head * (M + 1) * C;
    std::copy(output + M * C, output + (M + 1) * C, logits);
    for (int64_t i = 0; i < M; ++i) {
      const float activation = hidden[i];
      if (activation <= 0.0f) continue;  // NaN is kept, and propagates as it would
      const float* row = output + i * C;
      for (int64_t c = 0; c < C; ++c) logits[c] += activation * row[c];
    }
    const float largest = *std::max_element(logits, logits + C);
    float sum = 0.0f;
    for (int64_t c = 0; c < C; ++c) sum += (logits[c] = std::exp(logits[c] - largest));
    for (int64_t c = 0; c < C; ++c) scores[c] = std::max(scores[c], logits[c] / sum);
  }
}

template <typename T>
ORTSPARSE_TARGET_AVX2_FMA void ClassifyClustersAvx2(const DecodeJob<T>& job, const Group& g, float* scratch,
                                                    float* scores) {
  ClassifyClustersBody(job, g, scratch, scores);
}

template <typename T>
void ClassifyClusters(const DecodeJob<T>& job, const Group& g, float* scratch, float* scores) {
  if (UseAvx2FmaKernels()) {
    ClassifyClustersAvx2(job, g, scratch, scores);
  } else {
    ClassifyClustersBody(job, g, scratch, scores);
  }
}

// Step 1 for one group.
template <typename T>
void PrepareQueries(DecodeJob<T>& job, int64_t group_index, float* scratch) {
  const Group& g = job.groups[group_index];
  const AttentionParams& a = job.a;
  const SparseMethodParams& m = job.m;
  const int64_t D = a.head_size;
  float* features = job.FeaturesOf(group_index);
  for (int64_t i = 0; i < job.group_size; ++i) {
    const int64_t head = g.kv_head * job.group_size + i;
    float* out = features + i * job.feature_width;
    switch (m.method) {
      case SparseMethod::kTopK:  // exact scores of the cached keys: queries as attended
        QueryAsFloat<T>(a.query, a.query_strides, g.b, 0, head, D, out);
        ScaleInPlace(out, D, a.scale);
        break;
      case SparseMethod::kQuest:
        // Σ_d max(q_d·min_d, q_d·max_d) = min(q, 0)·min + max(q, 0)·max: one dot product of
        // [min(q, 0), max(q, 0)] with a page's [min, max] summary row.
        QueryAsFloat<T>(a.query, a.query_strides, g.b, 0, head, D, scratch);
        ScaleInPlace(scratch, D, a.scale);
        for (int64_t d = 0; d < D; ++d) {
          out[d] = std::min(scratch[d], 0.0f);
          out[D + d] = std::max(scratch[d], 0.0f);
        }
        break;
      case SparseMethod::kLoki:
        QueryAsFloat<T>(m.raw_query, m.raw_query_strides, g.b, 0, head, D, scratch);
        ProjectOntoComponents(m.pca_basis + g.kv_head * D * D, m.rank, D, scratch, out);
        ScaleInPlace(out, m.rank, a.scale);
        break;
      default:
        break;
    }
  }
  if (m.method == SparseMethod::kHash) GroupQueryBuckets<T>(a, m, g.b, 0, g.kv_head, scratch, job.BucketsOf(group_index));
  if (m.method == SparseMethod::kSaap) ClassifyClusters(job, g, scratch, job.scores + g.scores_offset);
}

// Asks for row `row` of a scan if it lies before `end`. The scans read their rows in order, but the
// hardware prefetchers alone leave them waiting on memory on some machines.
template <typename T>
ORTSPARSE_ALWAYS_INLINE void PrefetchScanRow(const T* rows, int64_t stride, int64_t width, int64_t row, int64_t end) {
  if (row >= end) return;
  constexpr int64_t kLineElements = 64 / sizeof(T);
  for (int64_t e = 0; e < width; e += kLineElements) __builtin_prefetch(rows + row * stride + e);
}

// scores[i] = max over the group's features f of f · rows[i] (topk: keys; loki: summaries), four
// rows at a time for all the heads while they are in L1.
template <typename T>
ORTSPARSE_ALWAYS_INLINE void MaxGroupDots(const float* features, int64_t group_size, int64_t width, const T* rows,
                                          int64_t stride, int64_t count, float* block_scratch, float* scores) {
  for (int64_t begin = 0; begin < count; begin += kScanBlock) {
    const int64_t n = std::min(kScanBlock, count - begin);
    const FloatRows block = BlockAsFloat(rows + begin * stride, stride, n, width, block_scratch);
    float* out = scores + begin;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
      for (int64_t r = 0; r < 4; ++r) PrefetchScanRow(rows, stride, width, begin + i + r + kScanPrefetchRows, count);
      Vec4 best = DotFourRows(features, block.data + i * block.stride, block.stride, width);
      for (int64_t g = 1; g < group_size; ++g) {
        const Vec4 dots = DotFourRows(features + g * width, block.data + i * block.stride, block.stride, width);
        best = dots > best ? dots : best;
      }
      *AsVec4(out + i) = best;
    }
    for (; i < n; ++i) {
      out[i] = Dot(features, block.data + i * block.stride, width);
      for (int64_t g = 1; g < group_size; ++g) {
        out[i] = std::max(out[i], Dot(features + g * width, block.data + i * block.stride, width));
      }
    }
  }
}

// Step 2: scores of units [begin, end) of a group (ids relative to the group's first unit).
template <typename T>
ORTSPARSE_ALWAYS_INLINE void ScoreUnitsBody(DecodeJob<T>& job, int64_t group_index, int64_t begin, int64_t end,
                                            float* scratch) {
  const Group& g = job.groups[group_index];
  const AttentionParams& a = job.a;
  const SparseMethodParams& m = job.m;
  const int64_t D = a.head_size;
  const int64_t first = g.units.begin + begin;  // absolute id of the first unit
  const int64_t count = end - begin;
  const float* features = job.FeaturesOf(group_index);
  float* scores = job.scores + g.scores_offset + begin;
  switch (m.method) {
    case SparseMethod::kTopK:
      MaxGroupDots(features, job.group_size, D, job.KeyRows(g) + first * a.key_strides[2], a.key_strides[2], count,
                   scratch, scores);
      break;
    case SparseMethod::kLoki: {
      const int64_t stride = m.state.present_strides[2];
      MaxGroupDots(features, job.group_size, m.rank, job.SummaryRows(g) + first * stride, stride, count, scratch,
                   scores);
      break;
    }
    case SparseMethod::kQuest: {
      const int64_t stride = m.state.present_strides[2];
      MaxGroupDots(features, job.group_size, 2 * D, job.SummaryRows(g) + first * stride, stride, count, scratch,
                   scores);
      break;
    }
    default: {  // kHash: matching rounds, -inf for keys that match in none (not candidates)
      const int32_t* query_buckets = job.BucketsOf(group_index);
      for (int64_t i = 0; i < count; ++i) {
        const int64_t rounds =
            MatchingRounds(KeyBuckets(m, g.b, g.kv_head, first + i), query_buckets, job.group_size, m.hash_rounds);
        scores[i] = rounds > 0 ? static_cast<float>(rounds) : kMinusInfinity;
      }
      break;
    }
  }
  if (job.unit == Unit::kKey && a.mask.data != nullptr) {  // keys masked for the whole group are never picked
    for (int64_t i = 0; i < count; ++i) {
      if (HiddenFromGroup(a.mask, a.type, g.b, g.kv_head * job.group_size, job.group_size, 0, first + i)) {
        scores[i] = kMinusInfinity;
      }
    }
  }
}

template <typename T>
ORTSPARSE_TARGET_AVX2_FMA void ScoreUnitsAvx2(DecodeJob<T>& job, int64_t group_index, int64_t begin, int64_t end,
                                              float* scratch) {
  ScoreUnitsBody(job, group_index, begin, end, scratch);
}

template <typename T>
void ScoreUnitsBaseline(DecodeJob<T>& job, int64_t group_index, int64_t begin, int64_t end, float* scratch) {
  ScoreUnitsBody(job, group_index, begin, end, scratch);
}

// Step 3 for one group: rank, take, expand.
template <typename T>
void TakeUnits(const DecodeJob<T>& job, const Group& g, std::vector<KeySpan>* spans) {
  const SparseMethodParams& m = job.m;
  const KeyRange middle = g.row.middle;
  const float* scores = job.scores + g.scores_offset;
  const int64_t unit_count = g.units.size();
  if (job.unit == Unit::kKey) {  // candidates: keys not masked out (hash: matching in some round)
    thread_local std::vector<int32_t> picked;
    SelectTopK(scores, unit_count, g.row.picks, m.method == SparseMethod::kHash, &picked);
    AppendRowSpans(g.row, spans, [&](SpanAppender& out) {
      for (int32_t u : picked) out.Add(middle.begin + u, middle.begin + u + 1);
    });
    return;
  }
  const UnitRanking ranking{scores};
  thread_local std::vector<int32_t> ids, weights;
  ids.clear();
  weights.assign(static_cast<size_t>(unit_count), 0);
  int64_t max_weight = 1;
  switch (job.unit) {
    case Unit::kPage:  // a page weighs its middle keys
      for (int64_t u = 0; u < unit_count; ++u) {
        const int64_t page_begin = (g.units.begin + u) * m.page_size;
        weights[u] = static_cast<int32_t>(std::min(middle.end, page_begin + m.page_size) -
                                          std::max(middle.begin, page_begin));
        ids.push_back(static_cast<int32_t>(u));
      }
      max_weight = m.page_size;
      break;
    default: {  // a cluster weighs its middle keys; ids outside [0, C) belong to none
      const int32_t* cluster_of = job.ClusterOfKey(g);
      for (int64_t j = middle.begin; j < middle.end; ++j) {
        const int32_t cluster = cluster_of[j * m.state.present_strides[2]];
        if (cluster >= 0 && cluster < m.clusters) ++weights[cluster];
      }
      for (int64_t c = 0; c < unit_count; ++c) {
        if (weights[c] > 0) ids.push_back(static_cast<int32_t>(c));
        max_weight = std::max<int64_t>(max_weight, weights[c]);
      }
      break;
    }
  }
  const int32_t left_out =
      BestLeftOut(ids.data(), static_cast<int64_t>(ids.size()), ranking, weights.data(), max_weight, g.row.picks);
  AppendRowSpans(g.row, spans, [&](SpanAppender& out) {
    switch (job.unit) {
      case Unit::kPage:
        for (int64_t u = 0; u < unit_count; ++u) {
          if (!IsTaken(static_cast<int32_t>(u), left_out, ranking)) continue;
          const int64_t page_begin = (g.units.begin + u) * m.page_size;
          out.Add(std::max(middle.begin, page_begin), std::min(middle.end, page_begin + m.page_size));
        }
        break;
      default: {
        for (int64_t c = 0; c < unit_count; ++c) {  // weights become "taken" flags
          weights[c] = weights[c] > 0 && IsTaken(static_cast<int32_t>(c), left_out, ranking) ? 1 : 0;
        }
        const int32_t* cluster_of = job.ClusterOfKey(g);
        for (int64_t j = middle.begin; j < middle.end; ++j) {
          const int32_t cluster = cluster_of[j * m.state.present_strides[2]];
          if (cluster >= 0 && cluster < m.clusters && weights[cluster] != 0) out.Add(j, j + 1);
        }
        break;
      }
    }
  });
}

template <typename T>
Status RunDecodeSelection(const AttentionParams& a, const SparseMethodParams& m, const ParallelRunner& runner,
                          SelectedKeys* selected) {
  DecodeJob<T> job{a, m, UnitOf(m.method), a.num_heads / a.kv_num_heads, 0, {}, {}, {}, nullptr};
  job.feature_width = m.method == SparseMethod::kLoki    ? m.rank
                      : m.method == SparseMethod::kQuest ? 2 * a.head_size
                                                         : a.head_size;
  const int64_t group_count = a.batch * a.kv_num_heads;
  job.groups.resize(static_cast<size_t>(group_count));
  int64_t score_count = 0;
  for (int64_t index = 0; index < group_count; ++index) {
    Group& g = job.groups[index];
    g.b = index / a.kv_num_heads;
    g.kv_head = index % a.kv_num_heads;
    g.row = PartitionRow(VisibleKeys(a, g.b, 0), m);
    g.ranked = !g.row.dense && m.method != SparseMethod::kStreaming && !g.row.middle.empty();
    if (!g.ranked) continue;
    g.units = UnitsOf(job.unit, m, g.row.middle);
    g.scores_offset = score_count;
    score_count += g.units.size();
  }
  // Kept by the thread across steps: a fresh allocation of this size would be mapped, and its pages
  // faulted in, on every step.
  thread_local std::unique_ptr<float[]> scores;
  thread_local int64_t scores_capacity = 0;
  if (score_count > scores_capacity) {
    scores.reset(new float[static_cast<size_t>(score_count)]);
    scores_capacity = score_count;
  }
  job.scores = scores.get();
  job.features.resize(static_cast<size_t>(group_count * job.group_size * job.feature_width));
  if (m.method == SparseMethod::kHash) {
    job.query_buckets.resize(static_cast<size_t>(group_count * job.group_size * m.hash_rounds));
  }

  selected->Reset(job.group_size, 1, group_count);
  auto take = [&](int64_t index) { TakeUnits(job, job.groups[index], &selected->tile(index)); };
  const size_t prepare_floats = static_cast<size_t>(a.head_size + m.classifier_hidden + m.clusters +
                                                    std::max(m.rank, m.hash_half_buckets));
  auto prepare = [&](size_t item) {
    const int64_t index = static_cast<int64_t>(item);
    const Group& g = job.groups[index];
    if (!g.ranked) {  // dense rows, streaming, or nothing in the middle
      AppendRowSpans(g.row, &selected->tile(index), [](SpanAppender&) {});
      return;
    }
    thread_local std::vector<float> scratch;
    scratch.resize(std::max(scratch.size(), prepare_floats));
    PrepareQueries(job, index, scratch.data());
    if (job.unit == Unit::kCluster) take(index);  // clusters are scored once prepared
  };
  ORTSPARSE_RETURN_IF_ERROR(ParallelForAllocating(runner, static_cast<size_t>(group_count), prepare));

  if (job.unit != Unit::kCluster) {
    const int64_t unit_floats = m.method == SparseMethod::kQuest  ? 2 * a.head_size
                                : m.method == SparseMethod::kLoki ? m.rank
                                : m.method == SparseMethod::kHash ? m.hash_rounds
                                                                  : a.head_size;
    const int64_t units_per_task = std::max<int64_t>(kScanBlock, kScanFloatsPerTask / unit_floats);
    struct Task {
      int64_t group, begin, end;
    };
    std::vector<Task> tasks;
    std::unique_ptr<std::atomic<int64_t>[]> tasks_left(new std::atomic<int64_t>[group_count]);  // per group
    for (int64_t index = 0; index < group_count; ++index) {
      const int64_t units = job.groups[index].ranked ? job.groups[index].units.size() : 0;
      tasks_left[index] = (units + units_per_task - 1) / units_per_task;
      for (int64_t begin = 0; begin < units; begin += units_per_task) {
        tasks.push_back({index, begin, std::min(units, begin + units_per_task)});
      }
    }
    const size_t scan_floats = static_cast<size_t>(kScanBlock * std::max(2 * a.head_size, job.feature_width));
    auto score = [&](size_t item) {
      thread_local std::vector<float> scratch;
      scratch.resize(std::max(scratch.size(), scan_floats));
      const Task& task = tasks[item];
      if (UseAvx2FmaKernels()) {
        ScoreUnitsAvx2(job, task.group, task.begin, task.end, scratch.data());
      } else {
        ScoreUnitsBaseline(job, task.group, task.begin, task.end, scratch.data());
      }
      if (tasks_left[task.group].fetch_sub(1, std::memory_order_acq_rel) == 1) take(task.group);
    };
    ORTSPARSE_RETURN_IF_ERROR(ParallelForAllocating(runner, tasks.size(), score));
  }
  return Status::Ok();
}

}  // namespace

Status SelectForDecode(const AttentionParams& attention, const SparseMethodParams& method,
                       const ParallelRunner& runner, SelectedKeys* selected) {
  return VisitAttentionType(attention.type, [&](auto element) {
    return RunDecodeSelection<decltype(element)>(attention, method, runner, selected);
  });
}

}  // namespace ortsparse::cpu
