#include "attention_case.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>

#include <gtest/gtest.h>

#include "ortsparse/float16.h"

namespace ortsparse::testing {
namespace {

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

std::vector<double> Normal(std::mt19937& rng, int64_t count) {
  std::normal_distribution<double> normal(0.0, 1.0);
  std::vector<double> values(count);
  for (double& v : values) v = normal(rng);
  return values;
}

attention::TensorInfo View(const StoredTensor& tensor) {
  attention::TensorInfo info;
  info.present = true;
  info.type = tensor.type;
  info.shape = tensor.shape;
  info.data = tensor.bytes.data();
  return info;
}

}  // namespace

void PrintTo(const AttentionCase& c, std::ostream* os) { *os << c.name; }

double RoundToType(DataType type, double value) {
  switch (type) {
    case DataType::kFloat16: return HalfToFloat(FloatToHalf(static_cast<float>(value)));
    case DataType::kBool: return value != 0.0 ? 1.0 : 0.0;
    default: return static_cast<float>(value);
  }
}

StoredTensor Store(DataType type, std::vector<int64_t> shape, const std::vector<double>& values) {
  StoredTensor tensor;
  tensor.type = type;
  tensor.shape = std::move(shape);
  tensor.bytes.resize(values.size() * DataTypeSize(type));
  for (size_t i = 0; i < values.size(); ++i) {
    const float f = static_cast<float>(values[i]);
    if (type == DataType::kFloat16) {
      const Float16 h = FloatToHalf(f);
      std::memcpy(&tensor.bytes[2 * i], &h, 2);
    } else if (type == DataType::kBool) {
      tensor.bytes[i] = values[i] != 0.0 ? 1 : 0;
    } else {
      std::memcpy(&tensor.bytes[4 * i], &f, 4);
    }
  }
  tensor.values = ReadStored(type, tensor.bytes.data(), values.size());
  return tensor;
}

std::vector<double> ReadStored(DataType type, const void* data, size_t count) {
  std::vector<double> values(count);
  const unsigned char* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < count; ++i) {
    if (type == DataType::kFloat16) {
      Float16 h;
      std::memcpy(&h, bytes + 2 * i, 2);
      values[i] = HalfToFloat(h);
    } else if (type == DataType::kBool) {
      values[i] = bytes[i] != 0 ? 1.0 : 0.0;
    } else {
      float f;
      std::memcpy(&f, bytes + 4 * i, 4);
      values[i] = f;
    }
  }
  return values;
}

ExpandedCase Expand(const AttentionCase& c, uint32_t seed) {
  std::mt19937 rng(seed);
  ExpandedCase e;
  const int64_t B = c.batch, S = c.query_length, S_kv = c.kv_length.value_or(S);
  const int64_t Hq = c.num_heads, Hkv = c.kv_num_heads, D = c.head_size, Dv = c.v_head_size.value_or(D);
  const bool gqa_mode = !c.seqlens_k.empty();
  int64_t P = c.past_length;
  if (gqa_mode && c.shared_buffer) P = c.total_sequence_length;
  const int64_t T_cap = gqa_mode ? std::max<int64_t>(P, c.total_sequence_length) : P + S_kv;

  attention::AttentionAttributes& a = e.attributes;
  a.num_heads = Hq;
  a.kv_num_heads = Hkv;
  a.scale = c.scale;
  a.softcap = c.softcap;
  a.is_causal = c.causal ? 1 : 0;
  a.local_window_size = c.local_window;
  a.do_rotary = c.rotary != RotaryKind::kNone ? 1 : 0;
  a.rotary_interleaved = c.rotary == RotaryKind::kInterleaved ? 1 : 0;

  e.query = Store(c.type, {B, S, Hq * D}, Normal(rng, B * S * Hq * D));
  e.key = Store(c.type, {B, S_kv, Hkv * D}, Normal(rng, B * S_kv * Hkv * D));
  e.value = Store(c.type, {B, S_kv, Hkv * Dv}, Normal(rng, B * S_kv * Hkv * Dv));
  e.inputs[attention::kQuery] = View(e.query);
  e.inputs[attention::kKey] = View(e.key);
  e.inputs[attention::kValue] = View(e.value);
  if (P > 0 || gqa_mode) {
    e.past_key = Store(c.type, {B, Hkv, P, D}, Normal(rng, B * Hkv * P * D));
    e.past_value = Store(c.type, {B, Hkv, P, Dv}, Normal(rng, B * Hkv * P * Dv));
    e.inputs[attention::kPastKey] = View(e.past_key);
    e.inputs[attention::kPastValue] = View(e.past_value);
  }
  if (gqa_mode) {
    e.seqlens_k = c.seqlens_k;
    e.total_sequence_length = {c.total_sequence_length};
    e.inputs[attention::kSeqlensK] = {true, DataType::kInt32, {B}, e.seqlens_k.data()};
    e.inputs[attention::kTotalSequenceLength] = {true, DataType::kInt32, {}, e.total_sequence_length.data()};
  }

  ReferenceProblem& p = e.problem;
  p.batch = B;
  p.query_length = S;
  p.kv_length = S_kv;
  p.num_heads = Hq;
  p.kv_num_heads = Hkv;
  p.head_size = D;
  p.v_head_size = Dv;
  p.past_length = P;
  p.query = e.query.values;
  p.key = e.key.values;
  p.value = e.value.values;
  p.past_key = e.past_key.values;
  p.past_value = e.past_value.values;
  if (gqa_mode) {
    p.seqlens_k = c.seqlens_k;
    p.total_sequence_length = c.total_sequence_length;
    p.shared_buffer = c.shared_buffer;
  }
  if (c.scale) p.scale = *c.scale;
  p.softcap = c.softcap;
  p.causal = c.causal;
  p.local_window = c.local_window;

  if (c.mask != MaskKind::kNone) {
    std::vector<int64_t> shape = c.mask_leading_dims;
    const int64_t L = T_cap - c.mask_columns_short_by;
    shape.push_back(L);
    std::vector<double> values(Product(shape));
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (size_t i = 0; i < values.size(); ++i) {
      const double u = uniform(rng);
      if (c.mask == MaskKind::kBool) {
        values[i] = u < 0.8 ? 1.0 : 0.0;
        const bool in_first_row = static_cast<int64_t>(i) < L;
        if (in_first_row && c.first_row_visible_columns >= 0 && static_cast<int64_t>(i) >= c.first_row_visible_columns) {
          values[i] = 0.0;
        }
      } else {
        values[i] = u < 0.1 ? -std::numeric_limits<double>::infinity() : -3.0 * uniform(rng);
      }
    }
    e.mask = Store(c.mask == MaskKind::kBool ? DataType::kBool : c.type, shape, values);
    e.inputs[attention::kAttentionMask] = View(e.mask);
    p.mask = c.mask;
    p.mask_shape = shape;
    p.mask_values = e.mask.values;
  }

  if (c.rotary != RotaryKind::kNone) {
    const int64_t R = c.rotary_dim > 0 ? c.rotary_dim : D;
    const int64_t max_position = T_cap + 8;
    std::vector<double> cos_values(max_position * R / 2), sin_values(max_position * R / 2);
    for (int64_t position = 0; position < max_position; ++position) {
      for (int64_t i = 0; i < R / 2; ++i) {
        const double angle = position * std::pow(10000.0, -2.0 * i / R);
        cos_values[position * R / 2 + i] = std::cos(angle);
        sin_values[position * R / 2 + i] = std::sin(angle);
      }
    }
    e.cos_cache = Store(c.type, {max_position, R / 2}, cos_values);
    e.sin_cache = Store(c.type, {max_position, R / 2}, sin_values);
    e.inputs[attention::kCosCache] = View(e.cos_cache);
    e.inputs[attention::kSinCache] = View(e.sin_cache);
    p.rotary_dim = R;
    p.rotary_interleaved = c.rotary == RotaryKind::kInterleaved;
    p.cos_cache = e.cos_cache.values;
    p.sin_cache = e.sin_cache.values;
    if (c.position_ids) {
      const int64_t rows = c.position_ids_broadcast ? 1 : B;
      std::uniform_int_distribution<int64_t> any_position(0, max_position - 1);
      e.position_ids.resize(rows * S);
      for (int64_t& id : e.position_ids) id = any_position(rng);
      e.position_ids_shape = {rows, S};
      e.inputs[attention::kPositionIds] = {true, DataType::kInt64, e.position_ids_shape, e.position_ids.data()};
      p.position_ids = e.position_ids;
    }
  }
  return e;
}

namespace {

double MaxAbs(const std::vector<double>& values) {
  double m = 0.0;
  for (double v : values) m = std::max(m, std::abs(v));
  return m;
}

double MaxAbsDifference(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0.0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

}  // namespace

// fp32: every product and sum of the kernel rounds with unit roundoff u = 2^-24 ~ 6e-8. A score
// q.k over D <= 128 terms of O(1) values is off by ~sqrt(D) u |q||k| ~ 1e-6 before the 1/sqrt(D)
// scale, exp adds ~1 ulp, so each softmax weight is off by ~1e-6 relatively; the output, a convex
// combination of values, is then off by ~1e-6 max|v|, and max|v| ~ 3-4 |output| here. Hence
// 1e-5 relative to the largest output (the worst case measured over the suite is ~4e-7); the
// absolute 1e-6 covers all-zero outputs (fully masked rows).
// fp16: the test is FlashAttention's: the error of the kernel against the exact fp64 result must be
// at most twice the error of a plain fp16 implementation (the reference rounding the rotated
// queries and keys and the output to fp16), plus an epsilon for when both are ~0.
void ExpectMatches(const char* what, DataType type, const std::vector<double>& actual,
                   const std::vector<double>& exact, const std::vector<double>& low_precision) {
  ASSERT_EQ(actual.size(), exact.size()) << what;
  const double error = MaxAbsDifference(actual, exact);
  const double bound = type == DataType::kFloat16 ? 2.0 * MaxAbsDifference(low_precision, exact) + 1e-6
                                                  : 1e-5 * MaxAbs(exact) + 1e-6;
  EXPECT_LE(error, bound) << what << ": max |actual - exact| = " << error << ", max |exact| = " << MaxAbs(exact);
}

void ExpectMatchesReference(const AttentionCase& c, const ExpandedCase& e, const OpResult& actual) {
  const ReferenceResult exact = ReferenceAttention(e.problem);
  const ReferenceResult low_precision = ReferenceAttention(e.problem, [&](double x) { return RoundToType(c.type, x); });
  ExpectMatches("output", c.type, actual.output, exact.output, low_precision.output);
  if (c.rotary == RotaryKind::kNone) {  // plain copies: exact
    EXPECT_TRUE(actual.present_key == exact.present_key) << "present_key";
  } else {
    ExpectMatches("present_key", c.type, actual.present_key, exact.present_key, low_precision.present_key);
  }
  EXPECT_TRUE(actual.present_value == exact.present_value) << "present_value";
}

uint32_t SeedOf(const AttentionCase& c) { return static_cast<uint32_t>(std::hash<std::string>()(c.name)); }

}  // namespace ortsparse::testing
