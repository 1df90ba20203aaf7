// The block selection of method `block` on the GPU, as docs/ops.md defines it and the CPU's
// RunBlockPrefill computes it:
//   1. mean key of every key block of every (sequence, KV head), over the block's cached keys;
//   2. per (sequence, query head, query block): the mean query of the block's valid rows (times
//      scale), scored against the mean key of every key block the block's rows may see; the blocks
//      sorted by score (ties: lower block first), a softmax over them, and blocks taken in that
//      order until their mass reaches gamma; plus block 0 and the diagonal blocks. A block whose
//      first row sees fewer than dense_below keys keeps every block it may see.
// The result is one bitmap row of kept key blocks per (sequence, query head, query block).
// The sums are the CPU's, term by term in the same order (key and query means), so that selections
// agree exactly where the arithmetic is exact (inputs on a dyadic grid); the softmax's exponentials
// and the mass's prefix sums may differ from the CPU's by rounding.
#include <climits>

#include "attention/cuda/cuda_common.cuh"
#include "attention/cuda/prefill_kernels.h"

namespace ortsparse::cuda::prefill {
namespace {

constexpr int kMeanThreads = 128;  // >= the largest head size
constexpr int kMaxBlocksPerCta = 8;

__device__ __forceinline__ float FromOrderedBits(uint32_t bits) {
  return __uint_as_float((bits & 0x80000000u) ? (bits & 0x7fffffffu) : ~bits);
}

// Sum over the block (blockDim.x = kSelectThreads); `scratch` holds 32 floats.
__device__ __forceinline__ float BlockSum(float value, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  value = WarpReduce(value, [](float x, float y) { return x + y; });
  if (lane == 0) scratch[warp] = value;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < kSelectThreads / 32; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

// Exclusive prefix sum over the block, in thread order; `scratch` holds 32 floats.
__device__ __forceinline__ float BlockExclusivePrefix(float value, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float inclusive = value;
#pragma unroll
  for (int offset = 1; offset < 32; offset *= 2) {
    const float other = __shfl_up_sync(kFullWarp, inclusive, offset);
    if (lane >= offset) inclusive += other;
  }
  if (lane == 31) scratch[warp] = inclusive;
  __syncthreads();
  float before = 0.0f;
  for (int w = 0; w < warp; ++w) before += scratch[w];
  __syncthreads();
  return before + inclusive - value;
}

template <typename T>
__global__ void __launch_bounds__(kMeanThreads) MeanKeysKernel(const SelectArgs args) {
  const AttentionParams& a = args.attention;
  const int c = static_cast<int>(blockIdx.x), kv_head = static_cast<int>(blockIdx.y), b = static_cast<int>(blockIdx.z);
  const int d = static_cast<int>(threadIdx.x);
  const int block = static_cast<int>(args.method.block_size);
  const int count = a.key_counts[b];
  const int begin = c * block;
  if (begin >= count || d >= a.head_size) return;
  const int end = min(count, begin + block);
  const T* keys = static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + kv_head * a.key_strides[1] + d;
  float sum = 0.0f;
  for (int j = begin; j < end; ++j) sum += ToFloat(keys[j * a.key_strides[2]]);
  args.mean_keys[((static_cast<int64_t>(b) * a.kv_num_heads + kv_head) * args.key_blocks + c) * a.head_size + d] =
      sum * (1.0f / static_cast<float>(end - begin));
}

// One query block's plan: which rows, which key blocks, and how it selects.
enum class BlockMode : int { kEmpty, kDense, kSelect };
struct QueryBlockPlan {
  int mode;
  int first_row, end_row;
  int first_block, end_block;  // key blocks [first_block, end_block) its rows may see
  int first_position, last_position;
};

template <typename T>
__global__ void __launch_bounds__(kSelectThreads) SelectBlocksKernel(const SelectArgs args) {
  const AttentionParams& a = args.attention;
  const SparseMethodParams& m = args.method;
  const int b = static_cast<int>(blockIdx.z), h = static_cast<int>(blockIdx.y);
  const int kv_head = h / args.group;
  const int D = static_cast<int>(a.head_size), block = static_cast<int>(m.block_size);
  const int first_query_block = static_cast<int>(blockIdx.x) * args.blocks_per_cta;
  const int query_blocks = min(args.blocks_per_cta, args.query_blocks - first_query_block);

  extern __shared__ __align__(16) unsigned char shared_raw[];
  uint64_t* sort_keys = reinterpret_cast<uint64_t*>(shared_raw);                  // [sort_capacity]
  float* mean_queries = reinterpret_cast<float*>(sort_keys + args.sort_capacity);  // [blocks_per_cta, D]
  float* scores = mean_queries + args.blocks_per_cta * D;                           // [blocks_per_cta, key_blocks]
  uint32_t* bitmap = reinterpret_cast<uint32_t*>(scores + args.blocks_per_cta * args.key_blocks);  // [words]
  __shared__ QueryBlockPlan plans[kMaxBlocksPerCta];
  __shared__ float scratch[32];
  __shared__ int cut;
  __shared__ int union_first, union_end;

  const int valid = min(static_cast<int>(a.query_length), a.valid_query_rows[b]);
  const int past = a.past_lengths[b];
  const int key_count = a.key_counts[b];
  const int key_end = a.mask.data != nullptr ? static_cast<int>(Smaller<int64_t>(key_count, a.mask.length)) : key_count;
  const int window = a.local_window > 0 ? static_cast<int>(Smaller<int64_t>(a.local_window, INT_MAX)) : 0;
  if (threadIdx.x == 0) {
    int first = INT_MAX, end = 0;
    for (int i = 0; i < query_blocks; ++i) {
      QueryBlockPlan& plan = plans[i];
      plan.mode = static_cast<int>(BlockMode::kEmpty);
      plan.first_row = (first_query_block + i) * block;
      plan.end_row = min(min(static_cast<int>(a.query_length), plan.first_row + block), valid);
      if (plan.first_row >= plan.end_row) continue;
      // VisibleKeys of the first and the last row: the first sees the fewest keys.
      plan.first_position = past + plan.first_row;
      plan.last_position = past + plan.end_row - 1;
      const int begin = window > 0 ? max(0, plan.first_position - window + 1) : 0;
      const int first_end = max(begin, a.causal ? min(key_end, plan.first_position + 1) : key_end);
      const int last_begin = window > 0 ? max(0, plan.last_position - window + 1) : 0;
      const int seen_end = max(first_end, max(last_begin, a.causal ? min(key_end, plan.last_position + 1) : key_end));
      if (seen_end <= begin) continue;
      plan.first_block = begin / block;
      plan.end_block = (seen_end - 1) / block + 1;
      if (first_end - begin < m.dense_below) {
        plan.mode = static_cast<int>(BlockMode::kDense);
      } else {
        plan.mode = static_cast<int>(BlockMode::kSelect);
        first = min(first, plan.first_block);
        end = max(end, plan.end_block);
      }
    }
    union_first = first < end ? first : 0;  // no selecting block: an empty range
    union_end = first < end ? end : 0;
  }
  __syncthreads();

  // Mean queries (times scale) of the selecting blocks, summed row by row as the CPU does.
  const T* query = static_cast<const T*>(a.query) + b * a.query_strides[0] + h * a.query_strides[2];
  for (int index = static_cast<int>(threadIdx.x); index < query_blocks * D; index += kSelectThreads) {
    const int i = index / D, d = index % D;
    const QueryBlockPlan& plan = plans[i];
    if (plan.mode != static_cast<int>(BlockMode::kSelect)) continue;
    float sum = 0.0f;
    for (int row = plan.first_row; row < plan.end_row; ++row) sum += ToFloat(query[row * a.query_strides[1] + d]);
    mean_queries[index] = sum * (a.scale / static_cast<float>(plan.end_row - plan.first_row));
  }
  __syncthreads();

  // Scores of every selecting block against every key block any of them sees: each mean key read once.
  const float* means = args.mean_keys + (static_cast<int64_t>(b) * a.kv_num_heads + kv_head) * args.key_blocks * D;
  for (int c = union_first + static_cast<int>(threadIdx.x); c < union_end; c += kSelectThreads) {
    float dots[kMaxBlocksPerCta] = {};
    const float4* mean = reinterpret_cast<const float4*>(means + static_cast<int64_t>(c) * D);
    for (int d4 = 0; d4 < D / 4; ++d4) {
      const float4 k = __ldg(mean + d4);
#pragma unroll
      for (int i = 0; i < kMaxBlocksPerCta; ++i) {
        if (i < query_blocks) {
          const float* q = mean_queries + i * D + 4 * d4;
          dots[i] += q[0] * k.x + q[1] * k.y + q[2] * k.z + q[3] * k.w;
        }
      }
    }
#pragma unroll
    for (int i = 0; i < kMaxBlocksPerCta; ++i) {
      if (i < query_blocks) scores[i * args.key_blocks + c] = dots[i];
    }
  }
  __syncthreads();

  for (int i = 0; i < query_blocks; ++i) {
    const QueryBlockPlan plan = plans[i];
    for (int w = static_cast<int>(threadIdx.x); w < args.words; w += kSelectThreads) bitmap[w] = 0;
    __syncthreads();
    if (plan.mode == static_cast<int>(BlockMode::kDense)) {
      for (int c = plan.first_block + static_cast<int>(threadIdx.x); c < plan.end_block; c += kSelectThreads) {
        atomicOr(&bitmap[c / 32], 1u << (c % 32));
      }
    } else if (plan.mode == static_cast<int>(BlockMode::kSelect)) {
      const int count = plan.end_block - plan.first_block;
      int capacity = 1;
      while (capacity < count) capacity *= 2;
      const float* row_scores = scores + i * args.key_blocks + plan.first_block;
      // Keys sort descending: higher score first, then lower block (its complement is higher).
      for (int k = static_cast<int>(threadIdx.x); k < capacity; k += kSelectThreads) {
        sort_keys[k] = k < count ? (static_cast<uint64_t>(OrderedBits(row_scores[k])) << 32) | (0xffffffffu - k) : 0;
      }
      if (threadIdx.x == 0) cut = count - 1;
      __syncthreads();
      for (int size = 2; size <= capacity; size *= 2) {  // bitonic sort, descending
        for (int stride = size / 2; stride > 0; stride /= 2) {
          for (int k = static_cast<int>(threadIdx.x); k < capacity; k += kSelectThreads) {
            const int partner = k ^ stride;
            if (partner > k) {
              const uint64_t x = sort_keys[k], y = sort_keys[partner];
              const bool descending = (k & size) == 0;
              if (descending ? x < y : x > y) {
                sort_keys[k] = y;
                sort_keys[partner] = x;
              }
            }
          }
          __syncthreads();
        }
      }
      const float best = FromOrderedBits(static_cast<uint32_t>(sort_keys[0] >> 32));
      float partial = 0.0f;
      for (int k = static_cast<int>(threadIdx.x); k < count; k += kSelectThreads) partial += expf(row_scores[k] - best);
      const float total = BlockSum(partial, scratch);
      // Mass in rank order: each thread a contiguous run of ranks; the first rank where the
      // running mass reaches gamma is the last one kept.
      const int per_thread = (count + kSelectThreads - 1) / kSelectThreads;
      const int run_begin = min(count, static_cast<int>(threadIdx.x) * per_thread);
      const int run_end = min(count, run_begin + per_thread);
      float run_mass = 0.0f;
      for (int k = run_begin; k < run_end; ++k) {
        run_mass += expf(FromOrderedBits(static_cast<uint32_t>(sort_keys[k] >> 32)) - best) / total;
      }
      float mass = BlockExclusivePrefix(run_mass, scratch);
      for (int k = run_begin; k < run_end; ++k) {
        mass += expf(FromOrderedBits(static_cast<uint32_t>(sort_keys[k] >> 32)) - best) / total;
        if (mass >= m.gamma) {
          atomicMin(&cut, k);
          break;
        }
      }
      __syncthreads();
      for (int k = static_cast<int>(threadIdx.x); k <= cut; k += kSelectThreads) {
        const int c = plan.first_block + static_cast<int>(0xffffffffu - static_cast<uint32_t>(sort_keys[k]));
        atomicOr(&bitmap[c / 32], 1u << (c % 32));
      }
      if (threadIdx.x == 0 && plan.first_block == 0) atomicOr(&bitmap[0], 1u);
      const int diagonal_end = min(plan.end_block - 1, plan.last_position / block);
      for (int c = max(plan.first_block, plan.first_position / block) + static_cast<int>(threadIdx.x); c <= diagonal_end;
           c += kSelectThreads) {
        atomicOr(&bitmap[c / 32], 1u << (c % 32));
      }
    }
    __syncthreads();
    uint32_t* row = args.kept + ((static_cast<int64_t>(b) * a.num_heads + h) * args.query_blocks + first_query_block + i) *
                                    args.words;
    for (int w = static_cast<int>(threadIdx.x); w < args.words; w += kSelectThreads) row[w] = bitmap[w];
    __syncthreads();
  }
}

template <typename T>
cudaError_t LaunchSelectionOf(const SelectArgs& args, cudaStream_t stream) {
  const AttentionParams& a = args.attention;
  const dim3 mean_grid(static_cast<unsigned>(args.key_blocks), static_cast<unsigned>(a.kv_num_heads),
                       static_cast<unsigned>(a.batch));
  MeanKeysKernel<T><<<mean_grid, kMeanThreads, 0, stream>>>(args);
  ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetLastError());
  const size_t shared = SelectSharedBytes(args);
  ORTSPARSE_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(SelectBlocksKernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  const unsigned ctas = static_cast<unsigned>((args.query_blocks + args.blocks_per_cta - 1) / args.blocks_per_cta);
  const dim3 grid(ctas, static_cast<unsigned>(a.num_heads), static_cast<unsigned>(a.batch));
  SelectBlocksKernel<T><<<grid, kSelectThreads, shared, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace

size_t SelectSharedBytes(const SelectArgs& args) {
  return sizeof(uint64_t) * args.sort_capacity +
         sizeof(float) * args.blocks_per_cta * (args.attention.head_size + args.key_blocks) +
         sizeof(uint32_t) * args.words;
}

int MaxSelectBlocksPerCta() { return kMaxBlocksPerCta; }

cudaError_t LaunchBlockSelection(const SelectArgs& args, cudaStream_t stream) {
  switch (args.attention.type) {
    case DataType::kFloat16: return LaunchSelectionOf<__half>(args, stream);
    case DataType::kBFloat16: return LaunchSelectionOf<__nv_bfloat16>(args, stream);
    case DataType::kFloat32: return LaunchSelectionOf<float>(args, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ortsparse::cuda::prefill
