#include "attention/attention_op.h"
#include "registration/op_tables.h"

namespace ortsparse::registration {

const std::vector<const OrtCustomOp*>& CpuOps() {
  static const attention::SparseAttentionOp<float, attention::SparseAttentionCpuKernel> sparse_attention_fp32;
  static const attention::SparseAttentionOp<Ort::Float16_t, attention::SparseAttentionCpuKernel> sparse_attention_fp16;
  static const std::vector<const OrtCustomOp*> ops = {&sparse_attention_fp32, &sparse_attention_fp16};
  return ops;
}

}  // namespace ortsparse::registration
