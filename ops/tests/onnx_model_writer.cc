#include "onnx_model_writer.h"

#include <cstring>

namespace ortsparse::testing {
namespace {

// Protobuf wire format: each field is a varint key (field number << 3 | wire type), then a varint,
// a 4-byte little-endian value, or a varint length and that many bytes.
class ProtoWriter {
 public:
  void Varint(int field, uint64_t value) {
    Key(field, 0);
    Raw(value);
  }
  void Fixed32(int field, float value) {
    Key(field, 5);
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof(bits));
    for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<char>(bits >> (8 * i) & 0xff));
  }
  void Bytes(int field, const std::string& value) {
    Key(field, 2);
    Raw(value.size());
    bytes_ += value;
  }
  void Message(int field, const ProtoWriter& message) { Bytes(field, message.bytes_); }
  const std::string& bytes() const { return bytes_; }

 private:
  void Key(int field, int wire_type) { Raw(static_cast<uint64_t>(field) << 3 | wire_type); }
  void Raw(uint64_t value) {
    do {
      const uint8_t low = value & 0x7f;
      value >>= 7;
      bytes_.push_back(static_cast<char>(value != 0 ? low | 0x80 : low));
    } while (value != 0);
  }
  std::string bytes_;
};

ProtoWriter ValueInfo(const OnnxValue& value) {
  ProtoWriter tensor_type;  // TypeProto.Tensor
  tensor_type.Varint(1, static_cast<uint64_t>(value.element_type));
  ProtoWriter type;  // TypeProto
  type.Message(1, tensor_type);
  ProtoWriter info;  // ValueInfoProto
  info.Bytes(1, value.name);
  info.Message(2, type);
  return info;
}

ProtoWriter Attribute(const OnnxAttribute& attribute) {
  ProtoWriter proto;  // AttributeProto
  proto.Bytes(1, attribute.name);
  switch (attribute.kind) {
    case OnnxAttribute::Kind::kFloat:
      proto.Fixed32(2, attribute.float_value);
      proto.Varint(20, 1);
      break;
    case OnnxAttribute::Kind::kInt:
      proto.Varint(3, static_cast<uint64_t>(attribute.int_value));
      proto.Varint(20, 2);
      break;
    case OnnxAttribute::Kind::kString:
      proto.Bytes(4, attribute.string_value);
      proto.Varint(20, 3);
      break;
  }
  return proto;
}

ProtoWriter OpsetImport(const std::string& domain, int64_t version) {
  ProtoWriter proto;  // OperatorSetIdProto
  proto.Bytes(1, domain);
  proto.Varint(2, static_cast<uint64_t>(version));
  return proto;
}

}  // namespace

std::string WriteSingleNodeModel(const OnnxNode& node, const std::vector<OnnxValue>& graph_inputs,
                                 const std::vector<OnnxValue>& graph_outputs) {
  ProtoWriter node_proto;  // NodeProto
  for (const std::string& input : node.inputs) node_proto.Bytes(1, input);
  for (const std::string& output : node.outputs) node_proto.Bytes(2, output);
  node_proto.Bytes(3, node.op_type + "_node");
  node_proto.Bytes(4, node.op_type);
  for (const OnnxAttribute& attribute : node.attributes) node_proto.Message(5, Attribute(attribute));
  node_proto.Bytes(7, node.domain);

  ProtoWriter graph;  // GraphProto
  graph.Message(1, node_proto);
  graph.Bytes(2, "graph");
  for (const OnnxValue& input : graph_inputs) graph.Message(11, ValueInfo(input));
  for (const OnnxValue& output : graph_outputs) graph.Message(12, ValueInfo(output));

  ProtoWriter model;  // ModelProto
  model.Varint(1, 10);  // IR version 10
  model.Message(7, graph);
  model.Message(8, OpsetImport("", 21));
  model.Message(8, OpsetImport(node.domain, 1));
  return model.bytes();
}

}  // namespace ortsparse::testing
