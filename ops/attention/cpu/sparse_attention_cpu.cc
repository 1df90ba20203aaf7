#include "attention/cpu/sparse_attention_cpu.h"

#include "attention/cpu/kv_cache.h"
#include "attention/cpu/rotary.h"
#include "attention/cpu/sparse_methods.h"

namespace ortsparse::cpu {

Status PrepareSparseAttention(const attention::AttentionAttributes& attributes,
                              const attention::AttentionInputs& inputs, const attention::AttentionPlan& plan,
                              const attention::AttentionOutputs& outputs, const ParallelRunner& runner,
                              attention::StepParams* step) {
  const attention::SequenceLengths lengths{plan.past_lengths.data(), plan.valid_query_rows.data(),
                                           plan.append_counts.data(), plan.key_counts.data()};
  attention::DescribeStep(attributes, inputs, plan, outputs, lengths, step);
  AppendToKvCache(step->key_append, runner);
  AppendToKvCache(step->value_append, runner);
  if (step->rotate_query) ApplyRotary(step->query_rotation, runner);
  return UpdateMethodState(step->attention, step->method, runner);
}

Status RunSparseAttention(const attention::AttentionAttributes& attributes, const attention::AttentionInputs& inputs,
                          const attention::AttentionPlan& plan, const attention::AttentionOutputs& outputs,
                          const ParallelRunner& runner) {
  attention::StepParams step;
  ORTSPARSE_RETURN_IF_ERROR(PrepareSparseAttention(attributes, inputs, plan, outputs, runner, &step));
  const SelectionFlags report{outputs.selected_keys, plan.present_length};
  return SparseAttention(step.attention, step.method, runner, outputs.selected_keys != nullptr ? &report : nullptr);
}

}  // namespace ortsparse::cpu
