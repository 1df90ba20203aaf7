// Internal interface between the prefill kernels (prefill_attention*.cu, prefill_select.cu,
// prefill_rows.cu) and their host side (prefill.cu). Host code only: no device code here.
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
  int query_tiles = 0;        // ceil((row_end - row_begin) / rows per block)
  float scale_log2 = 0.0f;    // scale · log2(e)
  int row_begin = 0;          // the rows [row_begin, row_end) this launch computes: a slab of the
  int row_end = 0;            // step's rows (row selections), else [0, S); row_begin a multiple of 64
  // Tile selection (methods block, hash, hyper): key tile t is attended by the rows of query block
  // qb (rows [row_begin + qb * block_size, ...)) iff bit t / tiles_per_block of row
  // (b, h / kept_group, qb) of `kept` is set. Null: every visible key.
  const uint32_t* kept = nullptr;
  int kept_group = 1;       // query heads sharing a row of `kept`: 1 (block) or the group (per KV head)
  int query_blocks = 0;
  int words = 0;            // 32-bit words per row of `kept`
  int block_size = 0;       // rows of a query block, keys of a key block (a multiple of kKeysPerTile)
  int tiles_per_block = 0;  // block_size / kKeysPerTile
  // Row selection (methods hash, hyper): row i of sequence b attends key j (among the keys it may
  // see) iff bit j % 32 of word j / 32 of row ((b * Hkv + h / group) * slab_rows + i - row_begin)
  // of `row_keys` is set. Null: every key of the kept tiles.
  const uint32_t* row_keys = nullptr;
  int row_words = 0;  // words per row of row_keys: ceil(key_capacity / 32)
  int slab_rows = 0;  // rows of row_keys per (b, KV head)
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

// The row selections (docs/ops.md, hash and hyper prefill) of one slab of rows
// [row_begin, row_begin + slab_rows) ∩ [0, S): per (sequence, KV head, row) a bitmap of the keys
// the row attends (`row_keys`, as AttentionArgs reads it; words outside the row's visible keys are
// left as they were), and per (sequence, KV head, block of kRowBlock rows) the key tiles any of
// its rows attends (`kept`). One selection block per (block of rows, KV head, sequence).
constexpr int kRowBlock = 64;
constexpr int kMaxHashMaskWords = 128;  // hash: rounds x ceil(buckets / 32) bucket flags per row
struct RowSelectArgs {
  AttentionParams attention;
  SparseMethodParams method;
  int group = 1;
  int row_begin = 0;
  int slab_rows = 0;     // a multiple of kRowBlock
  int query_blocks = 0;  // slab_rows / kRowBlock
  int tile_words = 0;    // words per row of `kept`: ceil(key tiles / 32)
  int row_words = 0;     // words per row of `row_keys`
  uint32_t* kept = nullptr;      // [B, Hkv, query_blocks, tile_words]
  uint32_t* row_keys = nullptr;  // [B, Hkv, slab_rows, row_words]
  int bucket_words = 0;          // hash: ceil(buckets / 32), buckets = 2 * hash_half_buckets
  const uint64_t* sorted = nullptr;  // hyper: [B, Hkv, key_capacity] sorted keys (SortArgs)
  int key_capacity = 0;
};

// hyper: the cached keys of every (sequence, KV head) in sortLSH order, entries rank << 32 |
// position increasing: codes of keys [0, key_counts[b]) in position order into entries[0], then a
// stable LSD radix sort by the rank's 8-bit digits, ping-ponging between entries[0] and entries[1];
// the result lies in entries[passes % 2].
constexpr int kSortChunk = 1024;  // entries one counting or scatter block handles
struct SortArgs {
  AttentionParams attention;
  SparseMethodParams method;
  int key_capacity = 0;
  int chunks = 0;  // ceil(key_capacity / kSortChunk)
  int passes = 0;  // ceil(bits / 8)
  uint64_t* entries[2] = {nullptr, nullptr};  // each [B, Hkv, key_capacity]
  int* counts = nullptr;                      // [B, Hkv, 256, chunks]: digit counts, then their offsets
};

// The attention kernel for fp16 (prefill_attention_fp16.cu) and bf16 (prefill_attention_bf16.cu).
// `row_tiles`: 16-row tiles per warp (1 or 2) of the 4 warps of a block.
cudaError_t LaunchPrefillAttentionFp16(const AttentionArgs& args, int row_tiles, cudaStream_t stream);
cudaError_t LaunchPrefillAttentionBf16(const AttentionArgs& args, int row_tiles, cudaStream_t stream);
// The fp32 attention kernel (prefill_attention_fp32.cu): kRowBlock rows per block, SIMT.
cudaError_t LaunchPrefillAttentionFp32(const AttentionArgs& args, cudaStream_t stream);

// The block selection (prefill_select.cu): mean keys into args.mean_keys, then args.kept.
cudaError_t LaunchBlockSelection(const SelectArgs& args, cudaStream_t stream);
int MaxSelectBlocksPerCta();

// The row selections (prefill_rows.cu): hash's from the keys' buckets (method state) and the raw
// queries'; hyper's from the keys sorted by LaunchHyperSort (once per step, before the slabs).
cudaError_t LaunchHashSelection(const RowSelectArgs& args, cudaStream_t stream);
cudaError_t LaunchHyperSort(const SortArgs& args, cudaStream_t stream);
cudaError_t LaunchHyperSelection(const RowSelectArgs& args, cudaStream_t stream);
size_t HashSelectSharedBytes(const RowSelectArgs& args);
size_t HyperSelectSharedBytes(const RowSelectArgs& args);

}  // namespace ortsparse::cuda::prefill
