// com.ortsparse.SparseAttention for ONNX Runtime's CPU execution provider (docs/ops.md): reads the
// ONNX Runtime tensors, validates them, lays out the KV cache and calls the CPU kernels.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <utility>

#include "attention/attention_validation.h"

namespace ortsparse::attention {

class SparseAttentionKernel {
 public:
  explicit SparseAttentionKernel(AttentionAttributes attributes) : attributes_(std::move(attributes)) {}

  // Never throws; errors come back as an OrtStatus (ORT_INVALID_ARGUMENT for bad inputs).
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  AttentionAttributes attributes_;  // read and validated once, when ONNX Runtime creates the kernel
};

// Type-independent halves of the op definition; `attention_type` is T's ONNX element type.
OrtStatusPtr CreateSparseAttentionKernel(const OrtKernelInfo* info, void** kernel);
ONNXTensorElementDataType SparseAttentionInputType(size_t index, ONNXTensorElementDataType attention_type);
ONNXTensorElementDataType SparseAttentionOutputType(size_t index, ONNXTensorElementDataType attention_type);
OrtCustomOpInputOutputCharacteristic SparseAttentionInputCharacteristic(size_t index);
OrtCustomOpInputOutputCharacteristic SparseAttentionOutputCharacteristic(size_t index);

// One typed variant of the op, T = float or Ort::Float16_t. Both variants are registered under
// the same name: ONNX Runtime picks the kernel, and infers the outputs' types, from the inputs'.
template <typename T>
struct SparseAttentionOp : Ort::CustomOpBase<SparseAttentionOp<T>, SparseAttentionKernel, /*WithStatus=*/true> {
  static constexpr ONNXTensorElementDataType kAttentionType = Ort::TypeToTensorType<T>::type;

  OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
    return CreateSparseAttentionKernel(info, kernel);
  }
  const char* GetName() const { return "SparseAttention"; }
  const char* GetExecutionProviderType() const { return "CPUExecutionProvider"; }

  size_t GetInputTypeCount() const { return kInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const { return SparseAttentionInputType(index, kAttentionType); }
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return SparseAttentionInputCharacteristic(index);
  }

  size_t GetOutputTypeCount() const { return kOutputCount; }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return SparseAttentionOutputType(index, kAttentionType);
  }
  OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t index) const {
    return SparseAttentionOutputCharacteristic(index);
  }
};

}  // namespace ortsparse::attention
