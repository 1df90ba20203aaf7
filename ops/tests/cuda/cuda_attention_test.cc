// The CUDA decode kernels against the CPU kernels of the same method on the same inputs: the method
// state (rebuilt from the cache and updated for a new key), the keys each KV head's group attends,
// and the output. The CPU runs in fp32 on the values the GPU stores (rounded to fp16 or bf16), so
// both rank the same scores:
//   * selections must be identical where scores are exact (inputs on a dyadic grid, dyadic scale),
//     ties included; with normal values they must agree on at least 99% of the keys;
//   * outputs are compared with the CPU's attention over the GPU's selection, within twice the
//     error of rounding that fp32 reference to the storage type (plus fp32 accumulation slack).
// Every test skips when no CUDA device is present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "attention/cpu/exact_attention.h"
#include "attention/cpu/kv_cache.h"
#include "attention/cpu/rotary.h"
#include "attention/cpu/sparse_methods.h"
#include "cuda_test_support.h"
#include "ortsparse/cuda_attention.h"
#include "ortsparse/float16.h"

namespace ortsparse::testing {
namespace {

#define ASSERT_CUDA(expression) ASSERT_EQ((expression), cudaSuccess) << cudaGetErrorString(expression)

bool HasCudaDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}



// ---- a decode step -----------------------------------------------------------------------------

enum class Values { kGrid, kCoarseGrid, kNormal };
enum class Mask { kNone, kBoolPerHead };

struct DecodeCase {
  std::string name;
  SparseMethod method = SparseMethod::kTopK;
  DataType type = DataType::kFloat16;
  int64_t batch = 3, num_heads = 8, kv_num_heads = 2, head_size = 128;
  int64_t capacity = 3000;
  std::vector<int32_t> key_counts;  // per sequence; default: capacity, 60% of it, below dense_below
  Values values = Values::kGrid;
  Mask mask = Mask::kNone;
  float softcap = 0.0f;
  int64_t local_window = -1;
  float budget = 0.0625f;
  int64_t sink = 4, window = 64, dense_below = 256, page_size = 16;
  int64_t clusters = 16, hidden = 16, hash_rounds = 3, hash_half_buckets = 4;
};

void PrintTo(const DecodeCase& c, std::ostream* os) { *os << c.name; }

const char* MethodName(SparseMethod method) {
  switch (method) {
    case SparseMethod::kDense: return "dense";
    case SparseMethod::kTopK: return "topk";
    case SparseMethod::kStreaming: return "streaming";
    case SparseMethod::kLoki: return "loki";
    case SparseMethod::kQuest: return "quest";
    case SparseMethod::kSaap: return "saap";
    case SparseMethod::kHash: return "hash";
    default: return "other";
  }
}
const char* TypeName(DataType type) {
  return type == DataType::kFloat16 ? "fp16" : type == DataType::kBFloat16 ? "bf16" : "fp32";
}

bool KeepsIndices(SparseMethod m) { return m == SparseMethod::kSaap || m == SparseMethod::kHash; }
bool HasState(SparseMethod m) {
  return m == SparseMethod::kQuest || m == SparseMethod::kLoki || KeepsIndices(m);
}

// Values of one tensor: multiples of 1/4 in [-2, 2] (grid), {-1/4, 0, 1/4} (coarse), or normal.
std::vector<float> Draw(std::mt19937& rng, size_t count, Values kind) {
  std::vector<float> values(count);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> grid(-8, 8), coarse(-1, 1);
  for (float& v : values) {
    v = kind == Values::kGrid ? grid(rng) / 4.0f : kind == Values::kCoarseGrid ? coarse(rng) / 4.0f : normal(rng);
  }
  return values;
}

std::vector<float> DyadicValues(std::mt19937& rng, size_t count, int limit, float denominator) {
  std::uniform_int_distribution<int> step(-limit, limit);
  std::vector<float> values(count);
  for (float& v : values) v = step(rng) / denominator;
  return values;
}

// Orthonormal rows (normal values) or a signed permutation (grid), per KV head.
std::vector<float> Bases(std::mt19937& rng, int64_t heads, int64_t D, bool grid) {
  std::vector<float> all(heads * D * D, 0.0f);
  std::normal_distribution<double> normal;
  for (int64_t h = 0; h < heads; ++h) {
    float* basis = &all[h * D * D];
    if (grid) {
      std::vector<int64_t> order(D);
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), rng);
      for (int64_t i = 0; i < D; ++i) basis[i * D + order[i]] = rng() % 2 == 0 ? 1.0f : -1.0f;
      continue;
    }
    std::vector<double> rows(D * D);
    for (int64_t i = 0; i < D; ++i) {
      double* row = &rows[i * D];
      for (int64_t d = 0; d < D; ++d) row[d] = normal(rng);
      for (int64_t k = 0; k < i; ++k) {
        const double dot = std::inner_product(row, row + D, &rows[k * D], 0.0);
        for (int64_t d = 0; d < D; ++d) row[d] -= dot * rows[k * D + d];
      }
      const double norm = std::sqrt(std::inner_product(row, row + D, row, 0.0));
      for (int64_t d = 0; d < D; ++d) {
        row[d] /= norm;
        basis[i * D + d] = static_cast<float>(row[d]);
      }
    }
  }
  return all;
}

// Everything of one step, on the host (fp32, as stored) and on the device (in the storage type).
struct Step {
  DecodeCase c;
  int64_t group = 0, rank = 0, state_rows = 0, state_width = 0;
  std::vector<float> query, keys, values;
  std::vector<uint8_t> mask;  // [B, Hq, T], 0 hides the key
  std::vector<int32_t> past, key_counts, rows;
  std::vector<float> pca_basis, centroids, classifier_weights, classifier_bias, classifier_output, projections;
  DeviceBuffer d_query, d_keys, d_values, d_output, d_mask, d_past, d_key_counts, d_rows;
  DeviceBuffer d_basis, d_centroids, d_w1, d_b1, d_w2, d_projections, d_state;

  int64_t StateElementSize() const { return KeepsIndices(c.method) ? 4 : DataTypeSize(c.type); }
};

void Fill(Step& s) {
  const DecodeCase& c = s.c;
  const int64_t B = c.batch, Hq = c.num_heads, Hkv = c.kv_num_heads, D = c.head_size, T = c.capacity;
  s.group = Hq / Hkv;
  s.rank = std::max<int64_t>(1, D / 4);
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(c.name)));
  auto rounded = [&](std::vector<float> v) {
    for (float& x : v) x = RoundTo(c.type, x);
    return v;
  };
  s.query = rounded(Draw(rng, B * Hq * D, c.values));
  s.keys = rounded(Draw(rng, B * Hkv * T * D, c.values));
  s.values = rounded(Draw(rng, B * Hkv * T * D, Values::kNormal));
  s.key_counts = c.key_counts;
  if (s.key_counts.empty()) {
    s.key_counts = {static_cast<int32_t>(T), static_cast<int32_t>(T * 6 / 10 + 7), static_cast<int32_t>(c.dense_below - 5)};
    s.key_counts.resize(B, static_cast<int32_t>(T));
  }
  for (int32_t count : s.key_counts) s.past.push_back(count - 1);
  s.rows.assign(B, 1);
  if (c.mask == Mask::kBoolPerHead) {
    s.mask.resize(B * Hq * T);
    for (int64_t i = 0; i < B * Hq * T; ++i) s.mask[i] = (static_cast<uint64_t>(i) * 2654435761u >> 7) % 7 != 0;
  }
  const bool grid = c.values != Values::kNormal;
  switch (c.method) {
    case SparseMethod::kLoki:
      s.pca_basis = Bases(rng, Hkv, D, grid);
      s.state_width = s.rank;
      s.state_rows = T;
      break;
    case SparseMethod::kQuest:
      s.state_width = 2 * D;
      s.state_rows = (T + c.page_size - 1) / c.page_size;
      break;
    case SparseMethod::kSaap: {
      s.centroids.assign(Hkv * c.clusters * D, 0.0f);
      const std::vector<float> bases = Bases(rng, Hkv, D, grid);
      for (int64_t h = 0; h < Hkv; ++h) {
        for (int64_t k = 0; k < c.clusters; ++k) {
          std::copy_n(&bases[(h * D + k % D) * D], D, &s.centroids[(h * c.clusters + k) * D]);
        }
      }
      s.classifier_weights = DyadicValues(rng, Hq * D * c.hidden, 4, 32.0f);
      s.classifier_bias = DyadicValues(rng, Hq * c.hidden, 4, 32.0f);
      s.classifier_output = DyadicValues(rng, Hq * (c.hidden + 1) * c.clusters, 8, 16.0f);
      s.state_width = 1;
      s.state_rows = T;
      break;
    }
    case SparseMethod::kHash:
      s.projections = Draw(rng, Hkv * c.hash_rounds * D * c.hash_half_buckets, grid ? Values::kGrid : Values::kNormal);
      s.state_width = c.hash_rounds;
      s.state_rows = T;
      break;
    default:
      break;
  }
  s.d_query.Upload(Encode(c.type, s.query));
  s.d_keys.Upload(Encode(c.type, s.keys));
  s.d_values.Upload(Encode(c.type, s.values));
  s.d_output.Allocate(B * Hq * D * DataTypeSize(c.type));
  cudaMemset(s.d_output.get(), 0xff, s.d_output.bytes());  // NaN everywhere: every element must be written
  s.d_mask.Upload(s.mask);
  s.d_past.Upload(s.past);
  s.d_key_counts.Upload(s.key_counts);
  s.d_rows.Upload(s.rows);
  s.d_basis.Upload(s.pca_basis);
  s.d_centroids.Upload(s.centroids);
  s.d_w1.Upload(s.classifier_weights);
  s.d_b1.Upload(s.classifier_bias);
  s.d_w2.Upload(s.classifier_output);
  s.d_projections.Upload(s.projections);
  s.d_state.Allocate(B * Hkv * s.state_rows * s.state_width * s.StateElementSize());
}

void SetHeadMajor(int64_t heads, int64_t length, int64_t width, int64_t strides[3]) {
  strides[0] = heads * length * width;
  strides[1] = length * width;
  strides[2] = width;
}

// The step's parameters; device pointers, or host pointers to fp32 copies for the CPU.
AttentionParams MakeAttention(const Step& s, bool device, void* host_output = nullptr) {
  const DecodeCase& c = s.c;
  AttentionParams a;
  a.type = device ? c.type : DataType::kFloat32;
  a.batch = c.batch;
  a.query_length = 1;
  a.num_heads = c.num_heads;
  a.kv_num_heads = c.kv_num_heads;
  a.head_size = a.v_head_size = c.head_size;
  a.query = device ? s.d_query.get() : static_cast<const void*>(s.query.data());
  a.query_strides[0] = a.query_strides[1] = c.num_heads * c.head_size;
  a.query_strides[2] = c.head_size;
  a.key_cache = device ? s.d_keys.get() : static_cast<const void*>(s.keys.data());
  a.value_cache = device ? s.d_values.get() : static_cast<const void*>(s.values.data());
  SetHeadMajor(c.kv_num_heads, c.capacity, c.head_size, a.key_strides);
  SetHeadMajor(c.kv_num_heads, c.capacity, c.head_size, a.value_strides);
  a.output = device ? s.d_output.get() : host_output;
  std::copy(a.query_strides, a.query_strides + 3, a.output_strides);
  a.past_lengths = device ? static_cast<const int32_t*>(s.d_past.get()) : s.past.data();
  a.key_counts = device ? static_cast<const int32_t*>(s.d_key_counts.get()) : s.key_counts.data();
  a.valid_query_rows = device ? static_cast<const int32_t*>(s.d_rows.get()) : s.rows.data();
  a.scale = c.values == Values::kNormal ? 1.0f / std::sqrt(static_cast<float>(c.head_size)) : 0.125f;
  a.softcap = c.softcap;
  a.local_window = c.local_window;
  if (c.mask == Mask::kBoolPerHead) {
    a.mask.data = device ? s.d_mask.get() : static_cast<const void*>(s.mask.data());
    a.mask.type = DataType::kBool;
    a.mask.batch_stride = c.num_heads * c.capacity;
    a.mask.head_stride = c.capacity;
    a.mask.row_stride = c.capacity;
    a.mask.length = c.capacity;
  }
  return a;
}

SparseMethodParams MakeMethod(const Step& s, bool device, void* state, const void* past_state = nullptr) {
  const DecodeCase& c = s.c;
  SparseMethodParams m;
  m.method = c.method;
  m.budget = c.budget;
  m.sink = c.sink;
  m.window = c.window;
  m.dense_below = c.dense_below;
  m.page_size = c.page_size;
  m.rank = s.rank;
  m.raw_query = device ? s.d_query.get() : static_cast<const void*>(s.query.data());
  m.raw_query_strides[0] = m.raw_query_strides[1] = c.num_heads * c.head_size;
  m.raw_query_strides[2] = c.head_size;
  auto pick = [&](const DeviceBuffer& d, const std::vector<float>& h) {
    return device ? static_cast<const float*>(d.get()) : h.data();
  };
  m.pca_basis = pick(s.d_basis, s.pca_basis);
  m.centroids = pick(s.d_centroids, s.centroids);
  m.clusters = c.clusters;
  m.classifier_weights = pick(s.d_w1, s.classifier_weights);
  m.classifier_bias = pick(s.d_b1, s.classifier_bias);
  m.classifier_output = pick(s.d_w2, s.classifier_output);
  m.classifier_hidden = c.hidden;
  m.hash_projections = pick(s.d_projections, s.projections);
  m.hash_rounds = c.hash_rounds;
  m.hash_half_buckets = c.hash_half_buckets;
  if (HasState(c.method)) {
    m.state.present = state;
    m.state.past = past_state;
    m.state.in_place = past_state != nullptr && past_state == state;
    m.state.width = s.state_width;
    m.state.present_rows = s.state_rows;
    SetHeadMajor(c.kv_num_heads, s.state_rows, s.state_width, m.state.present_strides);
    std::copy(m.state.present_strides, m.state.present_strides + 3, m.state.past_strides);
  }
  return m;
}

// The GPU state as the CPU reads it: fp32 summaries or int32 indices.
struct HostState {
  std::vector<float> summaries;
  std::vector<int32_t> indices;
  void* data() { return summaries.empty() ? static_cast<void*>(indices.data()) : summaries.data(); }
};

HostState DownloadState(const Step& s, const DeviceBuffer& state) {
  HostState host;
  if (KeepsIndices(s.c.method)) {
    host.indices = state.Download<int32_t>();
  } else {
    host.summaries = Decode(s.c.type, state.Download<unsigned char>());
  }
  return host;
}

// The CPU's state of the whole cache, fp32.
HostState CpuState(const Step& s) {
  HostState host;
  const size_t count = s.c.batch * s.c.kv_num_heads * s.state_rows * s.state_width;
  if (KeepsIndices(s.c.method)) {
    host.indices.assign(count, -7);
  } else {
    host.summaries.assign(count, -7.0f);
  }
  AttentionParams a = MakeAttention(s, false);
  std::vector<int32_t> no_past(s.c.batch, 0);
  a.past_lengths = no_past.data();
  const SparseMethodParams m = MakeMethod(s, false, host.data());
  const Status status = cpu::UpdateMethodState(a, m, ParallelRunner());
  EXPECT_TRUE(status.ok()) << status.message();
  return host;
}

// Rows of the state that hold keys of sequence b.
int64_t ValidStateRows(const Step& s, int64_t b) {
  return s.c.method == SparseMethod::kQuest ? (s.key_counts[b] + s.c.page_size - 1) / s.c.page_size : s.key_counts[b];
}

// Positions (b, kv head) attends, as text for messages.
std::string Positions(const std::vector<uint8_t>& flags, int64_t offset, int64_t count) {
  std::ostringstream text;
  for (int64_t j = 0; j < count; ++j) {
    if (flags[offset + j]) text << j << ' ';
  }
  return text.str();
}

// Max |x| and max |x - y|.
double MaxAbs(const std::vector<float>& x) {
  double m = 0.0;
  for (float v : x) m = std::max(m, std::abs(static_cast<double>(v)));
  return m;
}

class CudaDecodeTest : public ::testing::TestWithParam<DecodeCase> {
 protected:
  void SetUp() override {
    if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  }
};

// State from the cache on the GPU = the CPU's; the selection and the output as described above.
void RunDecodeCase(const DecodeCase& c) {
  Step s;
  s.c = c;
  Fill(s);
  const int64_t B = c.batch, Hq = c.num_heads, Hkv = c.kv_num_heads, D = c.head_size, T = c.capacity;
  ASSERT_CUDA(cudaGetLastError());

  AttentionParams a = MakeAttention(s, true);
  const SparseMethodParams m = MakeMethod(s, true, s.d_state.get());
  const Status supported = cuda::CheckDecodeSupport(a, m, T);
  ASSERT_TRUE(supported.ok()) << supported.message();

  // State, rebuilt from the cache (no past state), against the CPU's.
  HostState state;
  if (HasState(c.method)) {
    ASSERT_CUDA(cuda::LaunchMethodStateUpdate(a, m, T, 1, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    state = DownloadState(s, s.d_state);
    const HostState expected = CpuState(s);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t h = 0; h < Hkv; ++h) {
        for (int64_t row = 0; row < ValidStateRows(s, b); ++row) {
          for (int64_t w = 0; w < s.state_width; ++w) {
            const size_t i = ((b * Hkv + h) * s.state_rows + row) * s.state_width + w;
            if (KeepsIndices(c.method)) {
              if (c.values != Values::kNormal) {
                ASSERT_EQ(state.indices[i], expected.indices[i]) << "state of (b, h, row) " << b << " " << h << " " << row;
              }
            } else {
              const float want = RoundTo(c.type, expected.summaries[i]);
              const float tolerance = c.values != Values::kNormal ? 0.0f : 2e-5f + 1e-2f * std::abs(want);
              ASSERT_NEAR(state.summaries[i], want, tolerance) << "state of (b, h, row) " << b << " " << h << " " << row;
            }
          }
        }
      }
    }
  }

  // Selection and output on the GPU.
  const size_t workspace_bytes = cuda::SparseDecodeWorkspaceBytes(a, m, T);
  ASSERT_GT(workspace_bytes, 0u);
  DeviceBuffer workspace(workspace_bytes);
  cudaMemset(workspace.get(), 0x5a, workspace_bytes);  // whatever the workspace held before
  DeviceBuffer flags(B * Hkv * T);
  ASSERT_CUDA(cuda::LaunchSparseDecode(a, m, T, workspace.get(), workspace_bytes, nullptr));
  ASSERT_CUDA(cuda::LaunchSelectedKeyFlags(a, m, T, workspace.get(), static_cast<bool*>(flags.get()), nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const std::vector<uint8_t> gpu_flags = flags.Download<uint8_t>();
  const std::vector<float> gpu_output = Decode(c.type, s.d_output.Download<unsigned char>());

  // The CPU's selection on the same cache and state (its output, over its own selection, unused).
  std::vector<float> cpu_output(B * Hq * D);
  const AttentionParams cpu_attention = MakeAttention(s, false, cpu_output.data());
  const SparseMethodParams cpu_method = MakeMethod(s, false, state.data());
  std::unique_ptr<bool[]> cpu_flags(new bool[B * Hkv * T]);
  const cpu::SelectionFlags report{cpu_flags.get(), T};
  const Status marked = cpu::SparseAttention(cpu_attention, cpu_method, ParallelRunner(), &report);
  ASSERT_TRUE(marked.ok()) << marked.message();
  for (int64_t segment = 0; segment < B * Hkv; ++segment) {
    int64_t agree = 0, expected = 0, selected = 0;
    for (int64_t j = 0; j < T; ++j) {
      const bool want = cpu_flags[segment * T + j];
      expected += want;
      selected += gpu_flags[segment * T + j] != 0;
      agree += want && gpu_flags[segment * T + j] != 0;
    }
    if (c.values != Values::kNormal) {
      std::vector<uint8_t> want(cpu_flags.get() + segment * T, cpu_flags.get() + (segment + 1) * T);
      ASSERT_EQ(Positions(gpu_flags, segment * T, T), Positions(want, 0, T)) << "keys of segment " << segment;
    } else {
      EXPECT_GE(agree, expected * 99 / 100) << "segment " << segment << ": " << selected << " selected, " << expected
                                            << " expected, " << agree << " in common";
    }
  }

  // The CPU's attention over the GPU's selection, fp32.
  std::vector<float> reference(B * Hq * D, 0.0f);
  AttentionParams reference_attention = MakeAttention(s, false, reference.data());
  std::vector<int64_t> span_offsets = {0};
  std::vector<KeySpan> spans;
  for (int64_t segment = 0; segment < B * Hkv; ++segment) {
    const uint8_t* selected = &gpu_flags[segment * T];
    for (int64_t j = 0; j < T; ++j) {
      if (!selected[j]) continue;
      if (j > 0 && selected[j - 1]) {
        ++spans.back().end;
      } else {
        spans.push_back({static_cast<int32_t>(j), static_cast<int32_t>(j + 1)});
      }
    }
    span_offsets.push_back(static_cast<int64_t>(spans.size()));
  }
  KeySelection selection;
  selection.heads_per_tile = s.group;
  selection.rows_per_tile = 1;
  selection.span_offsets = span_offsets.data();
  selection.spans = spans.data();
  reference_attention.selection = &selection;
  const Status attended = cpu::ExactAttention(reference_attention, ParallelRunner());
  ASSERT_TRUE(attended.ok()) << attended.message();
  double error = 0.0, rounding = 0.0;
  for (size_t i = 0; i < reference.size(); ++i) {
    ASSERT_FALSE(std::isnan(gpu_output[i])) << "output " << i << " not written";
    error = std::max(error, std::abs(static_cast<double>(gpu_output[i]) - reference[i]));
    rounding = std::max(rounding, std::abs(static_cast<double>(RoundTo(c.type, reference[i])) - reference[i]));
  }
  const double bound = 2.0 * rounding + 2e-5 * MaxAbs(reference) + 1e-6;
  EXPECT_LE(error, bound) << "max |gpu - cpu| over the output, max |cpu| = " << MaxAbs(reference);
}

TEST_P(CudaDecodeTest, MatchesCpu) { RunDecodeCase(GetParam()); }

std::string CaseName(const ::testing::TestParamInfo<DecodeCase>& info) { return info.param.name; }

constexpr SparseMethod kMethods[] = {SparseMethod::kDense, SparseMethod::kTopK, SparseMethod::kStreaming,
                                     SparseMethod::kQuest, SparseMethod::kLoki, SparseMethod::kSaap,
                                     SparseMethod::kHash};

// Every method x type x head size, GQA group 4, three sequences of different lengths (one dense).
std::vector<DecodeCase> TypeAndHeadSizeCases() {
  std::vector<DecodeCase> cases;
  for (SparseMethod method : kMethods) {
    for (DataType type : {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32}) {
      for (int64_t D : {64, 80, 96, 128}) {
        DecodeCase c;
        c.method = method;
        c.type = type;
        c.head_size = D;
        c.name = std::string(MethodName(method)) + "_" + TypeName(type) + "_D" + std::to_string(D);
        cases.push_back(c);
      }
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(TypesAndHeadSizes, CudaDecodeTest, ::testing::ValuesIn(TypeAndHeadSizeCases()), CaseName);

// Group sizes 1 (MHA) to 16 (two tiles of 8 heads), fp16, D 128.
std::vector<DecodeCase> GroupCases() {
  std::vector<DecodeCase> cases;
  for (SparseMethod method : kMethods) {
    for (int64_t group : {1, 2, 3, 6, 8, 16}) {
      DecodeCase c;
      c.method = method;
      c.num_heads = 2 * group;
      c.name = std::string(MethodName(method)) + "_group" + std::to_string(group);
      cases.push_back(c);
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Groups, CudaDecodeTest, ::testing::ValuesIn(GroupCases()), CaseName);

// Masks, softcap, local window, budgets as counts, pages of other sizes.
std::vector<DecodeCase> OptionCases() {
  std::vector<DecodeCase> cases;
  for (SparseMethod method : kMethods) {
    DecodeCase masked;
    masked.method = method;
    masked.mask = Mask::kBoolPerHead;
    masked.name = std::string(MethodName(method)) + "_BoolMaskPerHead";
    cases.push_back(masked);
    DecodeCase windowed = masked;
    windowed.mask = Mask::kNone;
    windowed.softcap = 2.0f;
    windowed.local_window = 1900;
    windowed.name = std::string(MethodName(method)) + "_LocalWindowSoftcap";
    cases.push_back(windowed);
    DecodeCase count = windowed;
    count.softcap = 0.0f;
    count.local_window = -1;
    count.budget = 97.0f;
    count.page_size = 5;
    count.name = std::string(MethodName(method)) + "_BudgetCountPage5";
    cases.push_back(count);
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Options, CudaDecodeTest, ::testing::ValuesIn(OptionCases()), CaseName);

// Long caches: many scoring blocks and attention splits; normal values (selections compared by
// overlap) and coarse values (ties everywhere: the last block resolves them by position).
std::vector<DecodeCase> LongCases() {
  std::vector<DecodeCase> cases;
  for (SparseMethod method : kMethods) {
    for (Values values : {Values::kNormal, Values::kCoarseGrid}) {
      DecodeCase c;
      c.method = method;
      c.values = values;
      c.batch = 2;
      c.capacity = 70000;
      c.key_counts = {70000, 41234};
      c.dense_below = 1024;
      c.name = std::string(MethodName(method)) + (values == Values::kNormal ? "_LongNormal" : "_LongCoarseTies");
      cases.push_back(c);
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Long, CudaDecodeTest, ::testing::ValuesIn(LongCases()), CaseName);

// ---- state updates, cache appends, rotary ------------------------------------------------------

class CudaStateTest : public ::testing::TestWithParam<DecodeCase> {
 protected:
  void SetUp() override {
    if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  }
};

// The state of the cache without its last keys, updated for them (in place and into a separate
// buffer), equals the state rebuilt from the whole cache.
TEST_P(CudaStateTest, UpdateForNewKeysEqualsRebuild) {
  Step s;
  s.c = GetParam();
  Fill(s);
  const int64_t T = s.c.capacity;
  const size_t state_bytes = s.d_state.bytes();
  AttentionParams rebuild = MakeAttention(s, true);
  ASSERT_CUDA(cuda::LaunchMethodStateUpdate(rebuild, MakeMethod(s, true, s.d_state.get()), T, 1, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const std::vector<unsigned char> whole = s.d_state.Download<unsigned char>();

  // The previous step: every sequence one key shorter (3 for the in-place case: chunked prefill).
  for (int appended : {1, 3}) {
    SCOPED_TRACE("appended " + std::to_string(appended));
    std::vector<int32_t> before(s.key_counts), past(s.key_counts);
    for (size_t b = 0; b < before.size(); ++b) before[b] -= appended, past[b] -= appended;
    DeviceBuffer d_before, d_past_lengths, previous(state_bytes), present(state_bytes);
    d_before.Upload(before);
    d_past_lengths.Upload(past);
    AttentionParams earlier = MakeAttention(s, true);
    earlier.key_counts = static_cast<const int32_t*>(d_before.get());
    cudaMemset(previous.get(), 0, state_bytes);
    ASSERT_CUDA(cuda::LaunchMethodStateUpdate(earlier, MakeMethod(s, true, previous.get()), T, 1, nullptr));
    cudaMemset(present.get(), 0x77, state_bytes);  // garbage the update must overwrite
    AttentionParams step = MakeAttention(s, true);
    step.past_lengths = static_cast<const int32_t*>(d_past_lengths.get());
    const bool in_place = appended == 3;
    void* target = in_place ? previous.get() : present.get();
    ASSERT_CUDA(cuda::LaunchMethodStateUpdate(step, MakeMethod(s, true, target, previous.get()), T, appended, nullptr));
    ASSERT_CUDA(cudaDeviceSynchronize());
    const std::vector<unsigned char> updated = (in_place ? previous : present).Download<unsigned char>();
    ASSERT_EQ(updated.size(), whole.size());
    // Rows beyond the keys: zero when written into a separate buffer, as a rebuild leaves them.
    EXPECT_TRUE(updated == whole) << "state after the update differs from the rebuilt one";
  }
}

std::vector<DecodeCase> StateCases() {
  std::vector<DecodeCase> cases;
  for (SparseMethod method : {SparseMethod::kQuest, SparseMethod::kLoki, SparseMethod::kSaap, SparseMethod::kHash}) {
    for (DataType type : {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32}) {
      DecodeCase c;
      c.method = method;
      c.type = type;
      c.values = Values::kNormal;
      c.capacity = 1000;
      c.key_counts = {1000, 613, 17};
      c.name = std::string(MethodName(method)) + "_" + TypeName(type);
      cases.push_back(c);
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Methods, CudaStateTest, ::testing::ValuesIn(StateCases()), CaseName);

struct AppendCase {
  std::string name;
  DataType type;
  bool rotary;
  bool interleaved;
  bool in_place;
};
void PrintTo(const AppendCase& c, std::ostream* os) { *os << c.name; }

class CudaAppendTest : public ::testing::TestWithParam<AppendCase> {
 protected:
  void SetUp() override {
    if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  }
};

// KV append (keys rotated) and query rotary against the CPU's, 2 new rows per sequence.
TEST_P(CudaAppendTest, MatchesCpu) {
  const AppendCase& c = GetParam();
  const int64_t B = 2, H = 3, D = 64, P = 37, S = 2, T = 48, R = 48;
  std::mt19937 rng(7);
  auto rounded = [&](std::vector<float> v) {
    for (float& x : v) x = RoundTo(c.type, x);
    return v;
  };
  const std::vector<float> past = rounded(Draw(rng, B * H * P * D, Values::kNormal));
  const std::vector<float> rows = rounded(Draw(rng, B * S * H * D, Values::kNormal));
  std::vector<float> cos_table((T + 8) * R / 2), sin_table((T + 8) * R / 2);
  for (int64_t p = 0; p < T + 8; ++p) {
    for (int64_t i = 0; i < R / 2; ++i) {
      const double angle = p * std::pow(10000.0, -2.0 * i / R);
      cos_table[p * R / 2 + i] = RoundTo(c.type, static_cast<float>(std::cos(angle)));
      sin_table[p * R / 2 + i] = RoundTo(c.type, static_cast<float>(std::sin(angle)));
    }
  }
  const std::vector<int32_t> past_lengths = {37, 20}, append_counts = {2, 1};
  DeviceBuffer d_past, d_rows, d_present, d_cos, d_sin, d_lengths, d_counts;
  d_past.Upload(Encode(c.type, past));
  d_rows.Upload(Encode(c.type, rows));
  d_cos.Upload(Encode(c.type, cos_table));
  d_sin.Upload(Encode(c.type, sin_table));
  d_lengths.Upload(past_lengths);
  d_counts.Upload(append_counts);
  // In place: the present is the past's buffer, of the present's length.
  std::vector<float> present_start(B * H * T * D, 0.0f);
  for (int64_t bh = 0; bh < B * H; ++bh) {
    for (int64_t j = 0; j < P; ++j) std::copy_n(&past[(bh * P + j) * D], D, &present_start[(bh * T + j) * D]);
  }
  d_present.Upload(Encode(c.type, c.in_place ? present_start : std::vector<float>(B * H * T * D, 3.0f)));

  RotaryEmbedding rotary;
  rotary.max_position = T + 8;
  rotary.rotary_dim = R;
  rotary.interleaved = c.interleaved;
  KvAppendParams p;
  p.type = c.type;
  p.batch = B;
  p.kv_num_heads = H;
  p.head_size = D;
  p.present_length = T;
  p.past = c.in_place ? d_present.get() : d_past.get();
  SetHeadMajor(H, c.in_place ? T : P, D, p.past_strides);
  p.new_rows = d_rows.get();
  p.new_rows_strides[0] = S * H * D;
  p.new_rows_strides[1] = H * D;
  p.new_rows_strides[2] = D;
  p.present = d_present.get();
  SetHeadMajor(H, T, D, p.present_strides);
  p.in_place = c.in_place;
  p.past_lengths = static_cast<const int32_t*>(d_lengths.get());
  p.append_counts = static_cast<const int32_t*>(d_counts.get());
  RotaryEmbedding device_rotary = rotary;
  device_rotary.cos_cache = d_cos.get();
  device_rotary.sin_cache = d_sin.get();
  p.rotary = c.rotary ? &device_rotary : nullptr;
  ASSERT_CUDA(cuda::LaunchKvAppend(p, S, nullptr));

  // The queries rotated in place (the rows as queries of 3 heads).
  DeviceBuffer d_queries;
  d_queries.Upload(Encode(c.type, rows));
  RotaryParams q;
  q.type = c.type;
  q.batch = B;
  q.sequence_length = S;
  q.num_heads = H;
  q.head_size = D;
  q.input = q.output = d_queries.get();
  std::copy(p.new_rows_strides, p.new_rows_strides + 3, q.input_strides);
  std::copy(p.new_rows_strides, p.new_rows_strides + 3, q.output_strides);
  q.past_lengths = p.past_lengths;
  q.row_counts = p.append_counts;
  q.embedding = device_rotary;
  if (c.rotary) {
    ASSERT_CUDA(cuda::LaunchRotary(q, nullptr));
  }
  ASSERT_CUDA(cudaDeviceSynchronize());
  const std::vector<float> gpu_present = Decode(c.type, d_present.Download<unsigned char>());
  const std::vector<float> gpu_queries = Decode(c.type, d_queries.Download<unsigned char>());

  // The CPU, fp32 on the same values, output rounded to the type.
  std::vector<float> cpu_present = c.in_place ? present_start : std::vector<float>(B * H * T * D, 3.0f);
  KvAppendParams cp = p;
  cp.type = DataType::kFloat32;
  cp.past = c.in_place ? cpu_present.data() : past.data();
  cp.new_rows = rows.data();
  cp.present = cpu_present.data();
  cp.past_lengths = past_lengths.data();
  cp.append_counts = append_counts.data();
  RotaryEmbedding host_rotary = rotary;
  host_rotary.cos_cache = cos_table.data();
  host_rotary.sin_cache = sin_table.data();
  cp.rotary = c.rotary ? &host_rotary : nullptr;
  cpu::AppendToKvCache(cp, ParallelRunner());
  std::vector<float> cpu_queries = rows;
  if (c.rotary) {
    RotaryParams cq = q;
    cq.type = DataType::kFloat32;
    cq.input = cq.output = cpu_queries.data();
    cq.past_lengths = past_lengths.data();
    cq.row_counts = append_counts.data();
    cq.embedding = host_rotary;
    cpu::ApplyRotary(cq, ParallelRunner());
  }
  // Rotation in fp32 may round differently by one unit of the storage type (fused multiply-adds).
  const float ulp = c.type == DataType::kFloat32 ? 1e-6f : c.type == DataType::kFloat16 ? 2e-3f : 1.6e-2f;
  for (size_t i = 0; i < cpu_present.size(); ++i) {
    ASSERT_NEAR(gpu_present[i], RoundTo(c.type, cpu_present[i]), ulp * (1.0f + std::abs(cpu_present[i])))
        << "present element " << i;
  }
  for (size_t i = 0; i < cpu_queries.size(); ++i) {
    ASSERT_NEAR(gpu_queries[i], RoundTo(c.type, cpu_queries[i]), ulp * (1.0f + std::abs(cpu_queries[i])))
        << "query element " << i;
  }
}

std::vector<AppendCase> AppendCases() {
  std::vector<AppendCase> cases;
  for (DataType type : {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32}) {
    for (int variant = 0; variant < 4; ++variant) {
      const bool rotary = variant > 0, interleaved = variant == 2, in_place = variant != 1;
      const std::string name = std::string(TypeName(type)) + (rotary ? (interleaved ? "_RotaryInterleaved" : "_RotaryHalves") : "_Plain") +
                               (in_place ? "_InPlace" : "_Copy");
      cases.push_back({name, type, rotary, interleaved, in_place});
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Types, CudaAppendTest, ::testing::ValuesIn(AppendCases()),
                         [](const ::testing::TestParamInfo<AppendCase>& info) { return info.param.name; });

// Unsupported inputs are refused with the value in the message, and the launch fails cleanly.
TEST(CudaDecodeSupport, RefusesWhatItDoesNotHandle) {
  AttentionParams a;
  a.type = DataType::kFloat16;
  a.batch = 1;
  a.query_length = 1;
  a.num_heads = 8;
  a.kv_num_heads = 2;
  a.head_size = a.v_head_size = 72;
  a.key_strides[2] = a.value_strides[2] = 72;
  SparseMethodParams m;
  const Status status = cuda::CheckDecodeSupport(a, m, 100);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("72"), std::string::npos) << status.message();
  a.head_size = a.v_head_size = 64;
  a.key_strides[2] = a.value_strides[2] = 64;
  a.query_length = 3;
  EXPECT_FALSE(cuda::CheckDecodeSupport(a, m, 100).ok());
  EXPECT_EQ(cuda::LaunchSparseDecode(a, m, 100, nullptr, 0, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace ortsparse::testing
