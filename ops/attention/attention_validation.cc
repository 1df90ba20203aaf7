#include "attention/attention_validation.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

namespace ortsparse::attention {
namespace {

constexpr const char* kOp = "SparseAttention: ";
constexpr int64_t kAnyDim = -1;  // wildcard in an expected shape

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::ostringstream text;
  text << '[';
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text << ", ";
    if (shape[i] == kAnyDim) {
      text << '*';
    } else {
      text << shape[i];
    }
  }
  text << ']';
  return text.str();
}

Status RequireBinaryFlag(const char* name, int64_t value) {
  if (value == 0 || value == 1) return Status::Ok();
  return ErrorStatus(kOp, name, " (", value, ") must be 0 or 1");
}

Status RequireNonNegative(const char* name, int64_t value) {
  if (value >= 0) return Status::Ok();
  return ErrorStatus(kOp, name, " (", value, ") must be non-negative");
}

Status RequireType(int index, const TensorInfo& tensor, DataType expected, const char* what) {
  if (tensor.type == expected) return Status::Ok();
  return ErrorStatus(kOp, InputName(index), " must be ", what, " (", DataTypeName(expected), "), got ",
                     DataTypeName(tensor.type));
}

// `expected` may hold kAnyDim; `layout` names the dimensions, e.g. "[batch, kv_num_heads, *, head_size]".
Status RequireShape(int index, const TensorInfo& tensor, const std::vector<int64_t>& expected, const char* layout) {
  bool matches = tensor.shape.size() == expected.size();
  for (size_t i = 0; matches && i < expected.size(); ++i) {
    matches = expected[i] == kAnyDim || expected[i] == tensor.shape[i];
  }
  if (matches) return Status::Ok();
  return ErrorStatus(kOp, InputName(index), " has shape ", ShapeString(tensor.shape), " but must be ", layout, " = ",
                     ShapeString(expected));
}

Status RequireRank(int index, const TensorInfo& tensor, size_t rank, const char* layout) {
  if (tensor.shape.size() == rank) return Status::Ok();
  return ErrorStatus(kOp, InputName(index), " must have rank ", rank, " (", layout, "), got shape ",
                     ShapeString(tensor.shape));
}

Status RequireBothOrNeither(const AttentionInputs& inputs, int first, int second) {
  if (inputs[first].present == inputs[second].present) return Status::Ok();
  const int given = inputs[first].present ? first : second;
  const int missing = inputs[first].present ? second : first;
  return ErrorStatus(kOp, InputName(given), " is given without ", InputName(missing));
}

int64_t ElementCount(const TensorInfo& tensor) {
  int64_t count = 1;
  for (int64_t dim : tensor.shape) count *= dim;
  return count;
}

// Head size of a [batch, length, heads * head_size] input.
Status SplitHiddenSize(int index, const TensorInfo& tensor, int64_t heads, const char* heads_name, int64_t* head_size) {
  const int64_t hidden = tensor.shape[2];
  if (hidden <= 0) return ErrorStatus(kOp, InputName(index), " hidden size (", hidden, ") must be positive");
  if (hidden % heads != 0) {
    return ErrorStatus(kOp, InputName(index), " hidden size (", hidden, ") is not divisible by ", heads_name, " (",
                       heads, ")");
  }
  *head_size = hidden / heads;
  return Status::Ok();
}

Status PlanQueryKeyValue(const AttentionAttributes& attributes, const AttentionInputs& inputs, bool allow_bfloat16,
                         AttentionPlan* plan) {
  const TensorInfo& query = inputs[kQuery];
  if (!query.present) return ErrorStatus(kOp, "query is required");
  const bool bfloat16 = allow_bfloat16 && query.type == DataType::kBFloat16;
  if (query.type != DataType::kFloat32 && query.type != DataType::kFloat16 && !bfloat16) {
    return ErrorStatus(kOp, "query must be float32 or float16", allow_bfloat16 ? " or bfloat16" : "", ", got ",
                       DataTypeName(query.type));
  }
  plan->type = query.type;
  ORTSPARSE_RETURN_IF_ERROR(RequireRank(kQuery, query, 3, "[batch, sequence_length, num_heads * head_size]"));
  plan->batch = query.shape[0];
  plan->query_length = query.shape[1];
  plan->num_heads = attributes.num_heads;
  plan->kv_num_heads = attributes.kv_num_heads;
  ORTSPARSE_RETURN_IF_ERROR(SplitHiddenSize(kQuery, query, plan->num_heads, "num_heads", &plan->head_size));

  for (int index : {kKey, kValue}) {
    if (!inputs[index].present) return ErrorStatus(kOp, InputName(index), " is required");
    ORTSPARSE_RETURN_IF_ERROR(RequireType(index, inputs[index], plan->type, "of the type of query"));
  }
  const TensorInfo& key = inputs[kKey];
  const TensorInfo& value = inputs[kValue];
  ORTSPARSE_RETURN_IF_ERROR(RequireRank(kKey, key, 3, "[batch, kv_sequence_length, kv_num_heads * head_size]"));
  plan->kv_length = key.shape[1];
  ORTSPARSE_RETURN_IF_ERROR(RequireShape(kKey, key, {plan->batch, kAnyDim, plan->kv_num_heads * plan->head_size},
                                         "[batch, *, kv_num_heads * head_size]"));
  ORTSPARSE_RETURN_IF_ERROR(RequireRank(kValue, value, 3, "[batch, kv_sequence_length, kv_num_heads * v_head_size]"));
  ORTSPARSE_RETURN_IF_ERROR(RequireShape(kValue, value, {plan->batch, plan->kv_length, kAnyDim},
                                         "[batch, kv_sequence_length of key, *]"));
  return SplitHiddenSize(kValue, value, plan->kv_num_heads, "kv_num_heads", &plan->v_head_size);
}

Status PlanPast(const AttentionInputs& inputs, AttentionPlan* plan) {
  ORTSPARSE_RETURN_IF_ERROR(RequireBothOrNeither(inputs, kPastKey, kPastValue));
  if (!inputs[kPastKey].present) return Status::Ok();
  for (int index : {kPastKey, kPastValue}) {
    ORTSPARSE_RETURN_IF_ERROR(RequireType(index, inputs[index], plan->type, "of the type of query"));
  }
  ORTSPARSE_RETURN_IF_ERROR(RequireShape(kPastKey, inputs[kPastKey],
                                         {plan->batch, plan->kv_num_heads, kAnyDim, plan->head_size},
                                         "[batch, kv_num_heads, *, head_size]"));
  plan->past_length = inputs[kPastKey].shape[2];
  return RequireShape(kPastValue, inputs[kPastValue],
                      {plan->batch, plan->kv_num_heads, plan->past_length, plan->v_head_size},
                      "[batch, kv_num_heads, past_sequence_length of past_key, v_head_size]");
}

// Checks seqlens_k and total_sequence_length (shapes and the total's value) and sets present_length.
Status PlanCacheLength(const AttentionInputs& inputs, AttentionPlan* plan) {
  ORTSPARSE_RETURN_IF_ERROR(RequireBothOrNeither(inputs, kSeqlensK, kTotalSequenceLength));
  plan->uses_seqlens = inputs[kSeqlensK].present;
  constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
  if (!plan->uses_seqlens) {
    plan->present_length = plan->past_length + plan->kv_length;
    if (plan->present_length > kInt32Max) {
      return ErrorStatus(kOp, "the present sequence length (", plan->present_length, ") exceeds ", kInt32Max);
    }
    return Status::Ok();
  }
  const TensorInfo& seqlens = inputs[kSeqlensK];
  const TensorInfo& total = inputs[kTotalSequenceLength];
  ORTSPARSE_RETURN_IF_ERROR(RequireType(kSeqlensK, seqlens, DataType::kInt32, "integer"));
  ORTSPARSE_RETURN_IF_ERROR(RequireShape(kSeqlensK, seqlens, {plan->batch}, "[batch]"));
  ORTSPARSE_RETURN_IF_ERROR(RequireType(kTotalSequenceLength, total, DataType::kInt32, "integer"));
  if (ElementCount(total) != 1 || total.shape.size() > 1) {
    return ErrorStatus(kOp, "total_sequence_length must be a scalar or have shape [1], got ", ShapeString(total.shape));
  }
  if (plan->kv_length != plan->query_length) {
    return ErrorStatus(kOp, "key sequence length (", plan->kv_length, ") must equal the query sequence length (",
                       plan->query_length, ") when seqlens_k is given");
  }
  const int64_t total_length = *static_cast<const int32_t*>(total.data);
  ORTSPARSE_RETURN_IF_ERROR(RequireNonNegative("total_sequence_length", total_length));
  plan->present_length = std::max(plan->past_length, total_length);
  return Status::Ok();
}

Status PlanRotary(const AttentionAttributes& attributes, const AttentionInputs& inputs, AttentionPlan* plan) {
  ORTSPARSE_RETURN_IF_ERROR(RequireBothOrNeither(inputs, kCosCache, kSinCache));
  if (attributes.do_rotary == 1 && !inputs[kCosCache].present) {
    return ErrorStatus(kOp, "do_rotary is 1 but cos_cache and sin_cache are not given");
  }
  if (inputs[kCosCache].present) {
    for (int index : {kCosCache, kSinCache}) {
      ORTSPARSE_RETURN_IF_ERROR(RequireType(index, inputs[index], plan->type, "of the type of query"));
      ORTSPARSE_RETURN_IF_ERROR(RequireRank(index, inputs[index], 2, "[max_position, rotary_dim / 2]"));
    }
    const std::vector<int64_t>& table = inputs[kCosCache].shape;
    ORTSPARSE_RETURN_IF_ERROR(RequireShape(kSinCache, inputs[kSinCache], table, "the shape of cos_cache"));
    if (table[1] <= 0) return ErrorStatus(kOp, "cos_cache dimension 1 (", table[1], ") must be positive");
    if (2 * table[1] > plan->head_size) {
      return ErrorStatus(kOp, "rotary dimension (2 * cos_cache dimension 1 = ", 2 * table[1],
                         ") exceeds the head size (", plan->head_size, ")");
    }
    if (attributes.do_rotary == 1) {
      plan->rotary_dim = 2 * table[1];
      plan->max_position = table[0];
    }
  }
  const TensorInfo& positions = inputs[kPositionIds];
  if (!positions.present) return Status::Ok();
  ORTSPARSE_RETURN_IF_ERROR(RequireType(kPositionIds, positions, DataType::kInt64, "integer"));
  ORTSPARSE_RETURN_IF_ERROR(RequireRank(kPositionIds, positions, 2, "[batch or 1, sequence_length]"));
  if ((positions.shape[0] != plan->batch && positions.shape[0] != 1) || positions.shape[1] != plan->query_length) {
    return ErrorStatus(kOp, "position_ids has shape ", ShapeString(positions.shape), " but must be [batch, sequence_length] = ",
                       ShapeString({plan->batch, plan->query_length}), " or [1, sequence_length]");
  }
  if (plan->rotary_dim > 0 && plan->kv_length != plan->query_length) {
    return ErrorStatus(kOp, "position_ids give positions to query rows only; the key sequence length (", plan->kv_length,
                       ") must equal the query sequence length (", plan->query_length, ") to use them");
  }
  plan->position_ids_batch_stride = positions.shape[0] == 1 ? 0 : plan->query_length;
  return Status::Ok();
}

Status PlanMask(const AttentionInputs& inputs, AttentionPlan* plan) {
  const TensorInfo& mask = inputs[kAttentionMask];
  if (!mask.present) return Status::Ok();
  if (mask.type != DataType::kBool && mask.type != plan->type) {
    return ErrorStatus(kOp, "attention_mask must be bool or of the type of query (", DataTypeName(plan->type), "), got ",
                       DataTypeName(mask.type));
  }
  const size_t rank = mask.shape.size();
  if (rank < 2 || rank > 4) {
    return ErrorStatus(kOp, "attention_mask must have rank 2, 3 or 4, got shape ", ShapeString(mask.shape));
  }
  // Right-aligned broadcasting of all but the last dimension against [B, Hq, S].
  const int64_t target[3] = {plan->batch, plan->num_heads, plan->query_length};
  int64_t stride = mask.shape[rank - 1];
  for (int axis = 2; axis >= 0; --axis) {
    const int mask_axis = axis - 4 + static_cast<int>(rank);
    const int64_t dim = mask_axis >= 0 ? mask.shape[mask_axis] : 1;
    if (dim != 1 && dim != target[axis]) {
      return ErrorStatus(kOp, "attention_mask has shape ", ShapeString(mask.shape),
                         ", which does not broadcast to [batch, num_heads, sequence_length, *] = ",
                         ShapeString({plan->batch, plan->num_heads, plan->query_length, kAnyDim}));
    }
    plan->mask_strides[axis] = dim == 1 ? 0 : stride;
    stride *= dim;
  }
  plan->mask_length = mask.shape[rank - 1];
  if (plan->mask_length > plan->present_length) {
    return ErrorStatus(kOp, "attention_mask has ", plan->mask_length, " columns but the present cache holds ",
                       plan->present_length, " positions");
  }
  plan->has_mask = true;
  plan->mask_type = mask.type;
  return Status::Ok();
}

struct MethodName {
  const char* name;
  SparseMethod method;
};
constexpr MethodName kMethodNames[] = {
    {"dense", SparseMethod::kDense}, {"topk", SparseMethod::kTopK}, {"streaming", SparseMethod::kStreaming},
    {"loki", SparseMethod::kLoki},   {"quest", SparseMethod::kQuest}, {"saap", SparseMethod::kSaap},
    {"hash", SparseMethod::kHash},   {"block", SparseMethod::kBlock}, {"hyper", SparseMethod::kHyper}};

constexpr int64_t kMaxHyperBits = 24;  // hyper: a code's rank and position pack into 64 bits

// Calibration input `index` of `method`: given, with the shape `expected` (kAnyDim where a size is
// read from it), described as "<what> <layout>" in errors.
Status RequireMethodData(const std::string& method, const AttentionInputs& inputs, int index,
                         const std::vector<int64_t>& expected, const char* what, const char* layout) {
  const TensorInfo& data = inputs[index];
  if (!data.present) {
    return ErrorStatus(kOp, "method '", method, "' needs ", InputName(index), " (", what, " ", layout,
                       "), which is missing");
  }
  ORTSPARSE_RETURN_IF_ERROR(RequireShape(index, data, expected, layout));
  for (size_t axis = 0; axis < expected.size(); ++axis) {
    if (expected[axis] == kAnyDim && data.shape[axis] <= 0) {
      return ErrorStatus(kOp, InputName(index), " has shape ", ShapeString(data.shape), " but dimension ", axis, " of ",
                         layout, " must be positive");
    }
  }
  return Status::Ok();
}

// The calibration and the state shape of the method, which state it keeps, and its past's shape.
Status PlanMethod(const AttentionAttributes& attributes, const AttentionInputs& inputs, AttentionPlan* plan) {
  plan->method = *ParseMethod(attributes.method);
  const std::string& name = attributes.method;
  const int64_t Hq = plan->num_heads, Hkv = plan->kv_num_heads, D = plan->head_size;
  int64_t keys_per_state_row = 1;  // page_size for quest
  const char* past_layout = nullptr;
  switch (plan->method) {
    case SparseMethod::kQuest:
      plan->state_output = kPresentSummary;
      plan->state_width = 2 * D;
      keys_per_state_row = attributes.page_size;
      past_layout = "[batch, kv_num_heads, ceil(past_sequence_length / page_size), 2 * head_size]";
      break;
    case SparseMethod::kLoki:
      plan->rank = attributes.rank.value_or(std::max<int64_t>(1, D / 4));
      if (plan->rank > D) return ErrorStatus(kOp, "rank (", plan->rank, ") must be at most the head size (", D, ")");
      ORTSPARSE_RETURN_IF_ERROR(RequireMethodData(name, inputs, kMethodData0, {Hkv, D, D}, "the PCA basis",
                                                  "[kv_num_heads, head_size, head_size]"));
      plan->state_output = kPresentSummary;
      plan->state_width = plan->rank;
      past_layout = "[batch, kv_num_heads, past_sequence_length, rank]";
      break;
    case SparseMethod::kSaap: {
      ORTSPARSE_RETURN_IF_ERROR(RequireMethodData(name, inputs, kMethodData0, {Hkv, kAnyDim, D}, "the centroids",
                                                  "[kv_num_heads, clusters, head_size]"));
      plan->clusters = inputs[kMethodData0].shape[1];
      ORTSPARSE_RETURN_IF_ERROR(RequireMethodData(name, inputs, kMethodData1, {Hq, D, kAnyDim},
                                                  "the classifier's first-layer weights",
                                                  "[num_heads, head_size, hidden]"));
      plan->classifier_hidden = inputs[kMethodData1].shape[2];
      const int64_t M = plan->classifier_hidden;
      ORTSPARSE_RETURN_IF_ERROR(RequireMethodData(name, inputs, kMethodData2, {Hq, M},
                                                  "the classifier's first-layer bias", "[num_heads, hidden]"));
      ORTSPARSE_RETURN_IF_ERROR(RequireMethodData(name, inputs, kMethodData3, {Hq, M + 1, plan->clusters},
                                                  "the classifier's second layer", "[num_heads, hidden + 1, clusters]"));
      plan->state_output = kPresentIndex;
      plan->state_width = 1;
      past_layout = "[batch, kv_num_heads, past_sequence_length, 1]";
      break;
    }
    case SparseMethod::kHash:
      ORTSPARSE_RETURN_IF_ERROR(RequireMethodData(name, inputs, kMethodData0, {Hkv, kAnyDim, D, kAnyDim},
                                                  "the LSH projections",
                                                  "[kv_num_heads, rounds, head_size, buckets / 2]"));
      plan->hash_rounds = inputs[kMethodData0].shape[1];
      plan->hash_half_buckets = inputs[kMethodData0].shape[3];
      plan->state_output = kPresentIndex;
      plan->state_width = plan->hash_rounds;
      past_layout = "[batch, kv_num_heads, past_sequence_length, rounds of method_data_0]";
      break;
    case SparseMethod::kHyper: {  // no state
      ORTSPARSE_RETURN_IF_ERROR(RequireMethodData(name, inputs, kMethodData0, {Hkv, 1, D, kAnyDim},
                                                  "the LSH hyperplanes", "[kv_num_heads, 1, head_size, bits]"));
      const int64_t bits = inputs[kMethodData0].shape[3];
      if (bits > kMaxHyperBits) {
        return ErrorStatus(kOp, "method_data_0 has shape ", ShapeString(inputs[kMethodData0].shape),
                           " but its bits (dimension 3 of [kv_num_heads, 1, head_size, bits]) must be at most ",
                           kMaxHyperBits, ", got ", bits);
      }
      plan->hash_rounds = 1;
      plan->hash_half_buckets = bits;
      return Status::Ok();
    }
    default:
      return Status::Ok();
  }
  auto state_rows = [&](int64_t keys) { return (keys + keys_per_state_row - 1) / keys_per_state_row; };
  const int past_index = plan->state_output == kPresentIndex ? kPastIndex : kPastSummary;
  const std::vector<int64_t> present_shape = {plan->batch, Hkv, state_rows(plan->present_length), plan->state_width};
  (plan->state_output == kPresentIndex ? plan->present_index_shape : plan->present_summary_shape) = present_shape;
  // A past state with no rows (a graph's empty default) counts as absent: it is rebuilt from the cache.
  const TensorInfo& past_state = inputs[past_index];
  plan->state_has_past = past_state.present && !(past_state.shape.size() == 4 && past_state.shape[2] == 0);
  if (!plan->state_has_past) return Status::Ok();
  return RequireShape(past_index, inputs[past_index], {plan->batch, Hkv, state_rows(plan->past_length), plan->state_width},
                      past_layout);
}

// Without its past, a state is rebuilt from the cache; the cache holds rotated keys, so methods that
// summarise keys before rotary need the past state once the cache has a past.
Status CheckStateCanBeBuilt(const AttentionAttributes& attributes, const AttentionPlan& plan) {
  if (!SummarisesRawKeys(plan.method) || plan.state_has_past || plan.rotary_dim == 0) return Status::Ok();
  for (int32_t past : plan.past_lengths) {
    if (past > 0) {
      return ErrorStatus(kOp, "method '", attributes.method, "' needs ",
                         InputName(plan.state_output == kPresentIndex ? kPastIndex : kPastSummary),
                         " when the cache has a past: its state is of the keys before the rotary embedding "
                         "(do_rotary = 1), which the cache does not keep");
    }
  }
  return Status::Ok();
}

Status PlanMethodState(const AttentionInputs& inputs, AttentionPlan* plan) {
  const std::vector<int64_t> no_state = {plan->batch, plan->kv_num_heads, 0, 0};
  plan->present_index_shape = no_state;
  plan->present_summary_shape = no_state;
  // A state with no rows may have any batch size (a graph's default for a batch-1 export).
  auto state_shape = [&](int index) -> std::vector<int64_t> {
    const std::vector<int64_t>& shape = inputs[index].shape;
    const bool empty = shape.size() == 4 && shape[2] == 0;
    return {empty ? kAnyDim : plan->batch, plan->kv_num_heads, kAnyDim, kAnyDim};
  };
  auto passed_through = [&](int index) -> std::vector<int64_t> {
    std::vector<int64_t> shape = inputs[index].shape;
    shape[0] = plan->batch;
    return shape;
  };
  if (inputs[kPastIndex].present) {
    ORTSPARSE_RETURN_IF_ERROR(RequireType(kPastIndex, inputs[kPastIndex], DataType::kInt32, "integer"));
    ORTSPARSE_RETURN_IF_ERROR(RequireShape(kPastIndex, inputs[kPastIndex], state_shape(kPastIndex), "[batch, kv_num_heads, *, *]"));
    plan->present_index_shape = passed_through(kPastIndex);
  }
  if (inputs[kPastSummary].present) {
    ORTSPARSE_RETURN_IF_ERROR(RequireType(kPastSummary, inputs[kPastSummary], plan->type, "of the type of query"));
    ORTSPARSE_RETURN_IF_ERROR(
        RequireShape(kPastSummary, inputs[kPastSummary], state_shape(kPastSummary), "[batch, kv_num_heads, *, *]"));
    plan->present_summary_shape = passed_through(kPastSummary);
  }
  for (int index = kMethodData0; index <= kMethodData3; ++index) {
    if (inputs[index].present) ORTSPARSE_RETURN_IF_ERROR(RequireType(index, inputs[index], DataType::kFloat32, "float"));
  }
  return Status::Ok();
}

// Per-sequence lengths from the shapes alone: every sequence has the whole past.
void PlanSequenceDefaults(AttentionPlan* plan) {
  const size_t batch = static_cast<size_t>(plan->batch);
  plan->past_lengths.assign(batch, static_cast<int32_t>(plan->past_length));
  plan->valid_query_rows.assign(batch, static_cast<int32_t>(plan->query_length));
  plan->append_counts.assign(batch, static_cast<int32_t>(plan->kv_length));
  plan->key_counts.assign(batch, static_cast<int32_t>(plan->present_length));
}

// Per-sequence lengths, from seqlens_k's values or from the shapes alone.
Status PlanSequences(const AttentionInputs& inputs, AttentionPlan* plan) {
  const size_t batch = static_cast<size_t>(plan->batch);
  PlanSequenceDefaults(plan);
  if (!plan->uses_seqlens) return Status::Ok();
  const int32_t* seqlens = static_cast<const int32_t*>(inputs[kSeqlensK].data);
  const bool capacity_from_total = plan->present_length > plan->past_length;
  for (size_t b = 0; b < batch; ++b) {
    const int64_t keys = static_cast<int64_t>(seqlens[b]) + 1;
    if (seqlens[b] < 0) return ErrorStatus(kOp, "seqlens_k[", b, "] (", seqlens[b], ") must be non-negative");
    if (keys > plan->present_length) {
      return ErrorStatus(kOp, "seqlens_k[", b, "] (", seqlens[b], ") + 1 exceeds the cache capacity ",
                         capacity_from_total ? "total_sequence_length" : "past_key sequence length", " (",
                         plan->present_length, ")");
    }
    // A first prompt shorter than the padded S: its rows from seqlens_k[b] + 1 on are padding.
    const int64_t past = std::max<int64_t>(0, keys - plan->query_length);
    if (past > plan->past_length) {
      return ErrorStatus(kOp, "seqlens_k[", b, "] (", seqlens[b], ") implies a past of ", past,
                         " positions but past_key holds ", plan->past_length);
    }
    plan->past_lengths[b] = static_cast<int32_t>(past);
    plan->valid_query_rows[b] = static_cast<int32_t>(keys - past);
    plan->append_counts[b] = static_cast<int32_t>(keys - past);
    plan->key_counts[b] = static_cast<int32_t>(keys);
  }
  return Status::Ok();
}

// Every position the rotary embedding will look up must index cos_cache / sin_cache.
Status CheckRotaryPositions(const AttentionInputs& inputs, const AttentionPlan& plan) {
  if (plan.rotary_dim == 0) return Status::Ok();
  const int64_t* position_ids =
      inputs[kPositionIds].present ? static_cast<const int64_t*>(inputs[kPositionIds].data) : nullptr;
  for (int64_t b = 0; b < plan.batch; ++b) {
    const int64_t rows = std::max(plan.valid_query_rows[b], plan.append_counts[b]);
    for (int64_t row = 0; row < rows; ++row) {
      if (position_ids != nullptr) {
        const int64_t id_batch = plan.position_ids_batch_stride == 0 ? 0 : b;
        const int64_t position = position_ids[id_batch * plan.position_ids_batch_stride + row];
        if (position < 0 || position >= plan.max_position) {
          return ErrorStatus(kOp, "position_ids[", id_batch, ", ", row, "] (", position,
                             ") is outside the rows of cos_cache [0, ", plan.max_position, ")");
        }
      } else if (plan.past_lengths[b] + row >= plan.max_position) {
        return ErrorStatus(kOp, "rotary position ", plan.past_lengths[b] + row, " (past length ", plan.past_lengths[b],
                           " + row ", row, ") of sequence ", b, " is beyond the rows of cos_cache (", plan.max_position,
                           ")");
      }
    }
  }
  return Status::Ok();
}

}  // namespace

const char* InputName(int index) {
  static constexpr const char* kNames[kInputCount] = {
      "query",         "key",           "value",         "past_key",       "past_value",    "seqlens_k",
      "total_sequence_length", "cos_cache", "sin_cache", "position_ids",   "attention_mask", "past_index",
      "past_summary",  "method_data_0", "method_data_1", "method_data_2",  "method_data_3"};
  return kNames[index];
}

Status ValidateAttributes(const AttentionAttributes& a) {
  if (a.num_heads <= 0) return ErrorStatus(kOp, "num_heads (", a.num_heads, ") must be positive");
  if (a.kv_num_heads <= 0) return ErrorStatus(kOp, "kv_num_heads (", a.kv_num_heads, ") must be positive");
  if (a.num_heads % a.kv_num_heads != 0) {
    return ErrorStatus(kOp, "num_heads (", a.num_heads, ") must be a multiple of kv_num_heads (", a.kv_num_heads, ")");
  }
  if (a.scale && !(std::isfinite(*a.scale) && *a.scale > 0.0f)) {
    return ErrorStatus(kOp, "scale (", *a.scale, ") must be finite and positive");
  }
  if (!(std::isfinite(a.softcap) && a.softcap >= 0.0f)) {
    return ErrorStatus(kOp, "softcap (", a.softcap, ") must be finite and non-negative (0 disables it)");
  }
  ORTSPARSE_RETURN_IF_ERROR(RequireBinaryFlag("is_causal", a.is_causal));
  ORTSPARSE_RETURN_IF_ERROR(RequireBinaryFlag("do_rotary", a.do_rotary));
  ORTSPARSE_RETURN_IF_ERROR(RequireBinaryFlag("rotary_interleaved", a.rotary_interleaved));
  if (a.local_window_size == 0 || a.local_window_size < -1) {
    return ErrorStatus(kOp, "local_window_size (", a.local_window_size, ") must be -1 (disabled) or positive");
  }
  if (!(std::isfinite(a.budget) && a.budget > 0.0f)) {
    return ErrorStatus(kOp, "budget (", a.budget, ") must be finite and positive");
  }
  ORTSPARSE_RETURN_IF_ERROR(RequireNonNegative("sink", a.sink));
  ORTSPARSE_RETURN_IF_ERROR(RequireNonNegative("window", a.window));
  ORTSPARSE_RETURN_IF_ERROR(RequireNonNegative("dense_below", a.dense_below));
  if (!ParseMethod(a.method)) {
    return ErrorStatus(kOp, "method '", a.method,
                       "' is not one of dense, topk, streaming, loki, quest, saap, hash, block, hyper");
  }
  if (a.page_size < 1) return ErrorStatus(kOp, "page_size (", a.page_size, ") must be at least 1");
  if (a.rank && *a.rank < 1) return ErrorStatus(kOp, "rank (", *a.rank, ") must be at least 1");
  if (a.block_size < 1) return ErrorStatus(kOp, "block_size (", a.block_size, ") must be at least 1");
  if (!(a.gamma > 0.0f && a.gamma <= 1.0f)) return ErrorStatus(kOp, "gamma (", a.gamma, ") must be in (0, 1]");
  return Status::Ok();
}

std::optional<SparseMethod> ParseMethod(const std::string& name) {
  for (const MethodName& entry : kMethodNames) {
    if (name == entry.name) return entry.method;
  }
  return std::nullopt;
}

Status PlanAttention(const AttentionAttributes& attributes, const AttentionInputs& inputs, AttentionPlan* plan,
                     const PlanOptions& options) {
  ORTSPARSE_RETURN_IF_ERROR(ValidateAttributes(attributes));
  *plan = AttentionPlan();
  ORTSPARSE_RETURN_IF_ERROR(PlanQueryKeyValue(attributes, inputs, options.allow_bfloat16, plan));
  ORTSPARSE_RETURN_IF_ERROR(PlanPast(inputs, plan));
  ORTSPARSE_RETURN_IF_ERROR(PlanCacheLength(inputs, plan));
  ORTSPARSE_RETURN_IF_ERROR(PlanRotary(attributes, inputs, plan));
  ORTSPARSE_RETURN_IF_ERROR(PlanMask(inputs, plan));
  ORTSPARSE_RETURN_IF_ERROR(PlanMethodState(inputs, plan));
  ORTSPARSE_RETURN_IF_ERROR(PlanMethod(attributes, inputs, plan));
  plan->scale = attributes.scale ? *attributes.scale : 1.0f / std::sqrt(static_cast<float>(plan->head_size));
  if (options.sequence_values_on_device) {
    PlanSequenceDefaults(plan);
    // Without the lengths, a past that may be non-empty is assumed: the state must be given.
    return CheckStateCanBeBuilt(attributes, *plan);
  }
  ORTSPARSE_RETURN_IF_ERROR(PlanSequences(inputs, plan));
  ORTSPARSE_RETURN_IF_ERROR(CheckStateCanBeBuilt(attributes, *plan));
  return CheckRotaryPositions(inputs, *plan);
}

}  // namespace ortsparse::attention
