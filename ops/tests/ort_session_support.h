// What the tests that run SparseAttention in real ONNX Runtime sessions share: loading ONNX
// Runtime by path, the element types, and one-node steps built from an expanded AttentionCase.
#pragma once

#include <onnxruntime_cxx_api.h>

#include <string>
#include <vector>

#include "attention_case.h"
#include "onnx_model_writer.h"

namespace ortsparse::testing {

// ONNX Runtime is loaded by path (the fetched package ships libonnxruntime.so without the
// libonnxruntime.so.1 link its SONAME asks for), the C++ API pointed at it, and an environment
// created; null with `error` set when the library cannot be loaded.
Ort::Env* LoadOnnxRuntime(const std::string& library_path, std::string* error);

int32_t OnnxType(DataType type);
ONNXTensorElementDataType OrtType(DataType type);

// A one-node model's inputs and outputs.
struct Step {
  std::vector<OnnxAttribute> attributes;
  std::vector<std::string> inputs;  // node inputs, "" for absent ones
  std::vector<OnnxValue> graph_inputs;
  std::vector<OnnxValue> graph_outputs;
  std::vector<Ort::Value> values;  // bound to graph_inputs, in order
};

// The serialized one-node SparseAttention model of `step` with the node outputs `outputs` ("" for
// outputs left out).
std::string StepModel(const Step& step, const std::vector<std::string>& outputs);

// Graph inputs and values for every input the expanded case has, over its buffers.
void AddInputs(ExpandedCase& e, Step* step);

// The values of a float or float16 tensor on the host.
std::vector<double> Read(const Ort::Value& value);

}  // namespace ortsparse::testing
