#include "method_scenario.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <sstream>

#include "attention/cpu/sparse_attention_cpu.h"
#include "attention/cpu/sparse_methods.h"
#include "random_rows.h"
#include "std_thread_runner.h"

namespace ortsparse::testing {
namespace {

using attention::AttentionInputs;
using attention::AttentionPlan;

attention::TensorInfo View(const StoredTensor& tensor) {
  return {true, tensor.type, tensor.shape, tensor.bytes.data()};
}

// Multiples of 1/4 in [-grid_steps / 4, grid_steps / 4], or standard normal values.
std::vector<double> RandomValues(std::mt19937& rng, int64_t count, bool grid, int grid_steps = 8) {
  std::vector<double> values(count);
  std::uniform_int_distribution<int> step(-grid_steps, grid_steps);
  std::normal_distribution<double> normal;
  for (double& v : values) v = grid ? step(rng) / 4.0 : normal(rng);
  return values;
}

// Multiples of 1/`denominator` in [-limit, limit] / denominator.
std::vector<double> DyadicValues(std::mt19937& rng, int64_t count, int limit, double denominator) {
  std::uniform_int_distribution<int> step(-limit, limit);
  std::vector<double> values(count);
  for (double& v : values) v = step(rng) / denominator;
  return values;
}

// Orthonormal rows (Gram-Schmidt of normal vectors), or a signed permutation on the grid.
std::vector<double> Basis(std::mt19937& rng, int64_t D, bool grid) {
  std::vector<double> basis(D * D, 0.0);
  if (grid) {
    std::vector<int64_t> order(D);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int64_t i = 0; i < D; ++i) basis[i * D + order[i]] = rng() % 2 == 0 ? 1.0 : -1.0;
    return basis;
  }
  return testing::OrthonormalRows(rng, D, D);
}

// Unit centroids: distinct signed axes on the grid, normal directions otherwise.
std::vector<double> Centroids(std::mt19937& rng, int64_t count, int64_t D, bool grid) {
  std::vector<double> centroids(count * D, 0.0);
  if (grid) {
    std::vector<int64_t> axes(2 * D);
    std::iota(axes.begin(), axes.end(), 0);
    std::shuffle(axes.begin(), axes.end(), rng);
    for (int64_t c = 0; c < count; ++c) centroids[c * D + axes[c] % D] = axes[c] < D ? 1.0 : -1.0;
    return centroids;
  }
  const std::vector<double> basis = Basis(rng, D, false);  // orthonormal rows are unit and distinct
  for (int64_t c = 0; c < count; ++c) std::copy(&basis[(c % D) * D], &basis[(c % D + 1) * D], &centroids[c * D]);
  return centroids;
}

std::vector<double> Repeat(int64_t times, const std::function<std::vector<double>()>& make) {
  std::vector<double> all;
  for (int64_t i = 0; i < times; ++i) {
    const std::vector<double> one = make();
    all.insert(all.end(), one.begin(), one.end());
  }
  return all;
}

bool MaskHides(const MethodScenario& s, int64_t b, int64_t h, int64_t j) {
  const uint64_t x = (static_cast<uint64_t>(b) * 1000003u + (s.mask_per_head ? h : 0) * 7919u + j) * 2654435761u;
  return (x >> 7) % 7 == 0;
}

bool KeepsIndices(const MethodScenario& s) { return s.attributes.method == "saap" || s.attributes.method == "hash"; }
int64_t StateElementSize(const MethodScenario& s) { return KeepsIndices(s) ? 4 : DataTypeSize(s.type); }

std::vector<double> ReadState(const MethodScenario& s, const void* data, size_t count) {
  if (KeepsIndices(s)) {
    std::vector<double> values(count);
    const int32_t* ints = static_cast<const int32_t*>(data);
    for (size_t i = 0; i < count; ++i) values[i] = ints[i];
    return values;
  }
  return ReadStored(s.type, data, count);
}

std::string Positions(const std::vector<uint8_t>& keys) {
  std::ostringstream text;
  for (size_t j = 0; j < keys.size(); ++j) {
    if (keys[j]) text << j << ' ';
  }
  return text.str();
}

}  // namespace

void PrintTo(const MethodScenario& scenario, std::ostream* os) { *os << scenario.name; }

std::vector<uint8_t> SelectedKeysOf(const KeySelection* selection, const ReferenceProblem& p,
                                    const ReferenceSequences& seq, int64_t b, int64_t i, int64_t h) {
  std::vector<uint8_t> keys(seq.T_cap, 0);
  for (int64_t j = 0; j < seq.T_cap; ++j) keys[j] = Sees(p, seq, b, i, j);
  if (selection == nullptr) return keys;
  const int64_t head_tiles = p.num_heads / selection->heads_per_tile;
  const int64_t row_tiles = (p.query_length + selection->rows_per_tile - 1) / selection->rows_per_tile;
  const int64_t tile = (b * head_tiles + h / selection->heads_per_tile) * row_tiles + i / selection->rows_per_tile;
  std::vector<uint8_t> listed(seq.T_cap, 0);
  for (int64_t span = selection->span_offsets[tile]; span < selection->span_offsets[tile + 1]; ++span) {
    for (int64_t j = selection->spans[span].begin; j < selection->spans[span].end; ++j) listed[j] = 1;
  }
  for (int64_t j = 0; j < seq.T_cap; ++j) keys[j] = keys[j] && listed[j];
  return keys;
}

Calibration MakeCalibration(const MethodScenario& s) {
  Calibration c;
  ReferenceMethod& r = c.reference;
  const attention::AttentionAttributes& a = s.attributes;
  r.name = a.method;
  r.budget = a.budget;
  r.sink = a.sink;
  r.window = a.window;
  r.dense_below = a.dense_below;
  r.page_size = a.page_size;
  r.block_size = a.block_size;
  r.gamma = a.gamma;
  const int64_t D = s.head_size, Hq = s.num_heads, Hkv = s.kv_num_heads;
  std::mt19937 rng(s.seed * 7919u + 17u);
  auto add = [&](std::vector<int64_t> shape, const std::vector<double>& values) -> const std::vector<double>& {
    c.tensors.push_back(Store(DataType::kFloat32, std::move(shape), values));
    return c.tensors.back().values;
  };
  if (r.name == "loki") {
    r.rank = a.rank.value_or(std::max<int64_t>(1, D / 4));
    r.pca_basis = add({Hkv, D, D}, Repeat(Hkv, [&] { return Basis(rng, D, s.grid_values); }));
  } else if (r.name == "saap") {
    const int64_t C = s.clusters, M = s.hidden;
    r.clusters = C;
    r.hidden = M;
    // Small dyadic weights: exact logits of a few units, far from saturating the softmax.
    r.centroids = add({Hkv, C, D}, Repeat(Hkv, [&] { return Centroids(rng, C, D, s.grid_values); }));
    r.classifier_weights = add({Hq, D, M}, DyadicValues(rng, Hq * D * M, 4, 32.0));
    r.classifier_bias = add({Hq, M}, DyadicValues(rng, Hq * M, 4, 32.0));
    r.classifier_output = add({Hq, M + 1, C}, DyadicValues(rng, Hq * (M + 1) * C, s.uniform_classifier ? 0 : 8, 16.0));
  } else if (r.name == "hash") {
    r.hash_rounds = s.hash_rounds;
    r.hash_half_buckets = s.hash_half_buckets;
    const int64_t count = Hkv * s.hash_rounds * D * s.hash_half_buckets;
    r.hash_projections = add({Hkv, s.hash_rounds, D, s.hash_half_buckets},
                             s.zero_hash_projections ? std::vector<double>(count, 0.0)
                                                     : RandomValues(rng, count, s.grid_values));
  } else if (r.name == "hyper") {
    r.hyper_bits = s.hyper_bits;
    r.hyper_hyperplanes = add({Hkv, 1, D, s.hyper_bits}, RandomValues(rng, Hkv * D * s.hyper_bits, s.grid_values));
    const DataType type = s.type;
    r.stored_query = [type](double x) { return RoundToType(type, x); };
  }
  return c;
}

void RunScenario(const MethodScenario& s, ScenarioOutcome* outcome) {
  static StdThreadRunner threads(2);
  const int64_t B = s.batch, Hq = s.num_heads, Hkv = s.kv_num_heads, D = s.head_size;
  const Calibration calibration = MakeCalibration(s);
  const ReferenceMethod& method = calibration.reference;
  const bool has_state = ReferenceStateRows(method, 1) > 0;
  const int64_t width = ReferenceStateWidth(method, D);

  // Tokens of each sequence, appended per step.
  std::vector<std::vector<int64_t>> appended(s.steps.size(), std::vector<int64_t>(B));
  std::vector<int64_t> totals(B, 0);
  for (size_t t = 0; t < s.steps.size(); ++t) {
    for (int64_t b = 0; b < B; ++b) {
      appended[t][b] = t == 0 && !s.first_prompt.empty() ? s.first_prompt[b] : s.steps[t];
      totals[b] += appended[t][b];
    }
  }
  const int64_t longest = *std::max_element(totals.begin(), totals.end());
  const int64_t length = s.seqlens ? s.capacity : longest;  // positions every per-position buffer holds
  ASSERT_GE(length, longest);
  std::mt19937 rng(s.seed);
  const std::vector<double> stream_query = RandomValues(rng, B * longest * Hq * D, s.grid_values, s.grid_steps);
  const std::vector<double> stream_key = RandomValues(rng, B * longest * Hkv * D, s.grid_values, s.grid_steps);
  const std::vector<double> stream_value = RandomValues(rng, B * longest * Hkv * D, s.grid_values);

  attention::AttentionAttributes attributes = s.attributes;
  attributes.num_heads = Hq;
  attributes.kv_num_heads = Hkv;
  attributes.scale = s.scale;
  attributes.softcap = s.softcap;
  attributes.local_window_size = s.local_window;
  attributes.do_rotary = s.rotary != RotaryKind::kNone ? 1 : 0;
  attributes.rotary_interleaved = s.rotary == RotaryKind::kInterleaved ? 1 : 0;

  StoredTensor cos_cache, sin_cache;
  if (s.rotary != RotaryKind::kNone) {
    const int64_t half = D / 2, positions = length + 1;
    std::vector<double> cos_values(positions * half), sin_values(positions * half);
    for (int64_t position = 0; position < positions; ++position) {
      for (int64_t i = 0; i < half; ++i) {
        const double angle = position * std::pow(10000.0, -2.0 * i / D);
        cos_values[position * half + i] = std::cos(angle);
        sin_values[position * half + i] = std::sin(angle);
      }
    }
    cos_cache = Store(s.type, {positions, half}, cos_values);
    sin_cache = Store(s.type, {positions, half}, sin_values);
  }

  // Carried from step to step: the caches and state as the op left them, and the raw keys.
  const size_t element = static_cast<size_t>(DataTypeSize(s.type));
  std::vector<unsigned char> key_cache, value_cache, state;
  int64_t cache_length = 0;  // positions of the carried caches
  std::vector<double> raw_keys(B * Hkv * length * D, 0.0);
  std::vector<int64_t> keys_before(B, 0);
  if (s.seqlens && s.shared_buffers) {  // the buffers exist, zeroed, from the first step on
    cache_length = length;
    key_cache.assign(B * Hkv * length * D * element, 0);
    value_cache = key_cache;
    state.assign(B * Hkv * ReferenceStateRows(method, length) * width * StateElementSize(s), 0);
  }

  for (size_t t = 0; t < s.steps.size(); ++t) {
    SCOPED_TRACE("step " + std::to_string(t));
    const int64_t S = s.steps[t];
    std::vector<double> query(B * S * Hq * D, 0.0), key(B * S * Hkv * D, 0.0), value(B * S * Hkv * D, 0.0);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < appended[t][b]; ++i) {
        const int64_t position = keys_before[b] + i;
        std::copy_n(&stream_query[(b * longest + position) * Hq * D], Hq * D, &query[(b * S + i) * Hq * D]);
        std::copy_n(&stream_key[(b * longest + position) * Hkv * D], Hkv * D, &key[(b * S + i) * Hkv * D]);
        std::copy_n(&stream_value[(b * longest + position) * Hkv * D], Hkv * D, &value[(b * S + i) * Hkv * D]);
      }
    }
    const StoredTensor query_tensor = Store(s.type, {B, S, Hq * D}, query);
    const StoredTensor key_tensor = Store(s.type, {B, S, Hkv * D}, key);
    const StoredTensor value_tensor = Store(s.type, {B, S, Hkv * D}, value);
    AttentionInputs inputs;
    inputs[attention::kQuery] = View(query_tensor);
    inputs[attention::kKey] = View(key_tensor);
    inputs[attention::kValue] = View(value_tensor);
    const bool has_past = cache_length > 0;
    if (has_past) {
      inputs[attention::kPastKey] = {true, s.type, {B, Hkv, cache_length, D}, key_cache.data()};
      inputs[attention::kPastValue] = {true, s.type, {B, Hkv, cache_length, D}, value_cache.data()};
    }
    std::vector<int32_t> seqlens(B), total = {static_cast<int32_t>(length)};
    if (s.seqlens) {
      for (int64_t b = 0; b < B; ++b) seqlens[b] = static_cast<int32_t>(keys_before[b] + appended[t][b] - 1);
      inputs[attention::kSeqlensK] = {true, DataType::kInt32, {B}, seqlens.data()};
      inputs[attention::kTotalSequenceLength] = {true, DataType::kInt32, {}, total.data()};
    }
    const int64_t present_length = s.seqlens ? length : cache_length + S;
    if (s.rotary != RotaryKind::kNone) {
      inputs[attention::kCosCache] = View(cos_cache);
      inputs[attention::kSinCache] = View(sin_cache);
    }
    StoredTensor mask;
    if (s.mask != MaskKind::kNone) {
      const int64_t mask_heads = s.mask_per_head ? Hq : 1;
      std::vector<double> visible(B * mask_heads * present_length);
      for (int64_t b = 0; b < B; ++b) {
        for (int64_t h = 0; h < mask_heads; ++h) {
          for (int64_t j = 0; j < present_length; ++j) {
            visible[(b * mask_heads + h) * present_length + j] = !MaskHides(s, b, h, j);
          }
        }
      }
      mask = Store(DataType::kBool, {B, mask_heads, 1, present_length}, visible);
      inputs[attention::kAttentionMask] = View(mask);
    }
    const bool past_state = has_state && has_past && static_cast<int64_t>(t) != s.drop_state_at_step;
    if (past_state) {
      inputs[KeepsIndices(s) ? attention::kPastIndex : attention::kPastSummary] = {
          true, KeepsIndices(s) ? DataType::kInt32 : s.type, {B, Hkv, ReferenceStateRows(method, cache_length), width},
          state.data()};
    }
    for (size_t i = 0; i < calibration.tensors.size(); ++i) {
      inputs[attention::kMethodData0 + i] = View(calibration.tensors[i]);
    }

    std::vector<double> past_key, past_value;  // before an in-place step writes into them
    if (has_past) {
      past_key = ReadStored(s.type, key_cache.data(), B * Hkv * cache_length * D);
      past_value = ReadStored(s.type, value_cache.data(), B * Hkv * cache_length * D);
    }

    AttentionPlan plan;
    const Status planned = attention::PlanAttention(attributes, inputs, &plan);
    ASSERT_TRUE(planned.ok()) << planned.message();
    ASSERT_EQ(plan.present_length, present_length);

    // Present buffers: the past's in place when shared, fresh garbage otherwise.
    const bool in_place = s.seqlens && s.shared_buffers;
    const size_t cache_bytes = B * Hkv * present_length * D * element;
    std::vector<unsigned char> output(B * S * Hq * D * element, 0xAB);
    std::vector<unsigned char> fresh_key, fresh_value, fresh_state, rotated_query(attention::RotatedQueryBytes(plan));
    if (!in_place) {
      fresh_key.assign(cache_bytes, 0xCD);
      fresh_value.assign(cache_bytes, 0xCD);
    }
    const bool state_in_place = in_place && past_state;
    if (!state_in_place) fresh_state.assign(attention::MethodStateBytes(plan), 0xCD);
    attention::AttentionOutputs outputs;
    outputs.output = output.data();
    outputs.key_cache = in_place ? key_cache.data() : fresh_key.data();
    outputs.key_cache_is_past = in_place;
    outputs.value_cache = in_place ? value_cache.data() : fresh_value.data();
    outputs.value_cache_is_past = in_place;
    outputs.rotated_query = rotated_query.data();
    outputs.method_state = state_in_place ? state.data() : fresh_state.data();
    outputs.method_state_is_past = state_in_place;

    attention::StepParams step;
    Status status = cpu::PrepareSparseAttention(attributes, inputs, plan, outputs, threads.runner(), &step);
    const AttentionParams& attention_params = step.attention;
    const SparseMethodParams& method_params = step.method;
    ASSERT_TRUE(status.ok()) << status.message();
    cpu::SelectedKeys selected;
    bool sparse = false;
    status = cpu::SelectKeys(attention_params, method_params, threads.runner(), &selected, &sparse);
    ASSERT_TRUE(status.ok()) << status.message();
    const KeySelection* selection = sparse ? &selected.Flatten() : nullptr;
    status = cpu::SparseAttention(attention_params, method_params, threads.runner());
    ASSERT_TRUE(status.ok()) << status.message();

    const std::vector<double> present_key = ReadStored(s.type, outputs.key_cache, cache_bytes / element);
    const std::vector<double> present_value = ReadStored(s.type, outputs.value_cache, cache_bytes / element);
    const size_t state_count = has_state ? B * Hkv * ReferenceStateRows(method, present_length) * width : 0;
    const std::vector<double> present_state = ReadState(s, outputs.method_state, state_count);

    // The reference of the step, from the values the op was given.
    ReferenceProblem p;
    p.batch = B;
    p.query_length = p.kv_length = S;
    p.num_heads = Hq;
    p.kv_num_heads = Hkv;
    p.head_size = p.v_head_size = D;
    p.past_length = cache_length;
    p.query = query_tensor.values;
    p.key = key_tensor.values;
    p.value = value_tensor.values;
    p.past_key = past_key;
    p.past_value = past_value;
    if (s.seqlens) {
      p.seqlens_k = seqlens;
      p.total_sequence_length = length;
      p.shared_buffer = in_place;
    }
    if (s.scale) p.scale = *s.scale;
    p.softcap = s.softcap;
    p.local_window = s.local_window;
    if (s.mask != MaskKind::kNone) {
      p.mask = MaskKind::kBool;
      p.mask_shape = mask.shape;
      p.mask_values = mask.values;
    }
    if (s.rotary != RotaryKind::kNone) {
      p.rotary_dim = D;
      p.rotary_interleaved = s.rotary == RotaryKind::kInterleaved;
      p.cos_cache = cos_cache.values;
      p.sin_cache = sin_cache.values;
    }
    const ReferenceSequences seq = SequencesOf(p);

    // State: raw keys so far, then the reference state next to the op's (valid rows only).
    std::vector<int64_t> key_counts(B);
    for (int64_t b = 0; b < B; ++b) {
      key_counts[b] = keys_before[b] + appended[t][b];
      for (int64_t i = 0; i < appended[t][b]; ++i) {
        for (int64_t h = 0; h < Hkv; ++h) {
          std::copy_n(&key_tensor.values[((b * S + i) * Hkv + h) * D], D,
                      &raw_keys[((b * Hkv + h) * length + keys_before[b] + i) * D]);
        }
      }
    }
    std::vector<double> raw_present(B * Hkv * present_length * D, 0.0);  // raw keys at the present's length
    for (int64_t bh = 0; bh < B * Hkv; ++bh) {
      std::copy_n(&raw_keys[bh * length * D], present_length * D, &raw_present[bh * present_length * D]);
    }
    std::vector<double> valid_state;
    if (has_state) {
      const std::vector<double> expected_state =
          ReferenceState(method, B, Hkv, D, present_length, key_counts, present_key, raw_present);
      const int64_t rows = ReferenceStateRows(method, present_length);
      for (int64_t bh = 0; bh < B * Hkv; ++bh) {
        const int64_t valid_rows = ReferenceStateRows(method, key_counts[bh / Hkv]);
        for (int64_t row = 0; row < rows; ++row) {
          for (int64_t w = 0; w < width; ++w) {
            const size_t index = (bh * rows + row) * width + w;
            if (row >= valid_rows) {
              if (!state_in_place) {
                ASSERT_EQ(present_state[index], 0.0) << "state row " << row << " beyond the keys";
              }
              continue;
            }
            valid_state.push_back(present_state[index]);
            const double tolerance = method.name != "loki" ? 0.0
                                     : s.type == DataType::kFloat16 ? 1e-3 * (1.0 + std::abs(expected_state[index]))
                                                                    : 1e-5 * (1.0 + std::abs(expected_state[index]));
            ASSERT_NEAR(present_state[index], expected_state[index], tolerance)
                << "state of (b, h) " << bh << ", row " << row << ", column " << w;
          }
        }
      }
    }

    // Selection: the reference's from the cache and state as the op stored them.
    const std::vector<uint8_t> attended = ReferenceSelection(p, method, present_key, present_state);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < S; ++i) {
        for (int64_t h = 0; h < Hq; ++h) {
          const std::vector<uint8_t> kernel = SelectedKeysOf(selection, p, seq, b, i, h);
          const std::vector<uint8_t> expected(attended.begin() + ((b * S + i) * Hq + h) * seq.T_cap,
                                              attended.begin() + ((b * S + i) * Hq + h + 1) * seq.T_cap);
          ASSERT_EQ(Positions(kernel), Positions(expected)) << "keys of (b, i, h) = (" << b << ", " << i << ", " << h << ")";
          if (outcome != nullptr) {
            for (int64_t j = 0; j < seq.T_cap; ++j) outcome->keys_left_out += Sees(p, seq, b, i, j) && !kernel[j];
          }
        }
      }
    }
    const KeyFilter keep = [&](int64_t b, int64_t i, int64_t h, int64_t j) {
      return attended[((b * S + i) * Hq + h) * seq.T_cap + j] != 0;
    };
    const ReferenceResult exact = ReferenceAttention(p, Unrounded, keep);
    const ReferenceResult low = ReferenceAttention(p, [&](double x) { return RoundToType(s.type, x); }, keep);
    const std::vector<double> actual_output = ReadStored(s.type, output.data(), B * S * Hq * D);
    ExpectMatches("output", s.type, actual_output, exact.output, low.output);
    if (s.rotary == RotaryKind::kNone) {
      EXPECT_TRUE(present_key == exact.present_key) << "present_key";
    }
    EXPECT_TRUE(present_value == exact.present_value) << "present_value";

    if (outcome != nullptr) {
      outcome->state = valid_state;
      outcome->output = actual_output;
    }
    if (!in_place) {
      key_cache = std::move(fresh_key);
      value_cache = std::move(fresh_value);
    }
    if (!state_in_place) state = std::move(fresh_state);
    cache_length = present_length;
    for (int64_t b = 0; b < B; ++b) keys_before[b] = key_counts[b];
  }
}

}  // namespace ortsparse::testing
