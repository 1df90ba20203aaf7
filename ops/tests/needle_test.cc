// Planted needles: keys built to carry almost all of a query's attention must be attended by every
// method at its default attributes (budget 1/16 of 2048 keys, sink 4, window 64, dense_below 1024),
// with calibration derived from the planted structure as a deployment would derive it from its keys:
// a PCA basis of low-rank keys (loki), the centroids of clustered keys and a classifier that maps a
// query to its cluster (saap), random projections (hash) and hyperplanes (hyper). The prefill methods
// (block, hyper) attend a whole prompt of kKeys rows, measured at the rows the needles are planted
// for. The measure is the recall of attention mass: the exact softmax weight of the keys attended,
// over all keys, for every query head.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu/sparse_attention_cpu.h"
#include "attention/cpu/sparse_methods.h"
#include "method_scenario.h"
#include "random_rows.h"
#include "std_thread_runner.h"

namespace ortsparse::testing {
namespace {

constexpr int64_t kKeys = 2048, kHeads = 4, kKvHeads = 2, kGroup = kHeads / kKvHeads, kHeadSize = 64;
constexpr int64_t kNeedlesPerHead = 8, kClusters = 32, kRank = kHeadSize / 4;
constexpr int64_t kBlock = 64;        // block's default block size
constexpr int64_t kHyperBits = 12;    // hyper: 4096 codes, which few of the other keys share with a needle
constexpr double kNeedleScore = 14.0;  // scale·q·needle: e^14 per needle against ~e^0.5 per other key

// A cache of kKeys keys per KV head (the last one appended by the step), queries, and calibration.
struct Haystack {
  std::string method;
  std::vector<double> keys;     // [Hkv, kKeys, D]
  std::vector<double> queries;  // [rows, Hq, D]: one decode row, or kKeys prefill rows (block, hyper)
  std::vector<std::vector<double>> calibration;
  std::vector<std::vector<int64_t>> calibration_shapes;
  std::vector<int64_t> measured_rows;  // query rows whose recall is measured

  double* Key(int64_t h, int64_t j) { return &keys[(h * kKeys + j) * kHeadSize]; }
  double* Query(int64_t row, int64_t h) { return &queries[(row * kHeads + h) * kHeadSize]; }
};

// Needle for query q: a key that scores kNeedleScore against it.
void PlantNeedle(const double* q, double* key) {
  const double norm_squared = std::inner_product(q, q + kHeadSize, q, 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadSize));
  for (int64_t d = 0; d < kHeadSize; ++d) key[d] = kNeedleScore / (scale * norm_squared) * q[d];
}

Haystack MakeHaystack(const std::string& method) {
  Haystack hay;
  hay.method = method;
  std::mt19937 rng(2024);
  std::normal_distribution<double> normal;
  hay.keys.resize(kKvHeads * kKeys * kHeadSize);
  const int64_t rows = method == "block" || method == "hyper" ? kKeys : 1;
  hay.queries.resize(rows * kHeads * kHeadSize);
  for (double& x : hay.queries) x = normal(rng);
  hay.measured_rows = {rows - 1};

  // Where head h's needles go: the middle of the cache, or for streaming its sink and window;
  // distinct positions for the heads that share a KV head.
  std::uniform_int_distribution<int64_t> middle(100, kKeys - 200);
  std::vector<std::vector<int64_t>> taken(kKvHeads);
  auto needle_positions = [&](int64_t h) {
    const int64_t g = h % kGroup;
    if (method == "streaming") return std::vector<int64_t>{1 + g, kKeys - 2 - g, kKeys - 10 - g, kKeys - 20 - g};
    if (method == "quest") {  // quest reads whole pages: a head's needles form one passage, as relevant text does
      std::vector<int64_t> passage(kNeedlesPerHead);
      std::iota(passage.begin(), passage.end(), 160 + 600 * h + (h % 2) * 5);
      return passage;
    }
    std::vector<int64_t>& used = taken[h / kGroup];
    std::vector<int64_t> positions;
    while (static_cast<int64_t>(positions.size()) < kNeedlesPerHead) {
      const int64_t j = middle(rng);
      if (std::find(used.begin(), used.end(), j) != used.end()) continue;
      used.push_back(j);
      positions.push_back(j);
    }
    return positions;
  };

  if (method == "loki") {  // keys and queries mostly in a subspace of kRank principal components
    const std::vector<double> basis = OrthonormalRows(rng, kHeadSize, kHeadSize);
    hay.calibration = {std::vector<double>()};
    for (int64_t h = 0; h < kKvHeads; ++h) hay.calibration[0].insert(hay.calibration[0].end(), basis.begin(), basis.end());
    hay.calibration_shapes = {{kKvHeads, kHeadSize, kHeadSize}};
    auto low_rank = [&](double* x, double spread) {
      std::fill(x, x + kHeadSize, 0.0);
      for (int64_t i = 0; i < kHeadSize; ++i) {
        const double weight = (i < kRank ? spread : 0.1) * normal(rng);
        for (int64_t d = 0; d < kHeadSize; ++d) x[d] += weight * basis[i * kHeadSize + d];
      }
    };
    for (int64_t j = 0; j < kKvHeads * kKeys; ++j) low_rank(&hay.keys[j * kHeadSize], 2.0);
    for (int64_t h = 0; h < kHeads; ++h) low_rank(hay.Query(0, h), 2.0);
  } else if (method == "saap") {  // keys around kClusters centroids; each query head looks at one
    const std::vector<double> centroids = OrthonormalRows(rng, kClusters, kHeadSize);
    std::uniform_int_distribution<int64_t> any_cluster(0, kClusters - 1);
    for (int64_t j = 0; j < kKvHeads * kKeys; ++j) {
      const double* centroid = &centroids[any_cluster(rng) * kHeadSize];
      for (int64_t d = 0; d < kHeadSize; ++d) hay.keys[j * kHeadSize + d] = 3.0 * centroid[d] + 0.3 * normal(rng);
    }
    for (int64_t h = 0; h < kHeads; ++h) {
      const double* centroid = &centroids[(5 * h + 3) % kClusters * kHeadSize];
      for (int64_t d = 0; d < kHeadSize; ++d) hay.Query(0, h)[d] = 8.0 * centroid[d];
    }
    // The classifier computes z = centroids · q: relu([q, -q]) through [C^T; -C^T] (bias 0).
    const int64_t hidden = 2 * kHeadSize;
    std::vector<double> all_centroids, weights(kHeads * kHeadSize * hidden, 0.0);
    std::vector<double> output(kHeads * (hidden + 1) * kClusters, 0.0);
    for (int64_t h = 0; h < kKvHeads; ++h) all_centroids.insert(all_centroids.end(), centroids.begin(), centroids.end());
    for (int64_t h = 0; h < kHeads; ++h) {
      for (int64_t d = 0; d < kHeadSize; ++d) {
        weights[(h * kHeadSize + d) * hidden + d] = 1.0;
        weights[(h * kHeadSize + d) * hidden + kHeadSize + d] = -1.0;
        for (int64_t c = 0; c < kClusters; ++c) {
          output[(h * (hidden + 1) + d) * kClusters + c] = centroids[c * kHeadSize + d];
          output[(h * (hidden + 1) + kHeadSize + d) * kClusters + c] = -centroids[c * kHeadSize + d];
        }
      }
    }
    hay.calibration = {all_centroids, weights, std::vector<double>(kHeads * hidden, 0.0), output};
    hay.calibration_shapes = {{kKvHeads, kClusters, kHeadSize}, {kHeads, kHeadSize, hidden}, {kHeads, hidden},
                              {kHeads, hidden + 1, kClusters}};
  } else {
    for (double& x : hay.keys) x = normal(rng);
    if (method == "hash") {
      constexpr int64_t kRounds = 4, kHalfBuckets = 8;
      hay.calibration = {std::vector<double>(kKvHeads * kRounds * kHeadSize * kHalfBuckets)};
      for (double& x : hay.calibration[0]) x = normal(rng);
      hay.calibration_shapes = {{kKvHeads, kRounds, kHeadSize, kHalfBuckets}};
    } else if (method == "hyper") {
      hay.calibration = {std::vector<double>(kKvHeads * kHeadSize * kHyperBits)};
      for (double& x : hay.calibration[0]) x = normal(rng);
      hay.calibration_shapes = {{kKvHeads, 1, kHeadSize, kHyperBits}};
    }
  }

  if (method == "block") {  // the last query block looks at one key block, every head alike
    const std::vector<double> direction = OrthonormalRows(rng, 1, kHeadSize);
    const int64_t needle_block = 10;
    for (int64_t row = kKeys - kBlock; row < kKeys; ++row) {
      for (int64_t h = 0; h < kHeads; ++h) {
        for (int64_t d = 0; d < kHeadSize; ++d) hay.Query(row, h)[d] = 8.0 * direction[d] + 0.1 * normal(rng);
      }
    }
    std::vector<double> target(kHeadSize);
    for (int64_t d = 0; d < kHeadSize; ++d) target[d] = 8.0 * direction[d];
    for (int64_t h = 0; h < kKvHeads; ++h) {
      for (int64_t j = needle_block * kBlock; j < (needle_block + 1) * kBlock; ++j) {
        PlantNeedle(target.data(), hay.Key(h, j));
      }
    }
    hay.measured_rows.clear();
    for (int64_t row = kKeys - kBlock; row < kKeys; ++row) hay.measured_rows.push_back(row);
    return hay;
  }
  for (int64_t h = 0; h < kHeads; ++h) {  // for the measured (last) row
    for (int64_t j : needle_positions(h)) PlantNeedle(hay.Query(rows - 1, h), hay.Key(h / kGroup, j));
  }
  return hay;
}

class NeedleTest : public ::testing::TestWithParam<std::tuple<std::string, DataType>> {};

TEST_P(NeedleTest, FindsPlantedNeedlesAtDefaultBudget) {
  static StdThreadRunner threads(2);
  const auto& [method, type] = GetParam();
  Haystack hay = MakeHaystack(method);
  const bool prefill = method == "block" || method == "hyper";
  const int64_t S = prefill ? kKeys : 1, P = kKeys - S;  // concatenation mode: a past of P keys

  // [B, S, H * D] rows and [B, Hkv, P, D] past, from the haystack's [Hkv, kKeys, D] keys.
  std::vector<double> key(S * kKvHeads * kHeadSize), past_key(kKvHeads * P * kHeadSize);
  std::vector<double> values(kKvHeads * kKeys * kHeadSize);
  std::mt19937 rng(7);
  std::normal_distribution<double> normal;
  for (double& v : values) v = normal(rng);
  std::vector<double> value(key.size()), past_value(past_key.size());
  for (int64_t h = 0; h < kKvHeads; ++h) {
    for (int64_t j = 0; j < kKeys; ++j) {
      const double* k = hay.Key(h, j);
      const double* v = &values[(h * kKeys + j) * kHeadSize];
      double* key_out = j < P ? &past_key[(h * P + j) * kHeadSize] : &key[((j - P) * kKvHeads + h) * kHeadSize];
      double* value_out = j < P ? &past_value[(h * P + j) * kHeadSize] : &value[((j - P) * kKvHeads + h) * kHeadSize];
      std::copy_n(k, kHeadSize, key_out);
      std::copy_n(v, kHeadSize, value_out);
    }
  }
  const StoredTensor query_tensor = Store(type, {1, S, kHeads * kHeadSize}, hay.queries);
  const StoredTensor key_tensor = Store(type, {1, S, kKvHeads * kHeadSize}, key);
  const StoredTensor value_tensor = Store(type, {1, S, kKvHeads * kHeadSize}, value);
  const StoredTensor past_key_tensor = Store(type, {1, kKvHeads, P, kHeadSize}, past_key);
  const StoredTensor past_value_tensor = Store(type, {1, kKvHeads, P, kHeadSize}, past_value);
  std::vector<StoredTensor> calibration;
  for (size_t i = 0; i < hay.calibration.size(); ++i) {
    calibration.push_back(Store(DataType::kFloat32, hay.calibration_shapes[i], hay.calibration[i]));
  }
  attention::AttentionInputs inputs;
  auto view = [](const StoredTensor& t) { return attention::TensorInfo{true, t.type, t.shape, t.bytes.data()}; };
  inputs[attention::kQuery] = view(query_tensor);
  inputs[attention::kKey] = view(key_tensor);
  inputs[attention::kValue] = view(value_tensor);
  if (P > 0) {
    inputs[attention::kPastKey] = view(past_key_tensor);
    inputs[attention::kPastValue] = view(past_value_tensor);
  }
  for (size_t i = 0; i < calibration.size(); ++i) inputs[attention::kMethodData0 + i] = view(calibration[i]);
  attention::AttentionAttributes attributes;  // the defaults but for the method
  attributes.num_heads = kHeads;
  attributes.kv_num_heads = kKvHeads;
  attributes.method = method;

  attention::AttentionPlan plan;
  Status status = attention::PlanAttention(attributes, inputs, &plan);
  ASSERT_TRUE(status.ok()) << status.message();
  const size_t element = static_cast<size_t>(DataTypeSize(type));
  std::vector<unsigned char> output(S * kHeads * kHeadSize * element), key_cache(kKvHeads * kKeys * kHeadSize * element),
      value_cache(key_cache.size()), state(attention::MethodStateBytes(plan));
  attention::AttentionOutputs outputs;
  outputs.output = output.data();
  outputs.key_cache = key_cache.data();
  outputs.value_cache = value_cache.data();
  outputs.method_state = state.data();  // without a past state: built from the cache
  attention::StepParams step;
  status = cpu::PrepareSparseAttention(attributes, inputs, plan, outputs, threads.runner(), &step);
  const AttentionParams& attention_params = step.attention;
  const SparseMethodParams& method_params = step.method;
  ASSERT_TRUE(status.ok()) << status.message();
  cpu::SelectedKeys selected;
  bool sparse = false;
  status = cpu::SelectKeys(attention_params, method_params, threads.runner(), &selected, &sparse);
  ASSERT_TRUE(status.ok()) << status.message();
  ASSERT_TRUE(sparse);
  const KeySelection& selection = selected.Flatten();

  ReferenceProblem problem;  // just the sizes, for Sees
  problem.query_length = problem.kv_length = S;
  problem.num_heads = kHeads;
  problem.kv_num_heads = kKvHeads;
  problem.head_size = problem.v_head_size = kHeadSize;
  problem.past_length = P;
  const ReferenceSequences sequences = SequencesOf(problem);
  const std::vector<double> cached = ReadStored(type, key_cache.data(), kKvHeads * kKeys * kHeadSize);
  const double scale = 1.0 / std::sqrt(static_cast<double>(kHeadSize));
  for (int64_t row : hay.measured_rows) {
    for (int64_t h = 0; h < kHeads; ++h) {
      const std::vector<uint8_t> attended = SelectedKeysOf(&selection, problem, sequences, 0, row, h);
      const double* q = &query_tensor.values[(row * kHeads + h) * kHeadSize];
      std::vector<double> scores;
      for (int64_t j = 0; Sees(problem, sequences, 0, row, j) && j < kKeys; ++j) {
        scores.push_back(scale * std::inner_product(q, q + kHeadSize, &cached[((h / kGroup) * kKeys + j) * kHeadSize], 0.0));
      }
      const double largest = *std::max_element(scores.begin(), scores.end());
      double all = 0.0, found = 0.0, count = 0.0;
      for (size_t j = 0; j < scores.size(); ++j) {
        all += std::exp(scores[j] - largest);
        found += attended[j] ? std::exp(scores[j] - largest) : 0.0;
        count += attended[j];
      }
      EXPECT_GE(found / all, 0.95) << "row " << row << ", head " << h;
      if (!prefill || method == "hyper") {  // block keeps gamma of the mass, whatever it costs
        EXPECT_LE(count, 0.15 * kKeys) << "row " << row << ", head " << h << ": barely sparse";
      }
    }
  }
}

std::string NeedleName(const ::testing::TestParamInfo<std::tuple<std::string, DataType>>& info) {
  return std::get<0>(info.param) + (std::get<1>(info.param) == DataType::kFloat16 ? "_fp16" : "_fp32");
}

INSTANTIATE_TEST_SUITE_P(Methods, NeedleTest,
                         ::testing::Combine(::testing::Values("topk", "streaming", "quest", "loki", "saap", "hash",
                                                              "block", "hyper"),
                                            ::testing::Values(DataType::kFloat32, DataType::kFloat16)),
                         NeedleName);

}  // namespace
}  // namespace ortsparse::testing
