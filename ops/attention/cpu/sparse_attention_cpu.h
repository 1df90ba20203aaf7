// One SparseAttention step on the CPU, once PlanAttention has accepted the inputs: builds the
// present KV cache (rotating the new keys) and the method's state, rotates the queries, selects the
// keys and runs the attention kernel. Independent of ONNX Runtime: the op layer passes views of its
// tensors, tests pass plain arrays.
#pragma once

#include "attention/attention_validation.h"
#include "attention/step_params.h"
#include "ortsparse/parallel.h"
#include "ortsparse/status.h"

namespace ortsparse::cpu {

// Everything but the attention: writes the present caches and the method state, rotates the
// queries, and describes the step to the kernels in `step` (views of `inputs` and `outputs`).
// Reads the inputs' data through inputs[i].data; inputs are never written.
Status PrepareSparseAttention(const attention::AttentionAttributes& attributes,
                              const attention::AttentionInputs& inputs, const attention::AttentionPlan& plan,
                              const attention::AttentionOutputs& outputs, const ParallelRunner& runner,
                              attention::StepParams* step);

// PrepareSparseAttention, then the method's attention (SparseAttention).
Status RunSparseAttention(const attention::AttentionAttributes& attributes, const attention::AttentionInputs& inputs,
                          const attention::AttentionPlan& plan, const attention::AttentionOutputs& outputs,
                          const ParallelRunner& runner);

}  // namespace ortsparse::cpu
