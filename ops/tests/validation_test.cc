// PlanAttention / ValidateAttributes: the exact error for each broken attribute or input, and the
// sizes derived from valid ones.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "attention/attention_validation.h"

namespace ortsparse::attention {
namespace {

// The element values behind the tensors are never read, except for the integer inputs below.
class ValidationTest : public ::testing::Test {
 protected:
  // A valid step: B = 2, S = 3, Hq = 4, Hkv = 2, D = Dv = 8, a past of 10 (concatenation mode).
  void SetUp() override {
    attributes.num_heads = 4;
    attributes.kv_num_heads = 2;
    Set(kQuery, DataType::kFloat32, {2, 3, 32});
    Set(kKey, DataType::kFloat32, {2, 3, 16});
    Set(kValue, DataType::kFloat32, {2, 3, 16});
    Set(kPastKey, DataType::kFloat32, {2, 2, 10, 8});
    Set(kPastValue, DataType::kFloat32, {2, 2, 10, 8});
  }

  void Set(int index, DataType type, std::vector<int64_t> shape, const void* data = nullptr) {
    inputs[index].present = true;
    inputs[index].type = type;
    inputs[index].shape = std::move(shape);
    inputs[index].data = data;
  }

  // GroupQueryAttention mode over a cache of `total` positions.
  void UseSeqlens(std::vector<int32_t> values, int32_t total) {
    seqlens = std::move(values);
    total_length = {total};
    Set(kSeqlensK, DataType::kInt32, {static_cast<int64_t>(seqlens.size())}, seqlens.data());
    Set(kTotalSequenceLength, DataType::kInt32, {1}, total_length.data());
  }

  void UseRotary(int64_t max_position, int64_t half_rotary_dim) {
    attributes.do_rotary = 1;
    Set(kCosCache, DataType::kFloat32, {max_position, half_rotary_dim});
    Set(kSinCache, DataType::kFloat32, {max_position, half_rotary_dim});
  }

  std::string Error() {
    const Status status = PlanAttention(attributes, inputs, &plan);
    return status.ok() ? "ok" : status.message();
  }
  std::string AttributeError() {
    const Status status = ValidateAttributes(attributes);
    return status.ok() ? "ok" : status.message();
  }

  AttentionAttributes attributes;
  AttentionInputs inputs;
  AttentionPlan plan;
  std::vector<int32_t> seqlens, total_length;
  std::vector<int64_t> positions;
};

TEST_F(ValidationTest, AcceptsTheBaseCase) { EXPECT_EQ(Error(), "ok"); }

TEST_F(ValidationTest, RejectsBadHeadCounts) {
  attributes.num_heads = 0;
  EXPECT_EQ(AttributeError(), "SparseAttention: num_heads (0) must be positive");
  attributes.num_heads = 12;
  attributes.kv_num_heads = -1;
  EXPECT_EQ(AttributeError(), "SparseAttention: kv_num_heads (-1) must be positive");
  attributes.kv_num_heads = 5;
  EXPECT_EQ(AttributeError(), "SparseAttention: num_heads (12) must be a multiple of kv_num_heads (5)");
  EXPECT_EQ(Error(), "SparseAttention: num_heads (12) must be a multiple of kv_num_heads (5)");
}

TEST_F(ValidationTest, RejectsBadScaleAndSoftcap) {
  attributes.scale = -1.0f;
  EXPECT_EQ(AttributeError(), "SparseAttention: scale (-1) must be finite and positive");
  attributes.scale = std::numeric_limits<float>::infinity();
  EXPECT_EQ(AttributeError(), "SparseAttention: scale (inf) must be finite and positive");
  attributes.scale = 0.0f;
  EXPECT_EQ(AttributeError(), "SparseAttention: scale (0) must be finite and positive");
  attributes.scale.reset();
  attributes.softcap = -0.5f;
  EXPECT_EQ(AttributeError(), "SparseAttention: softcap (-0.5) must be finite and non-negative (0 disables it)");
  attributes.softcap = std::nanf("");
  EXPECT_EQ(AttributeError(), "SparseAttention: softcap (nan) must be finite and non-negative (0 disables it)");
}

TEST_F(ValidationTest, RejectsBadFlagsAndWindow) {
  attributes.is_causal = 2;
  EXPECT_EQ(AttributeError(), "SparseAttention: is_causal (2) must be 0 or 1");
  attributes.is_causal = 1;
  attributes.do_rotary = -1;
  EXPECT_EQ(AttributeError(), "SparseAttention: do_rotary (-1) must be 0 or 1");
  attributes.do_rotary = 0;
  attributes.rotary_interleaved = 3;
  EXPECT_EQ(AttributeError(), "SparseAttention: rotary_interleaved (3) must be 0 or 1");
  attributes.rotary_interleaved = 0;
  attributes.local_window_size = 0;
  EXPECT_EQ(AttributeError(), "SparseAttention: local_window_size (0) must be -1 (disabled) or positive");
  attributes.local_window_size = -2;
  EXPECT_EQ(AttributeError(), "SparseAttention: local_window_size (-2) must be -1 (disabled) or positive");
}

TEST_F(ValidationTest, RejectsBadSparseMethodAttributes) {
  attributes.budget = 0.0f;
  EXPECT_EQ(AttributeError(), "SparseAttention: budget (0) must be finite and positive");
  attributes.budget = 0.5f;
  attributes.sink = -1;
  EXPECT_EQ(AttributeError(), "SparseAttention: sink (-1) must be non-negative");
  attributes.sink = 4;
  attributes.window = -3;
  EXPECT_EQ(AttributeError(), "SparseAttention: window (-3) must be non-negative");
  attributes.window = 64;
  attributes.dense_below = -1;
  EXPECT_EQ(AttributeError(), "SparseAttention: dense_below (-1) must be non-negative");
}

TEST_F(ValidationTest, RejectsBadMethodAttributes) {
  attributes.method = "fast";
  EXPECT_EQ(AttributeError(), "SparseAttention: method 'fast' is not one of dense, topk, streaming, loki, quest, saap, "
                              "hash, block, hyper");
  attributes.method = "quest";
  attributes.page_size = 0;
  EXPECT_EQ(AttributeError(), "SparseAttention: page_size (0) must be at least 1");
  attributes.page_size = 16;
  attributes.rank = 0;
  EXPECT_EQ(AttributeError(), "SparseAttention: rank (0) must be at least 1");
  attributes.rank = 4;
  attributes.block_size = -2;
  EXPECT_EQ(AttributeError(), "SparseAttention: block_size (-2) must be at least 1");
  attributes.block_size = 64;
  attributes.gamma = 0.0f;
  EXPECT_EQ(AttributeError(), "SparseAttention: gamma (0) must be in (0, 1]");
  attributes.gamma = 1.5f;
  EXPECT_EQ(AttributeError(), "SparseAttention: gamma (1.5) must be in (0, 1]");
  attributes.gamma = std::nanf("");
  EXPECT_EQ(AttributeError(), "SparseAttention: gamma (nan) must be in (0, 1]");
  attributes.gamma = 1.0f;
  EXPECT_EQ(AttributeError(), "ok");
}

TEST_F(ValidationTest, RejectsMissingOrMisshapedCalibration) {
  attributes.method = "loki";
  EXPECT_EQ(Error(), "SparseAttention: method 'loki' needs method_data_0 (the PCA basis [kv_num_heads, head_size, "
                     "head_size]), which is missing");
  Set(kMethodData0, DataType::kFloat32, {2, 8, 4});
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 has shape [2, 8, 4] but must be [kv_num_heads, head_size, "
                     "head_size] = [2, 8, 8]");
  Set(kMethodData0, DataType::kFloat32, {2, 8, 8});
  attributes.rank = 9;
  EXPECT_EQ(Error(), "SparseAttention: rank (9) must be at most the head size (8)");
  attributes.rank.reset();
  ASSERT_EQ(Error(), "ok");
  EXPECT_EQ(plan.rank, 2);  // head_size / 4

  attributes.method = "saap";
  inputs[kMethodData0] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: method 'saap' needs method_data_0 (the centroids [kv_num_heads, clusters, "
                     "head_size]), which is missing");
  Set(kMethodData0, DataType::kFloat32, {2, 0, 8});
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 has shape [2, 0, 8] but dimension 1 of [kv_num_heads, clusters, "
                     "head_size] must be positive");
  Set(kMethodData0, DataType::kFloat32, {2, 5, 8});
  EXPECT_EQ(Error(), "SparseAttention: method 'saap' needs method_data_1 (the classifier's first-layer weights "
                     "[num_heads, head_size, hidden]), which is missing");
  Set(kMethodData1, DataType::kFloat32, {4, 8, 6});
  Set(kMethodData2, DataType::kFloat32, {4, 5});
  EXPECT_EQ(Error(), "SparseAttention: method_data_2 has shape [4, 5] but must be [num_heads, hidden] = [4, 6]");
  Set(kMethodData2, DataType::kFloat32, {4, 6});
  Set(kMethodData3, DataType::kFloat32, {4, 6, 5});
  EXPECT_EQ(Error(), "SparseAttention: method_data_3 has shape [4, 6, 5] but must be [num_heads, hidden + 1, "
                     "clusters] = [4, 7, 5]");
  Set(kMethodData3, DataType::kFloat32, {4, 7, 5});
  ASSERT_EQ(Error(), "ok");
  EXPECT_EQ(plan.clusters, 5);
  EXPECT_EQ(plan.classifier_hidden, 6);

  attributes.method = "hash";
  Set(kMethodData0, DataType::kFloat32, {2, 3, 8});
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 has shape [2, 3, 8] but must be [kv_num_heads, rounds, head_size, "
                     "buckets / 2] = [2, *, 8, *]");
  Set(kMethodData0, DataType::kFloat32, {2, 3, 8, 4});
  ASSERT_EQ(Error(), "ok");
  EXPECT_EQ(plan.hash_rounds, 3);
  EXPECT_EQ(plan.hash_half_buckets, 4);
}

TEST_F(ValidationTest, RejectsMissingOrMisshapedHyperplanes) {
  attributes.method = "hyper";
  EXPECT_EQ(Error(), "SparseAttention: method 'hyper' needs method_data_0 (the LSH hyperplanes [kv_num_heads, 1, "
                     "head_size, bits]), which is missing");
  Set(kMethodData0, DataType::kFloat32, {2, 3, 8, 4});  // hash's layout with 3 rounds
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 has shape [2, 3, 8, 4] but must be [kv_num_heads, 1, head_size, "
                     "bits] = [2, 1, 8, *]");
  Set(kMethodData0, DataType::kFloat32, {2, 1, 8});
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 has shape [2, 1, 8] but must be [kv_num_heads, 1, head_size, "
                     "bits] = [2, 1, 8, *]");
  Set(kMethodData0, DataType::kFloat32, {2, 1, 8, 0});
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 has shape [2, 1, 8, 0] but dimension 3 of [kv_num_heads, 1, "
                     "head_size, bits] must be positive");
  Set(kMethodData0, DataType::kFloat32, {2, 1, 8, 25});
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 has shape [2, 1, 8, 25] but its bits (dimension 3 of "
                     "[kv_num_heads, 1, head_size, bits]) must be at most 24, got 25");
  Set(kMethodData0, DataType::kFloat16, {2, 1, 8, 24});
  EXPECT_EQ(Error(), "SparseAttention: method_data_0 must be float (float32), got float16");
  Set(kMethodData0, DataType::kFloat32, {2, 1, 8, 24});
  ASSERT_EQ(Error(), "ok");
  EXPECT_EQ(plan.hash_rounds, 1);
  EXPECT_EQ(plan.hash_half_buckets, 24);
  EXPECT_EQ(plan.state_output, -1);  // no state
  EXPECT_EQ(plan.present_index_shape, (std::vector<int64_t>{2, 2, 0, 0}));
  UseRotary(64, 4);  // codes of the cached (rotated) keys: nothing to rebuild
  EXPECT_EQ(Error(), "ok");
}

// Each method with state: its present shape for T_cap, and its past's checked against the past length.
TEST_F(ValidationTest, ShapesTheMethodState) {
  attributes.method = "quest";
  attributes.page_size = 4;
  ASSERT_EQ(Error(), "ok");  // without a past state: built from the cache
  EXPECT_EQ(plan.state_output, kPresentSummary);
  EXPECT_FALSE(plan.state_has_past);
  EXPECT_EQ(plan.present_summary_shape, (std::vector<int64_t>{2, 2, 4, 16}));  // ceil(13 / 4) pages
  EXPECT_EQ(plan.present_index_shape, (std::vector<int64_t>{2, 2, 0, 0}));
  Set(kPastSummary, DataType::kFloat32, {2, 2, 4, 16});
  EXPECT_EQ(Error(), "SparseAttention: past_summary has shape [2, 2, 4, 16] but must be [batch, kv_num_heads, "
                     "ceil(past_sequence_length / page_size), 2 * head_size] = [2, 2, 3, 16]");
  Set(kPastSummary, DataType::kFloat32, {2, 2, 3, 16});
  ASSERT_EQ(Error(), "ok");
  EXPECT_TRUE(plan.state_has_past);

  attributes.method = "loki";
  Set(kMethodData0, DataType::kFloat32, {2, 8, 8});
  Set(kPastSummary, DataType::kFloat32, {2, 2, 10, 3});
  EXPECT_EQ(Error(), "SparseAttention: past_summary has shape [2, 2, 10, 3] but must be [batch, kv_num_heads, "
                     "past_sequence_length, rank] = [2, 2, 10, 2]");
  Set(kPastSummary, DataType::kFloat32, {2, 2, 10, 2});
  ASSERT_EQ(Error(), "ok");
  EXPECT_EQ(plan.present_summary_shape, (std::vector<int64_t>{2, 2, 13, 2}));

  attributes.method = "saap";
  Set(kMethodData0, DataType::kFloat32, {2, 5, 8});
  Set(kMethodData1, DataType::kFloat32, {4, 8, 6});
  Set(kMethodData2, DataType::kFloat32, {4, 6});
  Set(kMethodData3, DataType::kFloat32, {4, 7, 5});
  Set(kPastIndex, DataType::kInt32, {2, 2, 13, 1});
  EXPECT_EQ(Error(), "SparseAttention: past_index has shape [2, 2, 13, 1] but must be [batch, kv_num_heads, "
                     "past_sequence_length, 1] = [2, 2, 10, 1]");
  Set(kPastIndex, DataType::kInt32, {2, 2, 10, 1});
  ASSERT_EQ(Error(), "ok");
  EXPECT_EQ(plan.state_output, kPresentIndex);
  EXPECT_EQ(plan.present_index_shape, (std::vector<int64_t>{2, 2, 13, 1}));
  EXPECT_EQ(plan.present_summary_shape, (std::vector<int64_t>{2, 2, 10, 2}));  // not saap's: passed through

  attributes.method = "hash";
  Set(kMethodData0, DataType::kFloat32, {2, 3, 8, 4});
  EXPECT_EQ(Error(), "SparseAttention: past_index has shape [2, 2, 10, 1] but must be [batch, kv_num_heads, "
                     "past_sequence_length, rounds of method_data_0] = [2, 2, 10, 3]");
}

// A state of keys before rotary cannot be rebuilt from a rotated cache.
TEST_F(ValidationTest, NeedsThePastStateOfRawKeysWithRotary) {
  attributes.method = "loki";
  Set(kMethodData0, DataType::kFloat32, {2, 8, 8});
  UseRotary(64, 4);
  EXPECT_EQ(Error(), "SparseAttention: method 'loki' needs past_summary when the cache has a past: its state is of the "
                     "keys before the rotary embedding (do_rotary = 1), which the cache does not keep");
  attributes.method = "quest";  // bounds the cached keys: rebuilt from the cache
  EXPECT_EQ(Error(), "ok");
  attributes.method = "loki";
  UseSeqlens({2, 2}, 10);  // both prompts: no past yet
  EXPECT_EQ(Error(), "ok");
}

TEST_F(ValidationTest, RejectsBadQuery) {
  inputs[kQuery] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: query is required");
  Set(kQuery, DataType::kInt32, {2, 3, 32});
  EXPECT_EQ(Error(), "SparseAttention: query must be float32 or float16, got int32");
  Set(kQuery, DataType::kFloat32, {6, 32});
  EXPECT_EQ(Error(),
            "SparseAttention: query must have rank 3 ([batch, sequence_length, num_heads * head_size]), got shape [6, 32]");
  attributes.num_heads = 3;
  attributes.kv_num_heads = 1;
  Set(kQuery, DataType::kFloat32, {2, 3, 100});
  EXPECT_EQ(Error(), "SparseAttention: query hidden size (100) is not divisible by num_heads (3)");
  Set(kQuery, DataType::kFloat32, {2, 3, 0});
  EXPECT_EQ(Error(), "SparseAttention: query hidden size (0) must be positive");
}

TEST_F(ValidationTest, RejectsBadKeyAndValue) {
  inputs[kKey] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: key is required");
  Set(kKey, DataType::kFloat16, {2, 3, 16});
  EXPECT_EQ(Error(), "SparseAttention: key must be of the type of query (float32), got float16");
  Set(kKey, DataType::kFloat32, {2, 3, 2, 8});
  EXPECT_EQ(Error(), "SparseAttention: key must have rank 3 ([batch, kv_sequence_length, kv_num_heads * head_size]), "
                     "got shape [2, 3, 2, 8]");
  Set(kKey, DataType::kFloat32, {1, 3, 16});
  EXPECT_EQ(Error(), "SparseAttention: key has shape [1, 3, 16] but must be [batch, *, kv_num_heads * head_size] = "
                     "[2, *, 16]");
  Set(kKey, DataType::kFloat32, {2, 3, 24});
  EXPECT_EQ(Error(), "SparseAttention: key has shape [2, 3, 24] but must be [batch, *, kv_num_heads * head_size] = "
                     "[2, *, 16]");
  Set(kKey, DataType::kFloat32, {2, 3, 16});
  inputs[kValue] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: value is required");
  Set(kValue, DataType::kFloat32, {2, 16});
  EXPECT_EQ(Error(), "SparseAttention: value must have rank 3 ([batch, kv_sequence_length, kv_num_heads * "
                     "v_head_size]), got shape [2, 16]");
  Set(kValue, DataType::kFloat32, {2, 4, 16});
  EXPECT_EQ(Error(), "SparseAttention: value has shape [2, 4, 16] but must be [batch, kv_sequence_length of key, *] = "
                     "[2, 3, *]");
  Set(kValue, DataType::kFloat32, {2, 3, 15});
  EXPECT_EQ(Error(), "SparseAttention: value hidden size (15) is not divisible by kv_num_heads (2)");
}

TEST_F(ValidationTest, RejectsBadPast) {
  inputs[kPastValue] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: past_key is given without past_value");
  inputs[kPastKey] = TensorInfo();
  Set(kPastValue, DataType::kFloat32, {2, 2, 10, 8});
  EXPECT_EQ(Error(), "SparseAttention: past_value is given without past_key");
  Set(kPastKey, DataType::kFloat16, {2, 2, 10, 8});
  EXPECT_EQ(Error(), "SparseAttention: past_key must be of the type of query (float32), got float16");
  Set(kPastKey, DataType::kFloat32, {2, 4, 10, 8});
  EXPECT_EQ(Error(), "SparseAttention: past_key has shape [2, 4, 10, 8] but must be [batch, kv_num_heads, *, "
                     "head_size] = [2, 2, *, 8]");
  Set(kPastKey, DataType::kFloat32, {2, 2, 10, 8});
  Set(kPastValue, DataType::kFloat32, {2, 2, 9, 8});
  EXPECT_EQ(Error(), "SparseAttention: past_value has shape [2, 2, 9, 8] but must be [batch, kv_num_heads, "
                     "past_sequence_length of past_key, v_head_size] = [2, 2, 10, 8]");
}

TEST_F(ValidationTest, RejectsBadSequenceLengthInputs) {
  UseSeqlens({5, 6}, 20);
  inputs[kTotalSequenceLength] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: seqlens_k is given without total_sequence_length");
  inputs[kSeqlensK] = TensorInfo();
  Set(kTotalSequenceLength, DataType::kInt32, {1}, total_length.data());
  EXPECT_EQ(Error(), "SparseAttention: total_sequence_length is given without seqlens_k");
  UseSeqlens({5, 6}, 20);
  inputs[kSeqlensK].type = DataType::kInt64;
  EXPECT_EQ(Error(), "SparseAttention: seqlens_k must be integer (int32), got int64");
  UseSeqlens({5, 6, 7}, 20);
  EXPECT_EQ(Error(), "SparseAttention: seqlens_k has shape [3] but must be [batch] = [2]");
  UseSeqlens({5, 6}, 20);
  inputs[kTotalSequenceLength].type = DataType::kFloat32;
  EXPECT_EQ(Error(), "SparseAttention: total_sequence_length must be integer (int32), got float32");
  inputs[kTotalSequenceLength].type = DataType::kInt32;
  inputs[kTotalSequenceLength].shape = {2};
  EXPECT_EQ(Error(), "SparseAttention: total_sequence_length must be a scalar or have shape [1], got [2]");
  inputs[kTotalSequenceLength].shape = {};
  EXPECT_EQ(Error(), "ok");
  Set(kKey, DataType::kFloat32, {2, 4, 16});
  Set(kValue, DataType::kFloat32, {2, 4, 16});
  EXPECT_EQ(Error(), "SparseAttention: key sequence length (4) must equal the query sequence length (3) when "
                     "seqlens_k is given");
}

TEST_F(ValidationTest, RejectsBadSequenceLengthValues) {
  UseSeqlens({5, 6}, -1);
  EXPECT_EQ(Error(), "SparseAttention: total_sequence_length (-1) must be non-negative");
  UseSeqlens({5, -2}, 20);
  EXPECT_EQ(Error(), "SparseAttention: seqlens_k[1] (-2) must be non-negative");
  Set(kPastKey, DataType::kFloat32, {2, 2, 4096, 8});
  Set(kPastValue, DataType::kFloat32, {2, 2, 4096, 8});
  UseSeqlens({5, 5000}, 4000);
  EXPECT_EQ(Error(), "SparseAttention: seqlens_k[1] (5000) + 1 exceeds the cache capacity past_key sequence length "
                     "(4096)");
  UseSeqlens({5, 5000}, 4097);
  EXPECT_EQ(Error(), "SparseAttention: seqlens_k[1] (5000) + 1 exceeds the cache capacity total_sequence_length "
                     "(4097)");
  Set(kPastKey, DataType::kFloat32, {2, 2, 10, 8});
  Set(kPastValue, DataType::kFloat32, {2, 2, 10, 8});
  UseSeqlens({12, 13}, 20);  // sequence 0: a past of exactly 10 is fine
  EXPECT_EQ(Error(), "SparseAttention: seqlens_k[1] (13) implies a past of 11 positions but past_key holds 10");
}

TEST_F(ValidationTest, RejectsBadRotaryInputs) {
  attributes.do_rotary = 1;
  EXPECT_EQ(Error(), "SparseAttention: do_rotary is 1 but cos_cache and sin_cache are not given");
  UseRotary(64, 4);
  inputs[kSinCache] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: cos_cache is given without sin_cache");
  UseRotary(64, 4);
  inputs[kCosCache] = TensorInfo();
  EXPECT_EQ(Error(), "SparseAttention: sin_cache is given without cos_cache");
  UseRotary(64, 4);
  inputs[kCosCache].type = DataType::kFloat16;
  EXPECT_EQ(Error(), "SparseAttention: cos_cache must be of the type of query (float32), got float16");
  UseRotary(64, 4);
  inputs[kSinCache].shape = {64, 4, 1};
  EXPECT_EQ(Error(), "SparseAttention: sin_cache must have rank 2 ([max_position, rotary_dim / 2]), got shape "
                     "[64, 4, 1]");
  UseRotary(64, 4);
  inputs[kSinCache].shape = {32, 4};
  EXPECT_EQ(Error(), "SparseAttention: sin_cache has shape [32, 4] but must be the shape of cos_cache = [64, 4]");
  UseRotary(64, 0);
  EXPECT_EQ(Error(), "SparseAttention: cos_cache dimension 1 (0) must be positive");
  UseRotary(64, 5);
  EXPECT_EQ(Error(), "SparseAttention: rotary dimension (2 * cos_cache dimension 1 = 10) exceeds the head size (8)");
}

TEST_F(ValidationTest, RejectsRotaryPositionsOutsideTheTables) {
  UseRotary(12, 4);  // default positions: past 10 + rows 0..2 reach 12
  EXPECT_EQ(Error(), "SparseAttention: rotary position 12 (past length 10 + row 2) of sequence 0 is beyond the rows "
                     "of cos_cache (12)");
  UseRotary(13, 4);
  EXPECT_EQ(Error(), "ok");
  positions = {0, 1, 2, 3, 4, 13};
  Set(kPositionIds, DataType::kInt64, {2, 3}, positions.data());
  EXPECT_EQ(Error(), "SparseAttention: position_ids[1, 2] (13) is outside the rows of cos_cache [0, 13)");
  positions = {0, -1, 2};
  Set(kPositionIds, DataType::kInt64, {1, 3}, positions.data());
  EXPECT_EQ(Error(), "SparseAttention: position_ids[0, 1] (-1) is outside the rows of cos_cache [0, 13)");
  positions = {0, 1, 2};
  EXPECT_EQ(Error(), "ok");
  EXPECT_EQ(plan.position_ids_batch_stride, 0);
}

TEST_F(ValidationTest, RejectsBadPositionIds) {
  UseRotary(64, 4);
  positions = {0, 1, 2, 3, 4, 5};
  Set(kPositionIds, DataType::kInt32, {2, 3}, positions.data());
  EXPECT_EQ(Error(), "SparseAttention: position_ids must be integer (int64), got int32");
  Set(kPositionIds, DataType::kInt64, {6}, positions.data());
  EXPECT_EQ(Error(), "SparseAttention: position_ids must have rank 2 ([batch or 1, sequence_length]), got shape [6]");
  Set(kPositionIds, DataType::kInt64, {3, 2}, positions.data());
  EXPECT_EQ(Error(), "SparseAttention: position_ids has shape [3, 2] but must be [batch, sequence_length] = [2, 3] or "
                     "[1, sequence_length]");
  Set(kPositionIds, DataType::kInt64, {2, 3}, positions.data());
  Set(kKey, DataType::kFloat32, {2, 4, 16});
  Set(kValue, DataType::kFloat32, {2, 4, 16});
  EXPECT_EQ(Error(), "SparseAttention: position_ids give positions to query rows only; the key sequence length (4) "
                     "must equal the query sequence length (3) to use them");
  attributes.do_rotary = 0;  // then position_ids are not used, and any key length goes
  EXPECT_EQ(Error(), "ok");
}

TEST_F(ValidationTest, RejectsBadMasks) {
  Set(kAttentionMask, DataType::kFloat16, {3, 13});
  EXPECT_EQ(Error(), "SparseAttention: attention_mask must be bool or of the type of query (float32), got float16");
  Set(kAttentionMask, DataType::kBool, {13});
  EXPECT_EQ(Error(), "SparseAttention: attention_mask must have rank 2, 3 or 4, got shape [13]");
  Set(kAttentionMask, DataType::kBool, {1, 2, 4, 3, 13});
  EXPECT_EQ(Error(), "SparseAttention: attention_mask must have rank 2, 3 or 4, got shape [1, 2, 4, 3, 13]");
  Set(kAttentionMask, DataType::kBool, {2, 13});
  EXPECT_EQ(Error(), "SparseAttention: attention_mask has shape [2, 13], which does not broadcast to [batch, "
                     "num_heads, sequence_length, *] = [2, 4, 3, *]");
  Set(kAttentionMask, DataType::kFloat32, {2, 2, 3, 13});
  EXPECT_EQ(Error(), "SparseAttention: attention_mask has shape [2, 2, 3, 13], which does not broadcast to [batch, "
                     "num_heads, sequence_length, *] = [2, 4, 3, *]");
  Set(kAttentionMask, DataType::kBool, {3, 14});
  EXPECT_EQ(Error(), "SparseAttention: attention_mask has 14 columns but the present cache holds 13 positions");
}

TEST_F(ValidationTest, RejectsBadMethodState) {
  Set(kPastIndex, DataType::kInt64, {2, 2, 1, 1});
  EXPECT_EQ(Error(), "SparseAttention: past_index must be integer (int32), got int64");
  Set(kPastIndex, DataType::kInt32, {2, 3, 1, 1});
  EXPECT_EQ(Error(), "SparseAttention: past_index has shape [2, 3, 1, 1] but must be [batch, kv_num_heads, *, *] = "
                     "[2, 2, *, *]");
  Set(kPastIndex, DataType::kInt32, {2, 2, 5, 3});
  Set(kPastSummary, DataType::kFloat16, {2, 2, 1, 8});
  EXPECT_EQ(Error(), "SparseAttention: past_summary must be of the type of query (float32), got float16");
  Set(kPastSummary, DataType::kFloat32, {2, 2, 8});
  EXPECT_EQ(Error(), "SparseAttention: past_summary has shape [2, 2, 8] but must be [batch, kv_num_heads, *, *] = "
                     "[2, 2, *, *]");
  Set(kPastSummary, DataType::kFloat32, {2, 2, 1, 8});
  Set(kMethodData2, DataType::kFloat16, {4});
  EXPECT_EQ(Error(), "SparseAttention: method_data_2 must be float (float32), got float16");
  Set(kMethodData2, DataType::kFloat32, {4});
  EXPECT_EQ(Error(), "ok");
  EXPECT_EQ(plan.present_index_shape, (std::vector<int64_t>{2, 2, 5, 3}));
  EXPECT_EQ(plan.present_summary_shape, (std::vector<int64_t>{2, 2, 1, 8}));
}

TEST_F(ValidationTest, RejectsPresentLengthsBeyondInt32) {
  Set(kPastKey, DataType::kFloat32, {2, 2, std::numeric_limits<int32_t>::max(), 8});
  Set(kPastValue, DataType::kFloat32, {2, 2, std::numeric_limits<int32_t>::max(), 8});
  EXPECT_EQ(Error(), "SparseAttention: the present sequence length (2147483650) exceeds 2147483647");
}

TEST_F(ValidationTest, DerivesConcatenationSizes) {
  Set(kAttentionMask, DataType::kBool, {3, 11});  // [S, L]: one mask for every sequence and head
  attributes.scale = 0.5f;
  ASSERT_EQ(Error(), "ok");
  EXPECT_EQ(plan.type, DataType::kFloat32);
  EXPECT_EQ(plan.batch, 2);
  EXPECT_EQ(plan.query_length, 3);
  EXPECT_EQ(plan.kv_length, 3);
  EXPECT_EQ(plan.head_size, 8);
  EXPECT_EQ(plan.v_head_size, 8);
  EXPECT_EQ(plan.past_length, 10);
  EXPECT_EQ(plan.present_length, 13);
  EXPECT_FALSE(plan.uses_seqlens);
  EXPECT_EQ(plan.scale, 0.5f);
  EXPECT_TRUE(plan.has_mask);
  EXPECT_EQ(plan.mask_length, 11);
  EXPECT_EQ(plan.mask_strides[0], 0);
  EXPECT_EQ(plan.mask_strides[1], 0);
  EXPECT_EQ(plan.mask_strides[2], 11);
  EXPECT_EQ(plan.past_lengths, (std::vector<int32_t>{10, 10}));
  EXPECT_EQ(plan.valid_query_rows, (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(plan.append_counts, (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(plan.key_counts, (std::vector<int32_t>{13, 13}));
  EXPECT_EQ(plan.present_index_shape, (std::vector<int64_t>{2, 2, 0, 0}));
}

TEST_F(ValidationTest, DerivesGroupQueryAttentionSizes) {
  Set(kValue, DataType::kFloat32, {2, 3, 24});  // Dv = 12
  Set(kPastValue, DataType::kFloat32, {2, 2, 10, 12});
  Set(kAttentionMask, DataType::kFloat32, {2, 1, 3, 16});
  UseSeqlens({1, 9}, 16);  // sequence 0: a 2-token prompt padded to 3; sequence 1: past 7
  UseRotary(32, 2);
  ASSERT_EQ(Error(), "ok");
  EXPECT_TRUE(plan.uses_seqlens);
  EXPECT_EQ(plan.v_head_size, 12);
  EXPECT_EQ(plan.present_length, 16);
  EXPECT_FLOAT_EQ(plan.scale, 1.0f / std::sqrt(8.0f));
  EXPECT_EQ(plan.rotary_dim, 4);
  EXPECT_EQ(plan.max_position, 32);
  EXPECT_EQ(plan.mask_strides[0], 48);
  EXPECT_EQ(plan.mask_strides[1], 0);
  EXPECT_EQ(plan.mask_strides[2], 16);
  EXPECT_EQ(plan.past_lengths, (std::vector<int32_t>{0, 7}));
  EXPECT_EQ(plan.valid_query_rows, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(plan.append_counts, (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(plan.key_counts, (std::vector<int32_t>{2, 10}));
}

}  // namespace
}  // namespace ortsparse::attention
