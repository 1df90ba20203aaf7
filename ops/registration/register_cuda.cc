#include "attention/attention_op_cuda.h"
#include "registration/op_tables.h"

namespace ortsparse::registration {

const std::vector<const OrtCustomOp*>& CudaOps() {
  using attention::SparseAttentionCudaKernel;
  static const attention::SparseAttentionOp<float, SparseAttentionCudaKernel> sparse_attention_fp32;
  static const attention::SparseAttentionOp<Ort::Float16_t, SparseAttentionCudaKernel> sparse_attention_fp16;
  static const attention::SparseAttentionOp<Ort::BFloat16_t, SparseAttentionCudaKernel> sparse_attention_bf16;
  static const std::vector<const OrtCustomOp*> ops = {&sparse_attention_fp32, &sparse_attention_fp16,
                                                      &sparse_attention_bf16};
  return ops;
}

}  // namespace ortsparse::registration
