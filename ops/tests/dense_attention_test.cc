// The CPU path of SparseAttention (validation, KV cache, rotary embedding, dense kernel) against
// the fp64 reference, over a grid of shapes plus targeted cases for every feature.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "attention/attention_validation.h"
#include "attention/cpu/sparse_attention_cpu.h"
#include "attention_case.h"
#include "std_thread_runner.h"

namespace ortsparse::testing {
namespace {

using attention::AttentionPlan;

// Runs the op's CPU path the way the ONNX Runtime layer does, on two threads.
void RunOp(ExpandedCase& e, bool shared_buffer, OpResult* result) {
  static StdThreadRunner threads(2);
  AttentionPlan plan;
  const Status planned = attention::PlanAttention(e.attributes, e.inputs, &plan);
  ASSERT_TRUE(planned.ok()) << planned.message();

  const size_t element = static_cast<size_t>(DataTypeSize(plan.type));
  const size_t key_elements = plan.batch * plan.kv_num_heads * plan.present_length * plan.head_size;
  const size_t value_elements = plan.batch * plan.kv_num_heads * plan.present_length * plan.v_head_size;
  const size_t output_elements = plan.batch * plan.query_length * plan.num_heads * plan.v_head_size;
  // Garbage where the op must write, so that anything it skips shows.
  std::vector<unsigned char> output(output_elements * element, 0xAB);
  std::vector<unsigned char> key_cache(key_elements * element, 0xCD);
  std::vector<unsigned char> value_cache(value_elements * element, 0xCD);
  std::vector<unsigned char> rotated_query(attention::RotatedQueryBytes(plan));
  if (shared_buffer) {  // one buffer bound to past and present, as with IoBinding
    key_cache = e.past_key.bytes;
    value_cache = e.past_value.bytes;
    e.inputs[attention::kPastKey].data = key_cache.data();
    e.inputs[attention::kPastValue].data = value_cache.data();
  }
  std::vector<std::vector<unsigned char>> inputs_before;
  for (const StoredTensor* input : {&e.query, &e.key, &e.value, &e.past_key, &e.past_value, &e.cos_cache,
                                    &e.sin_cache, &e.mask}) {
    inputs_before.push_back(input->bytes);
  }

  attention::AttentionOutputs outputs;
  outputs.output = output.data();
  outputs.key_cache = key_cache.data();
  outputs.key_cache_is_past = shared_buffer;
  outputs.value_cache = value_cache.data();
  outputs.value_cache_is_past = shared_buffer;
  outputs.rotated_query = rotated_query.data();
  const Status ran = cpu::RunSparseAttention(e.attributes, e.inputs, plan, outputs, threads.runner());
  ASSERT_TRUE(ran.ok()) << ran.message();

  size_t index = 0;
  for (const StoredTensor* input : {&e.query, &e.key, &e.value, &e.past_key, &e.past_value, &e.cos_cache,
                                    &e.sin_cache, &e.mask}) {
    EXPECT_TRUE(input->bytes == inputs_before[index++]) << "an input was written";
  }
  result->output = ReadStored(plan.type, output.data(), output_elements);
  result->present_key = ReadStored(plan.type, key_cache.data(), key_elements);
  result->present_value = ReadStored(plan.type, value_cache.data(), value_elements);
}

class DenseAttentionTest : public ::testing::TestWithParam<AttentionCase> {};

TEST_P(DenseAttentionTest, MatchesReference) {
  const AttentionCase& c = GetParam();
  ExpandedCase e = Expand(c, SeedOf(c));
  OpResult actual;
  ASSERT_NO_FATAL_FAILURE(RunOp(e, c.shared_buffer, &actual));
  ExpectMatchesReference(c, e, actual);
}

const char* TypeSuffix(DataType type) { return type == DataType::kFloat16 ? "fp16" : "fp32"; }

// Every shape of the grid; the head size cycles with the heads and the past so that each head
// size meets each head layout and past length.
std::vector<AttentionCase> GridCases() {
  struct Heads {
    int64_t query, kv;
  };
  const Heads head_layouts[] = {{4, 4}, {8, 2}, {6, 1}};
  const int64_t past_lengths[] = {0, 5, 70};
  const int64_t head_sizes[] = {64, 80, 128};
  std::vector<AttentionCase> cases;
  for (int64_t batch : {1, 3}) {
    for (int64_t query_length : {1, 7, 33}) {
      for (int p = 0; p < 3; ++p) {
        for (int h = 0; h < 3; ++h) {
          for (bool causal : {true, false}) {
            for (DataType type : {DataType::kFloat32, DataType::kFloat16}) {
              AttentionCase c;
              c.type = type;
              c.batch = batch;
              c.query_length = query_length;
              c.past_length = past_lengths[p];
              c.num_heads = head_layouts[h].query;
              c.kv_num_heads = head_layouts[h].kv;
              c.head_size = head_sizes[(p + h) % 3];
              c.causal = causal;
              c.name = "B" + std::to_string(batch) + "_S" + std::to_string(query_length) + "_P" +
                       std::to_string(c.past_length) + "_H" + std::to_string(c.num_heads) + "x" +
                       std::to_string(c.kv_num_heads) + "_D" + std::to_string(c.head_size) +
                       (causal ? "_causal_" : "_full_") + TypeSuffix(type);
              cases.push_back(c);
            }
          }
        }
      }
    }
  }
  return cases;
}

AttentionCase Shape(const char* name, int64_t batch, int64_t query_length, int64_t past_length, int64_t num_heads,
                    int64_t kv_num_heads, int64_t head_size) {
  AttentionCase c;
  c.name = name;
  c.batch = batch;
  c.query_length = query_length;
  c.past_length = past_length;
  c.num_heads = num_heads;
  c.kv_num_heads = kv_num_heads;
  c.head_size = head_size;
  return c;
}

AttentionCase Seqlens(AttentionCase c, std::vector<int32_t> seqlens_k, int32_t total, bool shared) {
  c.seqlens_k = std::move(seqlens_k);
  c.total_sequence_length = total;
  c.shared_buffer = shared;
  return c;
}

// One case per feature and per combination the grid does not reach, each in fp32 and fp16.
std::vector<AttentionCase> TargetedCases() {
  std::vector<AttentionCase> base;
  auto add = [&](AttentionCase c, const std::function<void(AttentionCase&)>& change = nullptr) {
    if (change) change(c);
    base.push_back(c);
  };
  // Value head size and odd sizes.
  add(Shape("DvLargerThanD", 2, 7, 5, 8, 2, 64), [](AttentionCase& c) { c.v_head_size = 80; });
  add(Shape("DvSmallerThanD", 2, 7, 5, 8, 2, 80), [](AttentionCase& c) { c.v_head_size = 64; c.causal = false; });
  add(Shape("HeadSize96", 1, 7, 5, 4, 2, 96));
  add(Shape("OddHeadSizes", 2, 3, 9, 3, 3, 36), [](AttentionCase& c) { c.v_head_size = 20; });
  // Concatenation mode with S_kv != S (bottom-right causal alignment).
  add(Shape("KeysShorterThanQueries", 2, 7, 5, 4, 2, 64), [](AttentionCase& c) { c.kv_length = 3; });
  add(Shape("KeysLongerThanQueries", 2, 3, 0, 4, 2, 64), [](AttentionCase& c) { c.kv_length = 9; });
  add(Shape("KeysLongerThanQueriesFull", 2, 3, 4, 4, 2, 64), [](AttentionCase& c) {
    c.kv_length = 9;
    c.causal = false;
  });
  add(Shape("NoNewKeys", 2, 2, 10, 4, 2, 64), [](AttentionCase& c) { c.kv_length = 0; });
  add(Shape("NoQueries", 2, 0, 5, 4, 2, 64));
  add(Shape("EmptyBatch", 0, 3, 5, 4, 2, 64));
  // Masks: boolean and additive, every rank, broadcast and shorter L.
  add(Shape("BoolMaskRank2", 3, 7, 5, 8, 2, 64), [](AttentionCase& c) {
    c.mask = MaskKind::kBool;
    c.mask_leading_dims = {7};
  });
  add(Shape("BoolMaskRank3PerHead", 2, 7, 5, 8, 2, 64), [](AttentionCase& c) {
    c.mask = MaskKind::kBool;
    c.mask_leading_dims = {8, 7};
    c.causal = false;
  });
  add(Shape("BoolMaskRank4ShortL", 3, 7, 70, 6, 1, 80), [](AttentionCase& c) {
    c.mask = MaskKind::kBool;
    c.mask_leading_dims = {3, 1, 7};
    c.mask_columns_short_by = 9;
  });
  add(Shape("AdditiveMaskRank4Full", 3, 7, 5, 8, 2, 64), [](AttentionCase& c) {
    c.mask = MaskKind::kAdditive;
    c.mask_leading_dims = {3, 8, 7};
  });
  add(Shape("AdditiveMaskBroadcastDecode", 3, 1, 70, 8, 2, 128), [](AttentionCase& c) {
    c.mask = MaskKind::kAdditive;
    c.mask_leading_dims = {1, 1, 1};
    c.mask_columns_short_by = 10;
  });
  add(Shape("AdditiveMaskRank2NonCausal", 2, 33, 5, 4, 4, 64), [](AttentionCase& c) {
    c.mask = MaskKind::kAdditive;
    c.mask_leading_dims = {33};
    c.causal = false;
  });
  add(Shape("FullyMaskedRow", 2, 7, 5, 4, 2, 64), [](AttentionCase& c) {
    c.mask = MaskKind::kBool;
    c.mask_leading_dims = {1, 1, 7};
    c.first_row_visible_columns = 0;
  });
  // Softcap, scale, local window.
  add(Shape("Softcap", 2, 7, 5, 6, 1, 64), [](AttentionCase& c) {
    c.scale = 1.0f;  // scores of a few units, so that the cap bends them
    c.softcap = 5.0f;
  });
  add(Shape("SoftcapBeforeMask", 2, 7, 5, 8, 2, 64), [](AttentionCase& c) {
    c.scale = 1.0f;
    c.softcap = 3.0f;
    c.mask = MaskKind::kAdditive;
    c.mask_leading_dims = {2, 1, 7};
  });
  add(Shape("ExplicitScale", 2, 7, 5, 4, 2, 64), [](AttentionCase& c) { c.scale = 0.3f; });
  add(Shape("WindowOfOne", 2, 7, 70, 4, 2, 64), [](AttentionCase& c) { c.local_window = 1; });
  add(Shape("WindowPrefill", 2, 33, 70, 8, 2, 64), [](AttentionCase& c) { c.local_window = 16; });
  add(Shape("WindowDecode", 3, 1, 70, 8, 2, 128), [](AttentionCase& c) { c.local_window = 8; });
  add(Shape("WindowNonCausal", 2, 7, 5, 4, 2, 64), [](AttentionCase& c) {
    c.local_window = 4;
    c.causal = false;
  });
  // Rotary embedding.
  add(Shape("RotaryHalfSplit", 2, 7, 5, 8, 2, 64), [](AttentionCase& c) { c.rotary = RotaryKind::kHalfSplit; });
  add(Shape("RotaryInterleaved", 2, 7, 5, 8, 2, 64), [](AttentionCase& c) { c.rotary = RotaryKind::kInterleaved; });
  add(Shape("RotaryPartialHalfSplit", 2, 7, 5, 4, 2, 128), [](AttentionCase& c) {
    c.rotary = RotaryKind::kHalfSplit;
    c.rotary_dim = 64;
  });
  add(Shape("RotaryPartialInterleaved", 1, 33, 70, 6, 1, 80), [](AttentionCase& c) {
    c.rotary = RotaryKind::kInterleaved;
    c.rotary_dim = 32;
  });
  add(Shape("RotaryPositionIds", 3, 7, 5, 8, 2, 64), [](AttentionCase& c) {
    c.rotary = RotaryKind::kHalfSplit;
    c.position_ids = true;
  });
  add(Shape("RotaryPositionIdsBroadcast", 3, 7, 5, 8, 2, 64), [](AttentionCase& c) {
    c.rotary = RotaryKind::kInterleaved;
    c.position_ids = true;
    c.position_ids_broadcast = true;
  });
  add(Shape("RotaryKeysLongerThanQueries", 2, 3, 5, 4, 2, 64), [](AttentionCase& c) {
    c.rotary = RotaryKind::kHalfSplit;
    c.kv_length = 6;
  });
  // GroupQueryAttention mode: seqlens_k, total_sequence_length, shared or separate buffers.
  for (bool shared : {false, true}) {
    const std::string suffix = shared ? "Shared" : "Separate";
    add(Seqlens(Shape("", 3, 1, 72, 8, 2, 64), {10, 70, 0}, 80, shared),
        [&](AttentionCase& c) { c.name = "SeqlensDecode" + suffix; });
    add(Seqlens(Shape("", 3, 7, 0, 8, 2, 64), {6, 2, 4}, 16, shared),
        [&](AttentionCase& c) { c.name = "SeqlensRightPaddedPrompt" + suffix; });
    add(Seqlens(Shape("", 3, 7, 69, 4, 1, 80), {6, 20, 75}, 80, shared),
        [&](AttentionCase& c) { c.name = "SeqlensMixedPrefill" + suffix; });
    add(Seqlens(Shape("", 2, 1, 72, 8, 2, 64), {40, 71}, 80, shared), [&](AttentionCase& c) {
      c.name = "SeqlensRotaryDecode" + suffix;
      c.rotary = RotaryKind::kHalfSplit;
    });
    add(Seqlens(Shape("", 3, 7, 0, 8, 2, 64), {6, 2, 4}, 16, shared), [&](AttentionCase& c) {
      c.name = "SeqlensRotaryRightPaddedPrompt" + suffix;
      c.rotary = RotaryKind::kInterleaved;
      c.rotary_dim = 32;
      c.position_ids = true;
    });
    add(Seqlens(Shape("", 2, 3, 72, 8, 2, 64), {30, 60}, 80, shared), [&](AttentionCase& c) {
      c.name = "SeqlensWindowAndMask" + suffix;
      c.local_window = 20;
      c.mask = MaskKind::kBool;
      c.mask_leading_dims = {2, 1, 3};
      c.mask_columns_short_by = 15;
    });
  }
  add(Seqlens(Shape("SeqlensCapacityBeyondPast", 2, 3, 10, 4, 2, 64), {12, 5}, 40, false));
  add(Seqlens(Shape("SeqlensPastBeyondTotal", 2, 1, 50, 4, 2, 64), {20, 9}, 30, false));
  // Long caches: the key range splits into flash-decoding chunks that are merged afterwards.
  add(Shape("LongDecode", 1, 1, 2000, 8, 2, 128));
  add(Shape("LongDecodeWindow", 2, 1, 3000, 4, 1, 64), [](AttentionCase& c) { c.local_window = 700; });
  add(Shape("LongCacheRowsWithEmptyChunks", 1, 4, 1500, 1, 1, 64), [](AttentionCase& c) {
    c.mask = MaskKind::kBool;
    c.mask_leading_dims = {1, 1, 4};
    c.first_row_visible_columns = 200;
  });
  add(Shape("LongCacheFullyMaskedRow", 1, 2, 1500, 2, 1, 64), [](AttentionCase& c) {
    c.mask = MaskKind::kBool;
    c.mask_leading_dims = {1, 1, 2};
    c.first_row_visible_columns = 0;
  });
  add(Seqlens(Shape("LongSeqlensDecodeShared", 2, 1, 0, 4, 1, 64), {1800, 300}, 2048, true));

  std::vector<AttentionCase> cases;
  for (const AttentionCase& c : base) {
    for (DataType type : {DataType::kFloat32, DataType::kFloat16}) {
      AttentionCase typed = c;
      typed.type = type;
      typed.name += std::string("_") + TypeSuffix(type);
      cases.push_back(typed);
    }
  }
  return cases;
}

std::string CaseName(const ::testing::TestParamInfo<AttentionCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Grid, DenseAttentionTest, ::testing::ValuesIn(GridCases()), CaseName);
INSTANTIATE_TEST_SUITE_P(Targeted, DenseAttentionTest, ::testing::ValuesIn(TargetedCases()), CaseName);

}  // namespace
}  // namespace ortsparse::testing
