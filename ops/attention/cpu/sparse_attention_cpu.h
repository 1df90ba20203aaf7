// One SparseAttention step on the CPU, once PlanAttention has accepted the inputs: builds the
// present KV cache (rotating the new keys), rotates the queries, and runs the attention kernel.
// Independent of ONNX Runtime: the op layer passes views of its tensors, tests pass plain arrays.
#pragma once

#include <cstddef>

#include "attention/attention_validation.h"
#include "ortsparse/parallel.h"
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
};

size_t RotatedQueryBytes(const attention::AttentionPlan& plan);

// Reads the inputs' data through inputs[i].data. Inputs are never written.
Status RunSparseAttention(const attention::AttentionAttributes& attributes, const attention::AttentionInputs& inputs,
                          const attention::AttentionPlan& plan, const AttentionOutputs& outputs,
                          const ParallelRunner& runner);

}  // namespace ortsparse::cpu
