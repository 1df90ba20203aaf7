// The kernels' view of one SparseAttention step, once PlanAttention has accepted the inputs: the
// parameter structs of the cache append, the query rotation, the attention and the method, filled
// from the op's inputs, plan and output buffers. Independent of the execution provider: the
// pointers are whatever memory the inputs and buffers live in (host for the CPU kernels, device
// for the CUDA kernels).
#pragma once

#include <cstddef>
#include <cstdint>

#include "attention/attention_validation.h"
#include "ortsparse/attention_params.h"
#include "ortsparse/sparse_method_params.h"

namespace ortsparse::attention {

// Where the step writes. The caches are [B, Hkv, T_cap, D] and [B, Hkv, T_cap, Dv]: the present
// outputs, or scratch when the graph does not ask for them.
struct AttentionOutputs {
  void* output = nullptr;  // [B, S, Hq * Dv]
  void* key_cache = nullptr;
  bool key_cache_is_past = false;  // key_cache is past_key's buffer: append in place
  void* value_cache = nullptr;
  bool value_cache_is_past = false;
  void* rotated_query = nullptr;  // RotatedQueryBytes(plan) of scratch, with do_rotary only
  // The state of a method that keeps one (plan.state_output), plan.present_{index,summary}_shape:
  // the output, or MethodStateBytes(plan) of scratch.
  void* method_state = nullptr;
  bool method_state_is_past = false;  // method_state is the past state's buffer: update in place
  // Diagnostics, decode steps only: [B, Hkv, 1, T_cap], true for the keys each KV head's group reads.
  bool* selected_keys = nullptr;
};

size_t RotatedQueryBytes(const AttentionPlan& plan);
size_t MethodStateBytes(const AttentionPlan& plan);

// Per-sequence lengths ([B] int32 each, in the kernels' memory): the plan's vectors on the CPU,
// arrays the CUDA kernels derive on the device.
struct SequenceLengths {
  const int32_t* past_lengths = nullptr;
  const int32_t* valid_query_rows = nullptr;
  const int32_t* append_counts = nullptr;
  const int32_t* key_counts = nullptr;
};

// Everything a step's kernels read. The appends point at `rotary`: not copyable.
struct StepParams {
  StepParams() = default;
  StepParams(const StepParams&) = delete;
  StepParams& operator=(const StepParams&) = delete;

  KvAppendParams key_append;    // rotates the new keys when rotate_query is set
  KvAppendParams value_append;
  RotaryEmbedding rotary;
  bool rotate_query = false;  // do_rotary: query_rotation writes outputs.rotated_query
  RotaryParams query_rotation;
  AttentionParams attention;  // reads the rotated queries when rotate_query is set
  SparseMethodParams method;
};

// Fills `step` from the validated inputs (data in the kernels' memory), the plan and the buffers.
void DescribeStep(const AttentionAttributes& attributes, const AttentionInputs& inputs, const AttentionPlan& plan,
                  const AttentionOutputs& outputs, const SequenceLengths& lengths, StepParams* step);

}  // namespace ortsparse::attention
