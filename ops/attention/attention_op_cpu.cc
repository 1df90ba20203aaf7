#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "attention/attention_op.h"
#include "attention/cpu/sparse_attention_cpu.h"

namespace ortsparse::attention {
namespace {

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
  if (plan.rotary_dim > 0) rotated_query.emplace(context, attention::RotatedQueryBytes(plan));

  attention::AttentionOutputs outputs;
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

}  // namespace

OrtStatusPtr SparseAttentionCpuKernel::ComputeV2(OrtKernelContext* context) const {
  return CatchAll([&] { return Compute(attributes_, Ort::KernelContext(context)).release(); });
}

OrtStatusPtr SparseAttentionCpuKernel::Create(const OrtKernelInfo* info, void** kernel) {
  return CatchAll([&]() -> OrtStatusPtr {
    AttentionAttributes attributes = ReadAttributes(info);
    const Status valid = ValidateAttributes(attributes);
    if (!valid.ok()) return InvalidArgument(valid.message()).release();
    *kernel = new SparseAttentionCpuKernel(std::move(attributes));
    return nullptr;
  });
}

}  // namespace ortsparse::attention
