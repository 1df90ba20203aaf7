#include "attention/cpu/kv_cache.h"

#include <cstring>

#include "attention/cpu/rotary.h"

namespace ortsparse::cpu {
namespace {

template <typename T>
void RunAppend(const KvAppendParams& p, const ParallelRunner& runner) {
  const size_t row_bytes = sizeof(T) * static_cast<size_t>(p.head_size);
  auto append_head = [&](size_t item) {  // one (sequence, KV head)
    const int64_t b = static_cast<int64_t>(item) / p.kv_num_heads;
    const int64_t h = static_cast<int64_t>(item) % p.kv_num_heads;
    const int64_t past_length = p.past_lengths[b];
    const int64_t appended = p.append_counts[b];
    T* present = static_cast<T*>(p.present) + b * p.present_strides[0] + h * p.present_strides[1];
    if (!p.in_place && past_length > 0) {
      const T* past = static_cast<const T*>(p.past) + b * p.past_strides[0] + h * p.past_strides[1];
      for (int64_t j = 0; j < past_length; ++j) {
        std::memcpy(present + j * p.present_strides[2], past + j * p.past_strides[2], row_bytes);
      }
    }
    for (int64_t i = 0; i < appended; ++i) {
      const T* source = static_cast<const T*>(p.new_rows) + b * p.new_rows_strides[0] + i * p.new_rows_strides[1] +
                        h * p.new_rows_strides[2];
      T* destination = present + (past_length + i) * p.present_strides[2];
      if (p.rotary != nullptr) {
        RotateRow(*p.rotary, RotaryPosition(*p.rotary, p.past_lengths, b, i), source, p.head_size, destination);
      } else {
        std::memcpy(destination, source, row_bytes);
      }
    }
    if (!p.in_place) {  // all-zero bits are +0 in both fp32 and fp16
      for (int64_t j = past_length + appended; j < p.present_length; ++j) {
        std::memset(present + j * p.present_strides[2], 0, row_bytes);
      }
    }
  };
  ParallelFor(runner, static_cast<size_t>(p.batch * p.kv_num_heads), append_head);
}

}  // namespace

void AppendToKvCache(const KvAppendParams& params, const ParallelRunner& runner) {
  VisitAttentionType(params.type, [&](auto element) { RunAppend<decltype(element)>(params, runner); });
}

}  // namespace ortsparse::cpu
