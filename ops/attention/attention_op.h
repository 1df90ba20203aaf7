// com.ortsparse.SparseAttention for ONNX Runtime (docs/ops.md): one op definition per attention
// type and execution provider, over an execution provider's kernel class that reads the ONNX
// Runtime tensors, validates them and calls that provider's kernels.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <exception>
#include <new>
#include <string>
#include <utility>

#include "attention/attention_validation.h"

namespace ortsparse::attention {

// --- Shared by the execution providers' kernels ------------------------------------------------

// The attributes, read once when ONNX Runtime creates a kernel; throws Ort::Exception
// (ORT_INVALID_ARGUMENT) for a missing required or a mistyped attribute.
AttentionAttributes ReadAttributes(const OrtKernelInfo* info);

// Types, shapes and data pointers of the inputs given (data in the memory the provider asked for).
AttentionInputs DescribeInputs(const Ort::KernelContext& context);

inline Ort::Status InvalidArgument(const std::string& message) {
  return Ort::Status(message.c_str(), ORT_INVALID_ARGUMENT);
}

// Runs `body`, turning every exception into an OrtStatus for the C boundary.
template <typename Body>
OrtStatusPtr CatchAll(Body&& body) {
  try {
    return body();
  } catch (const Ort::Exception& error) {
    return Ort::Status(error.what(), error.GetOrtErrorCode()).release();
  } catch (const std::bad_alloc&) {
    return Ort::Status("SparseAttention: out of memory", ORT_FAIL).release();
  } catch (const std::exception& error) {
    return Ort::Status((std::string("SparseAttention: ") + error.what()).c_str(), ORT_FAIL).release();
  }
}

// Type-independent halves of the op definition; `attention_type` is T's ONNX element type.
ONNXTensorElementDataType SparseAttentionInputType(size_t index, ONNXTensorElementDataType attention_type);
ONNXTensorElementDataType SparseAttentionOutputType(size_t index, ONNXTensorElementDataType attention_type);
OrtCustomOpInputOutputCharacteristic SparseAttentionInputCharacteristic(size_t index);
OrtCustomOpInputOutputCharacteristic SparseAttentionOutputCharacteristic(size_t index);

// --- Kernels -------------------------------------------------------------------------------------

// On ONNX Runtime's CPU execution provider (attention_op_cpu.cc).
class SparseAttentionCpuKernel {
 public:
  static constexpr const char* kExecutionProvider = "CPUExecutionProvider";
  static OrtStatusPtr Create(const OrtKernelInfo* info, void** kernel);
  static OrtMemType InputMemoryType(size_t /*index*/) { return OrtMemTypeDefault; }

  explicit SparseAttentionCpuKernel(AttentionAttributes attributes) : attributes_(std::move(attributes)) {}

  // Never throws; errors come back as an OrtStatus (ORT_INVALID_ARGUMENT for bad inputs).
  OrtStatusPtr ComputeV2(OrtKernelContext* context) const;

 private:
  AttentionAttributes attributes_;  // read and validated once, when ONNX Runtime creates the kernel
};

// One typed variant of the op for one execution provider's Kernel, T = float, Ort::Float16_t (or
// Ort::BFloat16_t on CUDA). The variants share the name: ONNX Runtime picks the kernel, and infers
// the outputs' types, from the inputs' types and the node's provider.
template <typename T, typename Kernel>
struct SparseAttentionOp : Ort::CustomOpBase<SparseAttentionOp<T, Kernel>, Kernel, /*WithStatus=*/true> {
  static constexpr ONNXTensorElementDataType kAttentionType = Ort::TypeToTensorType<T>::type;

  OrtStatusPtr CreateKernelV2(const OrtApi& /*api*/, const OrtKernelInfo* info, void** kernel) const {
    return Kernel::Create(info, kernel);
  }
  const char* GetName() const { return "SparseAttention"; }
  const char* GetExecutionProviderType() const { return Kernel::kExecutionProvider; }
  OrtMemType GetInputMemoryType(size_t index) const { return Kernel::InputMemoryType(index); }

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
