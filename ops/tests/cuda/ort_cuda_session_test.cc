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
  const std::string model = StepModel(step, outputs);
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

// A method's method_data_0 (hash: [Hkv, R, D, NB / 2] projections; hyper: [Hkv, 1, D, L]).
struct MethodData {
  std::vector<float> values;
  std::vector<int64_t> shape;
};

// Projections whose every column picks one dimension of the head, with a sign: each product is one
// element of the query or key, exactly, whatever order the kernels sum in, so that the CPU and the
// CUDA op compute the same buckets and codes. `rounds` = 1 and `columns` = L for hyper.
MethodData OneHotProjections(const AttentionCase& c, int64_t rounds, int64_t columns) {
  MethodData data;
  const int64_t Hkv = c.kv_num_heads, D = c.head_size;
  data.shape = {Hkv, rounds, D, columns};
  data.values.assign(Hkv * rounds * D * columns, 0.0f);
  for (int64_t h = 0; h < Hkv; ++h) {
    for (int64_t r = 0; r < rounds; ++r) {
      for (int64_t i = 0; i < columns; ++i) {
        const int64_t d = (11 * i + 5 * r + 3 * h) % D;
        data.values[((h * rounds + r) * D + d) * columns + i] = (i + r) % 2 == 0 ? 1.0f : -1.0f;
      }
    }
  }
  return data;
}

// The method data a method needs in these tests (none for most).
const MethodData* DataOf(const AttentionCase& c, const std::string& method, MethodData* storage) {
  if (method == "hash") {
    *storage = OneHotProjections(c, 2, 8);  // 2 rounds of 16 buckets
    return storage;
  }
  if (method == "hyper") {
    *storage = OneHotProjections(c, 1, 8);  // 8 hyperplanes
    return storage;
  }
  return nullptr;
}

Results RunStep(ExpandedCase& e, const std::string& method, bool cuda, const MethodData* method_data = nullptr) {
  Step step;
  step.attributes = Attributes(e, method);
  AddInputs(e, &step);
  std::vector<float> method_values;  // the tensor's buffer, alive until the run
  if (method_data != nullptr) {
    method_values = method_data->values;
    step.inputs.resize(attention::kMethodData0, "");
    step.inputs.push_back(attention::InputName(attention::kMethodData0));
    step.graph_inputs.push_back({attention::InputName(attention::kMethodData0), OnnxType(DataType::kFloat32)});
    const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtDeviceAllocator, OrtMemTypeDefault);
    step.values.push_back(Ort::Value::CreateTensor<float>(cpu, method_values.data(), method_values.size(),
                                                          method_data->shape.data(), method_data->shape.size()));
  }
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

// Runs case `c` with `method` on both providers: the caches match the CPU provider's, dense matches
// the fp64 reference within the error of a low-precision one, and every method's output matches the
// CPU provider's (same selection; the sums run in a different order).
void ExpectCudaMatchesCpu(const AttentionCase& c, const char* method) {
  ExpandedCase cuda_inputs = Expand(c, SeedOf(c));
  ExpandedCase cpu_inputs = Expand(c, SeedOf(c));
  MethodData storage;
  const MethodData* method_data = DataOf(c, method, &storage);
  const Results gpu = RunStep(cuda_inputs, method, /*cuda=*/true, method_data);
  const Results cpu = RunStep(cpu_inputs, method, /*cuda=*/false, method_data);
  ExpectMatches("present_key", c.type, gpu.present_key, cpu.present_key, cpu.present_key);
  ExpectMatches("present_value", c.type, gpu.present_value, cpu.present_value, cpu.present_value);
  if (std::string(method) == "dense") {
    const ReferenceResult exact = ReferenceAttention(cpu_inputs.problem);
    const ReferenceResult low = ReferenceAttention(cpu_inputs.problem, [&](double x) { return RoundToType(c.type, x); });
    ExpectMatches("output", c.type, gpu.output, exact.output, low.output);
  }
  const double tolerance = c.type == DataType::kFloat32 ? 1e-4 : 4e-3;
  double worst = 0.0, scale = 1e-6;
  for (size_t i = 0; i < cpu.output.size(); ++i) {
    worst = std::max(worst, std::abs(gpu.output[i] - cpu.output[i]));
    scale = std::max(scale, std::abs(cpu.output[i]));
  }
  EXPECT_LE(worst, tolerance * scale) << method << ": max |cuda - cpu| " << worst << " of max |cpu| " << scale;
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
  ExpectCudaMatchesCpu(Decode(p.type, p.rotary), p.method);
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

// Prefill steps (S > 1): a chunk appended in place to a shared-buffer cache after a past of a
// different length per sequence (GroupQueryAttention), a right-padded first prompt, and a chunk
// after a concatenated past (ONNX Attention); fp16, or fp32.
enum class PrefillKind { kSharedChunk, kPaddedFirstPrompt, kConcatenatedPast };

AttentionCase Prefill(PrefillKind kind, RotaryKind rotary, DataType type = DataType::kFloat16) {
  AttentionCase c;
  c.type = type;
  c.batch = 2;
  c.num_heads = 8;
  c.kv_num_heads = 2;
  c.head_size = 128;
  c.rotary = rotary;
  switch (kind) {
    case PrefillKind::kSharedChunk:
      c.name = "CudaPrefillSharedChunk";
      c.query_length = 150;
      c.past_length = 700;
      c.seqlens_k = {420, 699};  // past 271 and 550
      c.total_sequence_length = 700;
      c.shared_buffer = true;
      break;
    case PrefillKind::kPaddedFirstPrompt:
      c.name = "CudaPrefillPaddedFirstPrompt";
      c.query_length = 300;
      c.seqlens_k = {299, 180};  // the second prompt has 181 valid rows
      c.total_sequence_length = 300;
      break;
    case PrefillKind::kConcatenatedPast:
      c.name = "CudaPrefillConcatenatedPast";
      c.query_length = 130;
      c.past_length = 237;
      break;
  }
  return c;
}

struct CudaPrefillCase {
  PrefillKind kind;
  RotaryKind rotary;
  const char* method;
  DataType type = DataType::kFloat16;
};

class OrtCudaPrefillTest : public ::testing::TestWithParam<CudaPrefillCase> {};

std::string PrefillCaseName(const ::testing::TestParamInfo<CudaPrefillCase>& info) {
  static const char* const kKinds[] = {"SharedChunk", "PaddedFirstPrompt", "ConcatenatedPast"};
  return std::string(info.param.method) + "_" + kKinds[static_cast<int>(info.param.kind)] +
         (info.param.rotary == RotaryKind::kNone ? "" : "_rotary") +
         (info.param.type == DataType::kFloat32 ? "_fp32" : "");
}

// Dense prefill matches the fp64 reference within the error of a low-precision one; every method
// matches the CPU provider's result of the same model (block, hash, hyper: the same selection).
TEST_P(OrtCudaPrefillTest, MatchesTheCpuProviderAndTheReference) {
  SKIP_WITHOUT_CUDA();
  const CudaPrefillCase& p = GetParam();
  ExpectCudaMatchesCpu(Prefill(p.kind, p.rotary, p.type), p.method);
}

INSTANTIATE_TEST_SUITE_P(
    Methods, OrtCudaPrefillTest,
    ::testing::Values(CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kNone, "dense"},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kHalfSplit, "dense"},
                      CudaPrefillCase{PrefillKind::kPaddedFirstPrompt, RotaryKind::kNone, "dense"},
                      CudaPrefillCase{PrefillKind::kConcatenatedPast, RotaryKind::kNone, "dense"},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kNone, "block"},
                      CudaPrefillCase{PrefillKind::kPaddedFirstPrompt, RotaryKind::kNone, "block"},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kNone, "topk"},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kHalfSplit, "quest"},
                      CudaPrefillCase{PrefillKind::kConcatenatedPast, RotaryKind::kNone, "streaming"},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kNone, "hash"},
                      CudaPrefillCase{PrefillKind::kPaddedFirstPrompt, RotaryKind::kNone, "hash"},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kHalfSplit, "hyper"},
                      CudaPrefillCase{PrefillKind::kConcatenatedPast, RotaryKind::kNone, "hyper"},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kNone, "dense", DataType::kFloat32},
                      CudaPrefillCase{PrefillKind::kPaddedFirstPrompt, RotaryKind::kNone, "block", DataType::kFloat32},
                      CudaPrefillCase{PrefillKind::kConcatenatedPast, RotaryKind::kNone, "hash", DataType::kFloat32},
                      CudaPrefillCase{PrefillKind::kSharedChunk, RotaryKind::kHalfSplit, "hyper", DataType::kFloat32}),
    PrefillCaseName);

// What CUDA prefill does not run is refused with ORT_NOT_IMPLEMENTED and a message that says so.
TEST(OrtCudaSessionErrors, PrefillOfOtherHeadSizesIsNotImplemented) {
  SKIP_WITHOUT_CUDA();
  AttentionCase c = Prefill(PrefillKind::kSharedChunk, RotaryKind::kNone);
  c.name = "CudaPrefillHeadSize32";
  c.head_size = 32;
  ExpandedCase e = Expand(c, SeedOf(c));
  try {
    RunStep(e, "dense", /*cuda=*/true);
    FAIL() << "a prefill of head size 32 ran on CUDA";
  } catch (const Ort::Exception& error) {
    EXPECT_EQ(error.GetOrtErrorCode(), ORT_NOT_IMPLEMENTED) << error.what();
    EXPECT_NE(std::string(error.what()).find("head size 32"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace ortsparse::testing
