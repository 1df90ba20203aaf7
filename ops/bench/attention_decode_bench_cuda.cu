// Times CUDA decode steps (S = 1) of dense attention and of every sparse method on identical
// inputs: Llama-3.1-8B attention shape (Hq = 32, Hkv = 8, D = 128), fp16, caches of T keys with
// the step's key the last one, batch 1 and 8. Inputs are drawn like the CLI bench's
// (SyntheticCache.cs): keys and queries with decaying variances per dimension (low effective rank;
// the PCA basis is then the identity), values uniform in [-1, 1), and 8 needle keys per KV head
// at random middle positions, along the group's summed query, scoring about 15 above a typical key.
// Each method's state is built from the whole cache first; a timed step is LaunchSparseDecode
// (selection and attention). Printed per method: the time per step (CUDA events around many
// back-to-back steps after warm-up, the median of several such runs; and the same steps replayed
// from a CUDA graph), the speed-up over our dense step, the bytes the step reads and the bandwidth
// that makes, the recall (softmax mass of the attended keys, from an exact dense score pass,
// averaged over query heads), the needles attended, and the output's error relative to dense.
//   attention_decode_bench_cuda [--contexts 4096,...] [--batches 1,8] [--budget 0.0625]
//                               [--methods dense,topk,...] [--steps 50] [--page-size 16]
//                               [--rank 32] [--csv FILE] [--label SUFFIX]
// (--csv appends device,batch,context,method,ms,bytes_read,recall,rel_error rows; --label appends
// SUFFIX to the method names, to tell runs with other parameters apart.)
// (--methods without dense leaves the speed-up and error columns empty.)
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ortsparse/cuda_attention.h"

namespace {

using ortsparse::AttentionParams;
using ortsparse::DataType;
using ortsparse::SparseMethod;
using ortsparse::SparseMethodParams;

constexpr int kHeads = 32, kKvHeads = 8, kHeadSize = 128, kGroup = kHeads / kKvHeads;
constexpr int kNeedles = 8;
constexpr int kHashRounds = 2, kHashHalfBuckets = 8;  // 16 buckets, as the CLI bench

#define CHECK_CUDA(expression)                                                                   \
  do {                                                                                           \
    const cudaError_t error_ = (expression);                                                     \
    if (error_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expression, cudaGetErrorString(error_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (false)

struct Method {
  const char* name;
  SparseMethod method;
};
constexpr Method kMethods[] = {{"dense", SparseMethod::kDense}, {"topk", SparseMethod::kTopK},
                               {"streaming", SparseMethod::kStreaming}, {"quest", SparseMethod::kQuest},
                               {"loki", SparseMethod::kLoki}, {"saap", SparseMethod::kSaap},
                               {"hash", SparseMethod::kHash}};

template <typename T>
class Device {
 public:
  explicit Device(size_t count = 0) { Resize(count); }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() { cudaFree(data_); }
  void Resize(size_t count) {
    cudaFree(data_);
    data_ = nullptr;
    count_ = count;
    if (count > 0) CHECK_CUDA(cudaMalloc(&data_, count * sizeof(T)));
  }
  void Upload(const std::vector<T>& host) {
    Resize(host.size());
    CHECK_CUDA(cudaMemcpy(data_, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  std::vector<T> Download() const {
    std::vector<T> host(count_);
    CHECK_CUDA(cudaMemcpy(host.data(), data_, count_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }
  T* get() const { return data_; }
  size_t size() const { return count_; }

 private:
  T* data_ = nullptr;
  size_t count_ = 0;
};

// ---- inputs ------------------------------------------------------------------------------------

// splitmix64 on the host (needle positions, centroid samples, projections).
class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t x = (state_ += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }
  int64_t Below(int64_t bound) { return static_cast<int64_t>(Next() % static_cast<uint64_t>(bound)); }
  float Normal() {  // Box-Muller
    const double u1 = (static_cast<double>(Next() >> 11) + 1.0) / 9007199254740993.0;
    const double u2 = static_cast<double>(Next() >> 11) / 9007199254740992.0;
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

 private:
  uint64_t state_;
};

__device__ float UniformOf(uint64_t seed, uint64_t index) {  // (0, 1], from a 64-bit mix
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + index;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return (static_cast<float>(x >> 40) + 1.0f) * (1.0f / 16777216.0f);
}

// out[i] = N(0, 1) * exp(-d / (0.35 D)), d = i % D: SyntheticCache's decaying variances.
__global__ void FillSpreadNormal(__half* out, size_t count, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float u1 = UniformOf(seed, 2 * i), u2 = UniformOf(seed, 2 * i + 1);
    const float gaussian = sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
    const int d = static_cast<int>(i % kHeadSize);
    out[i] = __float2half(gaussian * expf(-d / (0.35f * kHeadSize)));
  }
}

__global__ void FillUniform(__half* out, size_t count, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2half(2.0f * UniformOf(seed, i) - 1.0f);
  }
}

// Exact softmax of every (b, query head) over its keys, in fp32: p[b, h, j].
__global__ void DenseScores(const __half* query, const __half* keys, int64_t length, float scale, float* scores) {
  const int bh = blockIdx.y, b = bh / kHeads, h = bh % kHeads;
  __shared__ float q[kHeadSize];
  for (int d = threadIdx.x; d < kHeadSize; d += blockDim.x) q[d] = __half2float(query[bh * kHeadSize + d]);
  __syncthreads();
  const __half* head_keys = keys + (static_cast<int64_t>(b) * kKvHeads + h / kGroup) * length * kHeadSize;
  for (int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; j < length;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float dot = 0.0f;
    for (int d = 0; d < kHeadSize; ++d) dot = fmaf(q[d], __half2float(head_keys[j * kHeadSize + d]), dot);
    scores[bh * length + j] = dot * scale;
  }
}

// recall[b, h] = softmax mass of the keys KV head h / kGroup attended.
__global__ void RecallOf(const float* scores, const bool* flags, int64_t length, float* recall) {
  const int bh = blockIdx.x, b = bh / kHeads, h = bh % kHeads;
  const float* row = scores + bh * length;
  const bool* selected = flags + (static_cast<int64_t>(b) * kKvHeads + h / kGroup) * length;
  __shared__ float reduce[32];
  float largest = -INFINITY;
  for (int64_t j = threadIdx.x; j < length; j += blockDim.x) largest = fmaxf(largest, row[j]);
  for (int o = 16; o > 0; o /= 2) largest = fmaxf(largest, __shfl_xor_sync(0xffffffffu, largest, o));
  if ((threadIdx.x & 31) == 0) reduce[threadIdx.x >> 5] = largest;
  __syncthreads();
  largest = -INFINITY;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) largest = fmaxf(largest, reduce[w]);
  __syncthreads();
  float total = 0.0f, kept = 0.0f;
  for (int64_t j = threadIdx.x; j < length; j += blockDim.x) {
    const float p = expf(row[j] - largest);
    total += p;
    kept += selected[j] ? p : 0.0f;
  }
  for (int o = 16; o > 0; o /= 2) {
    total += __shfl_xor_sync(0xffffffffu, total, o);
    kept += __shfl_xor_sync(0xffffffffu, kept, o);
  }
  __shared__ float totals[32], kepts[32];
  if ((threadIdx.x & 31) == 0) {
    totals[threadIdx.x >> 5] = total;
    kepts[threadIdx.x >> 5] = kept;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.0f, k = 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) t += totals[w], k += kepts[w];
    recall[bh] = k / t;
  }
}

// One batch size and context: the caches, the step's parameters, the calibration.
struct Problem {
  int batch;
  int64_t length;
  Device<__half> query, keys, values, output;
  Device<int32_t> past, key_counts, rows;
  Device<float> pca_basis, centroids, w1, b1, w2, projections;
  std::vector<std::vector<int64_t>> needles;  // per (b, KV head)
  int64_t clusters;

  AttentionParams Attention() const {
    AttentionParams a;
    a.type = DataType::kFloat16;
    a.batch = batch;
    a.query_length = 1;
    a.num_heads = kHeads;
    a.kv_num_heads = kKvHeads;
    a.head_size = a.v_head_size = kHeadSize;
    a.query = query.get();
    a.query_strides[0] = a.query_strides[1] = kHeads * kHeadSize;
    a.query_strides[2] = kHeadSize;
    a.key_cache = keys.get();
    a.value_cache = values.get();
    a.key_strides[0] = a.value_strides[0] = kKvHeads * length * kHeadSize;
    a.key_strides[1] = a.value_strides[1] = length * kHeadSize;
    a.key_strides[2] = a.value_strides[2] = kHeadSize;
    a.output = output.get();
    std::copy(a.query_strides, a.query_strides + 3, a.output_strides);
    a.past_lengths = past.get();
    a.key_counts = key_counts.get();
    a.valid_query_rows = rows.get();
    a.scale = 1.0f / std::sqrt(static_cast<float>(kHeadSize));
    return a;
  }
};

void Generate(Problem& p, uint64_t seed) {
  const size_t cache = static_cast<size_t>(p.batch) * kKvHeads * p.length * kHeadSize;
  p.query.Resize(static_cast<size_t>(p.batch) * kHeads * kHeadSize);
  p.keys.Resize(cache);
  p.values.Resize(cache);
  p.output.Resize(p.query.size());
  FillSpreadNormal<<<1024, 256>>>(p.query.get(), p.query.size(), seed);
  FillSpreadNormal<<<4096, 256>>>(p.keys.get(), cache, seed + 1);
  FillUniform<<<4096, 256>>>(p.values.get(), cache, seed + 2);
  CHECK_CUDA(cudaGetLastError());
  p.past.Upload(std::vector<int32_t>(p.batch, static_cast<int32_t>(p.length - 1)));
  p.key_counts.Upload(std::vector<int32_t>(p.batch, static_cast<int32_t>(p.length)));
  p.rows.Upload(std::vector<int32_t>(p.batch, 1));

  // Needles along each group's summed query u, long enough that each head scores them ~15 above
  // a typical key: length = 15 sqrt(D) / mean_h (q_h . u).
  Random rng(seed);
  const std::vector<__half> query = p.query.Download();
  p.needles.assign(p.batch * kKvHeads, {});
  for (int b = 0; b < p.batch; ++b) {
    for (int g = 0; g < kKvHeads; ++g) {
      std::vector<float> direction(kHeadSize, 0.0f);
      for (int m = 0; m < kGroup; ++m) {
        for (int d = 0; d < kHeadSize; ++d) direction[d] += __half2float(query[((b * kHeads) + g * kGroup + m) * kHeadSize + d]);
      }
      float norm = 0.0f;
      for (float x : direction) norm += x * x;
      norm = std::sqrt(norm);
      float alignment = 0.0f;
      for (int m = 0; m < kGroup; ++m) {
        for (int d = 0; d < kHeadSize; ++d) {
          alignment += __half2float(query[((b * kHeads) + g * kGroup + m) * kHeadSize + d]) * direction[d] / norm / kGroup;
        }
      }
      const float scale = 15.0f * std::sqrt(static_cast<float>(kHeadSize)) / std::max(alignment, 1e-3f);
      std::vector<__half> needle(kHeadSize);
      for (int d = 0; d < kHeadSize; ++d) needle[d] = __float2half(scale * direction[d] / norm);
      if (p.length < 400) continue;
      std::vector<int64_t>& positions = p.needles[b * kKvHeads + g];
      while (static_cast<int>(positions.size()) < kNeedles) {
        const int64_t j = 100 + rng.Below(p.length - 200);
        if (std::find(positions.begin(), positions.end(), j) == positions.end()) positions.push_back(j);
      }
      for (int64_t j : positions) {
        CHECK_CUDA(cudaMemcpy(p.keys.get() + ((static_cast<int64_t>(b) * kKvHeads + g) * p.length + j) * kHeadSize,
                              needle.data(), kHeadSize * sizeof(__half), cudaMemcpyHostToDevice));
      }
    }
  }

  // Calibration: the identity as PCA basis (the keys' principal axes), centroids from cached keys
  // (normalised) with the classifier that ranks clusters by centroid . q (the CLI bench's layout:
  // z = C relu(q) - C relu(-q)), normal hash projections.
  std::vector<float> basis(kKvHeads * kHeadSize * kHeadSize, 0.0f);
  for (int h = 0; h < kKvHeads; ++h) {
    for (int i = 0; i < kHeadSize; ++i) basis[(h * kHeadSize + i) * kHeadSize + i] = 1.0f;
  }
  p.pca_basis.Upload(basis);
  p.clusters = std::clamp<int64_t>(p.length / 32, 1, 1024);
  const int64_t C = p.clusters, M = 2 * kHeadSize;
  std::vector<float> centroids(kKvHeads * C * kHeadSize);
  for (int h = 0; h < kKvHeads; ++h) {
    for (int64_t c = 0; c < C; ++c) {
      std::vector<__half> key(kHeadSize);
      const int64_t j = rng.Below(p.length);
      CHECK_CUDA(cudaMemcpy(key.data(), p.keys.get() + (static_cast<int64_t>(h) * p.length + j) * kHeadSize,
                            kHeadSize * sizeof(__half), cudaMemcpyDeviceToHost));
      float norm = 0.0f;
      for (int d = 0; d < kHeadSize; ++d) norm += __half2float(key[d]) * __half2float(key[d]);
      norm = std::sqrt(std::max(norm, 1e-12f));
      for (int d = 0; d < kHeadSize; ++d) centroids[(h * C + c) * kHeadSize + d] = __half2float(key[d]) / norm;
    }
  }
  p.centroids.Upload(centroids);
  std::vector<float> w1(static_cast<size_t>(kHeads) * kHeadSize * M, 0.0f), w2(static_cast<size_t>(kHeads) * (M + 1) * C, 0.0f);
  for (int h = 0; h < kHeads; ++h) {
    const float* c = &centroids[(h / kGroup) * C * kHeadSize];
    for (int i = 0; i < kHeadSize; ++i) {
      w1[(static_cast<size_t>(h) * kHeadSize + i) * M + i] = 1.0f;
      w1[(static_cast<size_t>(h) * kHeadSize + i) * M + kHeadSize + i] = -1.0f;
      for (int64_t k = 0; k < C; ++k) {
        w2[(static_cast<size_t>(h) * (M + 1) + i) * C + k] = c[k * kHeadSize + i];
        w2[(static_cast<size_t>(h) * (M + 1) + kHeadSize + i) * C + k] = -c[k * kHeadSize + i];
      }
    }
  }
  p.w1.Upload(w1);
  p.b1.Upload(std::vector<float>(static_cast<size_t>(kHeads) * M, 0.0f));
  p.w2.Upload(w2);
  std::vector<float> projections(kKvHeads * kHashRounds * kHeadSize * kHashHalfBuckets);
  for (float& x : projections) x = rng.Normal();
  p.projections.Upload(projections);
}

// The method's parameters with the op's defaults, and its state built from the whole cache.
struct Settings {
  float budget = 0.0625f;
  int64_t page_size = 16;
  int64_t rank = kHeadSize / 4;
};

SparseMethodParams Prepare(const Problem& p, SparseMethod method, const Settings& settings, Device<unsigned char>* state) {
  SparseMethodParams m;
  m.method = method;
  m.budget = settings.budget;
  m.rank = settings.rank;
  m.page_size = settings.page_size;
  m.raw_query = p.query.get();
  m.raw_query_strides[0] = m.raw_query_strides[1] = kHeads * kHeadSize;
  m.raw_query_strides[2] = kHeadSize;
  m.pca_basis = p.pca_basis.get();
  m.centroids = p.centroids.get();
  m.clusters = p.clusters;
  m.classifier_weights = p.w1.get();
  m.classifier_bias = p.b1.get();
  m.classifier_output = p.w2.get();
  m.classifier_hidden = 2 * kHeadSize;
  m.hash_projections = p.projections.get();
  m.hash_rounds = kHashRounds;
  m.hash_half_buckets = kHashHalfBuckets;
  int64_t rows = p.length, width = 0, element = 4;
  switch (method) {
    case SparseMethod::kQuest:
      rows = (p.length + m.page_size - 1) / m.page_size;
      width = 2 * kHeadSize;
      element = 2;
      break;
    case SparseMethod::kLoki: width = m.rank; element = 2; break;
    case SparseMethod::kSaap: width = 1; break;
    case SparseMethod::kHash: width = kHashRounds; break;
    default: return m;
  }
  state->Resize(static_cast<size_t>(p.batch) * kKvHeads * rows * width * element);
  m.state.present = state->get();
  m.state.width = width;
  m.state.present_rows = rows;
  m.state.present_strides[0] = kKvHeads * rows * width;
  m.state.present_strides[1] = rows * width;
  m.state.present_strides[2] = width;
  CHECK_CUDA(ortsparse::cuda::LaunchMethodStateUpdate(p.Attention(), m, p.length, 1, nullptr));
  return m;
}

// Bytes a step reads: what the method scores, the keys and values it attends, the state of saap.
double BytesRead(const Problem& p, const SparseMethodParams& m, int64_t attended_keys) {
  const SparseMethod method = m.method;
  const double kv_row = 2.0 * kHeadSize * sizeof(__half);
  const double keys = static_cast<double>(p.batch) * kKvHeads * p.length;
  double scored = 0.0;
  switch (method) {
    case SparseMethod::kTopK: scored = keys * kHeadSize * 2; break;
    case SparseMethod::kQuest: scored = keys / m.page_size * 2 * kHeadSize * 2; break;
    case SparseMethod::kLoki: scored = keys * m.rank * 2; break;
    case SparseMethod::kSaap:  // cluster ids twice, the classifier of every query head
      scored = keys * 4 * 2 + static_cast<double>(p.batch) * kHeads * (kHeadSize * 2 * kHeadSize + (2 * kHeadSize + 1) * p.clusters) * 4;
      break;
    case SparseMethod::kHash: scored = keys * kHashRounds * 4; break;
    default: break;
  }
  return scored + static_cast<double>(attended_keys) * kv_row;
}

float Median(std::vector<float> x) {
  std::sort(x.begin(), x.end());
  return x[x.size() / 2];
}

// Milliseconds per step: direct launches, and replays of a captured graph of the same steps.
void TimeSteps(const AttentionParams& a, const SparseMethodParams& m, int64_t length, void* workspace, size_t bytes,
               int steps, float* direct_ms, float* graph_ms) {
  cudaStream_t stream;
  CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaEvent_t start, stop;
  CHECK_CUDA(cudaEventCreate(&start));
  CHECK_CUDA(cudaEventCreate(&stop));
  for (int i = 0; i < 10; ++i) CHECK_CUDA(ortsparse::cuda::LaunchSparseDecode(a, m, length, workspace, bytes, stream));
  std::vector<float> runs;
  for (int run = 0; run < 5; ++run) {
    CHECK_CUDA(cudaEventRecord(start, stream));
    for (int i = 0; i < steps; ++i) CHECK_CUDA(ortsparse::cuda::LaunchSparseDecode(a, m, length, workspace, bytes, stream));
    CHECK_CUDA(cudaEventRecord(stop, stream));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float ms = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
    runs.push_back(ms / steps);
  }
  *direct_ms = Median(runs);

  *graph_ms = NAN;
  cudaGraph_t graph;
  CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  bool captured = true;
  for (int i = 0; i < steps && captured; ++i) {
    captured = ortsparse::cuda::LaunchSparseDecode(a, m, length, workspace, bytes, stream) == cudaSuccess;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  cudaGraphExec_t exec;
  if (captured && ended == cudaSuccess && cudaGraphInstantiateWithFlags(&exec, graph, 0) == cudaSuccess) {
    CHECK_CUDA(cudaGraphLaunch(exec, stream));
    runs.clear();
    for (int run = 0; run < 5; ++run) {
      CHECK_CUDA(cudaEventRecord(start, stream));
      CHECK_CUDA(cudaGraphLaunch(exec, stream));
      CHECK_CUDA(cudaEventRecord(stop, stream));
      CHECK_CUDA(cudaEventSynchronize(stop));
      float ms = 0.0f;
      CHECK_CUDA(cudaEventElapsedTime(&ms, start, stop));
      runs.push_back(ms / steps);
    }
    *graph_ms = Median(runs);
    CHECK_CUDA(cudaGraphExecDestroy(exec));
    CHECK_CUDA(cudaGraphDestroy(graph));
  } else {
    cudaGetLastError();  // capture unsupported here: report direct launches only
    if (ended == cudaSuccess) cudaGraphDestroy(graph);
  }
  CHECK_CUDA(cudaEventDestroy(start));
  CHECK_CUDA(cudaEventDestroy(stop));
  CHECK_CUDA(cudaStreamDestroy(stream));
}

std::vector<int64_t> ParseList(const char* text) {
  std::vector<int64_t> values;
  for (const char* p = text; *p != '\0';) {
    values.push_back(std::strtoll(p, const_cast<char**>(&p), 10));
    if (*p == ',') ++p;
  }
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> contexts = {4096, 16384, 32768, 65536, 131072, 262144, 524288};
  std::vector<int64_t> batches = {1, 8};
  std::vector<std::string> methods;
  Settings settings;
  const char* csv_path = nullptr;
  std::string label;
  int steps = 50;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--contexts") contexts = ParseList(argv[i + 1]);
    else if (flag == "--batches") batches = ParseList(argv[i + 1]);
    else if (flag == "--budget") settings.budget = std::strtof(argv[i + 1], nullptr);
    else if (flag == "--page-size") settings.page_size = std::atoll(argv[i + 1]);
    else if (flag == "--rank") settings.rank = std::atoll(argv[i + 1]);
    else if (flag == "--csv") csv_path = argv[i + 1];
    else if (flag == "--label") label = argv[i + 1];
    else if (flag == "--steps") steps = std::atoi(argv[i + 1]);
    else if (flag == "--methods") {
      for (const char* p = argv[i + 1]; *p != '\0';) {
        const char* comma = std::strchr(p, ',');
        methods.emplace_back(p, comma != nullptr ? comma - p : std::strlen(p));
        p = comma != nullptr ? comma + 1 : p + std::strlen(p);
      }
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  cudaDeviceProp properties;
  CHECK_CUDA(cudaGetDeviceProperties(&properties, 0));
  std::printf("CUDA decode step, fp16, Hq=%d Hkv=%d D=%d, budget %g (sink 4, window 64, dense_below 1024), "
              "quest page %lld, loki rank %lld, saap T/32 clusters (<= 1024) x %d hidden, hash %d rounds x %d buckets; %s\n",
              kHeads, kKvHeads, kHeadSize, settings.budget, static_cast<long long>(settings.page_size),
              static_cast<long long>(settings.rank), 2 * kHeadSize, kHashRounds, 2 * kHashHalfBuckets, properties.name);
  FILE* csv = nullptr;
  if (csv_path != nullptr) {
    FILE* existing = std::fopen(csv_path, "r");
    const bool fresh = existing == nullptr;
    if (existing != nullptr) std::fclose(existing);
    csv = std::fopen(csv_path, "a");
    if (csv == nullptr) {
      std::fprintf(stderr, "cannot open %s for appending\n", csv_path);
      return 1;
    }
    if (fresh) std::fprintf(csv, "device,batch,context,method,ms,bytes_read,recall,rel_error\n");
  }
  std::printf("%5s %8s %-10s %10s %10s %8s %10s %8s %8s %8s %10s\n", "batch", "context", "method", "ms", "graph ms",
              "vs dense", "MB read", "GB/s", "recall", "needles", "rel error");
  for (int64_t batch : batches) {
    for (int64_t length : contexts) {
      Problem p;
      p.batch = static_cast<int>(batch);
      p.length = length;
      Generate(p, 1000 + static_cast<uint64_t>(length) + batch);
      const AttentionParams a = p.Attention();
      Device<float> scores(static_cast<size_t>(batch) * kHeads * length), recall(static_cast<size_t>(batch) * kHeads);
      DenseScores<<<dim3(256, static_cast<unsigned>(batch * kHeads)), 256>>>(p.query.get(), p.keys.get(), length, a.scale,
                                                                            scores.get());
      CHECK_CUDA(cudaGetLastError());
      Device<bool> flags(static_cast<size_t>(batch) * kKvHeads * length);
      std::vector<float> dense_output;
      float dense_ms = NAN;
      for (const Method& method : kMethods) {
        const bool named = methods.empty() || std::find(methods.begin(), methods.end(), method.name) != methods.end();
        if (!named) continue;
        Device<unsigned char> state;
        const SparseMethodParams m = Prepare(p, method.method, settings, &state);
        const size_t bytes = ortsparse::cuda::SparseDecodeWorkspaceBytes(a, m, length);
        if (bytes == 0) {
          std::fprintf(stderr, "%s: %s\n", method.name, ortsparse::cuda::CheckDecodeSupport(a, m, length).message().c_str());
          return 1;
        }
        Device<unsigned char> workspace(bytes);
        float ms = 0.0f, graph_ms = 0.0f;
        TimeSteps(a, m, length, workspace.get(), bytes, steps, &ms, &graph_ms);
        CHECK_CUDA(ortsparse::cuda::LaunchSparseDecode(a, m, length, workspace.get(), bytes, nullptr));
        CHECK_CUDA(ortsparse::cuda::LaunchSelectedKeyFlags(a, m, length, workspace.get(), flags.get(), nullptr));
        RecallOf<<<static_cast<unsigned>(batch * kHeads), 256>>>(scores.get(), flags.get(), length, recall.get());
        CHECK_CUDA(cudaDeviceSynchronize());
        std::vector<unsigned char> selected(flags.size());
        CHECK_CUDA(cudaMemcpy(selected.data(), flags.get(), selected.size(), cudaMemcpyDeviceToHost));
        int64_t attended = 0, needles_found = 0, needles = 0;
        for (unsigned char s : selected) attended += s;
        for (size_t segment = 0; segment < p.needles.size(); ++segment) {
          for (int64_t j : p.needles[segment]) {
            ++needles;
            needles_found += selected[segment * length + j] != 0;
          }
        }
        const std::vector<float> recalls = recall.Download();
        double mean_recall = 0.0;
        for (float r : recalls) mean_recall += r / recalls.size();
        std::vector<float> output;
        for (__half x : p.output.Download()) output.push_back(__half2float(x));
        if (method.method == SparseMethod::kDense) {
          dense_output = output;
          dense_ms = ms;
        }
        double error = dense_output.empty() ? NAN : 0.0, scale = 0.0;
        for (size_t i = 0; i < dense_output.size(); ++i) {
          error = std::max(error, std::abs(static_cast<double>(output[i]) - dense_output[i]));
          scale = std::max(scale, std::abs(static_cast<double>(dense_output[i])));
        }
        const double read = BytesRead(p, m, attended);
        std::printf("%5lld %8lld %-10s %10.4f %10.4f %7.2fx %10.1f %8.0f %8.4f %8s %10.2e\n",
                    static_cast<long long>(batch), static_cast<long long>(length), (method.name + label).c_str(), ms, graph_ms,
                    dense_ms / ms, read / 1e6, read / (ms * 1e-3) / 1e9, mean_recall,
                    needles > 0 ? (std::to_string(needles_found) + "/" + std::to_string(needles)).c_str() : "-",
                    error / std::max(scale, 1e-30));
        std::fflush(stdout);
        if (csv != nullptr) {
          std::fprintf(csv, "%s,%lld,%lld,%s,%.5f,%.0f,%.4f,%.3e\n", properties.name, static_cast<long long>(batch),
                       static_cast<long long>(length), (method.name + label).c_str(), ms, read, mean_recall,
                       error / std::max(scale, 1e-30));
          std::fflush(csv);
        }
      }
    }
  }
  if (csv != nullptr) std::fclose(csv);
  return 0;
}
