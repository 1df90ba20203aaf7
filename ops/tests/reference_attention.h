// Plain-loop fp64 reference of SparseAttention (docs/ops.md), written from the contract and
// independent of the kernels: every score row is materialised, nothing is blocked or fused.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace ortsparse::testing {

enum class MaskKind { kNone, kBool, kAdditive };

struct ReferenceProblem {
  int64_t batch = 1, query_length = 1, kv_length = 1, num_heads = 1, kv_num_heads = 1;
  int64_t head_size = 1, v_head_size = 1;
  int64_t past_length = 0;  // P, the past buffers' sequence length

  std::vector<double> query;       // [B, S, Hq, D]
  std::vector<double> key;         // [B, S_kv, Hkv, D]
  std::vector<double> value;       // [B, S_kv, Hkv, Dv]
  std::vector<double> past_key;    // [B, Hkv, P, D]
  std::vector<double> past_value;  // [B, Hkv, P, Dv]

  // GroupQueryAttention mode: seqlens_k[b] + 1 valid keys after the step, a cache of
  // max(P, total_sequence_length) positions, which is the past's buffer when shared_buffer.
  std::optional<std::vector<int32_t>> seqlens_k;
  int64_t total_sequence_length = 0;
  bool shared_buffer = false;

  std::optional<double> scale;
  double softcap = 0.0;
  bool causal = true;
  int64_t local_window = -1;

  MaskKind mask = MaskKind::kNone;
  std::vector<int64_t> mask_shape;  // rank 2 to 4, broadcast to [B, Hq, S, L]
  std::vector<double> mask_values;  // bool masks: 0 or 1

  int64_t rotary_dim = 0;  // 0: no rotary embedding
  bool rotary_interleaved = false;
  std::vector<double> cos_cache, sin_cache;  // [max_position, R / 2]
  std::vector<int64_t> position_ids;         // empty, [B, S] or [1, S]
};

struct ReferenceResult {
  std::vector<double> output;         // [B, S, Hq, Dv]
  std::vector<double> present_key;    // [B, Hkv, T_cap, D]
  std::vector<double> present_value;  // [B, Hkv, T_cap, Dv]
};

// `round_stored` models the storage of intermediate tensors: it is applied to the rotated queries
// and keys and to the output (identity for the exact reference, rounding to fp16 for the
// low-precision one).
ReferenceResult ReferenceAttention(const ReferenceProblem& problem,
                                   const std::function<double(double)>& round_stored = [](double x) { return x; });

}  // namespace ortsparse::testing
