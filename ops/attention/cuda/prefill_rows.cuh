// Device helpers of the prefill kernels (attention and selection): which keys a query row may see,
// and where the selections lie (kept key tiles per block of rows, the keys of each row).
#pragma once

#include <climits>

#include "attention/cuda/cuda_common.cuh"
#include "attention/cuda/prefill_kernels.h"

namespace ortsparse::cuda::prefill {

// The lengths of sequence b that the visibility of its rows depends on, read once.
struct SequenceView {
  int valid;    // rows at or beyond it see nothing
  int past;     // row i sits at position past + i
  int key_end;  // keys at or beyond it are never seen (the cache's keys, the mask's columns)
  int window;   // local window, 0 without
  bool causal;

  __device__ __forceinline__ SequenceView(const AttentionParams& a, int b)
      : valid(min(static_cast<int>(a.query_length), a.valid_query_rows[b])),
        past(a.past_lengths[b]),
        key_end(a.mask.data != nullptr ? static_cast<int>(Smaller<int64_t>(a.key_counts[b], a.mask.length))
                                       : a.key_counts[b]),
        window(a.local_window > 0 ? static_cast<int>(Smaller<int64_t>(a.local_window, INT_MAX)) : 0),
        causal(a.causal) {}

  // Keys [begin, end) that row `row` sees (the CPU's VisibleKeys); empty past the valid rows. Both
  // ends are non-decreasing in the row.
  __device__ __forceinline__ void Visible(int row, int& begin, int& end) const {
    begin = 0;
    end = 0;
    if (row >= valid) return;
    const int position = past + row;
    end = causal ? min(key_end, position + 1) : key_end;
    begin = window > 0 ? max(0, position - window + 1) : 0;
    end = max(end, begin);
  }
};

// The row of `kept` that the attention block of query head h, sequence b and first row r0 reads,
// or null without a tile selection.
__device__ __forceinline__ const uint32_t* KeptRow(const AttentionArgs& args, int b, int h, int r0) {
  if (args.kept == nullptr) return nullptr;
  const int64_t owners = args.attention.num_heads / args.kept_group;  // rows of `kept` per sequence and query block
  const int64_t query_block = (r0 - args.row_begin) / args.block_size;
  return args.kept + ((b * owners + h / args.kept_group) * args.query_blocks + query_block) * args.words;
}

// The first key tile (kKeysPerTile keys) at or after t, at most last_tile, that `kept` holds;
// last_tile + 1 when none is left. Every tile without a selection.
__device__ __forceinline__ int NextKeptTile(const AttentionArgs& args, const uint32_t* kept, int t, int last_tile) {
  if (kept == nullptr || t > last_tile) return t;
  const int last_block = last_tile / args.tiles_per_block;
  int c = t / args.tiles_per_block;
  while (c <= last_block) {
    const uint32_t word = __ldg(kept + c / 32) >> (c % 32);
    if (word != 0) {
      c += __ffs(static_cast<int>(word)) - 1;
      break;
    }
    c = (c / 32 + 1) * 32;
  }
  if (c > last_block) return last_tile + 1;
  return max(t, c * args.tiles_per_block);
}

// The words of row `row`'s key bitmap (a row selection), or null without one.
__device__ __forceinline__ const uint32_t* RowKeyWords(const AttentionArgs& args, int b, int h, int row) {
  if (args.row_keys == nullptr) return nullptr;
  const int64_t kv_head = h / args.group;
  return args.row_keys + ((b * args.attention.kv_num_heads + kv_head) * args.slab_rows + (row - args.row_begin)) *
                             static_cast<int64_t>(args.row_words);
}

}  // namespace ortsparse::cuda::prefill
