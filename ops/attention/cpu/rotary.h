// Rotary position embedding on the CPU.
#pragma once

#include <cstdint>
#include <cstring>

#include "attention/cpu/element.h"
#include "ortsparse/attention_params.h"
#include "ortsparse/parallel.h"

namespace ortsparse::cpu {

// Writes params.output; see RotaryParams. Rows at or beyond row_counts[b] are not touched.
void ApplyRotary(const RotaryParams& params, const ParallelRunner& runner);

// Position of row `row` of sequence `b` (the caller has checked it indexes the tables).
inline int64_t RotaryPosition(const RotaryEmbedding& rotary, const int32_t* past_lengths, int64_t b, int64_t row) {
  if (rotary.position_ids != nullptr) return rotary.position_ids[b * rotary.position_ids_batch_stride + row];
  return past_lengths[b] + row;
}

// Rotates one head row in fp32; `output` may equal `input`.
template <typename T>
void RotateRow(const RotaryEmbedding& rotary, int64_t position, const T* input, int64_t head_size, T* output) {
  const int64_t half = rotary.rotary_dim / 2;
  const T* cos_row = static_cast<const T*>(rotary.cos_cache) + position * half;
  const T* sin_row = static_cast<const T*>(rotary.sin_cache) + position * half;
  // (x, y) -> (x cos - y sin, x sin + y cos), with x and y read before either is written.
  const int64_t y_offset = rotary.interleaved ? 1 : half;
  const int64_t pair_stride = rotary.interleaved ? 2 : 1;
  for (int64_t i = 0; i < half; ++i) {
    const int64_t x_index = i * pair_stride;
    const float x = ToFloat(input[x_index]);
    const float y = ToFloat(input[x_index + y_offset]);
    const float c = ToFloat(cos_row[i]);
    const float s = ToFloat(sin_row[i]);
    output[x_index] = FromFloat<T>(x * c - y * s);
    output[x_index + y_offset] = FromFloat<T>(x * s + y * c);
  }
  if (output != input) {
    std::memcpy(output + rotary.rotary_dim, input + rotary.rotary_dim, sizeof(T) * (head_size - rotary.rotary_dim));
  }
}

}  // namespace ortsparse::cpu
