#include "attention/attention_op.h"

#include <optional>
#include <string>
#include <vector>

namespace ortsparse::attention {
namespace {

// --- Attributes -------------------------------------------------------------------------------

// Turns the status of a KernelInfoGetAttribute_* call into "absent" (false) or "read" (true), or
// throws for a mistyped attribute. ONNX Runtime reports a missing attribute and a mistyped one
// with the same code; only the mistyped message is recognised, so that a change of wording can at
// worst let a mistyped optional attribute fall back to its default, never reject a model that
// omits it.
bool AttributeWasRead(OrtStatus* status, const char* name, const char* type_name) {
  if (status == nullptr) return true;
  const std::string message = Ort::GetApi().GetErrorMessage(status);
  Ort::GetApi().ReleaseStatus(status);
  if (message.find("type don't match") != std::string::npos) {
    throw Ort::Exception("SparseAttention: attribute " + std::string(name) + " must be of type " + type_name,
                         ORT_INVALID_ARGUMENT);
  }
  return false;
}

std::optional<int64_t> ReadInt(const OrtKernelInfo* info, const char* name) {
  int64_t value = 0;
  if (!AttributeWasRead(Ort::GetApi().KernelInfoGetAttribute_int64(info, name, &value), name, "int")) return std::nullopt;
  return value;
}

std::optional<float> ReadFloat(const OrtKernelInfo* info, const char* name) {
  float value = 0.0f;
  if (!AttributeWasRead(Ort::GetApi().KernelInfoGetAttribute_float(info, name, &value), name, "float")) {
    return std::nullopt;
  }
  return value;
}

std::optional<std::string> ReadString(const OrtKernelInfo* info, const char* name) {
  size_t size = 0;  // first call: the size, terminator included
  if (!AttributeWasRead(Ort::GetApi().KernelInfoGetAttribute_string(info, name, nullptr, &size), name, "string")) {
    return std::nullopt;
  }
  std::string value(size, '\0');
  Ort::ThrowOnError(Ort::GetApi().KernelInfoGetAttribute_string(info, name, value.data(), &size));
  value.resize(size > 0 ? size - 1 : 0);  // drop the terminator
  return value;
}

int64_t RequiredInt(const OrtKernelInfo* info, const char* name) {
  std::optional<int64_t> value = ReadInt(info, name);
  if (!value) throw Ort::Exception("SparseAttention: attribute " + std::string(name) + " is required", ORT_INVALID_ARGUMENT);
  return *value;
}

}  // namespace

AttentionAttributes ReadAttributes(const OrtKernelInfo* info) {
  AttentionAttributes a;
  a.num_heads = RequiredInt(info, "num_heads");
  a.kv_num_heads = RequiredInt(info, "kv_num_heads");
  a.scale = ReadFloat(info, "scale");
  a.softcap = ReadFloat(info, "softcap").value_or(a.softcap);
  a.is_causal = ReadInt(info, "is_causal").value_or(a.is_causal);
  a.local_window_size = ReadInt(info, "local_window_size").value_or(a.local_window_size);
  a.do_rotary = ReadInt(info, "do_rotary").value_or(a.do_rotary);
  a.rotary_interleaved = ReadInt(info, "rotary_interleaved").value_or(a.rotary_interleaved);
  a.method = ReadString(info, "method").value_or(a.method);
  a.budget = ReadFloat(info, "budget").value_or(a.budget);
  a.sink = ReadInt(info, "sink").value_or(a.sink);
  a.window = ReadInt(info, "window").value_or(a.window);
  a.dense_below = ReadInt(info, "dense_below").value_or(a.dense_below);
  a.page_size = ReadInt(info, "page_size").value_or(a.page_size);
  a.rank = ReadInt(info, "rank");
  a.block_size = ReadInt(info, "block_size").value_or(a.block_size);
  a.gamma = ReadFloat(info, "gamma").value_or(a.gamma);
  return a;
}

// --- Tensors ----------------------------------------------------------------------------------

namespace {

DataType FromOnnxType(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DataType::kFloat32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return DataType::kFloat16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return DataType::kBFloat16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return DataType::kBool;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DataType::kInt32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DataType::kInt64;
    default: return DataType::kOther;
  }
}

}  // namespace

AttentionInputs DescribeInputs(const Ort::KernelContext& context) {
  AttentionInputs inputs;
  const size_t given = std::min<size_t>(context.GetInputCount(), kInputCount);
  for (size_t index = 0; index < given; ++index) {
    Ort::ConstValue value = context.GetInput(index);
    if (value == nullptr) continue;
    Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
    TensorInfo& tensor = inputs[index];
    tensor.present = true;
    tensor.type = FromOnnxType(info.GetElementType());
    tensor.shape = info.GetShape();
    tensor.data = value.GetTensorRawData();
  }
  return inputs;
}

ONNXTensorElementDataType SparseAttentionInputType(size_t index, ONNXTensorElementDataType attention_type) {
  switch (index) {
    case kSeqlensK:
    case kTotalSequenceLength:
    case kPastIndex:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case kPositionIds:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
    case kAttentionMask:  // bool or T, checked in Compute
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    case kMethodData0:
    case kMethodData1:
    case kMethodData2:
    case kMethodData3:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    default:
      return attention_type;
  }
}

ONNXTensorElementDataType SparseAttentionOutputType(size_t index, ONNXTensorElementDataType attention_type) {
  switch (index) {
    case kPresentIndex:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
    case kSelectedKeys:
      return ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL;
    default:
      return attention_type;
  }
}

OrtCustomOpInputOutputCharacteristic SparseAttentionInputCharacteristic(size_t index) {
  return index <= kValue ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
}

OrtCustomOpInputOutputCharacteristic SparseAttentionOutputCharacteristic(size_t index) {
  return index == kOutput ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
}

}  // namespace ortsparse::attention
