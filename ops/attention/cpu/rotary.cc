#include "attention/cpu/rotary.h"

namespace ortsparse::cpu {
namespace {

template <typename T>
void RunRotary(const RotaryParams& p, const ParallelRunner& runner) {
  const T* input = static_cast<const T*>(p.input);
  T* output = static_cast<T*>(p.output);
  auto rotate_rows_of = [&](size_t item) {  // one (sequence, row): all its heads share the tables
    const int64_t b = static_cast<int64_t>(item) / p.sequence_length;
    const int64_t row = static_cast<int64_t>(item) % p.sequence_length;
    if (row >= p.row_counts[b]) return;
    const int64_t position = RotaryPosition(p.embedding, p.past_lengths, b, row);
    for (int64_t h = 0; h < p.num_heads; ++h) {
      RotateRow(p.embedding, position,
                input + b * p.input_strides[0] + row * p.input_strides[1] + h * p.input_strides[2], p.head_size,
                output + b * p.output_strides[0] + row * p.output_strides[1] + h * p.output_strides[2]);
    }
  };
  ParallelFor(runner, static_cast<size_t>(p.batch * p.sequence_length), rotate_rows_of);
}

}  // namespace

void ApplyRotary(const RotaryParams& params, const ParallelRunner& runner) {
  VisitAttentionType(params.type, [&](auto element) { RunRotary<decltype(element)>(params, runner); });
}

}  // namespace ortsparse::cpu
