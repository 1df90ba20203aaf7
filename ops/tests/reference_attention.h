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

// Sizes a problem implies for each sequence b.
struct ReferenceSequences {
  int64_t T_cap = 0;
  std::vector<int64_t> past;      // position of query row 0
  std::vector<int64_t> rows;      // query rows that attend
  std::vector<int64_t> appended;  // keys appended at past[b]
};
ReferenceSequences SequencesOf(const ReferenceProblem& problem);

using RoundStored = std::function<double(double)>;
inline double Unrounded(double x) { return x; }

// Query (b, i, h) as attended: rotated when the problem has a rotary embedding, then rounded.
std::vector<double> AttendedQuery(const ReferenceProblem& problem, const ReferenceSequences& sequences, int64_t b,
                                  int64_t i, int64_t h, const RoundStored& round_stored = Unrounded);

// Whether row i of sequence b sees key j (causality, local window, cache length, mask columns),
// and the mask value at (b, h, i, j): 0/1 for boolean masks, the added value for additive ones.
bool Sees(const ReferenceProblem& problem, const ReferenceSequences& sequences, int64_t b, int64_t i, int64_t j);
double MaskAt(const ReferenceProblem& problem, int64_t b, int64_t h, int64_t i, int64_t j);

// Attention restricted to the keys j with keep(b, i, h, j) (all visible keys without a filter).
using KeyFilter = std::function<bool(int64_t b, int64_t i, int64_t h, int64_t j)>;

// `round_stored` models the storage of intermediate tensors: it is applied to the rotated queries
// and keys and to the output (identity for the exact reference, rounding to fp16 for the
// low-precision one).
ReferenceResult ReferenceAttention(const ReferenceProblem& problem, const RoundStored& round_stored = Unrounded,
                                   const KeyFilter& keep = nullptr);

}  // namespace ortsparse::testing
