// The sparse methods on the CPU path against their fp64 reference (reference_methods.cc): the keys
// each row attends, the output and the method state, over multi-step scenarios (prompt, chunked
// prefill, decode) in fp32 and fp16, with GQA, masks, windows, rotary and every buffer layout.
#include <gtest/gtest.h>

#include <functional>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu/exact_attention.h"
#include "attention/cpu/sparse_methods.h"
#include "method_scenario.h"
#include "std_thread_runner.h"

namespace ortsparse::testing {
namespace {

const char* TypeSuffix(DataType type) { return type == DataType::kFloat16 ? "fp16" : "fp32"; }

// Two sequences of different lengths (a right-padded prompt), chunked prefill, then decoding.
// Small thresholds so that 60-100 keys already exercise every rule: sink 4, window 8.
MethodScenario Base(const std::string& method) {
  MethodScenario s;
  s.attributes.method = method;
  s.attributes.budget = 0.25f;
  s.attributes.sink = 4;
  s.attributes.window = 8;
  s.attributes.dense_below = 24;
  s.attributes.page_size = 4;
  s.attributes.block_size = 16;
  s.attributes.gamma = 0.6f;
  s.steps = {48, 9, 1, 1, 1};
  s.first_prompt = {48, 21};
  s.capacity = 72;
  return s;
}

using Variant = std::function<void(MethodScenario&)>;

// The variants every method runs; each in fp32 and fp16.
std::vector<std::pair<std::string, Variant>> Variants() {
  return {
      {"SharedBuffers", [](MethodScenario&) {}},
      {"SeparateBuffers", [](MethodScenario& s) { s.shared_buffers = false; }},
      {"Concatenation",
       [](MethodScenario& s) {
         s.seqlens = false;
         s.first_prompt.clear();
       }},
      {"MultiHead", [](MethodScenario& s) { s.num_heads = s.kv_num_heads = 3; }},
      {"OneKvHead",
       [](MethodScenario& s) {
         s.num_heads = 6;
         s.kv_num_heads = 1;
       }},
      {"BudgetCount", [](MethodScenario& s) { s.attributes.budget = 7.0f; }},
      {"DenseBelowOneSequence", [](MethodScenario& s) { s.attributes.dense_below = 40; }},
      {"BoolMask", [](MethodScenario& s) { s.mask = MaskKind::kBool; }},
      {"BoolMaskPerHead",
       [](MethodScenario& s) {
         s.mask = MaskKind::kBool;
         s.mask_per_head = true;
       }},
      {"LocalWindowSoftcap",
       [](MethodScenario& s) {
         s.local_window = 40;
         s.softcap = 2.0f;
       }},
      {"Rotary",
       [](MethodScenario& s) {
         s.rotary = RotaryKind::kHalfSplit;
         s.grid_values = false;
       }},
      {"CoarseTies", [](MethodScenario& s) { s.grid_steps = 1; }},
      {"HeadSize16Normal",
       [](MethodScenario& s) {
         s.head_size = 16;
         s.grid_values = false;
       }},
  };
}

std::vector<MethodScenario> ReferenceScenarios() {
  std::vector<MethodScenario> scenarios;
  for (const char* method : {"topk", "streaming", "quest", "loki", "saap", "hash", "block", "hyper"}) {
    for (const auto& [variant_name, variant] : Variants()) {
      for (DataType type : {DataType::kFloat32, DataType::kFloat16}) {
        MethodScenario s = Base(method);
        variant(s);
        s.type = type;
        s.name = std::string(method) + "_" + variant_name + "_" + TypeSuffix(type);
        scenarios.push_back(s);
      }
    }
  }
  for (DataType type : {DataType::kFloat32, DataType::kFloat16}) {  // clusters tie: taken by id
    MethodScenario s = Base("saap");
    s.uniform_classifier = true;
    s.type = type;
    s.name = std::string("saap_UniformClassifier_") + TypeSuffix(type);
    scenarios.push_back(s);
  }
  return scenarios;
}

class MethodReferenceTest : public ::testing::TestWithParam<MethodScenario> {};

TEST_P(MethodReferenceTest, MatchesReferenceAtEveryStep) {
  ScenarioOutcome outcome;
  RunScenario(GetParam(), &outcome);
  EXPECT_GT(outcome.keys_left_out, 0) << "no step was sparse";
}

std::string ScenarioName(const ::testing::TestParamInfo<MethodScenario>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Methods, MethodReferenceTest, ::testing::ValuesIn(ReferenceScenarios()), ScenarioName);

// With rules that cover every key, each method attends every visible key, so it equals dense attention.
class MethodCoveringAllTest : public ::testing::TestWithParam<MethodScenario> {};

TEST_P(MethodCoveringAllTest, EqualsDense) {
  ScenarioOutcome outcome;
  RunScenario(GetParam(), &outcome);  // checks the output against the reference over the keys attended
  EXPECT_EQ(outcome.keys_left_out, 0);
}

std::vector<MethodScenario> CoveringScenarios() {
  std::vector<MethodScenario> scenarios;
  for (const char* method : {"topk", "streaming", "quest", "loki", "saap", "hash", "block", "hyper"}) {
    for (DataType type : {DataType::kFloat32, DataType::kFloat16}) {
      MethodScenario s = Base(method);
      s.type = type;
      s.grid_values = false;
      s.attributes.budget = 1.0f;
      s.attributes.window = 100;            // streaming: the window holds every key
      s.zero_hash_projections = true;       // hash: one bucket for all
      s.attributes.gamma = 1.0f;            // block: every block
      s.name = std::string(method) + "_" + TypeSuffix(type);
      scenarios.push_back(s);
    }
  }
  return scenarios;
}

INSTANTIATE_TEST_SUITE_P(Methods, MethodCoveringAllTest, ::testing::ValuesIn(CoveringScenarios()), ScenarioName);

// The state of a cache does not depend on the steps that built it: one prompt, a chunked prompt
// and decode steps, or a rebuild from the cache give the same rows, in shared or separate buffers.
class MethodStateTest : public ::testing::TestWithParam<MethodScenario> {};

TEST_P(MethodStateTest, IsTheSameHoweverTheCacheWasBuilt) {
  const MethodScenario& base = GetParam();
  std::vector<MethodScenario> ways;
  MethodScenario one_prompt = base;
  one_prompt.steps = {70};
  one_prompt.first_prompt = {70, 61};
  ways.push_back(one_prompt);
  MethodScenario chunked = base;
  chunked.steps = {33, 29, 1, 1, 1, 1, 1, 1, 1, 1};
  chunked.first_prompt = {33, 24};
  ways.push_back(chunked);
  MethodScenario separate = chunked;
  separate.shared_buffers = false;
  ways.push_back(separate);
  if (base.rotary == RotaryKind::kNone || base.attributes.method == "quest") {  // the cache holds the keys summarised
    MethodScenario rebuilt = chunked;
    rebuilt.drop_state_at_step = 2;
    ways.push_back(rebuilt);
  }
  std::vector<ScenarioOutcome> outcomes(ways.size());
  for (size_t i = 0; i < ways.size(); ++i) {
    SCOPED_TRACE("way " + std::to_string(i));
    RunScenario(ways[i], &outcomes[i]);
    if (i > 0) {
      EXPECT_TRUE(outcomes[i].state == outcomes[0].state) << "state differs from one prompt's";
    }
  }
}

std::vector<MethodScenario> StateScenarios() {
  std::vector<MethodScenario> scenarios;
  for (const char* method : {"quest", "loki", "saap", "hash"}) {
    for (DataType type : {DataType::kFloat32, DataType::kFloat16}) {
      for (bool rotary : {false, true}) {
        MethodScenario s = Base(method);
        s.type = type;
        s.grid_values = false;
        s.capacity = 80;
        if (rotary) s.rotary = RotaryKind::kInterleaved;
        s.name = std::string(method) + (rotary ? "_Rotary_" : "_") + TypeSuffix(type);
        scenarios.push_back(s);
      }
    }
  }
  return scenarios;
}

INSTANTIATE_TEST_SUITE_P(Methods, MethodStateTest, ::testing::ValuesIn(StateScenarios()), ScenarioName);

// A hyper prefill long enough for SparseAttention to select and attend it in row slabs (6000 rows
// of at most 1000 + 3 spans per KV head: 3 slabs), which share the keys sorted once, must give
// exactly the output of one attention over the whole step's selection.
TEST(HyperPrefillTest, RowSlabsEqualOneSelection) {
  static StdThreadRunner threads(2);
  constexpr int64_t S = 6000, Hq = 4, Hkv = 2, D = 16, L = 6;
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  auto random = [&](int64_t count) {
    std::vector<float> values(static_cast<size_t>(count));
    for (float& v : values) v = normal(rng);
    return values;
  };
  const std::vector<float> query = random(S * Hq * D), keys = random(Hkv * S * D), values = random(Hkv * S * D);
  const std::vector<float> hyperplanes = random(Hkv * D * L);
  const std::vector<int32_t> past = {0}, key_counts = {S}, rows = {S};
  std::vector<float> sliced(S * Hq * D), whole(S * Hq * D);

  AttentionParams a;
  a.batch = 1;
  a.query_length = S;
  a.num_heads = Hq;
  a.kv_num_heads = Hkv;
  a.head_size = a.v_head_size = D;
  a.query = query.data();
  a.query_strides[0] = S * Hq * D;
  a.query_strides[1] = Hq * D;
  a.query_strides[2] = D;
  a.key_cache = keys.data();
  a.value_cache = values.data();
  a.key_strides[0] = a.value_strides[0] = Hkv * S * D;
  a.key_strides[1] = a.value_strides[1] = S * D;
  a.key_strides[2] = a.value_strides[2] = D;
  std::copy(a.query_strides, a.query_strides + 3, a.output_strides);
  a.past_lengths = past.data();
  a.key_counts = key_counts.data();
  a.valid_query_rows = rows.data();
  a.scale = 0.25f;
  SparseMethodParams m;
  m.method = SparseMethod::kHyper;
  m.budget = 1000.0f;
  m.hash_projections = hyperplanes.data();
  m.hash_rounds = 1;
  m.hash_half_buckets = L;
  m.raw_query = a.query;
  std::copy(a.query_strides, a.query_strides + 3, m.raw_query_strides);

  a.output = sliced.data();
  Status status = cpu::SparseAttention(a, m, threads.runner());
  ASSERT_TRUE(status.ok()) << status.message();
  cpu::SelectedKeys selected;
  bool sparse = false;
  status = cpu::SelectKeys(a, m, threads.runner(), &selected, &sparse);
  ASSERT_TRUE(status.ok()) << status.message();
  ASSERT_TRUE(sparse);
  a.output = whole.data();
  a.selection = &selected.Flatten();
  status = cpu::ExactAttention(a, threads.runner());
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_TRUE(sliced == whole);
  // Sparse indeed: the last row's KV head 0 lists sink, window and at most 1000 + group - 1 picks.
  const KeySelection& selection = *a.selection;
  int64_t listed = 0;
  for (int64_t span = selection.span_offsets[S - 1]; span < selection.span_offsets[S]; ++span) {
    listed += selection.spans[span].end - selection.spans[span].begin;
  }
  EXPECT_GE(listed, 4 + 64 + 900);
  EXPECT_LE(listed, 4 + 64 + 1001);
}

}  // namespace
}  // namespace ortsparse::testing
