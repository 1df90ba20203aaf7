// The CUDA prefill kernels (S > 1) against the CPU kernels on the same inputs. The CPU runs in fp32
// on the values the GPU stores (rounded to fp16 or bf16, or fp32 itself):
//   * the selections must be identical to the CPU's SelectKeys where the selection's arithmetic is
//     exact (inputs and projections on a dyadic grid, dyadic scale): the kept key blocks of method
//     block, the keys of every row of hash and hyper (over the keys the row may see). With normal
//     values the GPU must keep at least 99% of the CPU's blocks or keys;
//   * the output is compared with the CPU's exact attention (dense, or over the GPU's selection),
//     within twice the error of rounding that fp32 reference to the storage type (plus fp32
//     accumulation slack; fp32 only the slack); rows past a sequence's valid rows must be zeros.
// The grid: type (fp16, bf16, fp32) x head size x GQA group x past (chunked prefill) x sequences of
// different lengths (right-padded ones among them) x dense / block / hash / hyper, plus masks,
// softcap, local windows, non-causal attention and appended keys beyond the query rows. Every test
// skips when no CUDA device is present.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "attention/cpu/exact_attention.h"
#include "attention/cpu/key_range.h"
#include "attention/cpu/key_selection.h"
#include "attention/cpu/sparse_methods.h"
#include "cuda_test_support.h"
#include "ortsparse/cuda_attention.h"
#include "ortsparse/float16.h"

namespace ortsparse::testing {
namespace {

#define ASSERT_CUDA(expression)                                     \
  do {                                                              \
    const cudaError_t cuda_error_ = (expression);                   \
    ASSERT_EQ(cuda_error_, cudaSuccess) << cudaGetErrorString(cuda_error_); \
  } while (false)

bool HasCudaDevice() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess && count > 0;
}

// The CPU kernels on every core (the references of the long cases are tens of GFLOP).
void RunOnThreads(void* /*ctx*/, size_t total, ParallelRunner::Task fn, void* fn_ctx) {
  const size_t threads = std::min<size_t>(total, std::max(1u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (size_t i = next++; i < total; i = next++) fn(fn_ctx, i);
    });
  }
  for (std::thread& thread : pool) thread.join();
}
ParallelRunner Threads() {
  ParallelRunner runner;
  runner.run = &RunOnThreads;
  return runner;
}



// ---- a prefill step ----------------------------------------------------------------------------

enum class Values { kGrid, kNormal };
enum class Mask { kNone, kBoolPerHead, kAdditiveShort };

struct PrefillCase {
  std::string name;
  SparseMethod method = SparseMethod::kDense;
  DataType type = DataType::kFloat16;
  int64_t num_heads = 8, kv_num_heads = 2, head_size = 128;
  int64_t query_length = 150;
  std::vector<int32_t> past = {0, 37, 200};   // per sequence; the batch is their count
  std::vector<int32_t> valid = {150, 150, 57};  // valid query rows (and appended keys) per sequence
  int32_t extra_keys = 0;                     // keys appended beyond the valid rows (S_kv > S)
  Values values = Values::kGrid;
  Mask mask = Mask::kNone;
  float softcap = 0.0f;
  int64_t local_window = -1;
  bool causal = true;
  int64_t block_size = 64;
  float gamma = 0.95f;
  int64_t dense_below = 128;
  bool planted = false;  // key blocks of different strengths along a shared query direction
  // hash and hyper
  float budget = 0.125f;
  int64_t sink = 4, window = 16;
  int64_t hash_rounds = 2, hash_half_buckets = 8;  // hyper: hash_half_buckets hyperplanes, one round
  // > 0: the key capacity the step is launched with, beyond the cache's (its keys still fit the
  // cache): longer row bitmaps, so that hash and hyper select and attend in several slabs of rows.
  int64_t launch_capacity = 0;
};

void PrintTo(const PrefillCase& c, std::ostream* os) { *os << c.name; }

const char* TypeName(DataType type) {
  return type == DataType::kFloat16 ? "fp16" : type == DataType::kBFloat16 ? "bf16" : "fp32";
}

bool SelectsRows(SparseMethod method) { return method == SparseMethod::kHash || method == SparseMethod::kHyper; }

struct Step {
  PrefillCase c;
  int64_t batch = 0, capacity = 0, mask_length = 0;
  std::vector<float> query, keys, values, additive;
  std::vector<uint8_t> flags;  // bool mask
  std::vector<int32_t> past, key_counts, rows;
  std::vector<float> projections;  // hash: [Hkv, R, D, NB / 2]; hyper: [Hkv, 1, D, L]
  std::vector<int32_t> buckets;    // hash: the CPU's method state, [B, Hkv, T, R]
  DeviceBuffer d_query, d_keys, d_values, d_output, d_mask, d_past, d_key_counts, d_rows, d_workspace;
  DeviceBuffer d_projections, d_buckets;
};

AttentionParams MakeAttention(const Step& s, bool device, float* host_output = nullptr);
SparseMethodParams MakeMethod(const Step& s, bool device);

void Fill(Step& s) {
  const PrefillCase& c = s.c;
  s.batch = static_cast<int64_t>(c.past.size());
  const int64_t B = s.batch, S = c.query_length, Hq = c.num_heads, Hkv = c.kv_num_heads, D = c.head_size;
  s.past = c.past;
  s.rows = c.valid;
  for (int64_t b = 0; b < B; ++b) s.key_counts.push_back(c.past[b] + c.valid[b] + c.extra_keys);
  s.capacity = *std::max_element(s.key_counts.begin(), s.key_counts.end()) + 5;
  const int64_t T = s.capacity;
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(c.name)));
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> grid(-8, 8), strength(0, 4);
  auto draw = [&](size_t count, bool normal_values) {
    std::vector<float> v(count);
    for (float& x : v) x = RoundTo(c.type, normal_values ? normal(rng) : grid(rng) / 4.0f);
    return v;
  };
  s.query = draw(B * S * Hq * D, c.values == Values::kNormal);
  s.keys = draw(B * Hkv * T * D, c.values == Values::kNormal);
  s.values = draw(B * Hkv * T * D, true);
  if (c.planted) {  // +1 on the first 32 dimensions of every query, +s/2 (s in 0..4) on the keys of a block
    const int64_t dims = std::min<int64_t>(32, D);
    for (size_t row = 0; row < s.query.size() / D; ++row) {
      for (int64_t d = 0; d < dims; ++d) s.query[row * D + d] = RoundTo(c.type, s.query[row * D + d] + 1.0f);
    }
    for (int64_t bh = 0; bh < B * Hkv; ++bh) {
      for (int64_t first = 0; first < T; first += c.block_size) {
        const float lift = strength(rng) / 2.0f;
        for (int64_t j = first; j < std::min(T, first + c.block_size); ++j) {
          for (int64_t d = 0; d < dims; ++d) {
            float& x = s.keys[(bh * T + j) * D + d];
            x = RoundTo(c.type, x + lift);
          }
        }
      }
    }
  }
  // Cache rows past a sequence's keys are NaN: the kernels must never read them into a result.
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t h = 0; h < Hkv; ++h) {
      for (int64_t j = s.key_counts[b]; j < T; ++j) {
        for (int64_t d = 0; d < D; ++d) {
          s.keys[((b * Hkv + h) * T + j) * D + d] = std::numeric_limits<float>::quiet_NaN();
          s.values[((b * Hkv + h) * T + j) * D + d] = std::numeric_limits<float>::quiet_NaN();
        }
      }
    }
  }
  if (c.mask == Mask::kBoolPerHead) {  // [B, Hq, S, T]
    s.mask_length = T;
    s.flags.resize(B * Hq * S * T);
    for (size_t i = 0; i < s.flags.size(); ++i) s.flags[i] = (static_cast<uint64_t>(i) * 2654435761u >> 9) % 5 != 0;
  } else if (c.mask == Mask::kAdditiveShort) {  // [B, 1, S, L], L short of the longest sequence
    s.mask_length = *std::max_element(s.key_counts.begin(), s.key_counts.end()) - 10;
    s.additive.resize(B * S * s.mask_length);
    std::uniform_int_distribution<int> bias(-8, 3);
    for (float& x : s.additive) {
      const int v = bias(rng);
      x = v == -8 ? -std::numeric_limits<float>::infinity() : v / 4.0f;
    }
  }
  if (SelectsRows(c.method)) {  // projections on a grid of halves (exact products with grid keys), or normal
    const int64_t rounds = c.method == SparseMethod::kHash ? c.hash_rounds : 1;
    s.projections.resize(Hkv * rounds * D * c.hash_half_buckets);
    std::uniform_int_distribution<int> halves(-2, 2);
    for (float& x : s.projections) x = c.values == Values::kNormal ? normal(rng) : halves(rng) / 2.0f;
    s.d_projections.Upload(s.projections);
  }
  if (c.method == SparseMethod::kHash) {  // the keys' buckets, as the CPU's state update computes them
    s.buckets.assign(B * Hkv * T * c.hash_rounds, -7);
    std::vector<int32_t> no_past(B, 0);
    AttentionParams a = MakeAttention(s, false);
    a.past_lengths = no_past.data();
    SparseMethodParams m = MakeMethod(s, false);
    m.state.past = nullptr;
    const Status built = cpu::UpdateMethodState(a, m, ParallelRunner());
    EXPECT_TRUE(built.ok()) << built.message();
    s.d_buckets.Upload(s.buckets);
  }
  s.d_query.Upload(Encode(c.type, s.query));
  s.d_keys.Upload(Encode(c.type, s.keys));
  s.d_values.Upload(Encode(c.type, s.values));
  s.d_output.Allocate(B * S * Hq * D * DataTypeSize(c.type));
  cudaMemset(s.d_output.get(), 0xff, s.d_output.bytes());  // NaN everywhere: every element must be written
  if (c.mask == Mask::kBoolPerHead) s.d_mask.Upload(s.flags);
  if (c.mask == Mask::kAdditiveShort) s.d_mask.Upload(Encode(c.type, s.additive));
  s.d_past.Upload(s.past);
  s.d_key_counts.Upload(s.key_counts);
  s.d_rows.Upload(s.rows);
}

// The step's parameters: device pointers in the storage type, or host fp32 copies for the CPU.
AttentionParams MakeAttention(const Step& s, bool device, float* host_output) {
  const PrefillCase& c = s.c;
  const int64_t S = c.query_length, Hq = c.num_heads, Hkv = c.kv_num_heads, D = c.head_size, T = s.capacity;
  AttentionParams a;
  a.type = device ? c.type : DataType::kFloat32;
  a.batch = s.batch;
  a.query_length = S;
  a.num_heads = Hq;
  a.kv_num_heads = Hkv;
  a.head_size = a.v_head_size = D;
  a.query = device ? s.d_query.get() : static_cast<const void*>(s.query.data());
  a.query_strides[0] = S * Hq * D;
  a.query_strides[1] = Hq * D;
  a.query_strides[2] = D;
  a.key_cache = device ? s.d_keys.get() : static_cast<const void*>(s.keys.data());
  a.value_cache = device ? s.d_values.get() : static_cast<const void*>(s.values.data());
  a.key_strides[0] = a.value_strides[0] = Hkv * T * D;
  a.key_strides[1] = a.value_strides[1] = T * D;
  a.key_strides[2] = a.value_strides[2] = D;
  a.output = device ? s.d_output.get() : static_cast<void*>(host_output);
  std::copy(a.query_strides, a.query_strides + 3, a.output_strides);
  a.past_lengths = device ? static_cast<const int32_t*>(s.d_past.get()) : s.past.data();
  a.key_counts = device ? static_cast<const int32_t*>(s.d_key_counts.get()) : s.key_counts.data();
  a.valid_query_rows = device ? static_cast<const int32_t*>(s.d_rows.get()) : s.rows.data();
  a.scale = c.values == Values::kNormal ? 1.0f / std::sqrt(static_cast<float>(D)) : 0.125f;
  a.softcap = c.softcap;
  a.causal = c.causal;
  a.local_window = c.local_window;
  if (c.mask == Mask::kBoolPerHead) {
    a.mask.data = device ? s.d_mask.get() : static_cast<const void*>(s.flags.data());
    a.mask.type = DataType::kBool;
    a.mask.batch_stride = Hq * S * T;
    a.mask.head_stride = S * T;
    a.mask.row_stride = T;
    a.mask.length = T;
  } else if (c.mask == Mask::kAdditiveShort) {
    a.mask.data = device ? s.d_mask.get() : static_cast<const void*>(s.additive.data());
    a.mask.type = device ? c.type : DataType::kFloat32;
    a.mask.batch_stride = S * s.mask_length;
    a.mask.head_stride = 0;
    a.mask.row_stride = s.mask_length;
    a.mask.length = s.mask_length;
  }
  return a;
}

SparseMethodParams MakeMethod(const Step& s, bool device) {
  const PrefillCase& c = s.c;
  SparseMethodParams m;
  m.method = c.method;
  m.block_size = c.block_size;
  m.gamma = c.gamma;
  m.dense_below = c.dense_below;
  m.budget = c.budget;
  m.sink = c.sink;
  m.window = c.window;
  if (SelectsRows(c.method)) {
    m.hash_projections = device ? static_cast<const float*>(s.d_projections.get()) : s.projections.data();
    m.hash_rounds = c.method == SparseMethod::kHash ? c.hash_rounds : 1;
    m.hash_half_buckets = c.hash_half_buckets;
  }
  if (c.method == SparseMethod::kHash) {  // raw queries = queries (no rotary); the keys' buckets as state
    m.raw_query = device ? s.d_query.get() : static_cast<const void*>(s.query.data());
    m.raw_query_strides[0] = c.query_length * c.num_heads * c.head_size;
    m.raw_query_strides[1] = c.num_heads * c.head_size;
    m.raw_query_strides[2] = c.head_size;
    m.state.present = device ? s.d_buckets.get() : const_cast<int32_t*>(s.buckets.data());
    m.state.width = c.hash_rounds;
    m.state.present_rows = s.capacity;
    m.state.present_strides[0] = c.kv_num_heads * s.capacity * c.hash_rounds;
    m.state.present_strides[1] = s.capacity * c.hash_rounds;
    m.state.present_strides[2] = c.hash_rounds;
  }
  return m;
}

double MaxAbs(const std::vector<float>& x) {
  double m = 0.0;
  for (float v : x) {
    if (std::isfinite(v)) m = std::max(m, std::abs(static_cast<double>(v)));
  }
  return m;
}

class CudaPrefillTest : public ::testing::TestWithParam<PrefillCase> {
 protected:
  void SetUp() override {
    if (!HasCudaDevice()) GTEST_SKIP() << "no CUDA device";
  }
};

// hash and hyper: the GPU's row selection against the CPU's SelectKeys (per (b, KV head, row) over
// the keys the row may see), and the spans of the reference's selection, one tile per row: the
// GPU's for the rows the workspace still describes (the last slab), the CPU's for the others.
void CompareRowSelections(const Step& s, const AttentionParams& a, const SparseMethodParams& m, int64_t capacity,
                          std::vector<int64_t>* span_offsets, std::vector<KeySpan>* spans) {
  const PrefillCase& c = s.c;
  const int64_t B = s.batch, S = c.query_length, Hkv = c.kv_num_heads;
  const cuda::PrefillRowSelection view = cuda::DescribePrefillRowSelection(a, m, capacity, s.d_workspace.get());
  ASSERT_NE(view.row_keys, nullptr);
  ASSERT_GE(view.words * 32, capacity);
  if (c.launch_capacity > 0) {
    ASSERT_GT(view.first_row, 0) << "the case should run in several slabs";
  } else {
    ASSERT_EQ(view.first_row, 0) << "the case should run in one slab";
  }
  std::vector<uint32_t> bits(B * Hkv * view.slab_rows * view.words);
  ASSERT_CUDA(cudaMemcpy(bits.data(), view.row_keys, bits.size() * 4, cudaMemcpyDeviceToHost));

  std::vector<float> unused(B * S * c.num_heads * c.head_size);
  const AttentionParams cpu_attention = MakeAttention(s, false, unused.data());
  const SparseMethodParams cpu_method = MakeMethod(s, false);
  cpu::SelectedKeys cpu_selected;
  bool sparse = false;
  const Status selected = cpu::SelectKeys(cpu_attention, cpu_method, Threads(), &cpu_selected, &sparse);
  ASSERT_TRUE(selected.ok()) << selected.message();
  ASSERT_TRUE(sparse);
  int64_t gpu_keys = 0, cpu_keys = 0, common = 0, mismatched_rows = 0, compared_rows = 0, sparse_rows = 0;
  std::string first_mismatch;
  for (int64_t tile = 0; tile < B * Hkv * S; ++tile) {  // (b, KV head, row), as the CPU's tiles
    const int64_t b = tile / (Hkv * S), h = tile / S % Hkv, row = tile % S;
    const cpu::KeyRange visible = cpu::VisibleKeys(cpu_attention, b, row);
    std::vector<uint8_t> want(visible.size(), 0);
    for (const KeySpan& span : cpu_selected.tile(tile)) {
      for (int64_t j = span.begin; j < span.end; ++j) {
        ASSERT_TRUE(j >= visible.begin && j < visible.end) << "the CPU selects key " << j << " that row " << row << " cannot see";
        want[j - visible.begin] = 1;
      }
    }
    const bool described = row >= view.first_row;
    std::vector<uint8_t> got = want;
    if (described && !visible.empty()) {
      const uint32_t* words = bits.data() + ((b * Hkv + h) * view.slab_rows + row - view.first_row) * view.words;
      for (int64_t j = visible.begin; j < visible.end; ++j) got[j - visible.begin] = (words[j / 32] >> (j % 32)) & 1u;
      ++compared_rows;
      int64_t row_keys = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        gpu_keys += got[i];
        cpu_keys += want[i];
        common += got[i] && want[i];
        row_keys += want[i];
      }
      sparse_rows += row_keys < visible.size() ? 1 : 0;
      if (got != want) {
        ++mismatched_rows;
        if (first_mismatch.empty()) {
          std::ostringstream text;
          text << "row (b, KV head, row) " << b << " " << h << " " << row << " sees [" << visible.begin << ", "
               << visible.end << "); keys only the gpu selects:";
          int listed = 0;
          for (size_t i = 0; i < got.size() && listed < 20; ++i) {
            if (got[i] && !want[i]) text << " " << visible.begin + static_cast<int64_t>(i), ++listed;
          }
          text << "; keys only the cpu selects:";
          listed = 0;
          for (size_t i = 0; i < got.size() && listed < 20; ++i) {
            if (want[i] && !got[i]) text << " " << visible.begin + static_cast<int64_t>(i), ++listed;
          }
          first_mismatch = text.str();
        }
      }
    }
    for (size_t i = 0; i < got.size();) {  // the row's keys as spans
      if (!got[i]) {
        ++i;
        continue;
      }
      size_t end = i;
      while (end < got.size() && got[end]) ++end;
      spans->push_back({static_cast<int32_t>(visible.begin + static_cast<int64_t>(i)),
                        static_cast<int32_t>(visible.begin + static_cast<int64_t>(end))});
      i = end;
    }
    span_offsets->push_back(static_cast<int64_t>(spans->size()));
  }
  ASSERT_GT(compared_rows, 0);
  if (c.dense_below <= 1024) {
    EXPECT_GT(sparse_rows, 0) << "no row of the case selects: it tests nothing sparse";
  }
  if (c.values == Values::kGrid) {
    EXPECT_EQ(mismatched_rows, 0) << first_mismatch;
  } else {
    EXPECT_GE(common, cpu_keys * 99 / 100) << gpu_keys << " keys selected, " << cpu_keys << " by the CPU, " << common
                                           << " in common; " << first_mismatch;
  }
}

void RunPrefillCase(const PrefillCase& c) {
  Step s;
  s.c = c;
  Fill(s);
  ASSERT_CUDA(cudaGetLastError());
  const int64_t B = s.batch, S = c.query_length, Hq = c.num_heads, D = c.head_size;
  const int64_t T = c.launch_capacity > 0 ? c.launch_capacity : s.capacity;  // the capacity the GPU is told
  const AttentionParams a = MakeAttention(s, true);
  const SparseMethodParams m = MakeMethod(s, true);
  const Status supported = cuda::CheckPrefillSupport(a, m, T);
  ASSERT_TRUE(supported.ok()) << supported.message();
  const size_t workspace_bytes = cuda::PrefillWorkspaceBytes(a, m, T);
  s.d_workspace.Allocate(std::max<size_t>(workspace_bytes, 1));
  cudaMemset(s.d_workspace.get(), 0x5a, s.d_workspace.bytes());  // whatever the workspace held before
  ASSERT_CUDA(cuda::LaunchPrefill(a, m, T, s.d_workspace.get(), workspace_bytes, nullptr));
  ASSERT_CUDA(cudaDeviceSynchronize());
  const std::vector<float> gpu_output = Decode(c.type, s.d_output.Download<unsigned char>());

  // The GPU's block selection against the CPU's, and as the reference's key selection.
  std::vector<int64_t> span_offsets = {0};
  std::vector<KeySpan> spans;
  KeySelection selection;
  const bool block = c.method == SparseMethod::kBlock;
  if (block) {
    const cuda::PrefillBlockSelection view = cuda::DescribePrefillBlockSelection(a, m, T, s.d_workspace.get());
    ASSERT_NE(view.kept, nullptr);
    const int64_t query_blocks = view.query_blocks, words = view.words, bs = c.block_size;
    ASSERT_EQ(query_blocks, (S + bs - 1) / bs);
    std::vector<uint32_t> kept(B * Hq * query_blocks * words);
    ASSERT_CUDA(cudaMemcpy(kept.data(), view.kept, kept.size() * 4, cudaMemcpyDeviceToHost));

    std::vector<float> unused(B * S * Hq * D);
    const AttentionParams cpu_attention = MakeAttention(s, false, unused.data());
    cpu::SelectedKeys cpu_selected;
    bool sparse = false;
    const Status selected = cpu::SelectKeys(cpu_attention, m, Threads(), &cpu_selected, &sparse);
    ASSERT_TRUE(selected.ok()) << selected.message();
    ASSERT_TRUE(sparse);
    int64_t gpu_blocks = 0, cpu_blocks = 0, common = 0, mismatched_tiles = 0;
    std::string first_mismatch;
    for (int64_t tile = 0; tile < B * Hq * query_blocks; ++tile) {
      std::vector<uint8_t> want(view.key_blocks, 0), got(view.key_blocks, 0);
      for (const KeySpan& span : cpu_selected.tile(tile)) {
        for (int64_t block_index = span.begin / bs; block_index <= (span.end - 1) / bs; ++block_index) {
          want[block_index] = 1;
        }
      }
      for (int64_t block_index = 0; block_index < view.key_blocks; ++block_index) {
        got[block_index] = (kept[tile * words + block_index / 32] >> (block_index % 32)) & 1u;
        gpu_blocks += got[block_index];
        cpu_blocks += want[block_index];
        common += got[block_index] && want[block_index];
      }
      if (got != want) {
        ++mismatched_tiles;
        if (first_mismatch.empty()) {
          std::ostringstream text;
          text << "tile (b, head, query block) " << tile / (Hq * query_blocks) << " " << tile / query_blocks % Hq << " "
               << tile % query_blocks << ": gpu keeps";
          for (size_t i = 0; i < got.size(); ++i) text << (got[i] ? " " + std::to_string(i) : "");
          text << "; cpu keeps";
          for (size_t i = 0; i < want.size(); ++i) text << (want[i] ? " " + std::to_string(i) : "");
          first_mismatch = text.str();
        }
      }
      // The GPU's kept blocks as the reference's spans (clipped to the cache).
      const int64_t b = tile / (Hq * query_blocks);
      for (int64_t block_index = 0; block_index < view.key_blocks; ++block_index) {
        if (!got[block_index]) continue;
        const int32_t begin = static_cast<int32_t>(block_index * bs);
        const int32_t end = static_cast<int32_t>(std::min<int64_t>(s.key_counts[b], (block_index + 1) * bs));
        if (begin >= end) continue;
        if (!spans.empty() && static_cast<int64_t>(spans.size()) > span_offsets.back() && spans.back().end == begin) {
          spans.back().end = end;
        } else {
          spans.push_back({begin, end});
        }
      }
      span_offsets.push_back(static_cast<int64_t>(spans.size()));
    }
    if (c.values == Values::kGrid) {
      EXPECT_EQ(mismatched_tiles, 0) << first_mismatch;
    } else {
      EXPECT_GE(common, cpu_blocks * 99 / 100) << gpu_blocks << " blocks kept, " << cpu_blocks << " by the CPU, "
                                               << common << " in common; " << first_mismatch;
    }
    selection.heads_per_tile = 1;
    selection.rows_per_tile = bs;
    selection.span_offsets = span_offsets.data();
    selection.spans = spans.data();
  }
  const bool rows = SelectsRows(c.method);
  if (rows) {
    CompareRowSelections(s, a, m, T, &span_offsets, &spans);
    if (::testing::Test::HasFatalFailure()) return;
    selection.heads_per_tile = Hq / c.kv_num_heads;
    selection.rows_per_tile = 1;
    selection.span_offsets = span_offsets.data();
    selection.spans = spans.data();
  }

  // The CPU's exact attention (over the GPU's selection for block), fp32.
  std::vector<float> reference(B * S * Hq * D, -7.0f);
  AttentionParams reference_attention = MakeAttention(s, false, reference.data());
  if (block || rows) reference_attention.selection = &selection;
  const Status attended = cpu::ExactAttention(reference_attention, Threads());
  ASSERT_TRUE(attended.ok()) << attended.message();
  double error = 0.0, rounding = 0.0;
  size_t worst = 0;
  for (size_t i = 0; i < reference.size(); ++i) {
    ASSERT_FALSE(std::isnan(gpu_output[i])) << "output " << i << " not written (or NaN)";
    const double difference = std::abs(static_cast<double>(gpu_output[i]) - reference[i]);
    if (difference > error) error = difference, worst = i;
    rounding = std::max(rounding, std::abs(static_cast<double>(RoundTo(c.type, reference[i])) - reference[i]));
  }
  const double bound = 2.0 * rounding + 2e-5 * MaxAbs(reference) + 1e-6;
  EXPECT_LE(error, bound) << "max |gpu - cpu| over the output at (b, row, head, d) " << worst / (S * Hq * D) << " "
                          << worst / (Hq * D) % S << " " << worst / D % Hq << " " << worst % D << ": gpu "
                          << gpu_output[worst] << ", cpu " << reference[worst] << "; max |cpu| = " << MaxAbs(reference);
  for (int64_t b = 0; b < B; ++b) {  // rows past the valid ones are zeros
    for (int64_t row = s.rows[b]; row < S; ++row) {
      for (int64_t i = 0; i < Hq * D; ++i) {
        ASSERT_EQ(gpu_output[(b * S + row) * Hq * D + i], 0.0f) << "sequence " << b << ", invalid row " << row;
      }
    }
  }
}

TEST_P(CudaPrefillTest, MatchesCpu) { RunPrefillCase(GetParam()); }

std::string CaseName(const ::testing::TestParamInfo<PrefillCase>& info) { return info.param.name; }

// A block case: three sequences (a first prompt, a chunk after a past, a right-padded chunk),
// planted block structure on the grid, most query blocks selecting.
PrefillCase BlockCase(const std::string& name) {
  PrefillCase c;
  c.name = name;
  c.method = SparseMethod::kBlock;
  c.query_length = 700;
  c.past = {0, 100, 300};
  c.valid = {700, 700, 333};
  c.planted = true;
  return c;
}

// A hash or hyper case: three sequences (a first prompt, a chunk after a past, a right-padded
// chunk), most rows past dense_below.
PrefillCase RowCase(SparseMethod method, const std::string& name) {
  PrefillCase c;
  c.name = std::string(method == SparseMethod::kHash ? "hash_" : "hyper_") + name;
  c.method = method;
  c.query_length = 300;
  c.past = {0, 120, 400};
  c.valid = {300, 300, 111};
  return c;
}

// Type x head size, every prefill method, GQA group 4, three sequences of different lengths.
std::vector<PrefillCase> TypeAndHeadSizeCases() {
  std::vector<PrefillCase> cases;
  for (DataType type : {DataType::kFloat16, DataType::kBFloat16, DataType::kFloat32}) {
    for (int64_t D : {64, 80, 96, 128}) {
      const std::string suffix = std::string(TypeName(type)) + "_D" + std::to_string(D);
      PrefillCase dense;
      dense.type = type;
      dense.head_size = D;
      dense.name = "dense_" + suffix;
      cases.push_back(dense);
      PrefillCase block = BlockCase("block_" + suffix);
      block.type = type;
      block.head_size = D;
      cases.push_back(block);
      for (SparseMethod method : {SparseMethod::kHash, SparseMethod::kHyper}) {
        PrefillCase rows = RowCase(method, suffix);
        rows.type = type;
        rows.head_size = D;
        cases.push_back(rows);
      }
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(TypesAndHeadSizes, CudaPrefillTest, ::testing::ValuesIn(TypeAndHeadSizeCases()), CaseName);

// Group sizes 1 (MHA) to 8, D 128, every prefill method.
std::vector<PrefillCase> GroupCases() {
  std::vector<PrefillCase> cases;
  for (int64_t group : {1, 2, 3, 8}) {
    PrefillCase dense;
    dense.num_heads = 2 * group;
    dense.name = "dense_group" + std::to_string(group);
    cases.push_back(dense);
    PrefillCase block = BlockCase("block_group" + std::to_string(group));
    block.num_heads = 2 * group;
    block.type = DataType::kBFloat16;
    cases.push_back(block);
    for (SparseMethod method : {SparseMethod::kHash, SparseMethod::kHyper}) {
      PrefillCase rows = RowCase(method, "group" + std::to_string(group));
      rows.num_heads = 2 * group;
      rows.type = group % 2 == 0 ? DataType::kFloat16 : DataType::kBFloat16;
      cases.push_back(rows);
    }
  }
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Groups, CudaPrefillTest, ::testing::ValuesIn(GroupCases()), CaseName);

// Masks, softcap, local windows, non-causal attention, appended keys beyond the rows, first
// prompts only, long chunks, and the decode-only methods (attended densely).
std::vector<PrefillCase> OptionCases() {
  std::vector<PrefillCase> cases;
  for (const char* method : {"dense", "block", "hash", "hyper"}) {
    const std::string name = method;
    const bool block = name == "block";
    auto make = [&](const std::string& suffix) {
      PrefillCase c;
      if (block) c = BlockCase("");
      if (name == "hash") c = RowCase(SparseMethod::kHash, "");
      if (name == "hyper") c = RowCase(SparseMethod::kHyper, "");
      c.name = name + "_" + suffix;
      return c;
    };
    PrefillCase masked = make("BoolMaskPerHead");
    masked.mask = Mask::kBoolPerHead;
    cases.push_back(masked);
    PrefillCase additive = make("AdditiveMaskShort");
    additive.mask = Mask::kAdditiveShort;
    cases.push_back(additive);
    PrefillCase softcap = make("Softcap");
    softcap.softcap = 2.0f;
    softcap.type = DataType::kBFloat16;
    cases.push_back(softcap);
    PrefillCase window = make("LocalWindow");
    window.local_window = block ? 300 : name == "dense" ? 70 : 200;
    cases.push_back(window);
    PrefillCase bidirectional = make("NonCausal");
    bidirectional.causal = false;
    cases.push_back(bidirectional);
    PrefillCase extra = make("KeysBeyondRows");
    extra.extra_keys = 29;
    cases.push_back(extra);
    PrefillCase extra_open = extra;
    extra_open.name = name + "_KeysBeyondRowsNonCausal";
    extra_open.causal = false;
    cases.push_back(extra_open);
    PrefillCase first = make("FirstPrompts");
    first.past = {0, 0};
    first.valid = {static_cast<int32_t>(first.query_length), static_cast<int32_t>(first.query_length) - 50};
    cases.push_back(first);
    PrefillCase fp32_masked = make("Float32AdditiveMask");
    fp32_masked.type = DataType::kFloat32;
    fp32_masked.mask = Mask::kAdditiveShort;
    cases.push_back(fp32_masked);
  }
  PrefillCase block128 = BlockCase("block_BlockSize128");
  block128.block_size = 128;
  cases.push_back(block128);
  PrefillCase block192 = BlockCase("block_BlockSize192Gamma05");
  block192.block_size = 192;
  block192.gamma = 0.5f;
  cases.push_back(block192);
  PrefillCase all = BlockCase("block_Gamma1");
  all.gamma = 1.0f;
  cases.push_back(all);
  PrefillCase unplanted = BlockCase("block_Unplanted");
  unplanted.planted = false;
  unplanted.gamma = 0.8f;
  cases.push_back(unplanted);
  PrefillCase dense_rows = BlockCase("block_DenseBelow600");
  dense_rows.dense_below = 600;
  cases.push_back(dense_rows);
  for (SparseMethod method : {SparseMethod::kTopK, SparseMethod::kQuest, SparseMethod::kStreaming}) {
    PrefillCase c;
    c.method = method;
    c.name = method == SparseMethod::kTopK ? "topk_IsDense" : method == SparseMethod::kQuest ? "quest_IsDense" : "streaming_IsDense";
    cases.push_back(c);
  }
  // hash: rounds and buckets (more than 32 buckets: several flag words per round); every row dense;
  // no sink and no window.
  PrefillCase many_buckets = RowCase(SparseMethod::kHash, "FourRounds64Buckets");
  many_buckets.hash_rounds = 4;
  many_buckets.hash_half_buckets = 32;
  cases.push_back(many_buckets);
  PrefillCase one_round = RowCase(SparseMethod::kHash, "OneRound4Buckets");
  one_round.hash_rounds = 1;
  one_round.hash_half_buckets = 2;
  cases.push_back(one_round);
  for (SparseMethod method : {SparseMethod::kHash, SparseMethod::kHyper}) {
    PrefillCase dense_rows_only = RowCase(method, "DenseBelow100000");
    dense_rows_only.dense_below = 100000;
    cases.push_back(dense_rows_only);
    PrefillCase no_window = RowCase(method, "NoSinkNoWindow");
    no_window.sink = 0;
    no_window.window = 0;
    cases.push_back(no_window);
    // The largest launch capacity, far beyond the cache: row bitmaps of 2^22 keys, the rows in
    // slabs of 64.
    PrefillCase slabs = RowCase(method, "Slabs");
    slabs.launch_capacity = cuda::kMaxPrefillKeyTiles * 64;
    cases.push_back(slabs);
  }
  // hyper: 4 hyperplanes (one sort pass, long runs of equal codes), 24 (three passes), a budget
  // as a count, a budget whose picks exceed the middle.
  PrefillCase few_bits = RowCase(SparseMethod::kHyper, "Bits4");
  few_bits.hash_half_buckets = 4;
  cases.push_back(few_bits);
  PrefillCase many_bits = RowCase(SparseMethod::kHyper, "Bits24");
  many_bits.hash_half_buckets = 24;
  cases.push_back(many_bits);
  PrefillCase count = RowCase(SparseMethod::kHyper, "Budget37Keys");
  count.budget = 37.0f;
  cases.push_back(count);
  PrefillCase everything = RowCase(SparseMethod::kHyper, "BudgetWholeMiddle");
  everything.budget = 1.0f;
  cases.push_back(everything);
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Options, CudaPrefillTest, ::testing::ValuesIn(OptionCases()), CaseName);

// Long prompts: many query and key blocks; normal values (selections compared by overlap).
std::vector<PrefillCase> LongCases() {
  std::vector<PrefillCase> cases;
  for (SparseMethod method : {SparseMethod::kDense, SparseMethod::kBlock, SparseMethod::kHash, SparseMethod::kHyper}) {
    for (Values values : {Values::kGrid, Values::kNormal}) {
      PrefillCase c;
      c.method = method;
      c.values = values;
      c.planted = method == SparseMethod::kBlock;
      c.query_length = 3000;
      c.past = {1000, 0};
      c.valid = {3000, 2345};
      c.dense_below = 1024;
      c.window = 64;
      c.budget = 0.0625f;
      static const char* const kNames[] = {"dense", "block", "hash", "hyper"};
      const int index = method == SparseMethod::kDense ? 0 : method == SparseMethod::kBlock ? 1
                        : method == SparseMethod::kHash ? 2 : 3;
      c.name = std::string(kNames[index]) + (values == Values::kNormal ? "_LongNormal" : "_LongGrid");
      cases.push_back(c);
    }
  }
  PrefillCase fp32 = cases[2];  // block, grid
  fp32.type = DataType::kFloat32;
  fp32.name = "block_LongGridFloat32";
  cases.push_back(fp32);
  return cases;
}
INSTANTIATE_TEST_SUITE_P(Long, CudaPrefillTest, ::testing::ValuesIn(LongCases()), CaseName);

// Unsupported inputs are refused with the value in the message, and the launch fails cleanly.
TEST(CudaPrefillSupport, RefusesWhatItDoesNotHandle) {
  AttentionParams a;
  a.type = DataType::kFloat16;
  a.batch = 1;
  a.query_length = 100;
  a.num_heads = 8;
  a.kv_num_heads = 2;
  a.head_size = a.v_head_size = 64;
  a.query_strides[0] = 100 * 8 * 64;
  a.query_strides[1] = 8 * 64;
  a.query_strides[2] = 64;
  std::copy(a.query_strides, a.query_strides + 3, a.output_strides);
  a.key_strides[0] = a.value_strides[0] = 2 * 200 * 64;
  a.key_strides[1] = a.value_strides[1] = 200 * 64;
  a.key_strides[2] = a.value_strides[2] = 64;
  SparseMethodParams m;
  EXPECT_TRUE(cuda::CheckPrefillSupport(a, m, 200).ok());
  EXPECT_EQ(cuda::PrefillWorkspaceBytes(a, m, 200), 0u);
  auto refused = [&](const AttentionParams& attention, const SparseMethodParams& method, const std::string& text) {
    const Status status = cuda::CheckPrefillSupport(attention, method, 200);
    EXPECT_FALSE(status.ok()) << text;
    EXPECT_NE(status.message().find(text), std::string::npos) << status.message();
  };
  AttentionParams integer = a;
  integer.type = DataType::kInt32;
  refused(integer, m, "int32");
  AttentionParams odd = a;
  odd.head_size = odd.v_head_size = 72;
  refused(odd, m, "72");
  for (SparseMethod method : {SparseMethod::kHash, SparseMethod::kHyper}) {
    SparseMethodParams no_projections;
    no_projections.method = method;
    refused(a, no_projections, "projections");
  }
  const float projections[1] = {};
  SparseMethodParams too_many_buckets;
  too_many_buckets.method = SparseMethod::kHash;
  too_many_buckets.hash_projections = projections;
  too_many_buckets.hash_rounds = 5;
  too_many_buckets.hash_half_buckets = 512;
  too_many_buckets.state.width = 5;
  refused(a, too_many_buckets, "5 rounds of 1024 buckets");
  SparseMethodParams no_state = too_many_buckets;
  no_state.hash_rounds = no_state.state.width = 2;
  no_state.hash_half_buckets = 8;
  refused(a, no_state, "method state");
  SparseMethodParams wide_hyper;
  wide_hyper.method = SparseMethod::kHyper;
  wide_hyper.hash_projections = projections;
  wide_hyper.hash_rounds = 1;
  wide_hyper.hash_half_buckets = 25;
  refused(a, wide_hyper, "25");
  SparseMethodParams small;
  small.method = SparseMethod::kBlock;
  small.block_size = 32;
  refused(a, small, "block_size (32)");
  AttentionParams misaligned = a;
  misaligned.key_strides[2] = misaligned.value_strides[2] = 68;
  refused(misaligned, m, "68");
  EXPECT_EQ(cuda::LaunchPrefill(integer, m, 200, nullptr, 0, nullptr), cudaErrorInvalidValue);
  SparseMethodParams block;
  block.method = SparseMethod::kBlock;
  EXPECT_GT(cuda::PrefillWorkspaceBytes(a, block, 200), 0u);
  EXPECT_EQ(cuda::LaunchPrefill(a, block, 200, nullptr, 0, nullptr), cudaErrorInvalidValue);  // no workspace
}

}  // namespace
}  // namespace ortsparse::testing
