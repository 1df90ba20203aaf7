// Times decode steps (S = 1) of dense attention and of every sparse method, through the same
// AttentionParams / SparseMethodParams path as the op, on the same synthetic caches: B = 1, Hq = 32,
// Hkv = 8, D = 128, fp32, caches of T keys, budget 1/16, on a pool of 2 threads (or argv[1]).
// Each method's state is built from the whole cache first; a step is selection plus attention.
// As in a model, consecutive steps read the caches of different layers: kLayers of them, together
// larger than the last-level caches of the machines measured, so that no step finds its layer's
// cache left over from the step before.
//   attention_decode_bench [threads [method...]]     dense and the methods named, or all
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu/cpu_features.h"
#include "attention/cpu/sparse_methods.h"
#include "std_thread_runner.h"

namespace {

using ortsparse::AttentionParams;
using ortsparse::SparseMethod;
using ortsparse::SparseMethodParams;

constexpr int64_t kHeads = 32, kKvHeads = 8, kHeadSize = 128;
constexpr int kLayers = 4;
constexpr int64_t kClusters = 256, kHidden = 128;          // saap
constexpr int64_t kHashRounds = 4, kHashHalfBuckets = 8;  // hash: 16 buckets

struct Method {
  const char* name;
  SparseMethod method;
};
constexpr Method kMethods[] = {{"dense", SparseMethod::kDense}, {"topk", SparseMethod::kTopK},
                               {"streaming", SparseMethod::kStreaming}, {"quest", SparseMethod::kQuest},
                               {"loki", SparseMethod::kLoki}, {"saap", SparseMethod::kSaap},
                               {"hash", SparseMethod::kHash}};

std::vector<float> Normal(std::mt19937& rng, size_t count, float scale = 1.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> values(count);
  for (float& x : values) x = normal(rng);
  return values;
}

// Orthonormal rows for every KV head (Gram-Schmidt): a PCA basis or unit centroids.
std::vector<float> OrthonormalRows(std::mt19937& rng, int64_t heads, int64_t rows, int64_t width) {
  std::vector<float> all = Normal(rng, static_cast<size_t>(heads * rows * width));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t i = 0; i < rows; ++i) {
      float* row = &all[(h * rows + i) * width];
      for (int64_t k = std::max<int64_t>(0, i - width + 1); k < i; ++k) {  // beyond `width` rows: unit only
        const float* previous = &all[(h * rows + k) * width];
        const float projection = std::inner_product(row, row + width, previous, 0.0f);
        for (int64_t d = 0; d < width; ++d) row[d] -= projection * previous[d];
      }
      const float norm = std::sqrt(std::inner_product(row, row + width, row, 0.0f));
      for (int64_t d = 0; d < width; ++d) row[d] /= norm;
    }
  }
  return all;
}

// One layer: its cache, queries and calibration. `attention` points into the layer: never moved.
struct Layer {
  int64_t cache_length;
  std::vector<float> query, keys, values, output;
  std::vector<float> pca_basis, centroids, classifier_weights, classifier_bias, classifier_output, hash_projections;
  int32_t past, key_count, rows = 1;
  int32_t no_past = 0;
  AttentionParams attention;

  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;
  Layer(int64_t length, uint32_t seed) : cache_length(length) {
    std::mt19937 rng(seed);
    query = Normal(rng, kHeads * kHeadSize);
    keys = Normal(rng, static_cast<size_t>(kKvHeads * length * kHeadSize));
    values = Normal(rng, keys.size());
    output.resize(query.size());
    pca_basis = OrthonormalRows(rng, kKvHeads, kHeadSize, kHeadSize);
    centroids = OrthonormalRows(rng, kKvHeads, kClusters, kHeadSize);
    classifier_weights = Normal(rng, kHeads * kHeadSize * kHidden, 0.1f);
    classifier_bias = Normal(rng, kHeads * kHidden, 0.1f);
    classifier_output = Normal(rng, kHeads * (kHidden + 1) * kClusters, 0.1f);
    hash_projections = Normal(rng, kKvHeads * kHashRounds * kHeadSize * kHashHalfBuckets);
    past = static_cast<int32_t>(length - 1);
    key_count = static_cast<int32_t>(length);

    AttentionParams& p = attention;
    p.batch = 1;
    p.query_length = 1;
    p.num_heads = kHeads;
    p.kv_num_heads = kKvHeads;
    p.head_size = p.v_head_size = kHeadSize;
    p.query = query.data();
    p.query_strides[0] = p.query_strides[1] = kHeads * kHeadSize;
    p.query_strides[2] = kHeadSize;
    p.key_cache = keys.data();
    p.value_cache = values.data();
    p.key_strides[0] = p.value_strides[0] = kKvHeads * length * kHeadSize;
    p.key_strides[1] = p.value_strides[1] = length * kHeadSize;
    p.key_strides[2] = p.value_strides[2] = kHeadSize;
    p.output = output.data();
    std::copy(p.query_strides, p.query_strides + 3, p.output_strides);
    p.past_lengths = &past;
    p.key_counts = &key_count;
    p.valid_query_rows = &rows;
    p.scale = 1.0f / std::sqrt(static_cast<float>(kHeadSize));
  }

  // The method's parameters with the op's defaults, and its state (in `state`) built from the cache.
  SparseMethodParams Prepare(SparseMethod method, std::vector<unsigned char>* state, ortsparse::ParallelRunner runner) {
    SparseMethodParams m;
    m.method = method;
    m.rank = kHeadSize / 4;
    m.raw_query = query.data();
    std::copy(attention.query_strides, attention.query_strides + 3, m.raw_query_strides);
    m.pca_basis = pca_basis.data();
    m.centroids = centroids.data();
    m.clusters = kClusters;
    m.classifier_weights = classifier_weights.data();
    m.classifier_bias = classifier_bias.data();
    m.classifier_output = classifier_output.data();
    m.classifier_hidden = kHidden;
    m.hash_projections = hash_projections.data();
    m.hash_rounds = kHashRounds;
    m.hash_half_buckets = kHashHalfBuckets;
    int64_t rows_per_head = cache_length, width = 0;
    switch (method) {
      case SparseMethod::kQuest:
        rows_per_head = (cache_length + m.page_size - 1) / m.page_size;
        width = 2 * kHeadSize;
        break;
      case SparseMethod::kLoki: width = m.rank; break;
      case SparseMethod::kSaap: width = 1; break;
      case SparseMethod::kHash: width = kHashRounds; break;
      default: return m;
    }
    state->assign(static_cast<size_t>(kKvHeads * rows_per_head * width * 4), 0);
    m.state.present = state->data();
    m.state.width = width;
    m.state.present_rows = rows_per_head;
    m.state.present_strides[0] = kKvHeads * rows_per_head * width;
    m.state.present_strides[1] = rows_per_head * width;
    m.state.present_strides[2] = width;
    AttentionParams whole_cache = attention;  // every key appended at once: the state of all of them
    whole_cache.past_lengths = &no_past;
    if (!ortsparse::cpu::UpdateMethodState(whole_cache, m, runner).ok()) std::abort();
    return m;
  }

};

// Median over steps that go round the layers.
double MillisecondsPerStep(std::deque<Layer>& layers, const std::vector<SparseMethodParams>& methods,
                           ortsparse::ParallelRunner runner) {
  const int steps = layers[0].cache_length >= 16384 ? 40 : 200;
  std::vector<double> times;
  for (int step = -kLayers; step < steps; ++step) {  // a warm-up round
    const size_t layer = static_cast<size_t>(step + kLayers) % layers.size();
    const auto start = std::chrono::steady_clock::now();
    if (!ortsparse::cpu::SparseAttention(layers[layer].attention, methods[layer], runner).ok()) std::abort();
    const std::chrono::duration<double, std::milli> elapsed = std::chrono::steady_clock::now() - start;
    if (step >= 0) times.push_back(elapsed.count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const size_t threads = argc > 1 ? static_cast<size_t>(std::atoi(argv[1])) : 2;
  ortsparse::testing::StdThreadRunner pool(threads);
  std::printf("decode step, fp32, B=1 Hq=32 Hkv=8 D=128, budget 1/16 (sink 4, window 64), %zu threads, %s kernels\n",
              threads, ortsparse::cpu::UseAvx2FmaKernels() ? "AVX2+FMA" : "baseline");
  std::printf("quest page 16, loki rank 32, saap %lld clusters x %lld hidden, hash %lld rounds x %lld buckets\n",
              static_cast<long long>(kClusters), static_cast<long long>(kHidden), static_cast<long long>(kHashRounds),
              static_cast<long long>(2 * kHashHalfBuckets));
  for (int64_t cache_length : {4096, 32768}) {
    std::deque<Layer> layers;
    for (int layer = 0; layer < kLayers; ++layer) layers.emplace_back(cache_length, 1 + layer);
    double dense_ms = 0.0;
    std::printf("\nT=%lld      ms/step   vs dense\n", static_cast<long long>(cache_length));
    for (const Method& method : kMethods) {
      const bool named = argc <= 2 || std::find(argv + 2, argv + argc, std::string(method.name)) != argv + argc;
      if (method.method != SparseMethod::kDense && !named) continue;
      std::vector<std::vector<unsigned char>> states(kLayers);
      std::vector<SparseMethodParams> params;
      for (int layer = 0; layer < kLayers; ++layer) {
        params.push_back(layers[layer].Prepare(method.method, &states[layer], pool.runner()));
      }
      const double ms = MillisecondsPerStep(layers, params, pool.runner());
      if (method.method == SparseMethod::kDense) dense_ms = ms;
      std::printf("  %-10s %8.3f   %6.2fx\n", method.name, ms, dense_ms / ms);
    }
  }
  return 0;
}
