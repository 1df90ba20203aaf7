#include "reference_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace ortsparse::testing {
namespace {

// Rotates x (head_size values) by the angle table row of `position`, the straightforward way.
std::vector<double> Rotate(const ReferenceProblem& p, const double* x, int64_t position) {
  std::vector<double> out(x, x + p.head_size);
  const int64_t half = p.rotary_dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const int64_t first = p.rotary_interleaved ? 2 * i : i;
    const int64_t second = p.rotary_interleaved ? 2 * i + 1 : i + half;
    const double c = p.cos_cache[position * half + i];
    const double s = p.sin_cache[position * half + i];
    out[first] = x[first] * c - x[second] * s;
    out[second] = x[first] * s + x[second] * c;
  }
  return out;
}

}  // namespace

// Mask value at (b, h, i, j) by right-aligned numpy broadcasting; j < L.
double MaskAt(const ReferenceProblem& p, int64_t b, int64_t h, int64_t i, int64_t j) {
  const int64_t full[4] = {b, h, i, j};
  const int64_t rank = static_cast<int64_t>(p.mask_shape.size());
  int64_t offset = 0;
  for (int64_t axis = 0; axis < rank; ++axis) {
    const int64_t index = p.mask_shape[axis] == 1 ? 0 : full[4 - rank + axis];
    offset = offset * p.mask_shape[axis] + index;
  }
  return p.mask_values[offset];
}

ReferenceSequences SequencesOf(const ReferenceProblem& p) {
  const int64_t B = p.batch, S = p.query_length, P = p.past_length;
  ReferenceSequences seq;
  const bool gqa_mode = p.seqlens_k.has_value();
  seq.T_cap = gqa_mode ? std::max(P, p.total_sequence_length) : P + p.kv_length;
  seq.past.assign(B, P);
  seq.rows.assign(B, S);
  seq.appended.assign(B, p.kv_length);
  if (gqa_mode) {
    for (int64_t b = 0; b < B; ++b) {
      const int64_t keys = (*p.seqlens_k)[b] + 1;
      seq.past[b] = std::max<int64_t>(0, keys - S);
      seq.rows[b] = seq.appended[b] = keys - seq.past[b];
    }
  }
  return seq;
}

namespace {

int64_t PositionOf(const ReferenceProblem& p, const ReferenceSequences& seq, int64_t b, int64_t i) {
  if (p.position_ids.empty()) return seq.past[b] + i;
  const int64_t S = p.query_length;
  const int64_t id_batch = static_cast<int64_t>(p.position_ids.size()) == S ? 0 : b;
  return p.position_ids[id_batch * S + i];
}

// x rotated as row i of sequence b (and rounded), or x itself without rotary.
std::vector<double> MaybeRotate(const ReferenceProblem& p, const ReferenceSequences& seq, const double* x, int64_t b,
                                int64_t i, const RoundStored& round_stored) {
  if (p.rotary_dim == 0) return std::vector<double>(x, x + p.head_size);
  std::vector<double> rotated = Rotate(p, x, PositionOf(p, seq, b, i));
  for (double& v : rotated) v = round_stored(v);
  return rotated;
}

}  // namespace

std::vector<double> AttendedQuery(const ReferenceProblem& p, const ReferenceSequences& seq, int64_t b, int64_t i,
                                  int64_t h, const RoundStored& round_stored) {
  return MaybeRotate(p, seq, &p.query[((b * p.query_length + i) * p.num_heads + h) * p.head_size], b, i, round_stored);
}

bool Sees(const ReferenceProblem& p, const ReferenceSequences& seq, int64_t b, int64_t i, int64_t j) {
  const int64_t position = seq.past[b] + i;
  if (i >= seq.rows[b] || j >= seq.past[b] + seq.appended[b]) return false;
  if (p.causal && j > position) return false;
  if (p.local_window > 0 && j <= position - p.local_window) return false;
  return p.mask == MaskKind::kNone || j < p.mask_shape.back();
}

ReferenceResult ReferenceAttention(const ReferenceProblem& p, const RoundStored& round_stored, const KeyFilter& keep) {
  const int64_t B = p.batch, S = p.query_length, S_kv = p.kv_length, Hq = p.num_heads, Hkv = p.kv_num_heads;
  const int64_t D = p.head_size, Dv = p.v_head_size, P = p.past_length;
  const ReferenceSequences seq = SequencesOf(p);
  const int64_t T_cap = seq.T_cap;
  const std::vector<int64_t>& past = seq.past;
  const std::vector<int64_t>& rows = seq.rows;
  const std::vector<int64_t>& appended = seq.appended;

  ReferenceResult result;
  result.present_key.assign(B * Hkv * T_cap * D, 0.0);
  result.present_value.assign(B * Hkv * T_cap * Dv, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hkv; ++h) {
      const int64_t copied = p.shared_buffer ? P : past[b];  // a shared buffer keeps all it held
      for (int64_t j = 0; j < copied; ++j) {
        for (int64_t d = 0; d < D; ++d) {
          result.present_key[((b * Hkv + h) * T_cap + j) * D + d] = p.past_key[((b * Hkv + h) * P + j) * D + d];
        }
        for (int64_t d = 0; d < Dv; ++d) {
          result.present_value[((b * Hkv + h) * T_cap + j) * Dv + d] = p.past_value[((b * Hkv + h) * P + j) * Dv + d];
        }
      }
      for (int64_t i = 0; i < appended[b]; ++i) {
        const std::vector<double> k = MaybeRotate(p, seq, &p.key[((b * S_kv + i) * Hkv + h) * D], b, i, round_stored);
        const int64_t j = past[b] + i;
        std::copy(k.begin(), k.end(), &result.present_key[((b * Hkv + h) * T_cap + j) * D]);
        const double* v = &p.value[((b * S_kv + i) * Hkv + h) * Dv];
        std::copy(v, v + Dv, &result.present_value[((b * Hkv + h) * T_cap + j) * Dv]);
      }
    }
  }

  const double scale = p.scale ? *p.scale : 1.0 / std::sqrt(static_cast<double>(D));
  result.output.assign(B * S * Hq * Dv, 0.0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t key_count = past[b] + appended[b];
    for (int64_t i = 0; i < rows[b]; ++i) {
      for (int64_t h = 0; h < Hq; ++h) {
        const int64_t kv_head = h / (Hq / Hkv);
        const std::vector<double> q = AttendedQuery(p, seq, b, i, h, round_stored);
        std::vector<double> scores(key_count, -std::numeric_limits<double>::infinity());
        for (int64_t j = 0; j < key_count; ++j) {
          if (!Sees(p, seq, b, i, j) || (keep && !keep(b, i, h, j))) continue;
          if (p.mask == MaskKind::kBool && MaskAt(p, b, h, i, j) == 0.0) continue;
          double dot = 0.0;
          for (int64_t d = 0; d < D; ++d) dot += q[d] * result.present_key[((b * Hkv + kv_head) * T_cap + j) * D + d];
          double score = scale * dot;
          if (p.softcap > 0.0) score = p.softcap * std::tanh(score / p.softcap);
          if (p.mask == MaskKind::kAdditive) score += MaskAt(p, b, h, i, j);
          scores[j] = score;
        }
        const double max_score = key_count > 0 ? *std::max_element(scores.begin(), scores.end())
                                               : -std::numeric_limits<double>::infinity();
        if (max_score == -std::numeric_limits<double>::infinity()) continue;  // nothing visible: zeros
        double sum = 0.0;
        for (double& score : scores) sum += (score = std::exp(score - max_score));
        for (int64_t d = 0; d < Dv; ++d) {
          double out = 0.0;
          for (int64_t j = 0; j < key_count; ++j) {
            out += scores[j] * result.present_value[((b * Hkv + kv_head) * T_cap + j) * Dv + d];
          }
          result.output[((b * S + i) * Hq + h) * Dv + d] = out / sum;
        }
      }
    }
  }
  for (double& v : result.output) v = round_stored(v);
  return result;
}

}  // namespace ortsparse::testing
