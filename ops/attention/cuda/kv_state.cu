// What a step writes before the attention: the new rows of the KV cache (keys rotated), the rotated
// queries, and the method state of the new keys (quest page min/max, loki projections, saap
// nearest centroid, hash buckets), each as the CPU does it (kv_cache.cc, rotary.h, method_state.cc).
#include "attention/cuda/cuda_common.cuh"
#include "ortsparse/cuda_attention.h"

namespace ortsparse::cuda {
namespace {

constexpr int kRowThreads = 128;
constexpr int kStateWarps = 4;  // keys summarised per block (one warp each)

// Rotates one row into `output` (which may be `input`) as the CPU's RotateRow: in fp32, x and y
// read before either is written, dimensions from rotary_dim on copied.
template <typename T>
__device__ void RotateRow(const RotaryEmbedding& rotary, int64_t position, const T* input, int head_size, T* output) {
  const int half = static_cast<int>(rotary.rotary_dim / 2);
  const T* cos_row = static_cast<const T*>(rotary.cos_cache) + position * half;
  const T* sin_row = static_cast<const T*>(rotary.sin_cache) + position * half;
  const int y_offset = rotary.interleaved ? 1 : half;
  const int pair_stride = rotary.interleaved ? 2 : 1;
  for (int i = threadIdx.x; i < half; i += blockDim.x) {
    const int x_index = i * pair_stride;
    const float x = ToFloat(input[x_index]);
    const float y = ToFloat(input[x_index + y_offset]);
    const float c = ToFloat(cos_row[i]);
    const float s = ToFloat(sin_row[i]);
    output[x_index] = FromFloat<T>(x * c - y * s);
    output[x_index + y_offset] = FromFloat<T>(x * s + y * c);
  }
  if (output != input) {
    for (int d = static_cast<int>(rotary.rotary_dim) + threadIdx.x; d < head_size; d += blockDim.x) output[d] = input[d];
  }
}

// Clamped to the rows of cos_cache: the op layer does not read position_ids (or seqlens_k) on the
// host to reject positions outside them.
__device__ __forceinline__ int64_t RotaryPosition(const RotaryEmbedding& rotary, const int32_t* past_lengths, int b,
                                                  int row) {
  const int64_t position = rotary.position_ids != nullptr
                               ? rotary.position_ids[b * rotary.position_ids_batch_stride + row]
                               : static_cast<int64_t>(past_lengths[b]) + row;
  return Smaller<int64_t>(Larger<int64_t>(position, 0), rotary.max_position - 1);
}

// Not in place: the past rows copied, the rows after the new ones zeroed. Block (row slice, b * H + h).
template <typename T>
__global__ void __launch_bounds__(kRowThreads) CopyPastKernel(const KvAppendParams p) {
  const int b = blockIdx.y / p.kv_num_heads, h = blockIdx.y % p.kv_num_heads;
  const int past = p.past_lengths[b], appended_end = past + p.append_counts[b];
  T* present = static_cast<T*>(p.present) + b * p.present_strides[0] + h * p.present_strides[1];
  const T* source = static_cast<const T*>(p.past) + b * p.past_strides[0] + h * p.past_strides[1];
  for (int64_t j = blockIdx.x; j < p.present_length; j += gridDim.x) {
    if (j >= past && j < appended_end) continue;
    T* row = present + j * p.present_strides[2];
    for (int d = threadIdx.x; d < p.head_size; d += blockDim.x) {
      row[d] = j < past ? source[j * p.past_strides[2] + d] : FromFloat<T>(0.0f);
    }
  }
}

// The new rows, rotated for keys. Block (b * H + h, row i).
template <typename T>
__global__ void __launch_bounds__(kRowThreads) AppendRowsKernel(const KvAppendParams p, const RotaryEmbedding rotary,
                                                                const bool rotate) {
  const int b = blockIdx.x / p.kv_num_heads, h = blockIdx.x % p.kv_num_heads, i = blockIdx.y;
  if (i >= p.append_counts[b]) return;
  const T* source = static_cast<const T*>(p.new_rows) + b * p.new_rows_strides[0] + i * p.new_rows_strides[1] +
                    h * p.new_rows_strides[2];
  T* destination = static_cast<T*>(p.present) + b * p.present_strides[0] + h * p.present_strides[1] +
                   (p.past_lengths[b] + i) * p.present_strides[2];
  if (rotate) {
    RotateRow(rotary, RotaryPosition(rotary, p.past_lengths, b, i), source, static_cast<int>(p.head_size), destination);
  } else {
    for (int d = threadIdx.x; d < p.head_size; d += blockDim.x) destination[d] = source[d];
  }
}

// Block (b * S + row, head).
template <typename T>
__global__ void __launch_bounds__(kRowThreads) RotaryKernel(const RotaryParams p) {
  const int b = blockIdx.x / p.sequence_length, row = blockIdx.x % p.sequence_length, h = blockIdx.y;
  if (row >= p.row_counts[b]) return;
  const T* input = static_cast<const T*>(p.input) + b * p.input_strides[0] + row * p.input_strides[1] + h * p.input_strides[2];
  T* output = static_cast<T*>(p.output) + b * p.output_strides[0] + row * p.output_strides[1] + h * p.output_strides[2];
  RotateRow(p.embedding, RotaryPosition(p.embedding, p.past_lengths, b, row), input, static_cast<int>(p.head_size), output);
}

// ---- method state -------------------------------------------------------------------------------

__device__ __forceinline__ int64_t StateRows(const SparseMethodParams& m, int64_t keys) {
  return m.method == SparseMethod::kQuest ? (keys + m.page_size - 1) / m.page_size : keys;
}
__device__ __forceinline__ int64_t FirstKey(const AttentionParams& a, const SparseMethodParams& m, int b) {
  return m.state.past != nullptr ? a.past_lengths[b] : 0;
}

// Not in place: the rows of the past keys copied, the rows beyond the keys zeroed. Elements of
// `Word` (the state's element size). Block (row slice, b * Hkv + h).
template <typename Word>
__global__ void __launch_bounds__(kRowThreads) CopyStateKernel(const AttentionParams a, const SparseMethodParams m) {
  const int b = blockIdx.y / a.kv_num_heads, h = blockIdx.y % a.kv_num_heads;
  const MethodState& s = m.state;
  const int64_t past_rows = StateRows(m, FirstKey(a, m, b));
  const int64_t key_rows = StateRows(m, a.key_counts[b]);
  Word* present = static_cast<Word*>(s.present) + b * s.present_strides[0] + h * s.present_strides[1];
  const Word* past = static_cast<const Word*>(s.past) + b * s.past_strides[0] + h * s.past_strides[1];
  for (int64_t row = blockIdx.x; row < s.present_rows; row += gridDim.x) {
    if (row >= past_rows && row < key_rows) continue;
    for (int w = threadIdx.x; w < s.width; w += blockDim.x) {
      present[row * s.present_strides[2] + w] = row < past_rows ? past[row * s.past_strides[2] + w] : Word{0};
    }
  }
}

// Key `j` of (b, h) as the method summarises it: this step's keys before rotary when given, else
// the cache.
template <typename T>
__device__ __forceinline__ const T* SummarisedKey(const AttentionParams& a, const SparseMethodParams& m, int b, int h,
                                                  int64_t j) {
  const int64_t past = a.past_lengths[b];
  if (m.raw_keys != nullptr && j >= past) {
    return static_cast<const T*>(m.raw_keys) + b * m.raw_keys_strides[0] + (j - past) * m.raw_keys_strides[1] +
           h * m.raw_keys_strides[2];
  }
  return static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + h * a.key_strides[1] + j * a.key_strides[2];
}

// quest: page `first_page + blockIdx.x` of (b, h), one thread per dimension; a page that started
// before this step's first key merges with what its row holds.
template <typename T>
__global__ void __launch_bounds__(kRowThreads) SummarisePagesKernel(const AttentionParams a, const SparseMethodParams m) {
  const int b = blockIdx.y / a.kv_num_heads, h = blockIdx.y % a.kv_num_heads;
  const int64_t first = FirstKey(a, m, b), key_count = a.key_counts[b];
  const int64_t page = first / m.page_size + blockIdx.x;
  const int64_t page_begin = page * m.page_size;
  if (page_begin >= key_count) return;
  const int64_t begin = Larger(first, page_begin), end = Smaller(key_count, page_begin + m.page_size);
  const int D = static_cast<int>(a.head_size);
  T* row = static_cast<T*>(m.state.present) + b * m.state.present_strides[0] + h * m.state.present_strides[1] +
           page * m.state.present_strides[2];
  for (int d = threadIdx.x; d < D; d += blockDim.x) {
    float minimum = -NegativeInfinity(), maximum = NegativeInfinity();
    if (begin > page_begin) {
      minimum = ToFloat(row[d]);
      maximum = ToFloat(row[D + d]);
    }
    for (int64_t j = begin; j < end; ++j) {
      const float x = ToFloat(SummarisedKey<T>(a, m, b, h, j)[d]);
      minimum = fminf(minimum, x);
      maximum = fmaxf(maximum, x);
    }
    row[d] = FromFloat<T>(minimum);
    row[D + d] = FromFloat<T>(maximum);
  }
}

// loki, saap, hash: one warp per key `first + blockIdx.x * kStateWarps + warp` of (b, h).
template <typename T>
__global__ void __launch_bounds__(kStateWarps * 32) SummariseKeysKernel(const AttentionParams a,
                                                                        const SparseMethodParams m) {
  __shared__ float keys[kStateWarps][128];
  __shared__ float products[kStateWarps][512];
  const int b = blockIdx.y / a.kv_num_heads, h = blockIdx.y % a.kv_num_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t j = FirstKey(a, m, b) + static_cast<int64_t>(blockIdx.x) * kStateWarps + warp;
  if (j >= a.key_counts[b]) return;
  const int D = static_cast<int>(a.head_size);
  float* key = keys[warp];
  const T* source = SummarisedKey<T>(a, m, b, h, j);
  for (int d = lane; d < D; d += 32) key[d] = ToFloat(source[d]);
  __syncwarp();
  unsigned char* row = static_cast<unsigned char*>(m.state.present) +
                       (b * m.state.present_strides[0] + h * m.state.present_strides[1] + j * m.state.present_strides[2]) *
                           (m.method == SparseMethod::kLoki ? static_cast<int64_t>(sizeof(T)) : 4);
  switch (m.method) {
    case SparseMethod::kLoki: {
      const float* basis = m.pca_basis + static_cast<int64_t>(h) * D * D;
      for (int i = lane; i < m.rank; i += 32) {
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot = fmaf(basis[i * D + d], key[d], dot);
        reinterpret_cast<T*>(row)[i] = FromFloat<T>(dot);
      }
      break;
    }
    case SparseMethod::kSaap: {  // the centroid of largest dot product, the first on ties
      const float* centroids = m.centroids + static_cast<int64_t>(h) * m.clusters * D;
      float best = NegativeInfinity();
      int nearest = 0x7fffffff;
      for (int c = lane; c < m.clusters; c += 32) {
        float dot = 0.0f;
        for (int d = 0; d < D; ++d) dot = fmaf(centroids[c * D + d], key[d], dot);
        if (dot > best) {
          best = dot;
          nearest = c;
        }
      }
#pragma unroll
      for (int offset = 16; offset > 0; offset /= 2) {
        const float other_best = __shfl_xor_sync(kFullWarp, best, offset);
        const int other = __shfl_xor_sync(kFullWarp, nearest, offset);
        if (other_best > best || (other_best == best && other < nearest)) {
          best = other_best;
          nearest = other;
        }
      }
      if (lane == 0) *reinterpret_cast<int*>(row) = nearest == 0x7fffffff ? 0 : nearest;
      break;
    }
    default: {  // kHash: products in the CPU's order, then each round's first argmax of [p, -p]
      const int rounds = static_cast<int>(m.hash_rounds), half = static_cast<int>(m.hash_half_buckets);
      float* round_products = products[warp];
      for (int r = 0; r < rounds; ++r) {
        const float* projections = m.hash_projections + (static_cast<int64_t>(h) * rounds + r) * D * half;
        for (int i = lane; i < half; i += 32) {
          float product = 0.0f;
          for (int d = 0; d < D; ++d) product = fmaf(key[d], projections[d * half + i], product);
          round_products[i] = product;
        }
        __syncwarp();
        if (lane == 0) {
          int bucket = 0;
          float best = round_products[0];
          for (int i = 1; i < half; ++i) {
            if (round_products[i] > best) {
              best = round_products[i];
              bucket = i;
            }
          }
          for (int i = 0; i < half; ++i) {
            if (-round_products[i] > best) {
              best = -round_products[i];
              bucket = half + i;
            }
          }
          reinterpret_cast<int*>(row)[r] = bucket;
        }
        __syncwarp();
      }
      break;
    }
  }
}

template <typename T>
cudaError_t LaunchAppend(const KvAppendParams& p, int64_t max_append, cudaStream_t stream) {
  const int heads = static_cast<int>(p.batch * p.kv_num_heads);
  if (!p.in_place) {
    const int slices = static_cast<int>(Smaller<int64_t>(p.present_length, 4096));
    if (slices > 0) CopyPastKernel<T><<<dim3(slices, heads), kRowThreads, 0, stream>>>(p);
    ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  if (max_append > 0) {
    const bool rotate = p.rotary != nullptr;
    AppendRowsKernel<T><<<dim3(heads, static_cast<unsigned>(max_append)), kRowThreads, 0, stream>>>(
        p, rotate ? *p.rotary : RotaryEmbedding(), rotate);
    ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  }
  return cudaSuccess;
}

template <typename T>
cudaError_t LaunchStateUpdate(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity,
                              int64_t max_new_keys, cudaStream_t stream) {
  const int heads = static_cast<int>(a.batch * a.kv_num_heads);
  if (!m.state.in_place) {
    const int slices = static_cast<int>(Smaller<int64_t>(m.state.present_rows, 4096));
    if (slices > 0) {
      const bool summaries = m.method == SparseMethod::kQuest || m.method == SparseMethod::kLoki;
      if (summaries && sizeof(T) == 2) {
        CopyStateKernel<uint16_t><<<dim3(slices, heads), kRowThreads, 0, stream>>>(a, m);
      } else {  // fp32 summaries and int32 indices
        CopyStateKernel<uint32_t><<<dim3(slices, heads), kRowThreads, 0, stream>>>(a, m);
      }
      ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
    }
  }
  // Keys summarised per sequence: this step's, or the whole cache when the state is rebuilt.
  const int64_t keys = m.state.past != nullptr ? Smaller(max_new_keys, key_capacity) : key_capacity;
  if (keys <= 0) return cudaSuccess;
  if (m.method == SparseMethod::kQuest) {
    const int64_t pages = m.state.past != nullptr ? (keys + m.page_size - 1) / m.page_size + 1
                                                  : (key_capacity + m.page_size - 1) / m.page_size;
    SummarisePagesKernel<T><<<dim3(static_cast<unsigned>(pages), heads), kRowThreads, 0, stream>>>(a, m);
  } else {
    const unsigned blocks = static_cast<unsigned>((keys + kStateWarps - 1) / kStateWarps);
    SummariseKeysKernel<T><<<dim3(blocks, heads), kStateWarps * 32, 0, stream>>>(a, m);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchKvAppend(const KvAppendParams& params, int64_t max_append, cudaStream_t stream) {
  switch (params.type) {
    case DataType::kFloat16: return LaunchAppend<__half>(params, max_append, stream);
    case DataType::kBFloat16: return LaunchAppend<__nv_bfloat16>(params, max_append, stream);
    case DataType::kFloat32: return LaunchAppend<float>(params, max_append, stream);
    default: return cudaErrorInvalidValue;
  }
}

cudaError_t LaunchRotary(const RotaryParams& params, cudaStream_t stream) {
  if (params.batch * params.sequence_length == 0 || params.num_heads == 0) return cudaSuccess;
  const dim3 grid(static_cast<unsigned>(params.batch * params.sequence_length), static_cast<unsigned>(params.num_heads));
  switch (params.type) {
    case DataType::kFloat16: RotaryKernel<__half><<<grid, kRowThreads, 0, stream>>>(params); break;
    case DataType::kBFloat16: RotaryKernel<__nv_bfloat16><<<grid, kRowThreads, 0, stream>>>(params); break;
    case DataType::kFloat32: RotaryKernel<float><<<grid, kRowThreads, 0, stream>>>(params); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

cudaError_t LaunchMethodStateUpdate(const AttentionParams& attention, const SparseMethodParams& method,
                                    int64_t key_capacity, int64_t max_new_keys, cudaStream_t stream) {
  switch (method.method) {
    case SparseMethod::kQuest:
    case SparseMethod::kLoki:
    case SparseMethod::kSaap:
    case SparseMethod::kHash:
      break;
    default:
      return cudaSuccess;
  }
  switch (attention.type) {
    case DataType::kFloat16: return LaunchStateUpdate<__half>(attention, method, key_capacity, max_new_keys, stream);
    case DataType::kBFloat16:
      return LaunchStateUpdate<__nv_bfloat16>(attention, method, key_capacity, max_new_keys, stream);
    case DataType::kFloat32: return LaunchStateUpdate<float>(attention, method, key_capacity, max_new_keys, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ortsparse::cuda
