// UpdateMethodState: the state of quest (page min/max of the cached keys), loki (low-rank
// projections), saap (nearest centroid) and hash (LSH buckets), kept row by row next to the cache.
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "attention/cpu/cpu_features.h"
#include "attention/cpu/element.h"
#include "attention/cpu/key_summaries.h"
#include "attention/cpu/sparse_methods.h"

namespace ortsparse::cpu {
namespace {

constexpr int64_t kKeysPerTask = 512;  // keys summarised by one work item

bool SummarisesPages(SparseMethod method) { return method == SparseMethod::kQuest; }

// Rows of the state that hold keys [0, keys).
int64_t StateRows(const SparseMethodParams& m, int64_t keys) {
  return SummarisesPages(m.method) ? (keys + m.page_size - 1) / m.page_size : keys;
}

template <typename T>
struct StateJob {
  const AttentionParams& attention;
  const SparseMethodParams& method;
  int64_t element_size;  // of one state value: T for summaries, int32 for indices

  unsigned char* PresentRow(int64_t b, int64_t h, int64_t row) const {
    const MethodState& s = method.state;
    return static_cast<unsigned char*>(s.present) +
           (b * s.present_strides[0] + h * s.present_strides[1] + row * s.present_strides[2]) * element_size;
  }
  const unsigned char* PastRow(int64_t b, int64_t h, int64_t row) const {
    const MethodState& s = method.state;
    return static_cast<const unsigned char*>(s.past) +
           (b * s.past_strides[0] + h * s.past_strides[1] + row * s.past_strides[2]) * element_size;
  }
  // The first key whose state this step computes.
  int64_t FirstKey(int64_t b) const { return method.state.past != nullptr ? attention.past_lengths[b] : 0; }

  // Key `j` of (b, h) as the method summarises it: this step's keys before rotary when the method
  // scores raw keys, the cache otherwise.
  const T* Key(int64_t b, int64_t h, int64_t j) const {
    const int64_t past = attention.past_lengths[b];
    if (method.raw_keys != nullptr && j >= past) {
      const int64_t* strides = method.raw_keys_strides;
      return static_cast<const T*>(method.raw_keys) + b * strides[0] + (j - past) * strides[1] + h * strides[2];
    }
    const int64_t* strides = attention.key_strides;
    return static_cast<const T*>(attention.key_cache) + b * strides[0] + h * strides[1] + j * strides[2];
  }
};

// Past rows copied (unless in place), rows past the keys zeroed (unless in place).
template <typename T>
void CopyPastAndClearTail(const StateJob<T>& job, int64_t b, int64_t h) {
  const MethodState& s = job.method.state;
  if (s.in_place) return;
  const size_t row_bytes = static_cast<size_t>(s.width * job.element_size);
  const int64_t past_rows = StateRows(job.method, job.FirstKey(b));
  for (int64_t row = 0; row < past_rows; ++row) std::memcpy(job.PresentRow(b, h, row), job.PastRow(b, h, row), row_bytes);
  for (int64_t row = StateRows(job.method, job.attention.key_counts[b]); row < s.present_rows; ++row) {
    std::memset(job.PresentRow(b, h, row), 0, row_bytes);
  }
}

// quest: min and max of the page's keys, merged into what the page already holds when it started
// before `first` (min/max of stored values are exact, so any split of the keys gives the same row).
template <typename T>
ORTSPARSE_ALWAYS_INLINE void SummarisePage(const StateJob<T>& job, int64_t b, int64_t h, int64_t page, int64_t first,
                                           float* minimum, float* maximum) {
  const int64_t D = job.attention.head_size;
  const int64_t page_begin = page * job.method.page_size;
  const int64_t begin = std::max(first, page_begin);
  const int64_t end = std::min<int64_t>(job.attention.key_counts[b], page_begin + job.method.page_size);
  T* row = reinterpret_cast<T*>(job.PresentRow(b, h, page));
  if (begin > page_begin) {
    RowToFloat(row, D, minimum);
    RowToFloat(row + D, D, maximum);
  } else {
    std::fill(minimum, minimum + D, std::numeric_limits<float>::infinity());
    std::fill(maximum, maximum + D, -std::numeric_limits<float>::infinity());
  }
  for (int64_t j = begin; j < end; ++j) {
    const T* key = job.Key(b, h, j);
    for (int64_t d = 0; d < D; ++d) {
      const float x = ToFloat(key[d]);
      minimum[d] = std::min(minimum[d], x);
      maximum[d] = std::max(maximum[d], x);
    }
  }
  RowFromFloat(minimum, D, row);
  RowFromFloat(maximum, D, row + D);
}

// Keys [begin, end) of (b, h), or for quest the pages [begin, end).
template <typename T>
ORTSPARSE_ALWAYS_INLINE void SummariseBody(const StateJob<T>& job, int64_t b, int64_t h, int64_t begin, int64_t end,
                                           float* scratch) {
  const SparseMethodParams& m = job.method;
  const int64_t D = job.attention.head_size;
  if (m.method == SparseMethod::kQuest) {
    for (int64_t page = begin; page < end; ++page) SummarisePage(job, b, h, page, job.FirstKey(b), scratch, scratch + D);
    return;
  }
  float* key = scratch;
  float* work = scratch + D;  // rank floats (loki) or NB / 2 (hash)
  for (int64_t j = begin; j < end; ++j) {
    RowToFloat(job.Key(b, h, j), D, key);
    unsigned char* row = job.PresentRow(b, h, j);
    switch (m.method) {
      case SparseMethod::kLoki:
        ProjectOntoComponents(m.pca_basis + h * D * D, m.rank, D, key, work);
        RowFromFloat(work, m.rank, reinterpret_cast<T*>(row));
        break;
      case SparseMethod::kSaap:
        *reinterpret_cast<int32_t*>(row) = NearestCentroid(m.centroids + h * m.clusters * D, m.clusters, D, key);
        break;
      default:  // kHash
        for (int64_t r = 0; r < m.hash_rounds; ++r) {
          const float* projections = m.hash_projections + (h * m.hash_rounds + r) * D * m.hash_half_buckets;
          reinterpret_cast<int32_t*>(row)[r] = HashBucket(projections, D, m.hash_half_buckets, key, work);
        }
        break;
    }
  }
}

template <typename T>
ORTSPARSE_TARGET_AVX2_FMA void SummariseAvx2(const StateJob<T>& job, int64_t b, int64_t h, int64_t begin, int64_t end,
                                             float* scratch) {
  SummariseBody(job, b, h, begin, end, scratch);
}

template <typename T>
void SummariseBaseline(const StateJob<T>& job, int64_t b, int64_t h, int64_t begin, int64_t end, float* scratch) {
  SummariseBody(job, b, h, begin, end, scratch);
}

template <typename T>
Status RunUpdate(const AttentionParams& a, const SparseMethodParams& m, const ParallelRunner& runner) {
  const bool index_state = m.method == SparseMethod::kSaap || m.method == SparseMethod::kHash;
  const StateJob<T> job{a, m, index_state ? static_cast<int64_t>(sizeof(int32_t)) : static_cast<int64_t>(sizeof(T))};
  const int64_t heads = a.batch * a.kv_num_heads;
  auto copy = [&](size_t item) {
    CopyPastAndClearTail(job, static_cast<int64_t>(item) / a.kv_num_heads, static_cast<int64_t>(item) % a.kv_num_heads);
  };
  ParallelFor(runner, static_cast<size_t>(heads), copy);

  // Work items of up to kKeysPerTask keys (whole pages for quest) per (b, h).
  const int64_t unit_keys = SummarisesPages(m.method) ? m.page_size : 1;
  const int64_t units_per_task = std::max<int64_t>(1, kKeysPerTask / unit_keys);
  struct Task {
    int64_t b, h, begin, end;
  };
  std::vector<Task> tasks;
  for (int64_t b = 0; b < a.batch; ++b) {
    const int64_t first_unit = job.FirstKey(b) / unit_keys;
    const int64_t end_unit = StateRows(m, a.key_counts[b]);
    for (int64_t h = 0; h < a.kv_num_heads; ++h) {
      for (int64_t begin = first_unit; begin < end_unit; begin += units_per_task) {
        tasks.push_back({b, h, begin, std::min(end_unit, begin + units_per_task)});
      }
    }
  }
  const size_t scratch_floats = static_cast<size_t>(2 * a.head_size + std::max(m.rank, m.hash_half_buckets));
  auto summarise = [&](size_t item) {
    thread_local std::vector<float> scratch;
    scratch.resize(std::max(scratch.size(), scratch_floats));
    const Task& task = tasks[item];
    if (UseAvx2FmaKernels()) {
      SummariseAvx2(job, task.b, task.h, task.begin, task.end, scratch.data());
    } else {
      SummariseBaseline(job, task.b, task.h, task.begin, task.end, scratch.data());
    }
  };
  return ParallelForAllocating(runner, tasks.size(), summarise);
}

}  // namespace

Status UpdateMethodState(const AttentionParams& attention, const SparseMethodParams& method,
                         const ParallelRunner& runner) {
  switch (method.method) {
    case SparseMethod::kQuest:
    case SparseMethod::kLoki:
    case SparseMethod::kSaap:
    case SparseMethod::kHash:
      return VisitAttentionType(attention.type,
                                [&](auto element) { return RunUpdate<decltype(element)>(attention, method, runner); });
    default:
      return Status::Ok();
  }
}

}  // namespace ortsparse::cpu
