// The prefill attention kernel for fp32 inputs: plain fp32 arithmetic on the CUDA cores (no tensor
// cores), for the same AttentionArgs as the 16-bit kernels (dense, tile selections, row
// selections). One block of 8 warps per (query head, kRowBlock rows, sequence), each warp owning 8
// rows; the block streams the keys it may see in tiles of 32 through shared memory (the tiles of
// kept key tiles only). For each of its rows a warp scores the tile's keys (a lane per key),
// applies scale, softcap and mask as docs/ops.md defines them, keeps an online softmax (expf), and
// accumulates P·V with a lane per dimension. Rows at or beyond valid_query_rows[b] and rows that
// see no key get zeros.
#include "attention/cuda/cuda_common.cuh"
#include "attention/cuda/prefill_kernels.h"
#include "attention/cuda/prefill_rows.cuh"
#include "attention/cuda/selection_rules.cuh"

namespace ortsparse::cuda::prefill {
namespace {

constexpr int kWarps = 8;
constexpr int kRowsPerWarpFp32 = kRowBlock / kWarps;
constexpr int kTileKeys = 32;  // a lane per key
static_assert(kKeysPerTile % kTileKeys == 0, "a kept tile is whole tiles of this kernel");

// Shared memory: the block's query rows [kRowBlock][D], a key tile [kTileKeys][D + 1] (padded: lane
// j reads row j) and a value tile [kTileKeys][D].
template <int D>
constexpr size_t kFp32Shared = sizeof(float) * (kRowBlock * D + kTileKeys * (D + 1) + kTileKeys * D);

template <int D>
__global__ void __launch_bounds__(kWarps * 32) PrefillAttentionFp32Kernel(const AttentionArgs args) {
  constexpr int kDims = (D + 31) / 32;  // output dimensions per lane: lane + 32 k
  extern __shared__ __align__(16) float fp32_shared[];
  float* q_tile = fp32_shared;
  float* k_tile = q_tile + kRowBlock * D;
  float* v_tile = k_tile + kTileKeys * (D + 1);

  const AttentionParams& a = args.attention;
  const int h = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.z);
  const int tile = args.query_tiles - 1 - static_cast<int>(blockIdx.y);  // the longest rows first
  const int warp = static_cast<int>(threadIdx.x) >> 5, lane = static_cast<int>(threadIdx.x) & 31;
  const int row_end = min(static_cast<int>(a.query_length), args.row_end);
  const int r0 = args.row_begin + tile * kRowBlock;
  const SequenceView sequence(a, b);
  const int kv_head = h / args.group;

  // The block's key range (both ends non-decreasing in the row) and its kept tiles.
  const int last_row = min(r0 + kRowBlock, sequence.valid) - 1;
  int block_begin = 0, block_end = 0, unused = 0;
  if (last_row >= r0) {
    sequence.Visible(r0, block_begin, unused);
    sequence.Visible(last_row, unused, block_end);
  }
  const int first_kept = block_begin / kKeysPerTile;
  const int last_kept = block_end > block_begin ? (block_end - 1) / kKeysPerTile : first_kept - 1;
  const uint32_t* const kept = KeptRow(args, b, h, r0);

  const float* query = static_cast<const float*>(a.query) + b * a.query_strides[0] + h * a.query_strides[2];
  for (int i = static_cast<int>(threadIdx.x); i < kRowBlock * D; i += blockDim.x) {
    const int row = r0 + i / D;
    q_tile[i] = row < sequence.valid ? query[row * a.query_strides[1] + i % D] : 0.0f;
  }

  // This warp's rows: r0 + warp * kRowsPerWarpFp32 + i.
  int begin[kRowsPerWarpFp32], end[kRowsPerWarpFp32];
  float row_max[kRowsPerWarpFp32], row_sum[kRowsPerWarpFp32], o[kRowsPerWarpFp32][kDims];
#pragma unroll
  for (int i = 0; i < kRowsPerWarpFp32; ++i) {
    sequence.Visible(r0 + warp * kRowsPerWarpFp32 + i, begin[i], end[i]);
    row_max[i] = NegativeInfinity();
    row_sum[i] = 0.0f;
#pragma unroll
    for (int k = 0; k < kDims; ++k) o[i][k] = 0.0f;
  }

  const float* keys = static_cast<const float*>(a.key_cache) + b * a.key_strides[0] + kv_head * a.key_strides[1];
  const float* values = static_cast<const float*>(a.value_cache) + b * a.value_strides[0] + kv_head * a.value_strides[1];
  const int key_count = a.key_counts[b];
  for (int t = NextKeptTile(args, kept, first_kept, last_kept); t <= last_kept;
       t = NextKeptTile(args, kept, t + 1, last_kept)) {
    for (int sub = 0; sub < kKeysPerTile / kTileKeys; ++sub) {
      const int key0 = t * kKeysPerTile + sub * kTileKeys;
      if (key0 >= block_end || key0 + kTileKeys <= block_begin) continue;  // block-uniform
      __syncthreads();  // the previous tile is consumed (and, the first time, the queries are stored)
      for (int i = static_cast<int>(threadIdx.x); i < kTileKeys * D; i += blockDim.x) {
        const int j = i / D, d = i % D;
        const bool present = key0 + j < key_count;  // rows beyond the keys are never read
        k_tile[j * (D + 1) + d] = present ? keys[static_cast<int64_t>(key0 + j) * a.key_strides[2] + d] : 0.0f;
        v_tile[j * D + d] = present ? values[static_cast<int64_t>(key0 + j) * a.value_strides[2] + d] : 0.0f;
      }
      __syncthreads();
      const int j = key0 + lane;
#pragma unroll
      for (int i = 0; i < kRowsPerWarpFp32; ++i) {
        if (j - lane >= end[i] || j - lane + kTileKeys <= begin[i]) continue;  // warp-uniform: none of its keys
        const int local = warp * kRowsPerWarpFp32 + i, row = r0 + local;
        bool seen = j >= begin[i] && j < end[i];
        if (seen && args.row_keys != nullptr) seen = (RowKeyWords(args, b, h, row)[j / 32] >> (j % 32)) & 1u;
        float score = NegativeInfinity();
        if (seen) {
          float dot = 0.0f;
          for (int d = 0; d < D; ++d) dot = fmaf(q_tile[local * D + d], k_tile[lane * (D + 1) + d], dot);
          score = dot * a.scale;
          if (a.softcap > 0.0f) score = a.softcap * tanhf(score / a.softcap);
          score += MaskAddend(a, b, h, j, row);
        }
        const float tile_max = WarpReduce(score, [](float x, float y) { return fmaxf(x, y); });
        const float new_max = fmaxf(row_max[i], tile_max);
        if (new_max == NegativeInfinity()) continue;  // nothing seen yet (warp-uniform)
        const float p = score == NegativeInfinity() ? 0.0f : expf(score - new_max);
        const float correction = expf(row_max[i] - new_max);  // 0 for the first keys
        row_sum[i] = row_sum[i] * correction + WarpReduce(p, [](float x, float y) { return x + y; });
        row_max[i] = new_max;
#pragma unroll
        for (int k = 0; k < kDims; ++k) o[i][k] *= correction;
        for (int key = 0; key < kTileKeys; ++key) {
          const float weight = __shfl_sync(kFullWarp, p, key);
#pragma unroll
          for (int k = 0; k < kDims; ++k) {
            const int d = lane + 32 * k;
            if (d < D) o[i][k] = fmaf(weight, v_tile[key * D + d], o[i][k]);
          }
        }
      }
    }
  }

#pragma unroll
  for (int i = 0; i < kRowsPerWarpFp32; ++i) {
    const int row = r0 + warp * kRowsPerWarpFp32 + i;
    if (row >= row_end) continue;
    const float inverse = row_sum[i] > 0.0f ? 1.0f / row_sum[i] : 0.0f;
    float* out = static_cast<float*>(a.output) + b * a.output_strides[0] + row * a.output_strides[1] +
                 h * a.output_strides[2];
#pragma unroll
    for (int k = 0; k < kDims; ++k) {
      const int d = lane + 32 * k;
      if (d < D) out[d] = o[i][k] * inverse;
    }
  }
}

template <int D>
cudaError_t LaunchFp32(const AttentionArgs& args, cudaStream_t stream) {
  constexpr size_t shared = kFp32Shared<D>;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(PrefillAttentionFp32Kernel<D>,
                                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                      static_cast<int>(shared)));
  const dim3 grid(static_cast<unsigned>(args.attention.num_heads), static_cast<unsigned>(args.query_tiles),
                  static_cast<unsigned>(args.attention.batch));
  PrefillAttentionFp32Kernel<D><<<grid, kWarps * 32, shared, stream>>>(args);
  return cudaGetLastError();
}

}  // namespace

cudaError_t LaunchPrefillAttentionFp32(const AttentionArgs& args, cudaStream_t stream) {
  switch (args.attention.head_size) {
    case 64: return LaunchFp32<64>(args, stream);
    case 80: return LaunchFp32<80>(args, stream);
    case 96: return LaunchFp32<96>(args, stream);
    case 128: return LaunchFp32<128>(args, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ortsparse::cuda::prefill
