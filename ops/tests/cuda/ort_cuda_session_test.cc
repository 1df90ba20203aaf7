// SparseAttention in a real ONNX Runtime session on the CUDA execution provider (the plugin of ONNX
// Runtime 1.29), against the same one-node model on the CPU provider and the fp64 reference: the
// CUDA op layer's inputs in device memory, total_sequence_length on the host, lengths derived on
// the device, caches appended into present outputs or scratch, sparse methods, and the errors it
// reports. Needs ORTSPARSE_ORT_CUDA_DIR (a folder with libonnxruntime.so and
// libonnxruntime_providers_cuda.so) and a CUDA device; skips otherwise.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <unordered_map>
#include <vector>

#include "attention_case.h"
#include "ort_session_support.h"
#include "reference_attention.h"

namespace ortsparse::testing {
namespace {

class OrtCudaEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* folder = std::getenv("ORTSPARSE_ORT_CUDA_DIR");
    int devices = 0;
    if (folder == nullptr || cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      skip_reason = "needs ORTSPARSE_ORT_CUDA_DIR and a CUDA device";
      return;
    }
    std::string error;
    env = LoadOnnxRuntime(std::string(folder) + "/libonnxruntime.so", &error);
    ASSERT_NE(env, nullptr) << error;
    env->RegisterExecutionProviderLibrary("cuda", std::string(folder) + "/libonnxruntime_providers_cuda.so");
    for (const Ort::ConstEpDevice& device : env->GetEpDevices()) {
      if (std::string(device.EpName()) == "CUDAExecutionProvider") cuda_devices.push_back(device);
    }
    ASSERT_FALSE(cuda_devices.empty()) << "the CUDA provider registered no device";
    cuda_devices.resize(1);
  }
  void TearDown() override { delete env; }

  static Ort::Env* env;
  static std::vector<Ort::ConstEpDevice> cuda_devices;
  static std::string skip_reason;
};
Ort::Env* OrtCudaEnvironment::env = nullptr;
std::vector<Ort::ConstEpDevice> OrtCudaEnvironment::cuda_devices;
std::string OrtCudaEnvironment::skip_reason;
const auto* const kEnvironment = ::testing::AddGlobalTestEnvironment(new OrtCudaEnvironment);

#define SKIP_WITHOUT_CUDA() \
  if (!OrtCudaEnvironment::skip_reason.empty()) GTEST_SKIP() << OrtCudaEnvironment::skip_reason

Ort::Session CreateSession(const Step& step, const std::vector<std::string>& outputs, bool cuda) {
  const std::string model = WriteSingleNodeModel({"SparseAttention", "com.ortsparse", step.inputs, outputs, step.attributes},
                                                 step.graph_inputs, step.graph_outputs);
  Ort::SessionOptions options;
  options.RegisterCustomOpsLibrary(ORTSPARSE_OPS_LIBRARY);
  if (cuda) {
    options.AppendExecutionProvider_V2(*OrtCudaEnvironment::env, OrtCudaEnvironment::cuda_devices,
                                       std::unordered_map<std::string, std::string>());
    options.AddConfigEntry("session.disable_cpu_ep_fallback", "1");  // the node must run on CUDA
  }
  return Ort::Session(*OrtCudaEnvironment::env, model.data(), model.size(), options);
}

std::vector<OnnxAttribute> Attributes(const ExpandedCase& e, const std::string& method) {
  return {OnnxAttribute::Int("num_heads", e.attributes.num_heads),
          OnnxAttribute::Int("kv_num_heads", e.attributes.kv_num_heads),
          OnnxAttribute::Int("do_rotary", e.attributes.do_rotary),
          OnnxAttribute::String("method", method),
          OnnxAttribute::Int("dense_below", 64),
          OnnxAttribute::Float("budget", 0.125f)};
}

struct Results {
  std::vector<double> output, present_key, present_value;
};

Results RunStep(ExpandedCase& e, const std::string& method, bool cuda) {
  Step step;
  step.attributes = Attributes(e, method);
  AddInputs(e, &step);
  const std::vector<std::string> outputs = {"output", "present_key", "present_value"};
  for (const std::string& name : outputs) step.graph_outputs.push_back({name, OnnxType(e.inputs[0].type)});
  Ort::Session session = CreateSession(step, outputs, cuda);
  std::vector<const char*> input_names, output_names;
  for (const OnnxValue& input : step.graph_inputs) input_names.push_back(input.name.c_str());
  for (const std::string& output : outputs) output_names.push_back(output.c_str());
  std::vector<Ort::Value> values = session.Run(Ort::RunOptions(), input_names.data(), step.values.data(),
                                               step.values.size(), output_names.data(), output_names.size());
  return {Read(values[0]), Read(values[1]), Read(values[2])};
}

// Decode steps of two sequences of different lengths in one shared-buffer cache.
AttentionCase Decode(DataType type, RotaryKind rotary) {
  AttentionCase c;
  c.name = "CudaDecode";
  c.type = type;
  c.batch = 2;
  c.num_heads = 8;
  c.kv_num_heads = 2;
  c.head_size = 128;
  c.past_length = 600;
  c.seqlens_k = {300, 599};
  c.total_sequence_length = 600;
  c.shared_buffer = true;
  c.rotary = rotary;
  return c;
}

struct CudaCase {
  DataType type;
  RotaryKind rotary;
  const char* method;
};

class OrtCudaSessionTest : public ::testing::TestWithParam<CudaCase> {};

// Dense matches the fp64 reference within the error of a low-precision one; every method matches
// the CPU provider's result of the same model.
TEST_P(OrtCudaSessionTest, MatchesTheCpuProviderAndTheReference) {
  SKIP_WITHOUT_CUDA();
  const CudaCase& p = GetParam();
  const AttentionCase c = Decode(p.type, p.rotary);
  ExpandedCase cuda_inputs = Expand(c, SeedOf(c));
  ExpandedCase cpu_inputs = Expand(c, SeedOf(c));
  const Results gpu = RunStep(cuda_inputs, p.method, /*cuda=*/true);
  const Results cpu = RunStep(cpu_inputs, p.method, /*cuda=*/false);
  ExpectMatches("present_key", c.type, gpu.present_key, cpu.present_key, cpu.present_key);
  ExpectMatches("present_value", c.type, gpu.present_value, cpu.present_value, cpu.present_value);
  if (std::string(p.method) == "dense") {
    const ReferenceResult exact = ReferenceAttention(cpu_inputs.problem);
    const ReferenceResult low = ReferenceAttention(cpu_inputs.problem, [&](double x) { return RoundToType(c.type, x); });
    ExpectMatches("output", c.type, gpu.output, exact.output, low.output);
  }
  // Same selection on both providers; the sums run in a different order.
  const double tolerance = c.type == DataType::kFloat32 ? 1e-4 : 4e-3;
  double worst = 0.0, scale = 1e-6;
  for (size_t i = 0; i < cpu.output.size(); ++i) {
    worst = std::max(worst, std::abs(gpu.output[i] - cpu.output[i]));
    scale = std::max(scale, std::abs(cpu.output[i]));
  }
  EXPECT_LE(worst, tolerance * scale) << p.method << ": max |cuda - cpu| " << worst << " of max |cpu| " << scale;
}

INSTANTIATE_TEST_SUITE_P(
    Methods, OrtCudaSessionTest,
    ::testing::Values(CudaCase{DataType::kFloat32, RotaryKind::kNone, "dense"},
                      CudaCase{DataType::kFloat16, RotaryKind::kNone, "dense"},
                      CudaCase{DataType::kFloat16, RotaryKind::kHalfSplit, "dense"},
                      CudaCase{DataType::kFloat16, RotaryKind::kNone, "topk"},
                      CudaCase{DataType::kFloat16, RotaryKind::kNone, "streaming"},
                      CudaCase{DataType::kFloat16, RotaryKind::kHalfSplit, "quest"},
                      CudaCase{DataType::kFloat32, RotaryKind::kNone, "quest"}),
    [](const ::testing::TestParamInfo<CudaCase>& info) {
      return std::string(info.param.method) + (info.param.type == DataType::kFloat16 ? "_fp16" : "_fp32") +
             (info.param.rotary == RotaryKind::kNone ? "" : "_rotary");
    });

TEST(OrtCudaSessionErrors, PrefillIsNotImplementedYet) {
  SKIP_WITHOUT_CUDA();
  AttentionCase c = Decode(DataType::kFloat16, RotaryKind::kNone);
  c.query_length = 4;
  c.seqlens_k = {300, 599};
  ExpandedCase e = Expand(c, SeedOf(c));
  try {
    RunStep(e, "dense", /*cuda=*/true);
    FAIL() << "a prefill step ran on CUDA";
  } catch (const Ort::Exception& error) {
    EXPECT_EQ(error.GetOrtErrorCode(), ORT_NOT_IMPLEMENTED) << error.what();
    EXPECT_NE(std::string(error.what()).find("runs decode steps (sequence length 1) for now; got sequence length 4"),
              std::string::npos)
        << error.what();
  }
}

}  // namespace
}  // namespace ortsparse::testing
