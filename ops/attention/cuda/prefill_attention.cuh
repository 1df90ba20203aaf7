// The prefill attention kernel (FlashAttention-2 style): one block of 4 warps per (query head,
// tile of 64 or 128 query rows, sequence), each warp owning 16 or 32 rows. The block streams the keys it may
// see in tiles of 64 through shared memory (cp.async, two stages: the next tile loads while the
// current one is multiplied), computes the scores of its rows with m16n8k16 tensor-core products
// (fp16 or bf16 inputs, fp32 accumulators), keeps an online softmax per row in registers (log2
// domain) and accumulates P·V with the probabilities rounded to the input type, as FlashAttention
// does. The output is normalised once at the end.
//
// Per row i of sequence b (position past[b] + i): keys j < key_counts[b] (and < the mask's length),
// j <= position when causal, j > position - W with a local window W; scores are scaled, soft-capped
// and masked as docs/ops.md defines; rows at or beyond valid_query_rows[b] produce zeros, as rows
// that see no key. Tiles the whole warp sees unmasked skip the per-element tests. With a tile
// selection (methods block, hash, hyper), a block visits only the key tiles its query block kept
// (the rows' own visibility still applies inside them); with a row selection (hash, hyper), each
// row attends only the keys of its own bitmap among those (a per-element test).
#pragma once

#include "attention/cuda/cuda_common.cuh"
#include "attention/cuda/prefill_kernels.h"
#include "attention/cuda/prefill_mma.cuh"
#include "attention/cuda/prefill_rows.cuh"

namespace ortsparse::cuda::prefill {

// Shared-memory rows of a head dimension D: 16 bytes of padding make the 8 rows an ldmatrix reads
// fall into different banks.
template <int D>
struct TileShape {
  static constexpr int kStride = D + 8;                        // elements per shared row
  static constexpr int kChunks = D / 8;                        // 16-byte chunks per row
  static constexpr int kElements = kKeysPerTile * kStride;     // one K or V tile
};

// Shared memory: two stages of (K tile, V tile), then, with two row tiles per warp, the query rows
// (which otherwise pass through the second stage into registers before the loop).
template <typename T, int D, int kWarps, int kMTiles>
constexpr size_t kAttentionShared =
    (4 * TileShape<D>::kElements + (kMTiles > 1 ? kWarps * kMTiles * kRowsPerWarp * TileShape<D>::kStride : 0)) *
    sizeof(T);

// kMTiles row tiles of 16 per warp: 1 keeps the warp's queries in registers; 2 reads each key and
// value fragment once for 32 rows (half the shared-memory traffic per product) and reloads the
// query fragments from shared memory instead.
template <typename T, int D, int kWarps, int kMTiles>
__global__ void __launch_bounds__(kWarps * 32) PrefillAttentionKernel(const AttentionArgs args) {
  constexpr int kThreads = kWarps * 32, kWarpRows = kMTiles * kRowsPerWarp, kRows = kWarps * kWarpRows;
  constexpr int kStride = TileShape<D>::kStride, kChunks = TileShape<D>::kChunks, kTile = TileShape<D>::kElements;
  constexpr int kSteps = D / 16;                   // k-steps of Q·Kᵀ over the head dimension
  constexpr int kDimTiles = D / 8;                 // n-tiles of the output
  // Keys of one softmax step (a tile is one or two): 32 with two row tiles of a wide head, so that
  // the score accumulators fit in registers beside the output's.
  constexpr int kStepKeys = kMTiles > 1 && D > 64 ? 32 : kKeysPerTile;
  constexpr int kStepTiles = kStepKeys / 8;        // n-tiles of the scores of a step
  constexpr bool kQueryInRegisters = kMTiles == 1;
  static_assert(D % 16 == 0 && (!kQueryInRegisters || kRows <= 2 * kKeysPerTile), "tile shape");
  extern __shared__ __align__(16) unsigned char shared_raw[];
  T* shared = reinterpret_cast<T*>(shared_raw);

  const AttentionParams& a = args.attention;
  const int h = static_cast<int>(blockIdx.x), b = static_cast<int>(blockIdx.z);
  const int tile = args.query_tiles - 1 - static_cast<int>(blockIdx.y);  // the longest rows first
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int row_end = min(static_cast<int>(a.query_length), args.row_end);  // rows this launch writes
  const int r0 = args.row_begin + tile * kRows;
  const SequenceView sequence(a, b);
  const int valid = sequence.valid;
  const int key_count = a.key_counts[b];
  auto visible = [&](int row, int& begin, int& end) { sequence.Visible(row, begin, end); };

  // The block's key range: both ends are non-decreasing in the row.
  const int last_row = min(r0 + kRows, valid) - 1;
  int block_begin = 0, block_end = 0, unused = 0;
  if (last_row >= r0) {
    visible(r0, block_begin, unused);
    visible(last_row, unused, block_end);
  }
  const int first_tile = block_begin / kKeysPerTile;
  const int last_tile = block_end > block_begin ? (block_end - 1) / kKeysPerTile : first_tile - 1;

  // The block's rows lie in one query block (block_size is a multiple of kRows).
  const uint32_t* const kept = KeptRow(args, b, h, r0);
  // The first tile at or after t that the block attends (last_tile + 1 when none is left).
  auto next_tile = [&](int t) -> int { return NextKeptTile(args, kept, t, last_tile); };

  // Tile loads: each thread copies one 16-byte chunk of every kRowStep-th row (chunk slots past the
  // row's end idle), so its addresses advance by a fixed step.
  constexpr int kSlots = kChunks <= 8 ? 8 : 16;  // chunk slots per row, a power of two >= kChunks
  constexpr int kRowStep = kThreads / kSlots;
  static_assert(kChunks <= kSlots && kKeysPerTile % kRowStep == 0, "load shape");
  const int kv_head = h / args.group;
  const int load_chunk = static_cast<int>(threadIdx.x) % kSlots, load_row = static_cast<int>(threadIdx.x) / kSlots;
  const bool loads = load_chunk < kChunks;
  const int64_t key_stride = a.key_strides[2], value_stride = a.value_strides[2];
  const T* keys = static_cast<const T*>(a.key_cache) + b * a.key_strides[0] + kv_head * a.key_strides[1] + load_chunk * 8;
  const T* values =
      static_cast<const T*>(a.value_cache) + b * a.value_strides[0] + kv_head * a.value_strides[1] + load_chunk * 8;
  const uint32_t load_offset = (load_row * kStride + load_chunk * 8) * sizeof(T);
  const uint32_t shared_base = SharedAddress(shared);
  auto load_tile = [&](int t, int stage) {
    if (!loads) return;
    const uint32_t k_tile = shared_base + 2 * stage * kTile * sizeof(T) + load_offset;
    const uint32_t v_tile = k_tile + kTile * sizeof(T);
    const int first = t * kKeysPerTile + load_row;
    const T* k_source = keys + first * key_stride;
    const T* v_source = values + first * value_stride;
#pragma unroll
    for (int pass = 0; pass < kKeysPerTile / kRowStep; ++pass) {
      const bool present = first + pass * kRowStep < key_count;  // the rest is zero-filled: no garbage reaches P·V
      const uint32_t offset = pass * kRowStep * kStride * sizeof(T);
      CopyAsync16(k_tile + offset, present ? k_source : keys, present ? 16 : 0);
      CopyAsync16(v_tile + offset, present ? v_source : values, present ? 16 : 0);
      k_source += kRowStep * key_stride;
      v_source += kRowStep * value_stride;
    }
  };

  // The query rows (into the second stage, or their own region), the first key tile into the first stage.
  T* const q_tile = shared + (kQueryInRegisters ? 2 * kTile : 4 * kTile);
  {
    const T* query = static_cast<const T*>(a.query) + b * a.query_strides[0] + h * a.query_strides[2];
    for (int i = static_cast<int>(threadIdx.x); i < kRows * kChunks; i += kThreads) {
      const int row = i / kChunks, chunk = i % kChunks;
      const bool present = r0 + row < valid;
      const int64_t source = present ? r0 + row : 0;
      CopyAsync16(SharedAddress(q_tile + row * kStride + chunk * 8), query + source * a.query_strides[1] + chunk * 8,
                  present ? 16 : 0);
    }
  }
  int t = next_tile(first_tile);
  if (t <= last_tile) load_tile(t, 0);
  CommitAsync();
  WaitAsync<0>();
  __syncthreads();
  // ldmatrix address of this lane's query fragment (row tile 0, k-step 0).
  const uint32_t q_lane = SharedAddress(q_tile + (warp * kWarpRows + lane % 16) * kStride + (lane / 16) * 8);
  uint32_t q[kQueryInRegisters ? kSteps : 1][4];
  if constexpr (kQueryInRegisters) {
#pragma unroll
    for (int kk = 0; kk < kSteps; ++kk) LoadMatrixX4(q[kk], q_lane + kk * 32);
    __syncthreads();  // the second stage is free again
  }

  // This thread's rows: g and g + 8 (r = 0, 1) of each of the warp's row tiles m; the warp's key ranges.
  const int g = lane / 4, quad = lane % 4;
  const int thread_row = r0 + warp * kWarpRows + g;
  auto row_of = [&](int m, int r) { return thread_row + m * kRowsPerWarp + 8 * r; };
  const int warp_first = r0 + warp * kWarpRows, warp_last = min(warp_first + kWarpRows, valid) - 1;
  int warp_begin = 0, warp_end = 0, inner_begin = 0, inner_end = 0;  // union and intersection of the rows' keys
  if (warp_last >= warp_first) {
    visible(warp_first, warp_begin, inner_end);
    visible(warp_last, inner_begin, warp_end);
  }
  const bool warp_rows_valid = warp_first + kWarpRows <= valid;
  const bool extras = a.softcap > 0.0f || a.mask.data != nullptr;
  // Row selections run with one row tile per warp (64-row blocks, as their selection blocks).
  const bool row_selection = kMTiles == 1 && args.row_keys != nullptr;

  float o[kMTiles][kDimTiles][4];
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
    for (int n = 0; n < kDimTiles; ++n) o[m][n][0] = o[m][n][1] = o[m][n][2] = o[m][n][3] = 0.0f;
  }
  float row_max[kMTiles][2], row_sum[kMTiles][2];
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
    row_max[m][0] = row_max[m][1] = NegativeInfinity();
    row_sum[m][0] = row_sum[m][1] = 0.0f;
  }

  constexpr uint32_t kRowBytes = kStride * sizeof(T);
  // ldmatrix addresses of this lane within a tile: K as the "col" B operand of Q·Kᵀ (matrices
  // keys 0-7 / 8-15 by d 0-7 / 8-15), V transposed as the B operand of P·V.
  const uint32_t k_lane = ((lane / 16) * 8 + lane % 8) * kRowBytes + ((lane / 8) % 2) * 16;
  const uint32_t v_lane = (((lane / 8) % 2) * 8 + lane % 8) * kRowBytes + (lane / 16) * 16;
  int stage = 0;
  while (t <= last_tile) {
    const int next = next_tile(t + 1);
    if (next <= last_tile) load_tile(next, stage ^ 1);
    CommitAsync();
    WaitAsync<1>();
    __syncthreads();
    const int key0 = t * kKeysPerTile;
    const uint32_t k_base = shared_base + 2 * stage * kTile * sizeof(T);
    const uint32_t v_base = k_base + kTile * sizeof(T);
#pragma unroll
    for (int step = 0; step < kKeysPerTile / kStepKeys; ++step) {
      const int step0 = key0 + step * kStepKeys;  // keys [step0, step0 + kStepKeys) of the tile
      if (step0 >= warp_end || step0 + kStepKeys <= warp_begin) continue;  // none of the warp's rows sees them
      float s[kMTiles][kStepTiles][4];
#pragma unroll
      for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
        for (int n = 0; n < kStepTiles; ++n) s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.0f;
      }
#pragma unroll
      for (int kk = 0; kk < kSteps; ++kk) {
        uint32_t q_frag[kMTiles][4];
#pragma unroll
        for (int m = 0; m < kMTiles; ++m) {
          if constexpr (kQueryInRegisters) {
#pragma unroll
            for (int i = 0; i < 4; ++i) q_frag[m][i] = q[kk][i];
          } else {
            LoadMatrixX4(q_frag[m], q_lane + m * kRowsPerWarp * kRowBytes + kk * 32);
          }
        }
#pragma unroll
        for (int np = 0; np < kStepTiles / 2; ++np) {
          uint32_t k_frag[4];
          LoadMatrixX4(k_frag, k_base + k_lane + (step * kStepKeys + np * 16) * kRowBytes + kk * 32);
#pragma unroll
          for (int m = 0; m < kMTiles; ++m) {
            Mma<T>(s[m][2 * np], q_frag[m], k_frag[0], k_frag[1]);
            Mma<T>(s[m][2 * np + 1], q_frag[m], k_frag[2], k_frag[3]);
          }
        }
      }
      // Scores to log2-domain logits (times `factor`); hidden keys to -inf. Keys every row of the
      // warp sees keep the raw products: the scale folds into the exponent's multiply-add.
      const bool whole = warp_rows_valid && !extras && !row_selection && args.scale_log2 > 0.0f &&
                         step0 >= inner_begin && step0 + kStepKeys <= inner_end;
      const float factor = whole ? args.scale_log2 : 1.0f;
      if (!whole) {
#pragma unroll
        for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
          for (int r = 0; r < 2; ++r) {
            const int row = row_of(m, r);
            int begin, end;
            visible(row, begin, end);
            // The row's bitmap words over the step's keys (step0 is a multiple of 32); all ones
            // without a row selection. Rows past the valid ones see nothing: never read.
            uint32_t selected[kStepKeys / 32];
#pragma unroll
            for (int w = 0; w < kStepKeys / 32; ++w) {
              selected[w] = row_selection && begin < end ? __ldg(RowKeyWords(args, b, h, row) + step0 / 32 + w) : ~0u;
            }
#pragma unroll
            for (int n = 0; n < kStepTiles; ++n) {
#pragma unroll
              for (int c = 0; c < 2; ++c) {
                const int column = step0 + n * 8 + 2 * quad + c;
                float& value = s[m][n][2 * r + c];
                float x = NegativeInfinity();
                if (column >= begin && column < end && ((selected[n / 4] >> ((n % 4) * 8 + 2 * quad + c)) & 1u)) {
                  if (!extras) {
                    x = value * args.scale_log2;
                  } else {
                    float score = value * a.scale;
                    if (a.softcap > 0.0f) score = a.softcap * tanhf(score / a.softcap);
                    if (a.mask.data != nullptr) {
                      const int64_t index =
                          b * a.mask.batch_stride + h * a.mask.head_stride + row * a.mask.row_stride + column;
                      if (a.mask.type == DataType::kBool) {
                        if (!static_cast<const bool*>(a.mask.data)[index]) score = NegativeInfinity();
                      } else {
                        score += ToFloat(static_cast<const T*>(a.mask.data)[index]);
                      }
                    }
                    x = score * kLog2e;
                  }
                }
                value = x;
              }
            }
          }
        }
      }
      // Online softmax of rows g (e = 0, 1) and g + 8 (e = 2, 3) of each row tile; a row's columns
      // are spread over the 4 lanes of its quad. factor >= 0: the largest product gives the largest logit.
      float correction[kMTiles][2];
      bool rescale = false;
#pragma unroll
      for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
        for (int r = 0; r < 2; ++r) {
          float high = NegativeInfinity();
#pragma unroll
          for (int n = 0; n < kStepTiles; ++n) high = fmaxf(high, fmaxf(s[m][n][2 * r], s[m][n][2 * r + 1]));
          float tile_max = high * factor;
          tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullWarp, tile_max, 1));
          tile_max = fmaxf(tile_max, __shfl_xor_sync(kFullWarp, tile_max, 2));
          const float new_max = fmaxf(row_max[m][r], tile_max);
          const float base = new_max == NegativeInfinity() ? 0.0f : new_max;  // a row that saw nothing yet
          correction[m][r] = Exp2(row_max[m][r] - base);
          rescale = rescale || correction[m][r] != 1.0f;
          row_max[m][r] = new_max;
          float sum = 0.0f;
#pragma unroll
          for (int n = 0; n < kStepTiles; ++n) {
            s[m][n][2 * r] = Exp2(fmaf(s[m][n][2 * r], factor, -base));
            s[m][n][2 * r + 1] = Exp2(fmaf(s[m][n][2 * r + 1], factor, -base));
            sum += s[m][n][2 * r] + s[m][n][2 * r + 1];
          }
          row_sum[m][r] = row_sum[m][r] * correction[m][r] + sum;
        }
      }
      // Once the rows' maxima settle, most steps leave them unchanged: skip the rescale then.
      if (__any_sync(kFullWarp, rescale)) {
#pragma unroll
        for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
          for (int n = 0; n < kDimTiles; ++n) {
            o[m][n][0] *= correction[m][0];
            o[m][n][1] *= correction[m][0];
            o[m][n][2] *= correction[m][1];
            o[m][n][3] *= correction[m][1];
          }
        }
      }
      // O += P·V, P from the score accumulators (the C layout of two n-tiles is the A layout of one k-step).
#pragma unroll
      for (int kk = 0; kk < kStepTiles / 2; ++kk) {
        uint32_t p[kMTiles][4];
#pragma unroll
        for (int m = 0; m < kMTiles; ++m) {
          p[m][0] = PackPair<T>(s[m][2 * kk][0], s[m][2 * kk][1]);
          p[m][1] = PackPair<T>(s[m][2 * kk][2], s[m][2 * kk][3]);
          p[m][2] = PackPair<T>(s[m][2 * kk + 1][0], s[m][2 * kk + 1][1]);
          p[m][3] = PackPair<T>(s[m][2 * kk + 1][2], s[m][2 * kk + 1][3]);
        }
#pragma unroll
        for (int dp = 0; dp < kDimTiles / 2; ++dp) {
          uint32_t v_frag[4];
          LoadMatrixX4Transposed(v_frag, v_base + v_lane + (step * kStepKeys + kk * 16) * kRowBytes + dp * 32);
#pragma unroll
          for (int m = 0; m < kMTiles; ++m) {
            Mma<T>(o[m][2 * dp], p[m], v_frag[0], v_frag[1]);
            Mma<T>(o[m][2 * dp + 1], p[m], v_frag[2], v_frag[3]);
          }
        }
      }
    }
    __syncthreads();  // every warp is done with this stage before the next prefetch refills it
    t = next;
    stage ^= 1;
  }
  WaitAsync<0>();

  // Normalise and store; rows that saw no key (or are not valid) get zeros.
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float total = row_sum[m][r];
      total += __shfl_xor_sync(kFullWarp, total, 1);
      total += __shfl_xor_sync(kFullWarp, total, 2);
      const float inverse = total > 0.0f ? 1.0f / total : 0.0f;
      const int row = row_of(m, r);
      if (row >= row_end) continue;
      T* out = static_cast<T*>(a.output) + b * a.output_strides[0] + row * a.output_strides[1] +
               h * a.output_strides[2] + 2 * quad;
#pragma unroll
      for (int n = 0; n < kDimTiles; ++n) {
        *reinterpret_cast<uint32_t*>(out + n * 8) =
            PackPair<T>(o[m][n][2 * r] * inverse, o[m][n][2 * r + 1] * inverse);
      }
    }
  }
}

template <typename T, int D, int kWarps, int kMTiles>
cudaError_t LaunchAttentionKernel(const AttentionArgs& args, cudaStream_t stream) {
  constexpr size_t shared = kAttentionShared<T, D, kWarps, kMTiles>;
  const auto kernel = PrefillAttentionKernel<T, D, kWarps, kMTiles>;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared)));
  const dim3 grid(static_cast<unsigned>(args.attention.num_heads), static_cast<unsigned>(args.query_tiles),
                  static_cast<unsigned>(args.attention.batch));
  kernel<<<grid, kWarps * 32, shared, stream>>>(args);
  return cudaGetLastError();
}

template <typename T, int kMTiles>
cudaError_t LaunchPrefillAttentionWith(const AttentionArgs& args, cudaStream_t stream) {
  switch (args.attention.head_size) {
    case 64: return LaunchAttentionKernel<T, 64, 4, kMTiles>(args, stream);
    case 80: return LaunchAttentionKernel<T, 80, 4, kMTiles>(args, stream);
    case 96: return LaunchAttentionKernel<T, 96, 4, kMTiles>(args, stream);
    case 128: return LaunchAttentionKernel<T, 128, 4, kMTiles>(args, stream);
    default: return cudaErrorInvalidValue;
  }
}

// `row_tiles`: 16-row tiles per warp of the 4 warps of a block (1: 64 rows per block, 2: 128).
template <typename T>
cudaError_t LaunchPrefillAttentionOf(const AttentionArgs& args, int row_tiles, cudaStream_t stream) {
  switch (row_tiles) {
    case 1: return LaunchPrefillAttentionWith<T, 1>(args, stream);
    case 2: return LaunchPrefillAttentionWith<T, 2>(args, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace ortsparse::cuda::prefill
