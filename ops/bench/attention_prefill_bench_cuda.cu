// Times CUDA prefill steps (S = T: a whole prompt, causal, from an empty cache) of dense attention
// and of the sparse prefills (block, hash, hyper) on identical inputs: Llama-3.1-8B attention shape
// (Hq = 32, Hkv = 8, D = 128), fp16, batch 1. A timed step is LaunchPrefill (block: mean keys, block
// selection and the sparse attention; hash: row selection and attention per slab of rows, from the
// keys' buckets computed once before the timing, as a decode-time state would hold them; hyper: the
// keys' sort, then row selection and attention per slab), CUDA events around back-to-back steps
// after a warm-up. The methods run with the op's defaults (budget 0.0625, sink 4, window 64,
// dense_below 1024; hash: 2 rounds of 16 buckets, the rewriter's; hyper: 12 hyperplanes, the
// rewriter's), projections drawn normal.
//
// Planted-structure inputs, drawn on the device: every KV head has 64 random unit "topics"; the
// keys of each key block of 64 lie along one topic (plus noise), and the queries of each query
// block along one topic (plus noise): a query scores about `--gap` (default 8) higher on keys of
// its topic than on the others, so its softmax mass sits in the ~1/64 of the earlier key blocks that
// share its topic, plus its own neighbourhood. Values are uniform in [-1, 1).
//
// Printed per context and method: milliseconds per step, TFLOP/s of the causal dense computation
// (4 · D · Hq · S(S+1)/2 flops, the count SDPA's numbers use), speed-up over our dense step, and for
// the sparse methods the fraction kept (block: of the visible key blocks; hash, hyper: of the
// visible keys of the sampled rows), the recall (exact softmax mass of the attended keys, averaged
// over --recall-rows sampled (head, row) pairs; the minimum too) and the output's error relative
// to dense (root-mean-square and maximum, over every 31st element). Hash and hyper keep the row
// selection of the last slab of rows only: their rows are sampled there (the longest rows).
//   attention_prefill_bench_cuda [--contexts 8192,32768,131072] [--methods dense,block,hash,hyper]
//                                [--steps 3] [--block-size 64] [--gamma 0.95] [--gap 8]
//                                [--recall-rows 256] [--budget 0.0625] [--hash-rounds 2]
//                                [--hash-buckets 16] [--hyper-bits 12] [--csv FILE]
// (--csv appends device,batch,context,method,ms,tflops,kept,recall rows.)
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

constexpr int kHeads = 32, kKvHeads = 8, kHeadSize = 128, kTopics = 64, kTopicBlock = 64;

#define CHECK_CUDA(expression)                                                                   \
  do {                                                                                           \
    const cudaError_t error_ = (expression);                                                     \
    if (error_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expression, cudaGetErrorString(error_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (false)

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

// ---- planted-structure inputs ------------------------------------------------------------------

__device__ __forceinline__ uint32_t Hash(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}
__device__ __forceinline__ float Uniform(uint32_t a, uint32_t b, uint32_t c) {  // [0, 1)
  return (Hash(a * 0x9E3779B9U ^ Hash(b * 0x85EBCA6BU ^ Hash(c + 0x27d4eb2fU))) >> 8) * (1.0f / 16777216.0f);
}
__device__ __forceinline__ float Normal(uint32_t a, uint32_t b, uint32_t c) {
  const float u1 = fmaxf(Uniform(a, b, 2 * c), 1e-7f), u2 = Uniform(a, b, 2 * c + 1);
  return sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
}

// topics[h][t][d]: unit vectors.
__global__ void TopicsKernel(float* topics) {
  const int h = blockIdx.x / kTopics, t = blockIdx.x % kTopics, d = threadIdx.x;
  __shared__ float norm;
  const float x = Normal(101, blockIdx.x, d);
  if (d == 0) norm = 0.0f;
  __syncthreads();
  atomicAdd(&norm, x * x);
  __syncthreads();
  topics[(h * kTopics + t) * kHeadSize + d] = x * rsqrtf(norm);
}

// Row `row` of head h (query heads use their KV head's topics): noise_scale·N(0,1) + strength·topic.
__global__ void FillKernel(__half* out, int64_t rows, int heads, bool query, const float* topics, float strength,
                           float noise_scale, uint32_t seed) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index >= rows * heads * kHeadSize) return;
  const int d = static_cast<int>(index % kHeadSize);
  int64_t row;
  int head;
  if (query) {  // [S, Hq, D]
    head = static_cast<int>(index / kHeadSize % heads);
    row = index / (kHeadSize * heads);
  } else {  // [Hkv, T, D]
    row = index / kHeadSize % rows;
    head = static_cast<int>(index / (kHeadSize * rows));
  }
  const int kv_head = query ? head / (kHeads / kKvHeads) : head;
  const uint32_t block = static_cast<uint32_t>(row / kTopicBlock);
  const int topic = static_cast<int>(Hash(block * 7919u + static_cast<uint32_t>(head) * 104729u + seed) % kTopics);
  const float noise = Normal(seed, static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32));
  out[index] = __float2half(noise_scale * noise + strength * topics[(kv_head * kTopics + topic) * kHeadSize + d]);
}

__global__ void FillValuesKernel(__half* out, int64_t count, uint32_t seed) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index < count) out[index] = __float2half(2.0f * Uniform(seed, static_cast<uint32_t>(index), 7) - 1.0f);
}

__global__ void NormalKernel(float* out, int64_t count, uint32_t seed) {
  const int64_t index = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (index < count) out[index] = Normal(seed, static_cast<uint32_t>(index), static_cast<uint32_t>(index >> 32));
}

// ---- recall: exact softmax mass of the kept keys, for sampled (head, row) pairs ------------------

// The keys a method attends: kept key blocks per (query head, query block), or per-row bitmaps per
// (KV head, row) of the last slab.
struct Selection {
  const uint32_t* kept = nullptr;  // block
  int64_t query_blocks = 0, words = 0;
  int block_size = 0;
  const uint32_t* row_keys = nullptr;  // hash, hyper
  int64_t first_row = 0, slab_rows = 0, row_words = 0;

  __device__ bool Attends(int h, int row, int j) const {
    if (kept != nullptr) {
      const int c = j / block_size;
      return (kept[(static_cast<int64_t>(h) * query_blocks + row / block_size) * words + c / 32] >> (c % 32)) & 1u;
    }
    const int kv_head = h / (kHeads / kKvHeads);
    return (row_keys[(kv_head * slab_rows + row - first_row) * row_words + j / 32] >> (j % 32)) & 1u;
  }
};

// recall[i] = the softmax mass of the attended keys of sample i; attended[i] = their number.
__global__ void RecallKernel(const __half* query, const __half* keys, int64_t S, int64_t T, float scale,
                             const Selection selection, const int2* samples, float* recall, float* attended) {
  const int2 sample = samples[blockIdx.x];  // (head, row)
  const int h = sample.x, row = sample.y, kv_head = h / (kHeads / kKvHeads);
  __shared__ float q[kHeadSize];
  __shared__ float reduce[32];
  if (threadIdx.x < kHeadSize) q[threadIdx.x] = __half2float(query[(static_cast<int64_t>(row) * kHeads + h) * kHeadSize + threadIdx.x]);
  __syncthreads();
  const __half* k = keys + static_cast<int64_t>(kv_head) * T * kHeadSize;
  const int visible = row + 1;  // causal, past 0
  auto score = [&](int j) {
    float s = 0.0f;
    const __half2* key = reinterpret_cast<const __half2*>(k + static_cast<int64_t>(j) * kHeadSize);
    for (int d = 0; d < kHeadSize / 2; ++d) {
      const float2 x = __half22float2(key[d]);
      s += q[2 * d] * x.x + q[2 * d + 1] * x.y;
    }
    return s * scale;
  };
  auto block_reduce = [&](float v, bool max) {
    for (int o = 16; o > 0; o /= 2) {
      const float other = __shfl_xor_sync(0xffffffffu, v, o);
      v = max ? fmaxf(v, other) : v + other;
    }
    if (threadIdx.x % 32 == 0) reduce[threadIdx.x / 32] = v;
    __syncthreads();
    float r = max ? -INFINITY : 0.0f;
    for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) r = max ? fmaxf(r, reduce[w]) : r + reduce[w];
    __syncthreads();
    return r;
  };
  float best = -INFINITY;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) best = fmaxf(best, score(j));
  best = block_reduce(best, true);
  float total = 0.0f, in_kept = 0.0f, count = 0.0f;
  for (int j = threadIdx.x; j < visible; j += blockDim.x) {
    const float p = expf(score(j) - best);
    total += p;
    if (selection.Attends(h, row, j)) {
      in_kept += p;
      count += 1.0f;
    }
  }
  total = block_reduce(total, false);
  in_kept = block_reduce(in_kept, false);
  count = block_reduce(count, false);
  if (threadIdx.x == 0) {
    recall[blockIdx.x] = in_kept / total;
    attended[blockIdx.x] = count;
  }
}

// ---- the benchmark -----------------------------------------------------------------------------

struct Options {
  std::vector<int64_t> contexts = {8192, 32768, 131072};
  std::vector<std::string> methods = {"dense", "block", "hash", "hyper"};
  int steps = 3;
  int64_t block_size = 64;
  float gamma = 0.95f;
  float gap = 8.0f;
  int recall_rows = 256;
  float budget = 0.0625f;
  int hash_rounds = 2, hash_buckets = 16, hyper_bits = 12;
  std::FILE* csv = nullptr;  // --csv FILE: rows appended per method and context
  std::string device;
};

std::vector<std::string> Split(const char* text) {
  std::vector<std::string> parts;
  std::string current;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p == ',') {
      parts.push_back(current);
      current.clear();
    } else {
      current += *p;
    }
  }
  if (!current.empty()) parts.push_back(current);
  return parts;
}

Options Parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--contexts") {
      o.contexts.clear();
      for (const std::string& c : Split(value)) o.contexts.push_back(std::atoll(c.c_str()));
    } else if (flag == "--methods") {
      o.methods = Split(value);
    } else if (flag == "--steps") {
      o.steps = std::atoi(value);
    } else if (flag == "--block-size") {
      o.block_size = std::atoll(value);
    } else if (flag == "--gamma") {
      o.gamma = static_cast<float>(std::atof(value));
    } else if (flag == "--gap") {
      o.gap = static_cast<float>(std::atof(value));
    } else if (flag == "--recall-rows") {
      o.recall_rows = std::atoi(value);
    } else if (flag == "--budget") {
      o.budget = static_cast<float>(std::atof(value));
    } else if (flag == "--hash-rounds") {
      o.hash_rounds = std::atoi(value);
    } else if (flag == "--hash-buckets") {
      o.hash_buckets = std::atoi(value);
    } else if (flag == "--hyper-bits") {
      o.hyper_bits = std::atoi(value);
    } else if (flag == "--csv") {
      std::FILE* existing = std::fopen(value, "r");
      if (existing != nullptr) std::fclose(existing);
      o.csv = std::fopen(value, "a");
      if (o.csv == nullptr) {
        std::fprintf(stderr, "cannot open %s for appending\n", value);
        std::exit(2);
      }
      if (existing == nullptr) std::fprintf(o.csv, "device,batch,context,method,ms,tflops,kept,recall\n");
    } else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return o;
}

float HalfToFloatHost(__half h) { return __half2float(h); }

void RunContext(const Options& o, int64_t T) {
  const int64_t S = T;
  Device<float> topics(static_cast<size_t>(kKvHeads) * kTopics * kHeadSize);
  TopicsKernel<<<kKvHeads * kTopics, kHeadSize>>>(topics.get());
  CHECK_CUDA(cudaGetLastError());
  Device<__half> query(static_cast<size_t>(S) * kHeads * kHeadSize), keys(static_cast<size_t>(kKvHeads) * T * kHeadSize),
      values(keys.size()), dense_output(query.size()), sparse_output(query.size());
  // q·k of one topic: strength² (about sqrt(D)·gap after the 1/sqrt(D) scale); noise 0.5 per dimension.
  const float strength = std::sqrt(o.gap * std::sqrt(static_cast<float>(kHeadSize)));
  const unsigned threads = 256;
  FillKernel<<<static_cast<unsigned>((query.size() + threads - 1) / threads), threads>>>(query.get(), S, kHeads, true,
                                                                                          topics.get(), strength, 0.5f, 11);
  FillKernel<<<static_cast<unsigned>((keys.size() + threads - 1) / threads), threads>>>(keys.get(), T, kKvHeads, false,
                                                                                         topics.get(), strength, 0.5f, 11);
  FillValuesKernel<<<static_cast<unsigned>((values.size() + threads - 1) / threads), threads>>>(values.get(),
                                                                                               static_cast<int64_t>(values.size()), 23);
  CHECK_CUDA(cudaGetLastError());
  const std::vector<int32_t> lengths_host = {0, static_cast<int32_t>(S), static_cast<int32_t>(T)};  // past, rows, keys
  Device<int32_t> lengths(3);
  CHECK_CUDA(cudaMemcpy(lengths.get(), lengths_host.data(), 12, cudaMemcpyHostToDevice));

  AttentionParams a;
  a.type = DataType::kFloat16;
  a.batch = 1;
  a.query_length = S;
  a.num_heads = kHeads;
  a.kv_num_heads = kKvHeads;
  a.head_size = a.v_head_size = kHeadSize;
  a.query = query.get();
  a.query_strides[0] = S * kHeads * kHeadSize;
  a.query_strides[1] = kHeads * kHeadSize;
  a.query_strides[2] = kHeadSize;
  a.key_cache = keys.get();
  a.value_cache = values.get();
  a.key_strides[0] = a.value_strides[0] = kKvHeads * T * kHeadSize;
  a.key_strides[1] = a.value_strides[1] = T * kHeadSize;
  a.key_strides[2] = a.value_strides[2] = kHeadSize;
  std::copy(a.query_strides, a.query_strides + 3, a.output_strides);
  a.past_lengths = lengths.get();
  a.valid_query_rows = lengths.get() + 1;
  a.key_counts = lengths.get() + 2;
  a.scale = 1.0f / std::sqrt(static_cast<float>(kHeadSize));
  a.causal = true;

  // hash and hyper: normal projections (hash: [Hkv, R, D, NB / 2]; hyper: [Hkv, 1, D, L]) and
  // hash's key buckets [1, Hkv, T, R].
  Device<float> projections(static_cast<size_t>(kKvHeads) * kHeadSize *
                            std::max(o.hash_rounds * o.hash_buckets / 2, o.hyper_bits));
  NormalKernel<<<static_cast<unsigned>((projections.size() + threads - 1) / threads), threads>>>(
      projections.get(), static_cast<int64_t>(projections.size()), 31);
  Device<int32_t> buckets(static_cast<size_t>(kKvHeads) * T * o.hash_rounds);
  CHECK_CUDA(cudaGetLastError());

  const double flops = 4.0 * kHeadSize * kHeads * static_cast<double>(S) * (S + 1) / 2.0;
  double dense_ms = 0.0;
  for (const std::string& name : o.methods) {
    SparseMethodParams m;
    m.method = name == "block"   ? SparseMethod::kBlock
               : name == "hash"  ? SparseMethod::kHash
               : name == "hyper" ? SparseMethod::kHyper
                                 : SparseMethod::kDense;
    m.block_size = o.block_size;
    m.gamma = o.gamma;
    m.dense_below = 1024;
    m.budget = o.budget;
    if (m.method == SparseMethod::kHash || m.method == SparseMethod::kHyper) {
      m.hash_projections = projections.get();
      m.hash_rounds = m.method == SparseMethod::kHash ? o.hash_rounds : 1;
      m.hash_half_buckets = m.method == SparseMethod::kHash ? o.hash_buckets / 2 : o.hyper_bits;
    }
    if (m.method == SparseMethod::kHash) {
      m.raw_query = query.get();
      std::copy(a.query_strides, a.query_strides + 3, m.raw_query_strides);
      m.state.present = buckets.get();
      m.state.width = o.hash_rounds;
      m.state.present_rows = T;
      m.state.present_strides[0] = kKvHeads * T * o.hash_rounds;
      m.state.present_strides[1] = T * o.hash_rounds;
      m.state.present_strides[2] = o.hash_rounds;
      CHECK_CUDA(ortsparse::cuda::LaunchMethodStateUpdate(a, m, T, S, nullptr));  // every key's buckets (no past)
    }
    a.output = m.method == SparseMethod::kDense ? dense_output.get() : sparse_output.get();
    const ortsparse::Status supported = ortsparse::cuda::CheckPrefillSupport(a, m, T);
    if (!supported.ok()) {
      std::printf("%s: %s\n", name.c_str(), supported.message().c_str());
      continue;
    }
    const size_t bytes = ortsparse::cuda::PrefillWorkspaceBytes(a, m, T);
    Device<unsigned char> workspace(std::max<size_t>(bytes, 1));
    CHECK_CUDA(ortsparse::cuda::LaunchPrefill(a, m, T, workspace.get(), bytes, nullptr));  // warm-up
    CHECK_CUDA(cudaDeviceSynchronize());
    cudaEvent_t start, stop;
    CHECK_CUDA(cudaEventCreate(&start));
    CHECK_CUDA(cudaEventCreate(&stop));
    const int steps = S >= 65536 ? std::max(1, o.steps / 2) : o.steps * (S <= 8192 ? 10 : 1);
    CHECK_CUDA(cudaEventRecord(start));
    for (int i = 0; i < steps; ++i) CHECK_CUDA(ortsparse::cuda::LaunchPrefill(a, m, T, workspace.get(), bytes, nullptr));
    CHECK_CUDA(cudaEventRecord(stop));
    CHECK_CUDA(cudaEventSynchronize(stop));
    float elapsed = 0.0f;
    CHECK_CUDA(cudaEventElapsedTime(&elapsed, start, stop));
    const double ms = elapsed / steps;
    if (m.method == SparseMethod::kDense) dense_ms = ms;
    std::printf("%8lld  %-6s %10.3f ms %8.1f TFLOP/s(causal-dense equiv.)", static_cast<long long>(S), name.c_str(), ms,
                flops / (ms * 1e-3) / 1e12);
    if (dense_ms > 0.0 && m.method != SparseMethod::kDense) std::printf("  %6.2fx vs dense", dense_ms / ms);
    double csv_kept = 1.0, csv_recall = 1.0;
    if (m.method != SparseMethod::kDense) {
      Selection selection;
      int64_t first_sampled_row = 0;
      double kept_fraction = -1.0;
      if (m.method == SparseMethod::kBlock) {
        const ortsparse::cuda::PrefillBlockSelection view =
            ortsparse::cuda::DescribePrefillBlockSelection(a, m, T, workspace.get());
        selection.kept = view.kept;
        selection.query_blocks = view.query_blocks;
        selection.words = view.words;
        selection.block_size = static_cast<int>(o.block_size);
        // Kept fraction of the visible key blocks.
        std::vector<uint32_t> kept(static_cast<size_t>(kHeads * view.query_blocks * view.words));
        CHECK_CUDA(cudaMemcpy(kept.data(), view.kept, kept.size() * 4, cudaMemcpyDeviceToHost));
        double kept_blocks = 0.0, visible_blocks = 0.0;
        for (int64_t h = 0; h < kHeads; ++h) {
          for (int64_t qb = 0; qb < view.query_blocks; ++qb) {
            const int64_t last = std::min<int64_t>(S - 1, (qb + 1) * o.block_size - 1);
            visible_blocks += static_cast<double>(last / o.block_size + 1);
            for (int64_t w = 0; w < view.words; ++w) kept_blocks += __builtin_popcount(kept[(h * view.query_blocks + qb) * view.words + w]);
          }
        }
        kept_fraction = kept_blocks / visible_blocks;
      } else {
        const ortsparse::cuda::PrefillRowSelection view =
            ortsparse::cuda::DescribePrefillRowSelection(a, m, T, workspace.get());
        selection.row_keys = view.row_keys;
        selection.first_row = view.first_row;
        selection.slab_rows = view.slab_rows;
        selection.row_words = view.words;
        first_sampled_row = view.first_row;
      }
      // Recall on sampled rows (spread over the sequence or the last slab, every head).
      std::vector<int2> samples_host(o.recall_rows);
      double visible_keys = 0.0;
      for (int i = 0; i < o.recall_rows; ++i) {
        samples_host[i].x = i % kHeads;
        samples_host[i].y = static_cast<int>(first_sampled_row +
                                             (static_cast<int64_t>(i) * 2654435761u + 12345) % (S - first_sampled_row));
        visible_keys += samples_host[i].y + 1;
      }
      Device<int2> samples(samples_host.size());
      CHECK_CUDA(cudaMemcpy(samples.get(), samples_host.data(), samples_host.size() * sizeof(int2), cudaMemcpyHostToDevice));
      Device<float> recall(samples_host.size()), attended(samples_host.size());
      RecallKernel<<<static_cast<unsigned>(samples_host.size()), 256>>>(query.get(), keys.get(), S, T, a.scale, selection,
                                                                        samples.get(), recall.get(), attended.get());
      CHECK_CUDA(cudaGetLastError());
      const std::vector<float> recalls = recall.Download(), counts = attended.Download();
      double mean = 0.0, low = 1.0, attended_keys = 0.0;
      for (float r : recalls) mean += r, low = std::min<double>(low, r);
      for (float c : counts) attended_keys += c;
      mean /= static_cast<double>(recalls.size());
      csv_kept = kept_fraction >= 0.0 ? kept_fraction : attended_keys / visible_keys;
      csv_recall = mean;
      if (kept_fraction >= 0.0) {
        std::printf("  kept %.4f of visible blocks", kept_fraction);
      } else {
        std::printf("  kept %.4f of visible keys (rows >= %lld)", attended_keys / visible_keys,
                    static_cast<long long>(first_sampled_row));
      }
      std::printf(", recall %.4f (min %.4f over %d rows)", mean, low, o.recall_rows);
      if (dense_ms > 0.0) {
        const std::vector<__half> dense = dense_output.Download(), sparse = sparse_output.Download();
        double worst = 0.0, largest = 0.0, squared_error = 0.0, squared = 0.0;
        for (size_t i = 0; i < dense.size(); i += 31) {  // a sample of the elements
          const double x = HalfToFloatHost(dense[i]), y = HalfToFloatHost(sparse[i]);
          worst = std::max(worst, std::abs(x - y));
          largest = std::max(largest, std::abs(x));
          squared_error += (x - y) * (x - y);
          squared += x * x;
        }
        std::printf(", error vs dense: rms %.4f of rms |dense|, max %.4f of max |dense|", std::sqrt(squared_error / squared),
                    worst / largest);
      }
    }
    std::printf("\n");
    std::fflush(stdout);
    if (o.csv != nullptr) {
      std::fprintf(o.csv, "%s,1,%lld,%s,%.4f,%.1f,%.4f,%.4f\n", o.device.c_str(), static_cast<long long>(S), name.c_str(), ms,
                   flops / (ms * 1e-3) / 1e12, csv_kept, csv_recall);
      std::fflush(o.csv);
    }
    CHECK_CUDA(cudaEventDestroy(start));
    CHECK_CUDA(cudaEventDestroy(stop));
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = Parse(argc, argv);
  cudaDeviceProp properties;
  CHECK_CUDA(cudaGetDeviceProperties(&properties, 0));
  o.device = properties.name;
  std::printf("%s: OrtSparse CUDA prefill, fp16, B=1, Hq=%d Hkv=%d D=%d, causal, S=T; block_size %lld, gamma %.2f; "
              "budget %.4f, hash %d rounds x %d buckets, hyper %d bits; planted topics (gap %.1f)\n",
              properties.name, kHeads, kKvHeads, kHeadSize, static_cast<long long>(o.block_size), o.gamma, o.budget,
              o.hash_rounds, o.hash_buckets, o.hyper_bits, o.gap);
  for (int64_t T : o.contexts) RunContext(o, T);
  if (o.csv != nullptr) std::fclose(o.csv);
  return 0;
}
