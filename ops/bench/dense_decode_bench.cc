// Times decode steps (S = 1) of the dense CPU kernel through the same AttentionParams path as the
// op: B = 1, Hq = 32, Hkv = 8, D = 128, fp32, a cache of T keys, on a 2-thread pool.
//   dense_decode_bench [threads]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "attention/cpu/cpu_features.h"
#include "attention/cpu/dense_attention.h"
#include "std_thread_runner.h"

namespace {

using ortsparse::AttentionParams;

double MillisecondsPerStep(int64_t cache_length, ortsparse::ParallelRunner runner) {
  constexpr int64_t kHeads = 32, kKvHeads = 8, kHeadSize = 128;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> query(kHeads * kHeadSize), output(kHeads * kHeadSize);
  std::vector<float> keys(kKvHeads * cache_length * kHeadSize), values(keys.size());
  for (float& x : query) x = normal(rng);
  for (float& x : keys) x = normal(rng);
  for (float& x : values) x = normal(rng);
  const int32_t past = static_cast<int32_t>(cache_length - 1), key_count = static_cast<int32_t>(cache_length), rows = 1;

  AttentionParams p;
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
  p.key_strides[0] = p.value_strides[0] = kKvHeads * cache_length * kHeadSize;
  p.key_strides[1] = p.value_strides[1] = cache_length * kHeadSize;
  p.key_strides[2] = p.value_strides[2] = kHeadSize;
  p.output = output.data();
  std::copy(p.query_strides, p.query_strides + 3, p.output_strides);
  p.past_lengths = &past;
  p.key_counts = &key_count;
  p.valid_query_rows = &rows;
  p.scale = 1.0f / 11.313708f;

  const int steps = cache_length >= 16384 ? 30 : 200;
  std::vector<double> times;
  for (int step = -3; step < steps; ++step) {  // 3 warm-up steps
    const auto start = std::chrono::steady_clock::now();
    if (!ortsparse::cpu::DenseAttention(p, runner).ok()) std::abort();
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
  std::printf("dense decode, fp32, B=1 Hq=32 Hkv=8 D=128, %zu threads, %s kernels\n", threads,
              ortsparse::cpu::UseAvx2FmaKernels() ? "AVX2+FMA" : "baseline");
  for (int64_t cache_length : {4096, 32768}) {
    const double ms = MillisecondsPerStep(cache_length, pool.runner());
    const double gigabytes = 2.0 * 8 * cache_length * 128 * sizeof(float) / 1e9;
    std::printf("T=%6lld: %8.3f ms per step (median), K+V %.1f MB, %.1f GB/s\n", static_cast<long long>(cache_length),
                ms, gigabytes * 1e3, gigabytes / (ms / 1e3));
  }
  return 0;
}
