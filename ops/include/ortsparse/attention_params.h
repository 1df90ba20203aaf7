// Plain parameter structs of the CPU attention kernels. Sizes and strides count elements, not
// bytes; every tensor is addressed through its strides, so a kernel reads views of ONNX Runtime
// tensors, scratch buffers or test arrays alike.
#pragma once

#include <cstdint>

#include "ortsparse/data_type.h"

namespace ortsparse {

// Optional mask over [B, Hq, S, L] with numpy broadcasting expressed as zero strides. Column j is
// key position j of the cache; columns at or beyond `length` are masked out.
struct AttentionMask {
  const void* data = nullptr;  // nullptr: no mask
  DataType type = DataType::kBool;  // kBool (false masks the key) or the attention type (added)
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
  int64_t row_stride = 0;
  int64_t length = 0;  // L, the number of columns; the column stride is 1
};

// Cache positions [begin, end).
struct KeySpan {
  int32_t begin = 0;
  int32_t end = 0;
};

// The keys a sparse method selected. The work is cut into tiles of (sequence b, heads_per_tile
// adjacent query heads, rows_per_tile query rows), numbered
//   tile = (b * (Hq / heads_per_tile) + head_tile) * ceil(S / rows_per_tile) + row_tile;
// tile t attends the keys of spans[span_offsets[t], span_offsets[t + 1]), sorted and disjoint, and
// each of its rows only those among them that it may see.
struct KeySelection {
  int64_t heads_per_tile = 0;  // the group of one KV head (Hq / Hkv), or 1
  int64_t rows_per_tile = 0;
  const int64_t* span_offsets = nullptr;  // [tile count + 1]
  const KeySpan* spans = nullptr;
};

// out[b, i, h, :] = softmax(scale * q[b, i, h, :] · K[b, h / group, j, :] (+ softcap, mask)) · V[...]
// for the keys j that row i of sequence b may see (and that the selection holds, if any).
struct AttentionParams {
  DataType type = DataType::kFloat32;  // storage of query, caches, output and an additive mask
  int64_t batch = 0;                   // B
  int64_t query_length = 0;            // S
  int64_t num_heads = 0;               // Hq
  int64_t kv_num_heads = 0;            // Hkv, divides Hq; query head h reads KV head h / (Hq / Hkv)
  int64_t head_size = 0;               // D
  int64_t v_head_size = 0;             // Dv

  const void* query = nullptr;  // [b, i, h, d] at b * strides[0] + i * strides[1] + h * strides[2] + d
  int64_t query_strides[3] = {};
  const void* key_cache = nullptr;  // [b, h, j, d] at b * strides[0] + h * strides[1] + j * strides[2] + d
  int64_t key_strides[3] = {};
  const void* value_cache = nullptr;  // [b, h, j, d], as key_cache with Dv
  int64_t value_strides[3] = {};
  void* output = nullptr;  // [b, i, h, d], as query with Dv
  int64_t output_strides[3] = {};

  // Per sequence b: query row i sits at position past_lengths[b] + i; keys at or beyond
  // key_counts[b] are never seen; rows at or beyond valid_query_rows[b] produce zeros.
  const int32_t* past_lengths = nullptr;
  const int32_t* key_counts = nullptr;
  const int32_t* valid_query_rows = nullptr;

  float scale = 1.0f;
  float softcap = 0.0f;        // > 0: softcap * tanh(score / softcap), before the mask
  bool causal = true;          // row i sees keys j <= past + i
  int64_t local_window = -1;   // > 0: row i also needs j > past + i - local_window
  AttentionMask mask;
  const KeySelection* selection = nullptr;  // null: every visible key (dense attention)
};

// Rotary embedding tables and the positions they are looked up at.
struct RotaryEmbedding {
  const void* cos_cache = nullptr;  // [max_position, rotary_dim / 2], the attention type
  const void* sin_cache = nullptr;
  int64_t max_position = 0;
  int64_t rotary_dim = 0;  // R: even, <= head size; dimensions from R on pass through unchanged
  bool interleaved = false;  // rotate (x[2i], x[2i+1]) rather than (x[i], x[i + R/2])
  // Position of row i of sequence b: position_ids[b * position_ids_batch_stride + i], or
  // past_lengths[b] + i without position ids.
  const int64_t* position_ids = nullptr;
  int64_t position_ids_batch_stride = 0;
};

// output[b, i, h, :] = rotate(input[b, i, h, :]) for the rows i < row_counts[b].
struct RotaryParams {
  DataType type = DataType::kFloat32;
  int64_t batch = 0;
  int64_t sequence_length = 0;
  int64_t num_heads = 0;
  int64_t head_size = 0;
  const void* input = nullptr;  // [b, i, h, d], strides as AttentionParams::query
  int64_t input_strides[3] = {};
  void* output = nullptr;  // may equal input (rotation in place)
  int64_t output_strides[3] = {};
  const int32_t* past_lengths = nullptr;
  const int32_t* row_counts = nullptr;
  RotaryEmbedding embedding;
};

// Writes the present cache of one of key or value, for every sequence b and head h:
//   rows [0, past_lengths[b])                    copied from the past (skipped in place)
//   rows [past_lengths[b], + append_counts[b])   the new rows (rotated first when rotary is set)
//   rows from there up to present_length         zeroed (left as they are in place)
struct KvAppendParams {
  DataType type = DataType::kFloat32;
  int64_t batch = 0;
  int64_t kv_num_heads = 0;
  int64_t head_size = 0;
  int64_t present_length = 0;
  const void* past = nullptr;  // [b, h, j, d], strides as AttentionParams::key_cache; may be null
  int64_t past_strides[3] = {};  //   when every past length is 0
  const void* new_rows = nullptr;  // [b, i, h, d], strides as AttentionParams::query
  int64_t new_rows_strides[3] = {};
  void* present = nullptr;  // [b, h, j, d]
  int64_t present_strides[3] = {};
  bool in_place = false;  // present is the past's buffer: only the new rows are written
  const int32_t* past_lengths = nullptr;
  const int32_t* append_counts = nullptr;
  const RotaryEmbedding* rotary = nullptr;  // keys of a do_rotary op; null for values
};

}  // namespace ortsparse
