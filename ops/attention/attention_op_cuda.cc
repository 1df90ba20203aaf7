#include "attention/attention_op_cuda.h"

#include <cuda_runtime_api.h>

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "attention/step_params.h"
#include "ortsparse/cuda_attention.h"

namespace ortsparse::attention {
namespace {

Ort::Status CudaFailure(const char* what, cudaError_t error) {
  return Ort::Status((std::string("SparseAttention on CUDA: ") + what + " failed: " + cudaGetErrorName(error) + " (" +
                      cudaGetErrorString(error) + ")")
                         .c_str(),
                     ORT_FAIL);
}

#define ORTSPARSE_RETURN_IF_CUDA_ERROR(what, expression)                \
  do {                                                                  \
    const cudaError_t ortsparse_error_ = (expression);                  \
    if (ortsparse_error_ != cudaSuccess) return CudaFailure(what, ortsparse_error_); \
  } while (false)

// One allocation from the provider's allocator, carved into aligned pieces, returned at scope exit.
// Freed memory is reused by later work on the same stream only, so freeing right after the
// launches is safe.
class DeviceScratch {
 public:
  DeviceScratch(OrtAllocator* allocator, const std::vector<size_t>& sizes) : allocator_(allocator) {
    size_t total = 0;
    for (size_t size : sizes) {
      offsets_.push_back(total);
      total += (size + kAlignment - 1) / kAlignment * kAlignment;
    }
    base_ = static_cast<char*>(allocator_->Alloc(allocator_, total == 0 ? kAlignment : total));
    if (base_ == nullptr) throw Ort::Exception("SparseAttention on CUDA: out of device memory for scratch", ORT_FAIL);
    sizes_ = sizes;
  }
  ~DeviceScratch() { allocator_->Free(allocator_, base_); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  void* piece(size_t index) const { return sizes_[index] == 0 ? nullptr : base_ + offsets_[index]; }
  size_t size(size_t index) const { return sizes_[index]; }

 private:
  static constexpr size_t kAlignment = 256;
  OrtAllocator* allocator_;
  char* base_ = nullptr;
  std::vector<size_t> offsets_;
  std::vector<size_t> sizes_;
};

size_t Elements(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t dim : shape) count *= static_cast<size_t>(dim);
  return count;
}

// A present cache or method state: the output when the graph asks for it (possibly the past's own
// buffer), else nullptr and the caller uses scratch.
void* PresentOutput(const Ort::KernelContext& context, int output_index, const std::vector<int64_t>& shape) {
  if (static_cast<size_t>(output_index) >= context.GetOutputCount()) return nullptr;
  Ort::UnownedValue output = context.GetOutput(output_index, shape);
  return output == nullptr ? nullptr : output.GetTensorMutableRawData();
}

// kDecodeWorkspace: the attention's workspace (LaunchSparseDecode's or LaunchPrefill's).
enum ScratchPiece : size_t { kLengths, kKeyCache, kValueCache, kState, kRotatedQuery, kDecodeWorkspace, kPieceCount };

Ort::Status Compute(const AttentionAttributes& attributes, OrtAllocator* allocator, const Ort::KernelContext& context) {
  const AttentionInputs inputs = DescribeInputs(context);
  AttentionPlan plan;
  PlanOptions options;
  options.allow_bfloat16 = true;
  options.sequence_values_on_device = true;
  const Status planned = PlanAttention(attributes, inputs, &plan, options);
  if (!planned.ok()) return InvalidArgument(planned.message());
  // Decode steps (S = 1) and prefill steps (S > 1) share the cache and state updates; the attention
  // is LaunchSparseDecode or LaunchPrefill.
  const bool prefill = plan.query_length != 1;
  const int64_t B = plan.batch, Hkv = plan.kv_num_heads, T_cap = plan.present_length;
  const size_t element_size = static_cast<size_t>(DataTypeSize(plan.type));
  const std::vector<int64_t> key_shape = {B, Hkv, T_cap, plan.head_size};
  const std::vector<int64_t> value_shape = {B, Hkv, T_cap, plan.v_head_size};
  const bool keeps_index = plan.state_output == kPresentIndex;
  const std::vector<int64_t>& state_shape = keeps_index ? plan.present_index_shape : plan.present_summary_shape;

  AttentionOutputs outputs;
  outputs.output = context.GetOutput(kOutput, {B, plan.query_length, plan.num_heads * plan.v_head_size})
                       .GetTensorMutableRawData();
  outputs.key_cache = PresentOutput(context, kPresentKey, key_shape);
  outputs.value_cache = PresentOutput(context, kPresentValue, value_shape);
  if (plan.state_output >= 0) outputs.method_state = PresentOutput(context, plan.state_output, state_shape);
  if (static_cast<size_t>(kSelectedKeys) < context.GetOutputCount()) {
    if (prefill) {
      return InvalidArgument("SparseAttention: selected_keys (output 5) is available for decode steps (S = 1) only, got S = " +
                             std::to_string(plan.query_length));
    }
    Ort::UnownedValue selected = context.GetOutput(kSelectedKeys, {B, Hkv, 1, T_cap});
    if (selected != nullptr) outputs.selected_keys = selected.GetTensorMutableData<bool>();
  }

  // Scratch for what the graph does not ask for, the lengths and the attention's workspace.
  std::vector<size_t> sizes(kPieceCount, 0);
  sizes[kLengths] = 4 * static_cast<size_t>(B) * sizeof(int32_t);
  if (outputs.key_cache == nullptr) sizes[kKeyCache] = Elements(key_shape) * element_size;
  if (outputs.value_cache == nullptr) sizes[kValueCache] = Elements(value_shape) * element_size;
  if (plan.state_output >= 0 && outputs.method_state == nullptr) sizes[kState] = MethodStateBytes(plan);
  if (plan.rotary_dim > 0) sizes[kRotatedQuery] = RotatedQueryBytes(plan);
  // The workspace's size depends on the step's parameters only, not on where they point.
  StepParams sizing;
  DescribeStep(attributes, inputs, plan, outputs, SequenceLengths(), &sizing);
  sizes[kDecodeWorkspace] = prefill ? cuda::PrefillWorkspaceBytes(sizing.attention, sizing.method, T_cap)
                                    : cuda::SparseDecodeWorkspaceBytes(sizing.attention, sizing.method, T_cap);
  const DeviceScratch scratch(allocator, sizes);
  if (outputs.key_cache == nullptr) outputs.key_cache = scratch.piece(kKeyCache);
  if (outputs.value_cache == nullptr) outputs.value_cache = scratch.piece(kValueCache);
  if (plan.state_output >= 0 && outputs.method_state == nullptr) outputs.method_state = scratch.piece(kState);
  outputs.rotated_query = scratch.piece(kRotatedQuery);
  outputs.key_cache_is_past = inputs[kPastKey].present && outputs.key_cache == inputs[kPastKey].data;
  outputs.value_cache_is_past = inputs[kPastValue].present && outputs.value_cache == inputs[kPastValue].data;
  if (plan.state_output >= 0 && plan.state_has_past) {
    outputs.method_state_is_past = outputs.method_state == inputs[keeps_index ? kPastIndex : kPastSummary].data;
  }

  auto* lengths = static_cast<int32_t*>(scratch.piece(kLengths));
  cuda::SequenceLengthParams length_params;
  length_params.batch = B;
  length_params.query_length = plan.query_length;
  length_params.kv_length = plan.kv_length;
  length_params.past_length = plan.past_length;
  length_params.present_length = T_cap;
  length_params.seqlens_k = plan.uses_seqlens ? static_cast<const int32_t*>(inputs[kSeqlensK].data) : nullptr;
  length_params.past_lengths = lengths;
  length_params.valid_query_rows = lengths + B;
  length_params.append_counts = lengths + 2 * B;
  length_params.key_counts = lengths + 3 * B;
  const SequenceLengths device_lengths{length_params.past_lengths, length_params.valid_query_rows,
                                       length_params.append_counts, length_params.key_counts};
  StepParams step;
  DescribeStep(attributes, inputs, plan, outputs, device_lengths, &step);
  const Status supported = prefill ? cuda::CheckPrefillSupport(step.attention, step.method, T_cap)
                                   : cuda::CheckDecodeSupport(step.attention, step.method, T_cap);
  if (!supported.ok()) return Ort::Status(supported.message().c_str(), ORT_NOT_IMPLEMENTED);
  if (prefill && step.method.state.present != nullptr) {  // the state update runs the decode kernels' code
    AttentionParams one_row = step.attention;
    one_row.query_length = 1;
    const Status state_supported = cuda::CheckDecodeSupport(one_row, step.method, T_cap);
    if (!state_supported.ok()) return Ort::Status(state_supported.message().c_str(), ORT_NOT_IMPLEMENTED);
  }

  auto stream = static_cast<cudaStream_t>(context.GetGPUComputeStream());
  const int64_t appended = plan.kv_length;  // new keys per sequence: S, or S_kv for cross-attention
  ORTSPARSE_RETURN_IF_CUDA_ERROR("deriving the sequence lengths", cuda::LaunchSequenceLengths(length_params, stream));
  ORTSPARSE_RETURN_IF_CUDA_ERROR("appending the keys", cuda::LaunchKvAppend(step.key_append, appended, stream));
  ORTSPARSE_RETURN_IF_CUDA_ERROR("appending the values", cuda::LaunchKvAppend(step.value_append, appended, stream));
  if (step.rotate_query) {
    ORTSPARSE_RETURN_IF_CUDA_ERROR("rotating the queries", cuda::LaunchRotary(step.query_rotation, stream));
  }
  ORTSPARSE_RETURN_IF_CUDA_ERROR("updating the method state",
                                 cuda::LaunchMethodStateUpdate(step.attention, step.method, T_cap, appended, stream));
  if (prefill) {
    ORTSPARSE_RETURN_IF_CUDA_ERROR("the prefill attention",
                                   cuda::LaunchPrefill(step.attention, step.method, T_cap, scratch.piece(kDecodeWorkspace),
                                                       scratch.size(kDecodeWorkspace), stream));
  } else {
    ORTSPARSE_RETURN_IF_CUDA_ERROR("the attention",
                                   cuda::LaunchSparseDecode(step.attention, step.method, T_cap,
                                                            scratch.piece(kDecodeWorkspace),
                                                            scratch.size(kDecodeWorkspace), stream));
  }
  if (outputs.selected_keys != nullptr) {
    ORTSPARSE_RETURN_IF_CUDA_ERROR("flagging the selected keys",
                                   cuda::LaunchSelectedKeyFlags(step.attention, step.method, T_cap,
                                                                scratch.piece(kDecodeWorkspace), outputs.selected_keys,
                                                                stream));
  }

  // State the method does not keep flows from its past input to its present output unchanged.
  for (const auto& [output_index, past_index, shape] :
       {std::tuple<int, int, const std::vector<int64_t>*>{kPresentIndex, kPastIndex, &plan.present_index_shape},
        std::tuple<int, int, const std::vector<int64_t>*>{kPresentSummary, kPastSummary, &plan.present_summary_shape}}) {
    if (output_index == plan.state_output) continue;
    void* destination = PresentOutput(context, output_index, *shape);
    if (destination == nullptr || !inputs[past_index].present || destination == inputs[past_index].data) continue;
    const size_t bytes = Elements(*shape) * static_cast<size_t>(DataTypeSize(inputs[past_index].type));
    ORTSPARSE_RETURN_IF_CUDA_ERROR("passing the method state through",
                                   cudaMemcpyAsync(destination, inputs[past_index].data, bytes,
                                                   cudaMemcpyDeviceToDevice, stream));
  }
  return Ort::Status(nullptr);
}

}  // namespace

SparseAttentionCudaKernel::~SparseAttentionCudaKernel() {
  if (allocator_ != nullptr) Ort::GetApi().ReleaseAllocator(allocator_);
}

OrtStatusPtr SparseAttentionCudaKernel::ComputeV2(OrtKernelContext* context) const {
  return CatchAll([&] {
    // Scratch comes from the session's allocator for the query's device (its arena), where a free
    // returns memory to the pool; the kernel-info allocator is the provider's plain one, whose frees
    // synchronise the device and so stall the launches of the layers after this one.
    OrtAllocator* session_allocator = nullptr;
    const Ort::KernelContext kernel_context(context);
    const OrtMemoryInfo* memory = kernel_context.GetInput(kQuery).GetTensorMemoryInfo();
    if (OrtStatus* status = Ort::GetApi().KernelContext_GetAllocator(context, memory, &session_allocator)) {
      Ort::GetApi().ReleaseStatus(status);
      session_allocator = nullptr;
    }
    const std::unique_ptr<OrtAllocator, void (*)(OrtAllocator*)> owned(
        session_allocator, [](OrtAllocator* a) { if (a != nullptr) Ort::GetApi().ReleaseAllocator(a); });
    return Compute(attributes_, session_allocator != nullptr ? session_allocator : allocator_, kernel_context).release();
  });
}

OrtStatusPtr SparseAttentionCudaKernel::Create(const OrtKernelInfo* info, void** kernel) {
  return CatchAll([&]() -> OrtStatusPtr {
    AttentionAttributes attributes = ReadAttributes(info);
    const Status valid = ValidateAttributes(attributes);
    if (!valid.ok()) return InvalidArgument(valid.message()).release();
    auto created = std::make_unique<SparseAttentionCudaKernel>(std::move(attributes));
    if (OrtStatus* status = Ort::GetApi().KernelInfoGetAllocator(info, OrtMemTypeDefault, &created->allocator_)) {
      return status;
    }
    *kernel = created.release();
    return nullptr;
  });
}

}  // namespace ortsparse::attention
