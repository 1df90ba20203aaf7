#include "ort_session_support.h"

#include <dlfcn.h>

namespace ortsparse::testing {

Ort::Env* LoadOnnxRuntime(const std::string& library_path, std::string* error) {
  void* library = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    *error = dlerror();
    return nullptr;
  }
  using GetApiBase = const OrtApiBase* (*)();
  auto get_api_base = reinterpret_cast<GetApiBase>(dlsym(library, "OrtGetApiBase"));
  if (get_api_base == nullptr) {
    *error = library_path + " has no OrtGetApiBase";
    return nullptr;
  }
  Ort::InitApi(get_api_base()->GetApi(ORT_API_VERSION));
  return new Ort::Env(ORT_LOGGING_LEVEL_ERROR, "ortsparse-test");
}

int32_t OnnxType(DataType type) {
  switch (type) {
    case DataType::kFloat16: return 10;
    case DataType::kBool: return 9;
    case DataType::kInt32: return 6;
    case DataType::kInt64: return 7;
    default: return 1;
  }
}

ONNXTensorElementDataType OrtType(DataType type) {
  return static_cast<ONNXTensorElementDataType>(OnnxType(type));  // the enums share their values
}

std::string StepModel(const Step& step, const std::vector<std::string>& outputs) {
  return WriteSingleNodeModel({"SparseAttention", "com.ortsparse", step.inputs, outputs, step.attributes},
                              step.graph_inputs, step.graph_outputs);
}

void AddInputs(ExpandedCase& e, Step* step) {
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
  for (int index = 0; index <= attention::kAttentionMask; ++index) {
    const attention::TensorInfo& input = e.inputs[index];
    if (!input.present) {
      step->inputs.push_back("");
      continue;
    }
    step->inputs.push_back(attention::InputName(index));
    step->graph_inputs.push_back({attention::InputName(index), OnnxType(input.type)});
    size_t elements = 1;
    for (int64_t dim : input.shape) elements *= static_cast<size_t>(dim);
    step->values.push_back(Ort::Value::CreateTensor(cpu, const_cast<void*>(input.data),
                                                    elements * static_cast<size_t>(DataTypeSize(input.type)),
                                                    input.shape.data(), input.shape.size(), OrtType(input.type)));
  }
  while (!step->inputs.empty() && step->inputs.back().empty()) step->inputs.pop_back();
}

std::vector<double> Read(const Ort::Value& value) {
  const Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
  const DataType type = info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? DataType::kFloat16
                                                                                      : DataType::kFloat32;
  return ReadStored(type, value.GetTensorRawData(), info.GetElementCount());
}

}  // namespace ortsparse::testing
