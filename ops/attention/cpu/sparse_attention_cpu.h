// One SparseAttention step on the CPU, once PlanAttention has accepted the inputs: builds the
// present KV cache (rotating the new keys) and the method's state, rotates the queries, selects the
// keys and runs the attention kernel. Independent of ONNX Runtime: the op layer passes views of its
// tensors, tests pass plain arrays.
#pragma once

#include <cstddef>

#include "attention/attention_validation.h"
#include "ortsparse/attention_params.h"
#include "ortsparse/parallel.h"
#include "ortsparse/sparse_method_params.h"
#include "ortsparse/status.h"

namespace ortsparse::cpu {

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

size_t RotatedQueryBytes(const attention::AttentionPlan& plan);
size_t MethodStateBytes(const attention::AttentionPlan& plan);

// Everything but the attention: writes the present caches and the method state, rotates the
// queries, and describes the step to the kernels in `attention` and `method` (views of `inputs` and
// `outputs`). Reads the inputs' data through inputs[i].data; inputs are never written.
Status PrepareSparseAttention(const attention::AttentionAttributes& attributes,
                              const attention::AttentionInputs& inputs, const attention::AttentionPlan& plan,
                              const AttentionOutputs& outputs, const ParallelRunner& runner,
                              AttentionParams* attention, SparseMethodParams* method);

// PrepareSparseAttention, then the method's attention (SparseAttention).
Status RunSparseAttention(const attention::AttentionAttributes& attributes, const attention::AttentionInputs& inputs,
                          const attention::AttentionPlan& plan, const AttentionOutputs& outputs,
                          const ParallelRunner& runner);

}  // namespace ortsparse::cpu
