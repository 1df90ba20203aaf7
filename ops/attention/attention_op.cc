#include "attention/attention_op.h"

#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "attention/cpu/sparse_attention_cpu.h"

namespace ortsparse::attention {
namespace {

Ort::Status InvalidArgument(const std::string& message) { return Ort::Status(message.c_str(), ORT_INVALID_ARGUMENT); }

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

DataType FromOnnxType(ONNXTensorElementDataType type) {
  switch (type) {
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return DataType::kFloat32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return DataType::kFloat16;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return DataType::kBool;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return DataType::kInt32;
    case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return DataType::kInt64;
    default: return DataType::kOther;
  }
}

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

// The session's intra-op thread pool, through the C API so that no exception crosses it.
void RunOnSessionPool(void* context, size_t total, ParallelRunner::Task fn, void* fn_ctx) {
  OrtStatus* status =
      Ort::GetApi().KernelContext_ParallelFor(static_cast<const OrtKernelContext*>(context), fn, total, 0, fn_ctx);
  if (status != nullptr) {  // rejected before running anything: do the work here instead
    Ort::GetApi().ReleaseStatus(status);
    ParallelRunner::RunSerially(nullptr, total, fn, fn_ctx);
  }
}

// The session's CPU allocator (its arena, when enabled).
Ort::Allocator CpuAllocator(const Ort::KernelContext& context) {
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
  return context.GetAllocator(*cpu);
}

// A buffer for a tensor the graph did not ask for (a present cache or the rotated queries).
class Scratch {
 public:
  Scratch(const Ort::KernelContext& context, size_t bytes)
      : allocator_(CpuAllocator(context)), allocation_(allocator_.GetAllocation(bytes == 0 ? 1 : bytes)) {}
  void* data() { return allocation_.get(); }

 private:
  Ort::Allocator allocator_;
  Ort::MemoryAllocation allocation_;
};

// A present cache (key or value) or method state: the output when the graph asks for it, scratch
// otherwise.
struct CacheBuffer {
  std::optional<Scratch> scratch;
  void* data = nullptr;
  bool in_place = false;  // the output is bound to the past's buffer
};

CacheBuffer PresentBuffer(const Ort::KernelContext& context, const TensorInfo& past, int output_index,
                          const std::vector<int64_t>& shape, int64_t element_size) {
  CacheBuffer cache;
  if (static_cast<size_t>(output_index) < context.GetOutputCount()) {
    Ort::UnownedValue output = context.GetOutput(output_index, shape);
    if (output != nullptr) {
      cache.data = output.GetTensorMutableRawData();
      cache.in_place = past.present && cache.data == past.data;
      return cache;
    }
  }
  size_t elements = 1;
  for (int64_t dim : shape) elements *= static_cast<size_t>(dim);
  cache.scratch.emplace(context, elements * static_cast<size_t>(element_size));
  cache.data = cache.scratch->data();
  return cache;
}

// State a method does not keep (all of dense's) flows from past_index / past_summary to the present
// unchanged.
void PassMethodState(const Ort::KernelContext& context, const TensorInfo& past, int output_index,
                     const std::vector<int64_t>& shape) {
  if (static_cast<size_t>(output_index) >= context.GetOutputCount()) return;
  Ort::UnownedValue output = context.GetOutput(output_index, shape);
  if (output == nullptr || !past.present) return;
  void* destination = output.GetTensorMutableRawData();
  if (destination != past.data) {
    std::memcpy(destination, past.data, output.GetTensorTypeAndShapeInfo().GetElementCount() *
                                            static_cast<size_t>(DataTypeSize(past.type)));
  }
}

Ort::Status Compute(const AttentionAttributes& attributes, const Ort::KernelContext& context) {
  const AttentionInputs inputs = DescribeInputs(context);
  AttentionPlan plan;
  const Status planned = PlanAttention(attributes, inputs, &plan);
  if (!planned.ok()) return InvalidArgument(planned.message());

  const int64_t B = plan.batch, Hkv = plan.kv_num_heads, T_cap = plan.present_length;
  const int64_t element_size = DataTypeSize(plan.type);
  Ort::UnownedValue output = context.GetOutput(kOutput, {B, plan.query_length, plan.num_heads * plan.v_head_size});
  CacheBuffer key_cache =
      PresentBuffer(context, inputs[kPastKey], kPresentKey, {B, Hkv, T_cap, plan.head_size}, element_size);
  CacheBuffer value_cache =
      PresentBuffer(context, inputs[kPastValue], kPresentValue, {B, Hkv, T_cap, plan.v_head_size}, element_size);
  const bool keeps_index = plan.state_output == kPresentIndex;
  CacheBuffer method_state;
  if (plan.state_output >= 0) {
    method_state = PresentBuffer(context, inputs[keeps_index ? kPastIndex : kPastSummary], plan.state_output,
                                 keeps_index ? plan.present_index_shape : plan.present_summary_shape,
                                 keeps_index ? DataTypeSize(DataType::kInt32) : element_size);
  }
  std::optional<Scratch> rotated_query;
  if (plan.rotary_dim > 0) rotated_query.emplace(context, cpu::RotatedQueryBytes(plan));

  cpu::AttentionOutputs outputs;
  outputs.output = output.GetTensorMutableRawData();
  outputs.key_cache = key_cache.data;
  outputs.key_cache_is_past = key_cache.in_place;
  outputs.value_cache = value_cache.data;
  outputs.value_cache_is_past = value_cache.in_place;
  outputs.rotated_query = rotated_query ? rotated_query->data() : nullptr;
  outputs.method_state = method_state.data;
  outputs.method_state_is_past = method_state.in_place;
  if (static_cast<size_t>(kSelectedKeys) < context.GetOutputCount()) {
    if (plan.query_length != 1) {
      return InvalidArgument("SparseAttention: selected_keys (output 5) is available for decode steps (S = 1) only, got S = " +
                             std::to_string(plan.query_length));
    }
    Ort::UnownedValue selected = context.GetOutput(kSelectedKeys, {B, Hkv, 1, T_cap});
    if (selected != nullptr) outputs.selected_keys = selected.GetTensorMutableData<bool>();  // null: output named ""
  }
  const ParallelRunner runner{context.GetOrtKernelContext(), &RunOnSessionPool};
  const Status computed = cpu::RunSparseAttention(attributes, inputs, plan, outputs, runner);
  if (!computed.ok()) return Ort::Status(computed.message().c_str(), ORT_FAIL);

  if (plan.state_output != kPresentIndex) {
    PassMethodState(context, inputs[kPastIndex], kPresentIndex, plan.present_index_shape);
  }
  if (plan.state_output != kPresentSummary) {
    PassMethodState(context, inputs[kPastSummary], kPresentSummary, plan.present_summary_shape);
  }
  return Ort::Status(nullptr);
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

}  // namespace

OrtStatusPtr SparseAttentionKernel::ComputeV2(OrtKernelContext* context) const {
  return CatchAll([&] { return Compute(attributes_, Ort::KernelContext(context)).release(); });
}

OrtStatusPtr CreateSparseAttentionKernel(const OrtKernelInfo* info, void** kernel) {
  return CatchAll([&]() -> OrtStatusPtr {
    AttentionAttributes attributes = ReadAttributes(info);
    const Status valid = ValidateAttributes(attributes);
    if (!valid.ok()) return InvalidArgument(valid.message()).release();
    *kernel = new SparseAttentionKernel(std::move(attributes));
    return nullptr;
  });
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
