// SparseAttention inside a real ONNX Runtime session: libortsparse_ops.so registered through
// SessionOptions, one-node models, IoBinding for the shared KV buffer. Covers the op layer: the
// typed op declarations, attributes, optional inputs and outputs, in-place and scratch caches,
// method state (kept in place, into outputs, or passed through), and the errors ONNX Runtime reports.
#include <gtest/gtest.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu/sparse_attention_cpu.h"
#include "attention_case.h"
#include "onnx_model_writer.h"
#include "ort_session_support.h"
#include "std_thread_runner.h"

namespace ortsparse::testing {
namespace {

class OrtEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    std::string error;
    env = LoadOnnxRuntime(ORTSPARSE_ORT_LIBRARY, &error);
    ASSERT_NE(env, nullptr) << error;
  }
  void TearDown() override { delete env; }
  static Ort::Env* env;
};
Ort::Env* OrtEnvironment::env = nullptr;
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new OrtEnvironment);

enum class Attributes { kAll, kRequiredOnly };

std::vector<OnnxAttribute> AttributesOf(const attention::AttentionAttributes& a, Attributes which = Attributes::kAll) {
  std::vector<OnnxAttribute> attributes = {OnnxAttribute::Int("num_heads", a.num_heads),
                                           OnnxAttribute::Int("kv_num_heads", a.kv_num_heads)};
  if (which == Attributes::kRequiredOnly) return attributes;
  attributes.insert(attributes.end(), {OnnxAttribute::Int("is_causal", a.is_causal),
                                       OnnxAttribute::Int("do_rotary", a.do_rotary),
                                       OnnxAttribute::Int("rotary_interleaved", a.rotary_interleaved),
                                       OnnxAttribute::Int("local_window_size", a.local_window_size),
                                       OnnxAttribute::Float("softcap", a.softcap),
                                       OnnxAttribute::String("method", "dense")});
  if (a.scale) attributes.push_back(OnnxAttribute::Float("scale", *a.scale));
  return attributes;
}

// Replaces the attribute of the same name, or adds it.
void SetAttribute(std::vector<OnnxAttribute>& attributes, OnnxAttribute attribute) {
  for (OnnxAttribute& existing : attributes) {
    if (existing.name == attribute.name) {
      existing = std::move(attribute);
      return;
    }
  }
  attributes.push_back(std::move(attribute));
}

void RemoveAttribute(std::vector<OnnxAttribute>& attributes, const std::string& name) {
  attributes.erase(std::remove_if(attributes.begin(), attributes.end(),
                                  [&](const OnnxAttribute& attribute) { return attribute.name == name; }),
                   attributes.end());
}

Ort::Session CreateSession(const Step& step, const std::vector<std::string>& outputs) {
  const std::string model = StepModel(step, outputs);
  Ort::SessionOptions options;
  options.SetIntraOpNumThreads(2);
  options.RegisterCustomOpsLibrary(ORTSPARSE_OPS_LIBRARY);
  return Ort::Session(*OrtEnvironment::env, model.data(), model.size(), options);
}

// Runs case `c` as a one-node model. With c.shared_buffer, past and present are one bound value.
// Without present outputs, the op keeps the cache in scratch (then only the output is checked).
void RunInSession(const AttentionCase& c, bool request_presents, Attributes attributes = Attributes::kAll) {
  ExpandedCase e = Expand(c, SeedOf(c));
  Step step;
  step.attributes = AttributesOf(e.attributes, attributes);
  AddInputs(e, &step);
  std::vector<std::string> outputs = {"output"};
  if (request_presents) outputs.insert(outputs.end(), {"present_key", "present_value"});
  for (const std::string& name : outputs) step.graph_outputs.push_back({name, OnnxType(c.type)});
  Ort::Session session = CreateSession(step, outputs);

  Ort::IoBinding binding(session);
  for (size_t i = 0; i < step.graph_inputs.size(); ++i) binding.BindInput(step.graph_inputs[i].name.c_str(), step.values[i]);
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
  binding.BindOutput("output", cpu);
  if (request_presents) {
    if (c.shared_buffer) {  // values[3], values[4]: past_key, past_value
      binding.BindOutput("present_key", step.values[3]);
      binding.BindOutput("present_value", step.values[4]);
    } else {
      binding.BindOutput("present_key", cpu);
      binding.BindOutput("present_value", cpu);
    }
  }
  session.Run(Ort::RunOptions(), binding);
  std::vector<Ort::Value> results = binding.GetOutputValues();

  OpResult actual;
  actual.output = Read(results[0]);
  if (!request_presents) {
    const ReferenceResult exact = ReferenceAttention(e.problem);
    const ReferenceResult low = ReferenceAttention(e.problem, [&](double x) { return RoundToType(c.type, x); });
    ExpectMatches("output", c.type, actual.output, exact.output, low.output);
    return;
  }
  actual.present_key = Read(results[1]);
  actual.present_value = Read(results[2]);
  if (c.shared_buffer) {
    EXPECT_EQ(results[1].GetTensorRawData(), e.past_key.bytes.data()) << "present_key was not updated in place";
  }
  ExpectMatchesReference(c, e, actual);
}

AttentionCase DecodeWithSeqlens(DataType type, bool shared) {
  AttentionCase c;
  c.name = "OrtDecode";
  c.type = type;
  c.batch = 2;
  c.num_heads = 8;
  c.kv_num_heads = 2;
  c.past_length = 40;
  c.seqlens_k = {12, 39};
  c.total_sequence_length = 40;
  c.shared_buffer = shared;
  c.rotary = RotaryKind::kHalfSplit;
  return c;
}

TEST(OrtSessionTest, DecodesInPlaceThroughASharedBufferFp32) { RunInSession(DecodeWithSeqlens(DataType::kFloat32, true), true); }
TEST(OrtSessionTest, DecodesInPlaceThroughASharedBufferFp16) { RunInSession(DecodeWithSeqlens(DataType::kFloat16, true), true); }
TEST(OrtSessionTest, DecodesIntoSeparatePresentBuffers) { RunInSession(DecodeWithSeqlens(DataType::kFloat16, false), true); }
TEST(OrtSessionTest, KeepsTheCacheInScratchWithoutPresentOutputs) {
  RunInSession(DecodeWithSeqlens(DataType::kFloat32, false), false);
}

TEST(OrtSessionTest, ConcatenatesWithAMaskAndDefaultAttributes) {
  AttentionCase c;
  c.name = "OrtConcatenation";
  c.batch = 2;
  c.query_length = 5;
  c.past_length = 7;
  c.num_heads = 4;
  c.kv_num_heads = 1;
  c.mask = MaskKind::kBool;
  c.mask_leading_dims = {2, 1, 5};
  c.mask_columns_short_by = 2;
  RunInSession(c, true, Attributes::kRequiredOnly);  // the case's settings are the defaults
}

// A valid fp32 decode step with room for one more input or attribute to break.
struct BrokenStep {
  AttentionCase c = DecodeWithSeqlens(DataType::kFloat32, false);
  ExpandedCase e = Expand(c, SeedOf(c));
  Step step;
  BrokenStep() {
    step.attributes = AttributesOf(e.attributes);
    AddInputs(e, &step);
    step.graph_outputs.push_back({"output", 1});
  }
  // The message of the Ort::Exception that creating and running the session throws.
  std::string Error(OrtErrorCode* code = nullptr) {
    try {
      Ort::Session session = CreateSession(step, {"output"});
      std::vector<const char*> names;
      for (const OnnxValue& input : step.graph_inputs) names.push_back(input.name.c_str());
      const char* output = "output";
      session.Run(Ort::RunOptions(), names.data(), step.values.data(), names.size(), &output, 1);
    } catch (const Ort::Exception& error) {
      if (code != nullptr) *code = error.GetOrtErrorCode();
      return error.what();
    }
    return "no error";
  }
};

TEST(OrtSessionTest, RejectsBadInputsWithInvalidArgument) {
  BrokenStep broken;
  broken.e.seqlens_k[1] = 5000;
  OrtErrorCode code = ORT_OK;
  const std::string error = broken.Error(&code);
  EXPECT_NE(error.find("SparseAttention: seqlens_k[1] (5000) + 1 exceeds the cache capacity past_key sequence length (40)"),
            std::string::npos)
      << error;
  EXPECT_EQ(code, ORT_INVALID_ARGUMENT);
}

TEST(OrtSessionTest, RejectsBadAttributesWhenCreatingTheKernel) {
  BrokenStep broken;
  SetAttribute(broken.step.attributes, OnnxAttribute::String("method", "quest"));
  SetAttribute(broken.step.attributes, OnnxAttribute::Int("page_size", 0));
  std::string error = broken.Error();
  EXPECT_NE(error.find("SparseAttention: page_size (0) must be at least 1"), std::string::npos) << error;

  BrokenStep missing;
  RemoveAttribute(missing.step.attributes, "num_heads");
  error = missing.Error();
  EXPECT_NE(error.find("SparseAttention: attribute num_heads is required"), std::string::npos) << error;

  BrokenStep mistyped;
  SetAttribute(mistyped.step.attributes, OnnxAttribute::Int("scale", 1));
  error = mistyped.Error();
  EXPECT_NE(error.find("SparseAttention: attribute scale must be of type float"), std::string::npos) << error;
}

TEST(OrtSessionTest, PassesMethodStateThroughForDense) {
  BrokenStep valid;
  std::vector<int32_t> index(2 * 2 * 3 * 5);
  for (size_t i = 0; i < index.size(); ++i) index[i] = static_cast<int32_t>(i * 7);
  std::vector<float> summary(2 * 2 * 1 * 64, 0.25f);
  const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
  const std::vector<int64_t> index_shape = {2, 2, 3, 5}, summary_shape = {2, 2, 1, 64};
  Step& step = valid.step;
  step.inputs.resize(attention::kPastIndex);
  step.inputs.insert(step.inputs.end(), {"past_index", "past_summary"});
  step.graph_inputs.push_back({"past_index", 6});
  step.graph_inputs.push_back({"past_summary", 1});
  step.values.push_back(Ort::Value::CreateTensor<int32_t>(cpu, index.data(), index.size(), index_shape.data(), 4));
  step.values.push_back(Ort::Value::CreateTensor<float>(cpu, summary.data(), summary.size(), summary_shape.data(), 4));
  const std::vector<std::string> outputs = {"output", "", "", "present_index", "present_summary"};
  step.graph_outputs.push_back({"present_index", 6});
  step.graph_outputs.push_back({"present_summary", 1});
  Ort::Session session = CreateSession(step, outputs);
  std::vector<const char*> input_names;
  for (const OnnxValue& input : step.graph_inputs) input_names.push_back(input.name.c_str());
  const char* output_names[] = {"output", "present_index", "present_summary"};
  std::vector<Ort::Value> results = session.Run(Ort::RunOptions(), input_names.data(), step.values.data(),
                                                input_names.size(), output_names, 3);
  EXPECT_EQ(results[1].GetTensorTypeAndShapeInfo().GetShape(), index_shape);
  EXPECT_EQ(std::memcmp(results[1].GetTensorRawData(), index.data(), index.size() * sizeof(int32_t)), 0);
  EXPECT_EQ(results[2].GetTensorTypeAndShapeInfo().GetShape(), summary_shape);
  EXPECT_EQ(std::memcmp(results[2].GetTensorRawData(), summary.data(), summary.size() * sizeof(float)), 0);
}

TEST(OrtSessionTest, GivesEmptyMethodStateWithoutAPast) {
  BrokenStep valid;
  Step& step = valid.step;
  step.graph_outputs.push_back({"present_index", 6});
  Ort::Session session = CreateSession(step, {"output", "", "", "present_index"});
  std::vector<const char*> input_names;
  for (const OnnxValue& input : step.graph_inputs) input_names.push_back(input.name.c_str());
  const char* output_names[] = {"output", "present_index"};
  std::vector<Ort::Value> results =
      session.Run(Ort::RunOptions(), input_names.data(), step.values.data(), input_names.size(), output_names, 2);
  EXPECT_EQ(results[1].GetTensorTypeAndShapeInfo().GetShape(), (std::vector<int64_t>{2, 2, 0, 0}));
}


// --- Sparse methods with state ------------------------------------------------------------------

// A host tensor that the session and the CPU path read, or write in place.
struct HostTensor {
  DataType type = DataType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;

  static size_t Count(const std::vector<int64_t>& shape) {
    size_t count = 1;
    for (int64_t dim : shape) count *= static_cast<size_t>(dim);
    return count;
  }
  static HostTensor Random(std::mt19937& rng, std::vector<int64_t> shape, double scale = 1.0) {
    std::normal_distribution<double> normal(0.0, scale);
    std::vector<double> values(Count(shape));
    for (double& v : values) v = normal(rng);
    StoredTensor stored = Store(DataType::kFloat32, shape, values);
    return {DataType::kFloat32, std::move(shape), std::move(stored.bytes)};
  }
  static HostTensor Zeros(DataType type, std::vector<int64_t> shape) {
    const size_t bytes = Count(shape) * static_cast<size_t>(DataTypeSize(type));
    return {type, std::move(shape), std::vector<unsigned char>(bytes, 0)};
  }
  static HostTensor Int32(const std::vector<int32_t>& values, std::vector<int64_t> shape) {
    HostTensor tensor = Zeros(DataType::kInt32, std::move(shape));
    std::memcpy(tensor.bytes.data(), values.data(), tensor.bytes.size());
    return tensor;
  }
  Ort::Value Value() {
    const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
    return Ort::Value::CreateTensor(cpu, bytes.data(), bytes.size(), shape.data(), shape.size(), OrtType(type));
  }
  attention::TensorInfo Info() const { return {true, type, shape, bytes.data()}; }
};

const char* const kOutputNames[] = {"output", "present_key", "present_value", "present_index", "present_summary"};

std::vector<OnnxAttribute> MethodAttributes(const attention::AttentionAttributes& a) {
  std::vector<OnnxAttribute> attributes = AttributesOf(a);
  SetAttribute(attributes, OnnxAttribute::String("method", a.method));
  attributes.insert(attributes.end(), {OnnxAttribute::Float("budget", a.budget), OnnxAttribute::Int("sink", a.sink),
                                       OnnxAttribute::Int("window", a.window),
                                       OnnxAttribute::Int("dense_below", a.dense_below),
                                       OnnxAttribute::Int("page_size", a.page_size)});
  return attributes;
}

// A one-node session of the given inputs and outputs (by index).
Ort::Session MethodSession(const attention::AttentionAttributes& a, const std::vector<std::pair<int, HostTensor*>>& inputs,
                           const std::vector<int>& outputs) {
  Step step;
  step.attributes = MethodAttributes(a);
  for (const auto& [index, tensor] : inputs) {
    step.inputs.resize(std::max<size_t>(step.inputs.size(), index + 1));
    step.inputs[index] = attention::InputName(index);
    step.graph_inputs.push_back({attention::InputName(index), OnnxType(tensor->type)});
  }
  std::vector<std::string> node_outputs;
  for (int index : outputs) {
    node_outputs.resize(std::max<size_t>(node_outputs.size(), index + 1));
    node_outputs[index] = kOutputNames[index];
    step.graph_outputs.push_back({kOutputNames[index], index == attention::kPresentIndex ? 6 : 1});
  }
  return CreateSession(step, node_outputs);
}

// The CPU path on the same inputs; caches and state are written in place when they are the past's.
std::vector<unsigned char> RunCpuPath(const attention::AttentionAttributes& a,
                                      const std::vector<std::pair<int, HostTensor*>>& inputs, HostTensor* key_cache,
                                      HostTensor* value_cache, HostTensor* state) {
  static StdThreadRunner threads(2);
  attention::AttentionInputs views;
  for (const auto& [index, tensor] : inputs) views[index] = tensor->Info();
  attention::AttentionPlan plan;
  const Status planned = attention::PlanAttention(a, views, &plan);
  EXPECT_TRUE(planned.ok()) << planned.message();
  std::vector<unsigned char> output(
      HostTensor::Count({plan.batch, plan.query_length, plan.num_heads * plan.v_head_size}) * 4);
  std::vector<unsigned char> rotated(attention::RotatedQueryBytes(plan));
  attention::AttentionOutputs outputs;
  outputs.output = output.data();
  outputs.key_cache = key_cache->bytes.data();
  outputs.key_cache_is_past = views[attention::kPastKey].data == outputs.key_cache;
  outputs.value_cache = value_cache->bytes.data();
  outputs.value_cache_is_past = views[attention::kPastValue].data == outputs.value_cache;
  outputs.rotated_query = rotated.data();
  outputs.method_state = state->bytes.data();
  outputs.method_state_is_past = views[attention::kPastIndex].data == outputs.method_state ||
                                 views[attention::kPastSummary].data == outputs.method_state;
  const Status ran = cpu::RunSparseAttention(a, views, plan, outputs, threads.runner());
  EXPECT_TRUE(ran.ok()) << ran.message();
  return output;
}

std::vector<unsigned char> Bytes(const Ort::Value& value) {
  const Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
  const size_t bytes = info.GetElementCount() * (info.GetElementType() == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16 ? 2 : 4);
  const unsigned char* data = static_cast<const unsigned char*>(value.GetTensorRawData());
  return std::vector<unsigned char>(data, data + bytes);
}

// quest through a session as ONNX Runtime GenAI runs a model: the caches and the page summaries are
// bound to one buffer each (past and present), a prompt then decode steps update them in place.
TEST(OrtSessionTest, KeepsMethodStateInPlaceThroughSharedBuffers) {
  constexpr int64_t B = 2, Hq = 4, Hkv = 2, D = 64, kCapacity = 40, kPageSize = 4;
  attention::AttentionAttributes a;
  a.num_heads = Hq;
  a.kv_num_heads = Hkv;
  a.method = "quest";
  a.page_size = kPageSize;
  a.budget = 0.25f;
  a.sink = 2;
  a.window = 4;
  a.dense_below = 16;
  HostTensor key_cache = HostTensor::Zeros(DataType::kFloat32, {B, Hkv, kCapacity, D});
  HostTensor value_cache = key_cache;
  HostTensor summary = HostTensor::Zeros(DataType::kFloat32, {B, Hkv, kCapacity / kPageSize, 2 * D});
  HostTensor cpu_key_cache = key_cache, cpu_value_cache = value_cache, cpu_summary = summary;
  HostTensor total = HostTensor::Int32({kCapacity}, {1});
  std::mt19937 rng(5);
  std::optional<Ort::Session> session;
  const std::vector<std::vector<int32_t>> seqlens_of_step = {{23, 17}, {24, 18}, {25, 19}};
  for (const std::vector<int32_t>& seqlens : seqlens_of_step) {
    const int64_t S = &seqlens == &seqlens_of_step[0] ? 24 : 1;
    HostTensor query = HostTensor::Random(rng, {B, S, Hq * D});
    HostTensor key = HostTensor::Random(rng, {B, S, Hkv * D});
    HostTensor value = HostTensor::Random(rng, {B, S, Hkv * D});
    HostTensor seqlens_k = HostTensor::Int32(seqlens, {B});
    std::vector<std::pair<int, HostTensor*>> inputs = {
        {attention::kQuery, &query}, {attention::kKey, &key}, {attention::kValue, &value},
        {attention::kPastKey, &key_cache}, {attention::kPastValue, &value_cache}, {attention::kSeqlensK, &seqlens_k},
        {attention::kTotalSequenceLength, &total}, {attention::kPastSummary, &summary}};
    if (!session) {
      session.emplace(MethodSession(a, inputs, {attention::kOutput, attention::kPresentKey, attention::kPresentValue,
                                                attention::kPresentSummary}));
    }
    Ort::IoBinding binding(*session);
    std::vector<Ort::Value> values;
    for (auto& [index, tensor] : inputs) {
      values.push_back(tensor->Value());
      binding.BindInput(attention::InputName(index), values.back());
    }
    binding.BindOutput("output", Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault));
    binding.BindOutput("present_key", values[3]);
    binding.BindOutput("present_value", values[4]);
    binding.BindOutput("present_summary", values[7]);
    session->Run(Ort::RunOptions(), binding);
    const std::vector<Ort::Value> results = binding.GetOutputValues();
    EXPECT_EQ(results[3].GetTensorRawData(), summary.bytes.data()) << "present_summary was not updated in place";

    // The same step on the CPU path, on its own copies of the caches and summaries.
    inputs[3].second = &cpu_key_cache;
    inputs[4].second = &cpu_value_cache;
    inputs[7].second = &cpu_summary;
    EXPECT_TRUE(Bytes(results[0]) == RunCpuPath(a, inputs, &cpu_key_cache, &cpu_value_cache, &cpu_summary));
  }
  EXPECT_TRUE(key_cache.bytes == cpu_key_cache.bytes);
  EXPECT_TRUE(summary.bytes == cpu_summary.bytes);
  EXPECT_NE(summary.bytes, HostTensor::Zeros(DataType::kFloat32, summary.shape).bytes);
}

// saap with its calibration as graph inputs, a cache given without past_index (the state is built
// from it), the caches kept in scratch and the state allocated by ONNX Runtime.
TEST(OrtSessionTest, BuildsMethodStateIntoAnOutputFromCalibration) {
  constexpr int64_t B = 2, Hq = 4, Hkv = 2, D = 32, P = 30, C = 8, M = 16;
  attention::AttentionAttributes a;
  a.num_heads = Hq;
  a.kv_num_heads = Hkv;
  a.method = "saap";
  a.budget = 0.25f;
  a.sink = 2;
  a.window = 4;
  a.dense_below = 16;
  std::mt19937 rng(6);
  HostTensor query = HostTensor::Random(rng, {B, 1, Hq * D}), key = HostTensor::Random(rng, {B, 1, Hkv * D});
  HostTensor value = HostTensor::Random(rng, {B, 1, Hkv * D});
  HostTensor past_key = HostTensor::Random(rng, {B, Hkv, P, D}), past_value = HostTensor::Random(rng, {B, Hkv, P, D});
  HostTensor centroids = HostTensor::Random(rng, {Hkv, C, D}, 1.0 / std::sqrt(static_cast<double>(D)));
  HostTensor weights = HostTensor::Random(rng, {Hq, D, M}, 0.2), bias = HostTensor::Random(rng, {Hq, M}, 0.2);
  HostTensor output_layer = HostTensor::Random(rng, {Hq, M + 1, C}, 0.2);
  const std::vector<std::pair<int, HostTensor*>> inputs = {
      {attention::kQuery, &query},         {attention::kKey, &key},           {attention::kValue, &value},
      {attention::kPastKey, &past_key},    {attention::kPastValue, &past_value}, {attention::kMethodData0, &centroids},
      {attention::kMethodData1, &weights}, {attention::kMethodData2, &bias},  {attention::kMethodData3, &output_layer}};
  Ort::Session session = MethodSession(a, inputs, {attention::kOutput, attention::kPresentIndex});
  std::vector<const char*> names;
  std::vector<Ort::Value> values;
  for (const auto& [index, tensor] : inputs) {
    names.push_back(attention::InputName(index));
    values.push_back(tensor->Value());
  }
  const char* output_names[] = {"output", "present_index"};
  const std::vector<Ort::Value> results =
      session.Run(Ort::RunOptions(), names.data(), values.data(), names.size(), output_names, 2);

  HostTensor key_cache = HostTensor::Zeros(DataType::kFloat32, {B, Hkv, P + 1, D}), value_cache = key_cache;
  HostTensor index = HostTensor::Zeros(DataType::kInt32, {B, Hkv, P + 1, 1});
  EXPECT_TRUE(Bytes(results[0]) == RunCpuPath(a, inputs, &key_cache, &value_cache, &index));
  EXPECT_EQ(results[1].GetTensorTypeAndShapeInfo().GetShape(), index.shape);
  EXPECT_TRUE(Bytes(results[1]) == index.bytes);
}

}  // namespace
}  // namespace ortsparse::testing
