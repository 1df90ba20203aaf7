// Internal interface between the prefill kernels (prefill_attention*.cu, prefill_select.cu) and
// their host side (prefill.cu). Host code only: no device code here.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "ortsparse/attention_params.h"
#include "ortsparse/sparse_method_params.h"

namespace ortsparse::cuda::prefill {

constexpr int kKeysPerTile = 64;  // keys of one shared-memory tile (and the attention's column step)
constexpr int kRowsPerWarp = 16;  // query rows of one warp (one m16 tile)
constexpr int kSelectThreads = 256;

// The attention kernel's arguments: one block per (query head, tile of 64 or 128 rows, sequence).
struct AttentionArgs {
  AttentionParams attention;  // device pointers; the selection list unused
  int group = 1;              // Hq / Hkv
  int query_tiles = 0;        // ceil(S / rows per block)
  float scale_log2 = 0.0f;    // scale · log2(e)
  // Block-sparse (method block): key tile t is attended by the rows of query block qb iff bit
  // t / tiles_per_block of row (b, h, qb) of `kept` is set. Null: every visible key.
  const uint32_t* kept = nullptr;
  int query_blocks = 0;
  int words = 0;            // 32-bit words per row of `kept`
  int block_size = 0;       // rows of a query block, keys of a key block (a multiple of kKeysPerTile)
  int tiles_per_block = 0;  // block_size / kKeysPerTile
};

// The block selection's arguments (docs/ops.md, `block`).
struct SelectArgs {
  AttentionParams attention;
  SparseMethodParams method;
  int group = 1;
  int key_blocks = 0;    // ceil(key_capacity / block_size): rows of mean_keys per (b, KV head)
  int query_blocks = 0;  // ceil(S / block_size)
  int words = 0;         // ceil(key_blocks / 32)
  int blocks_per_cta = 1;  // query blocks one selection block handles (they share the mean keys' reads)
  int sort_capacity = 1;   // a power of two >= key_blocks
  float* mean_keys = nullptr;  // [B, Hkv, key_blocks, D] fp32
  uint32_t* kept = nullptr;    // [B, Hq, query_blocks, words]
};

// Dynamic shared memory of the selection kernel.
size_t SelectSharedBytes(const SelectArgs& args);

// The attention kernel for fp16 (prefill_attention_fp16.cu) and bf16 (prefill_attention_bf16.cu).
// `row_tiles`: 16-row tiles per warp (1 or 2) of the 4 warps of a block.
cudaError_t LaunchPrefillAttentionFp16(const AttentionArgs& args, int row_tiles, cudaStream_t stream);
cudaError_t LaunchPrefillAttentionBf16(const AttentionArgs& args, int row_tiles, cudaStream_t stream);

// The block selection (prefill_select.cu): mean keys into args.mean_keys, then args.kept.
cudaError_t LaunchBlockSelection(const SelectArgs& args, cudaStream_t stream);
int MaxSelectBlocksPerCta();

}  // namespace ortsparse::cuda::prefill
