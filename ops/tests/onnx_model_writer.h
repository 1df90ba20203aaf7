// Writes a one-node ONNX model (the protobuf wire format, by hand: no onnx or protobuf library),
// for tests that run the op in a real ONNX Runtime session.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ortsparse::testing {

struct OnnxValue {
  std::string name;
  int32_t element_type;  // ONNX TensorProto.DataType: 1 float, 6 int32, 7 int64, 9 bool, 10 float16
};

struct OnnxAttribute {
  enum class Kind { kFloat, kInt, kString };
  std::string name;
  Kind kind;
  float float_value = 0.0f;
  int64_t int_value = 0;
  std::string string_value;

  static OnnxAttribute Int(std::string name, int64_t value) { return {std::move(name), Kind::kInt, 0.0f, value, {}}; }
  static OnnxAttribute Float(std::string name, float value) { return {std::move(name), Kind::kFloat, value, 0, {}}; }
  static OnnxAttribute String(std::string name, std::string value) {
    return {std::move(name), Kind::kString, 0.0f, 0, std::move(value)};
  }
};

struct OnnxNode {
  std::string op_type;
  std::string domain;
  std::vector<std::string> inputs;  // "" for an optional input left out
  std::vector<std::string> outputs;
  std::vector<OnnxAttribute> attributes;
};

// A serialized ModelProto: the node, the graph inputs and outputs (tensors of unknown shape),
// opset imports of the default domain (version 21) and of the node's domain (version 1).
std::string WriteSingleNodeModel(const OnnxNode& node, const std::vector<OnnxValue>& graph_inputs,
                                 const std::vector<OnnxValue>& graph_outputs);

}  // namespace ortsparse::testing
