#include "attention/step_params.h"

#include <algorithm>
#include <vector>

namespace ortsparse::attention {
namespace {

// Contiguous strides of [b, i, h, d] tensors (new rows, queries, outputs) ...
void SetSequenceMajorStrides(int64_t length, int64_t heads, int64_t head_size, int64_t strides[3]) {
  strides[0] = length * heads * head_size;
  strides[1] = heads * head_size;
  strides[2] = head_size;
}

// ... and of [b, h, j, d] ones (caches).
void SetHeadMajorStrides(int64_t heads, int64_t length, int64_t head_size, int64_t strides[3]) {
  strides[0] = heads * length * head_size;
  strides[1] = length * head_size;
  strides[2] = head_size;
}

RotaryEmbedding MakeRotary(const AttentionAttributes& attributes, const AttentionInputs& inputs,
                           const AttentionPlan& plan) {
  RotaryEmbedding rotary;
  rotary.cos_cache = inputs[kCosCache].data;
  rotary.sin_cache = inputs[kSinCache].data;
  rotary.max_position = plan.max_position;
  rotary.rotary_dim = plan.rotary_dim;
  rotary.interleaved = attributes.rotary_interleaved == 1;
  if (inputs[kPositionIds].present) {
    rotary.position_ids = static_cast<const int64_t*>(inputs[kPositionIds].data);
  }
  rotary.position_ids_batch_stride = plan.position_ids_batch_stride;
  return rotary;
}

KvAppendParams DescribeAppend(const AttentionInputs& inputs, const AttentionPlan& plan, const SequenceLengths& lengths,
                              bool is_key, void* cache, bool in_place, const RotaryEmbedding* rotary) {
  const int64_t width = is_key ? plan.head_size : plan.v_head_size;
  KvAppendParams append;
  append.type = plan.type;
  append.batch = plan.batch;
  append.kv_num_heads = plan.kv_num_heads;
  append.head_size = width;
  append.present_length = plan.present_length;
  append.past = inputs[is_key ? kPastKey : kPastValue].data;
  SetHeadMajorStrides(plan.kv_num_heads, plan.past_length, width, append.past_strides);
  append.new_rows = inputs[is_key ? kKey : kValue].data;
  SetSequenceMajorStrides(plan.kv_length, plan.kv_num_heads, width, append.new_rows_strides);
  append.present = cache;
  SetHeadMajorStrides(plan.kv_num_heads, plan.present_length, width, append.present_strides);
  append.in_place = in_place;
  append.past_lengths = lengths.past_lengths;
  append.append_counts = lengths.append_counts;
  append.rotary = rotary;
  return append;
}

const std::vector<int64_t>& MethodStateShape(const AttentionPlan& plan) {
  return plan.state_output == kPresentIndex ? plan.present_index_shape : plan.present_summary_shape;
}

SparseMethodParams MakeMethodParams(const AttentionAttributes& attributes, const AttentionInputs& inputs,
                                    const AttentionPlan& plan, const AttentionOutputs& outputs) {
  SparseMethodParams m;
  m.method = plan.method;
  m.budget = attributes.budget;
  m.sink = attributes.sink;
  m.window = attributes.window;
  m.dense_below = attributes.dense_below;
  m.page_size = attributes.page_size;
  m.rank = plan.rank;
  m.block_size = attributes.block_size;
  m.gamma = attributes.gamma;
  m.raw_query = inputs[kQuery].data;
  SetSequenceMajorStrides(plan.query_length, plan.num_heads, plan.head_size, m.raw_query_strides);
  if (SummarisesRawKeys(plan.method)) {
    m.raw_keys = inputs[kKey].data;
    SetSequenceMajorStrides(plan.kv_length, plan.kv_num_heads, plan.head_size, m.raw_keys_strides);
  }
  auto calibration = [&](int index) { return static_cast<const float*>(inputs[index].data); };
  switch (plan.method) {
    case SparseMethod::kLoki:
      m.pca_basis = calibration(kMethodData0);
      break;
    case SparseMethod::kSaap:
      m.centroids = calibration(kMethodData0);
      m.clusters = plan.clusters;
      m.classifier_weights = calibration(kMethodData1);
      m.classifier_bias = calibration(kMethodData2);
      m.classifier_output = calibration(kMethodData3);
      m.classifier_hidden = plan.classifier_hidden;
      break;
    case SparseMethod::kHash:
    case SparseMethod::kHyper:  // [Hkv, 1, D, L] hyperplanes: one round of L columns
      m.hash_projections = calibration(kMethodData0);
      m.hash_rounds = plan.hash_rounds;
      m.hash_half_buckets = plan.hash_half_buckets;
      break;
    default:
      break;
  }
  if (plan.state_output >= 0) {
    const std::vector<int64_t>& shape = MethodStateShape(plan);
    MethodState& state = m.state;
    state.width = plan.state_width;
    state.present_rows = shape[2];
    state.present = outputs.method_state;
    SetHeadMajorStrides(shape[1], shape[2], shape[3], state.present_strides);
    if (plan.state_has_past) {
      const TensorInfo& past =
          inputs[plan.state_output == kPresentIndex ? kPastIndex : kPastSummary];
      state.past = past.data;
      SetHeadMajorStrides(past.shape[1], past.shape[2], past.shape[3], state.past_strides);
      state.in_place = outputs.method_state_is_past;
    }
  }
  return m;
}

}  // namespace

size_t RotatedQueryBytes(const AttentionPlan& plan) {
  return static_cast<size_t>(plan.batch * plan.query_length * plan.num_heads * plan.head_size *
                             DataTypeSize(plan.type));
}

size_t MethodStateBytes(const AttentionPlan& plan) {
  if (plan.state_output < 0) return 0;
  size_t elements = 1;
  for (int64_t dim : MethodStateShape(plan)) elements *= static_cast<size_t>(dim);
  const int64_t element_size = plan.state_output == kPresentIndex ? 4 : DataTypeSize(plan.type);
  return elements * static_cast<size_t>(element_size);
}

void DescribeStep(const AttentionAttributes& attributes, const AttentionInputs& inputs, const AttentionPlan& plan,
                  const AttentionOutputs& outputs, const SequenceLengths& lengths, StepParams* step) {
  step->rotate_query = plan.rotary_dim > 0;
  step->rotary = step->rotate_query ? MakeRotary(attributes, inputs, plan) : RotaryEmbedding();
  const RotaryEmbedding* rotary = step->rotate_query ? &step->rotary : nullptr;
  step->key_append = DescribeAppend(inputs, plan, lengths, /*is_key=*/true, outputs.key_cache,
                                    outputs.key_cache_is_past, rotary);
  step->value_append = DescribeAppend(inputs, plan, lengths, /*is_key=*/false, outputs.value_cache,
                                      outputs.value_cache_is_past, nullptr);

  AttentionParams& params = step->attention;
  params = AttentionParams();
  params.type = plan.type;
  params.batch = plan.batch;
  params.query_length = plan.query_length;
  params.num_heads = plan.num_heads;
  params.kv_num_heads = plan.kv_num_heads;
  params.head_size = plan.head_size;
  params.v_head_size = plan.v_head_size;
  params.query = inputs[kQuery].data;
  SetSequenceMajorStrides(plan.query_length, plan.num_heads, plan.head_size, params.query_strides);
  if (step->rotate_query) {  // into scratch: the query input is never written
    RotaryParams& rotate = step->query_rotation;
    rotate = RotaryParams();
    rotate.type = plan.type;
    rotate.batch = plan.batch;
    rotate.sequence_length = plan.query_length;
    rotate.num_heads = plan.num_heads;
    rotate.head_size = plan.head_size;
    rotate.input = params.query;
    std::copy(params.query_strides, params.query_strides + 3, rotate.input_strides);
    rotate.output = outputs.rotated_query;
    std::copy(params.query_strides, params.query_strides + 3, rotate.output_strides);
    rotate.past_lengths = lengths.past_lengths;
    rotate.row_counts = lengths.valid_query_rows;
    rotate.embedding = step->rotary;
    params.query = outputs.rotated_query;
  }
  params.key_cache = outputs.key_cache;
  SetHeadMajorStrides(plan.kv_num_heads, plan.present_length, plan.head_size, params.key_strides);
  params.value_cache = outputs.value_cache;
  SetHeadMajorStrides(plan.kv_num_heads, plan.present_length, plan.v_head_size, params.value_strides);
  params.output = outputs.output;
  SetSequenceMajorStrides(plan.query_length, plan.num_heads, plan.v_head_size, params.output_strides);
  params.past_lengths = lengths.past_lengths;
  params.key_counts = lengths.key_counts;
  params.valid_query_rows = lengths.valid_query_rows;
  params.scale = plan.scale;
  params.softcap = attributes.softcap;
  params.causal = attributes.is_causal == 1;
  params.local_window = attributes.local_window_size;
  if (plan.has_mask) {
    params.mask.data = inputs[kAttentionMask].data;
    params.mask.type = plan.mask_type;
    params.mask.batch_stride = plan.mask_strides[0];
    params.mask.head_stride = plan.mask_strides[1];
    params.mask.row_stride = plan.mask_strides[2];
    params.mask.length = plan.mask_length;
  }
  step->method = MakeMethodParams(attributes, inputs, plan, outputs);
}

}  // namespace ortsparse::attention
