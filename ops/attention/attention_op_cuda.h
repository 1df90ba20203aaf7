// com.ortsparse.SparseAttention on ONNX Runtime's CUDA execution provider: the tensors stay on the
// device, total_sequence_length is the only input read on the host (as GroupQueryAttention's), the
// per-sequence lengths are derived on the device, and every kernel runs on the op's compute stream.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <utility>

#include "attention/attention_op.h"

namespace ortsparse::attention {

class SparseAttentionCudaKernel {
 public:
  static constexpr const char* kExecutionProvider = "CUDAExecutionProvider";
  static OrtStatusPtr Create(const OrtKernelInfo* info, void** kernel);
  static OrtMemType InputMemoryType(size_t index) {
    return index == kTotalSequenceLength ? OrtMemTypeCPUInput : OrtMemTypeDefault;
  }

  explicit SparseAttentionCudaKernel(AttentionAttributes attributes) : attributes_(std::move(attributes)) {}
  ~SparseAttentionCudaKernel();
  SparseAttentionCudaKernel(const SparseAttentionCudaKernel&) = delete;
  SparseAttentionCudaKernel& operator=(const SparseAttentionCudaKernel&) = delete;

  // Never throws; errors come back as an OrtStatus (ORT_INVALID_ARGUMENT for bad inputs,
  // ORT_NOT_IMPLEMENTED for steps the CUDA kernels do not run yet, ORT_FAIL for CUDA errors).
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  AttentionAttributes attributes_;
  OrtAllocator* allocator_ = nullptr;  // the provider's device allocator, for scratch (stream-ordered reuse)
};

}  // namespace ortsparse::attention
