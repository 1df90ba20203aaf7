#include "attention/cpu/dense_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "attention/cpu/cpu_features.h"
#include "attention/cpu/element.h"
#include "attention/cpu/vector_math.h"

namespace ortsparse::cpu {
namespace {

constexpr int64_t kKeyBlock = 64;            // keys per online-softmax step; K/V block stays in L1/L2
constexpr int64_t kTileQueryVectors = 32;    // (row, head) pairs sharing each K/V block
constexpr int64_t kMinChunkKeys = 256;       // flash-decoding chunks no shorter than this
constexpr int64_t kTargetWorkItems = 64;     // enough items to balance a pool of a few dozen threads
constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();

struct KeyRange {
  int64_t begin = 0;
  int64_t end = 0;
  bool empty() const { return begin >= end; }
};

// How the work is cut: tiles of (sequence b, KV head, block of query rows), each split into the
// same number of key chunks. A tile's query vectors are its rows times the heads of the group.
struct WorkLayout {
  int64_t group_size = 0;
  int64_t rows_per_tile = 0;
  int64_t row_tiles = 0;  // per (b, KV head)
  int64_t tile_count = 0;
  int64_t chunks_per_tile = 0;
  int64_t vectors_per_tile = 0;
};

// Per query vector, a chunk yields the online-softmax state: the accumulator (Dv values, weighted
// by exp(score - max)), the running maximum and the sum of the weights.
struct PartialLayout {
  int64_t v_head_size;
  int64_t stride() const { return v_head_size + 2; }
};

template <typename T>
struct Job {
  const AttentionParams& params;
  WorkLayout layout;
  float* partials;  // [tile][chunk][vector] PartialLayout records; null with one chunk per tile
  std::atomic<bool> out_of_memory{false};

  const T* query() const { return static_cast<const T*>(params.query); }
  const T* keys() const { return static_cast<const T*>(params.key_cache); }
  const T* values() const { return static_cast<const T*>(params.value_cache); }
  T* output() const { return static_cast<T*>(params.output); }
};

// Keys that query row `row` of sequence `b` may see; empty for rows past valid_query_rows[b].
// Both ends are non-decreasing in `row`.
KeyRange VisibleKeys(const AttentionParams& p, int64_t b, int64_t row) {
  if (row >= p.valid_query_rows[b]) return {};
  const int64_t position = p.past_lengths[b] + row;
  int64_t end = p.key_counts[b];
  if (p.mask.data != nullptr) end = std::min(end, p.mask.length);
  if (p.causal) end = std::min(end, position + 1);
  const int64_t begin = p.local_window > 0 ? std::max<int64_t>(0, position - p.local_window + 1) : 0;
  return {begin, std::max(begin, end)};
}

struct Tile {
  int64_t batch;
  int64_t kv_head;
  int64_t row_begin;
  int64_t row_end;
  KeyRange keys;  // union of the rows' visible keys
};

Tile DescribeTile(const AttentionParams& p, const WorkLayout& layout, int64_t tile_index) {
  Tile tile;
  tile.batch = tile_index / (p.kv_num_heads * layout.row_tiles);
  tile.kv_head = tile_index / layout.row_tiles % p.kv_num_heads;
  tile.row_begin = tile_index % layout.row_tiles * layout.rows_per_tile;
  tile.row_end = std::min(tile.row_begin + layout.rows_per_tile, p.query_length);
  tile.keys = {std::numeric_limits<int64_t>::max(), 0};
  for (int64_t row = tile.row_begin; row < tile.row_end; ++row) {
    const KeyRange visible = VisibleKeys(p, tile.batch, row);
    if (visible.empty()) continue;
    tile.keys.begin = std::min(tile.keys.begin, visible.begin);
    tile.keys.end = std::max(tile.keys.end, visible.end);
  }
  if (tile.keys.empty()) tile.keys = {};
  return tile;
}

KeyRange ChunkOf(const KeyRange& keys, int64_t chunk, int64_t chunk_count) {
  const int64_t length = (keys.end - keys.begin + chunk_count - 1) / chunk_count;
  const int64_t begin = std::min(keys.end, keys.begin + chunk * length);
  return {begin, std::min(keys.end, begin + length)};
}

WorkLayout PlanWork(const AttentionParams& p) {
  WorkLayout layout;
  layout.group_size = p.num_heads / p.kv_num_heads;
  layout.rows_per_tile = std::max<int64_t>(1, std::min(p.query_length, kTileQueryVectors / layout.group_size));
  layout.row_tiles = (p.query_length + layout.rows_per_tile - 1) / layout.rows_per_tile;
  layout.tile_count = p.batch * p.kv_num_heads * layout.row_tiles;
  layout.vectors_per_tile = layout.rows_per_tile * layout.group_size;
  int64_t longest_cache = 0;
  for (int64_t b = 0; b < p.batch; ++b) longest_cache = std::max<int64_t>(longest_cache, p.key_counts[b]);
  layout.chunks_per_tile = 1;
  if (layout.tile_count > 0 && layout.tile_count < kTargetWorkItems) {
    const int64_t wanted = (kTargetWorkItems + layout.tile_count - 1) / layout.tile_count;
    layout.chunks_per_tile = std::max<int64_t>(1, std::min(wanted, longest_cache / kMinChunkKeys));
  }
  return layout;
}

// Scratch of one work item, carved from a per-thread buffer that grows to the largest item seen.
struct Workspace {
  float* queries;      // [vector][D], pre-multiplied by the scale
  float* accumulators; // [vector][Dv]
  float* maxima;       // [vector]
  float* sums;         // [vector]
  float* scores;       // [kKeyBlock]
  float* key_block;    // [kKeyBlock][D] fp32 copy of an fp16 block
  float* value_block;  // [kKeyBlock][Dv]

  static size_t FloatCount(const AttentionParams& p, const WorkLayout& layout) {
    const size_t vectors = static_cast<size_t>(layout.vectors_per_tile);
    return vectors * static_cast<size_t>(p.head_size + p.v_head_size + 2) +
           static_cast<size_t>(kKeyBlock * (1 + p.head_size + p.v_head_size));
  }

  // Throws std::bad_alloc when the buffer cannot grow.
  static Workspace ForThisThread(const AttentionParams& p, const WorkLayout& layout) {
    thread_local std::vector<float> buffer;
    buffer.resize(std::max(buffer.size(), FloatCount(p, layout)));
    const int64_t vectors = layout.vectors_per_tile;
    Workspace ws;
    ws.queries = buffer.data();
    ws.accumulators = ws.queries + vectors * p.head_size;
    ws.maxima = ws.accumulators + vectors * p.v_head_size;
    ws.sums = ws.maxima + vectors;
    ws.scores = ws.sums + vectors;
    ws.key_block = ws.scores + kKeyBlock;
    ws.value_block = ws.key_block + kKeyBlock * p.head_size;
    return ws;
  }
};

// A block of cache rows as fp32: fp32 caches are read where they are, fp16 ones are converted
// once per block for the whole group of query heads.
struct FloatRows {
  const float* data;
  int64_t stride;
};

ORTSPARSE_ALWAYS_INLINE FloatRows BlockAsFloat(const float* rows, int64_t stride, int64_t, int64_t, float*) {
  return {rows, stride};
}

ORTSPARSE_ALWAYS_INLINE FloatRows BlockAsFloat(const Float16* rows, int64_t stride, int64_t row_count, int64_t width,
                                               float* scratch) {
  for (int64_t j = 0; j < row_count; ++j) RowToFloat(rows + j * stride, width, scratch + j * width);
  return {scratch, width};
}

template <typename Mask>
ORTSPARSE_ALWAYS_INLINE void AddMask(const Mask* mask_row, int64_t count, float* scores) {
  for (int64_t j = 0; j < count; ++j) scores[j] += ToFloat(mask_row[j]);
}

ORTSPARSE_ALWAYS_INLINE void AddMask(const uint8_t* mask_row, int64_t count, float* scores) {
  for (int64_t j = 0; j < count; ++j) scores[j] = mask_row[j] != 0 ? scores[j] : kMinusInfinity;
}

ORTSPARSE_ALWAYS_INLINE void ApplyMask(const AttentionMask& mask, int64_t b, int64_t head, int64_t row,
                                       int64_t first_key, int64_t count, float* scores) {
  const int64_t offset = b * mask.batch_stride + head * mask.head_stride + row * mask.row_stride + first_key;
  switch (mask.type) {
    case DataType::kBool:
      AddMask(static_cast<const uint8_t*>(mask.data) + offset, count, scores);
      break;
    case DataType::kFloat16:
      AddMask(static_cast<const Float16*>(mask.data) + offset, count, scores);
      break;
    default:
      AddMask(static_cast<const float*>(mask.data) + offset, count, scores);
      break;
  }
}

// Folds one block of scores into a query vector's online-softmax state.
ORTSPARSE_ALWAYS_INLINE void AccumulateBlock(float* scores, int64_t count, FloatRows values, int64_t v_head_size,
                                             float* maximum, float* sum, float* accumulator) {
  const float block_maximum = Max(scores, count);
  if (block_maximum == kMinusInfinity) return;  // every key of the block is masked out
  if (block_maximum > *maximum) {
    const float rescale = ExpNonPositive(*maximum - block_maximum);  // 0 while nothing was seen
    *sum *= rescale;
    ScaleInPlace(accumulator, v_head_size, rescale);
    *maximum = block_maximum;
  }
  for (int64_t j = 0; j < count; ++j) scores[j] -= *maximum;
  ExpNonPositiveInPlace(scores, count);
  *sum += Sum(scores, count);
  AccumulateWeightedRows(scores, values.data, values.stride, count, v_head_size, accumulator);
}

// The hot loop: one chunk of keys of one tile, leaving every query vector's state in `ws`.
template <typename T>
ORTSPARSE_ALWAYS_INLINE void AttendChunkBody(const Job<T>& job, const Tile& tile, KeyRange chunk, const Workspace& ws) {
  const AttentionParams& p = job.params;
  const int64_t group = job.layout.group_size;
  const int64_t first_head = tile.kv_head * group;
  const int64_t D = p.head_size;
  const int64_t Dv = p.v_head_size;
  const int64_t vectors = (tile.row_end - tile.row_begin) * group;

  for (int64_t row = tile.row_begin; row < tile.row_end; ++row) {
    for (int64_t g = 0; g < group; ++g) {
      const int64_t vector = (row - tile.row_begin) * group + g;
      const T* q = job.query() + tile.batch * p.query_strides[0] + row * p.query_strides[1] +
                   (first_head + g) * p.query_strides[2];
      float* scaled = ws.queries + vector * D;
      RowToFloat(q, D, scaled);
      ScaleInPlace(scaled, D, p.scale);
    }
  }
  std::fill(ws.accumulators, ws.accumulators + vectors * Dv, 0.0f);
  std::fill(ws.maxima, ws.maxima + vectors, kMinusInfinity);
  std::fill(ws.sums, ws.sums + vectors, 0.0f);

  const T* key_rows = job.keys() + tile.batch * p.key_strides[0] + tile.kv_head * p.key_strides[1];
  const T* value_rows = job.values() + tile.batch * p.value_strides[0] + tile.kv_head * p.value_strides[1];
  for (int64_t block_begin = chunk.begin; block_begin < chunk.end; block_begin += kKeyBlock) {
    const int64_t block_end = std::min(chunk.end, block_begin + kKeyBlock);
    const FloatRows keys = BlockAsFloat(key_rows + block_begin * p.key_strides[2], p.key_strides[2],
                                        block_end - block_begin, D, ws.key_block);
    const FloatRows values = BlockAsFloat(value_rows + block_begin * p.value_strides[2], p.value_strides[2],
                                          block_end - block_begin, Dv, ws.value_block);
    for (int64_t row = tile.row_begin; row < tile.row_end; ++row) {
      const KeyRange visible = VisibleKeys(p, tile.batch, row);
      const int64_t begin = std::max(block_begin, visible.begin);
      const int64_t end = std::min(block_end, visible.end);
      if (begin >= end) continue;
      const int64_t count = end - begin;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t vector = (row - tile.row_begin) * group + g;
        const float* q = ws.queries + vector * D;
        DotRows(q, keys.data + (begin - block_begin) * keys.stride, keys.stride, count, D, ws.scores);
        if (p.softcap > 0.0f) {
          for (int64_t j = 0; j < count; ++j) ws.scores[j] = p.softcap * std::tanh(ws.scores[j] / p.softcap);
        }
        if (p.mask.data != nullptr) ApplyMask(p.mask, tile.batch, first_head + g, row, begin, count, ws.scores);
        const FloatRows visible_values{values.data + (begin - block_begin) * values.stride, values.stride};
        AccumulateBlock(ws.scores, count, visible_values, Dv, ws.maxima + vector, ws.sums + vector,
                        ws.accumulators + vector * Dv);
      }
    }
  }
}

template <typename T>
ORTSPARSE_TARGET_AVX2_FMA void AttendChunkAvx2(const Job<T>& job, const Tile& tile, KeyRange chunk,
                                               const Workspace& ws) {
  AttendChunkBody(job, tile, chunk, ws);
}

template <typename T>
void AttendChunkBaseline(const Job<T>& job, const Tile& tile, KeyRange chunk, const Workspace& ws) {
  AttendChunkBody(job, tile, chunk, ws);
}

template <typename T>
void WriteOutputRow(const Job<T>& job, const Tile& tile, int64_t row, int64_t g, const float* accumulator,
                    float sum) {
  const AttentionParams& p = job.params;
  T* out = job.output() + tile.batch * p.output_strides[0] + row * p.output_strides[1] +
           (tile.kv_head * job.layout.group_size + g) * p.output_strides[2];
  const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;  // a row that saw no key produces zeros
  for (int64_t d = 0; d < p.v_head_size; ++d) out[d] = FromFloat<T>(accumulator[d] * inverse);
}

template <typename T>
void RunChunk(Job<T>& job, int64_t tile_index, int64_t chunk_index) {
  const AttentionParams& p = job.params;
  const Tile tile = DescribeTile(p, job.layout, tile_index);
  Workspace ws;
  try {
    ws = Workspace::ForThisThread(p, job.layout);
  } catch (const std::bad_alloc&) {
    job.out_of_memory = true;
    return;
  }
  const KeyRange chunk = ChunkOf(tile.keys, chunk_index, job.layout.chunks_per_tile);
  if (UseAvx2FmaKernels()) {
    AttendChunkAvx2(job, tile, chunk, ws);
  } else {
    AttendChunkBaseline(job, tile, chunk, ws);
  }

  const int64_t group = job.layout.group_size;
  const int64_t vectors = (tile.row_end - tile.row_begin) * group;
  if (job.partials == nullptr) {
    for (int64_t vector = 0; vector < vectors; ++vector) {
      WriteOutputRow(job, tile, tile.row_begin + vector / group, vector % group,
                     ws.accumulators + vector * p.v_head_size, ws.sums[vector]);
    }
    return;
  }
  const PartialLayout partial{p.v_head_size};
  float* records = job.partials + (tile_index * job.layout.chunks_per_tile + chunk_index) *
                                      job.layout.vectors_per_tile * partial.stride();
  for (int64_t vector = 0; vector < vectors; ++vector) {
    float* record = records + vector * partial.stride();
    std::memcpy(record, ws.accumulators + vector * p.v_head_size, sizeof(float) * p.v_head_size);
    record[p.v_head_size] = ws.maxima[vector];
    record[p.v_head_size + 1] = ws.sums[vector];
  }
}

// Merges the chunks' states of every query vector of a tile and writes the output rows.
template <typename T>
void CombineChunks(Job<T>& job, int64_t tile_index) {
  const AttentionParams& p = job.params;
  const Tile tile = DescribeTile(p, job.layout, tile_index);
  const int64_t Dv = p.v_head_size;
  const int64_t record_stride = PartialLayout{Dv}.stride();
  const int64_t chunks = job.layout.chunks_per_tile;
  const int64_t chunk_stride = job.layout.vectors_per_tile * record_stride;
  const int64_t group = job.layout.group_size;
  const int64_t vectors = (tile.row_end - tile.row_begin) * group;
  for (int64_t vector = 0; vector < vectors; ++vector) {
    // The first chunk's record becomes the merged one.
    float* merged = job.partials + tile_index * chunks * chunk_stride + vector * record_stride;
    float maximum = kMinusInfinity;
    for (int64_t c = 0; c < chunks; ++c) maximum = std::max(maximum, merged[c * chunk_stride + Dv]);
    float sum = 0.0f;
    if (maximum != kMinusInfinity) {
      const float first_weight = ExpNonPositive(merged[Dv] - maximum);
      sum = first_weight * merged[Dv + 1];
      ScaleInPlace(merged, Dv, first_weight);
      for (int64_t c = 1; c < chunks; ++c) {
        const float* record = merged + c * chunk_stride;
        const float weight = ExpNonPositive(record[Dv] - maximum);
        sum += weight * record[Dv + 1];
        for (int64_t d = 0; d < Dv; ++d) merged[d] += weight * record[d];
      }
    }
    WriteOutputRow(job, tile, tile.row_begin + vector / group, vector % group, merged, sum);
  }
}

template <typename T>
Status RunDenseAttention(const AttentionParams& p, const ParallelRunner& runner) {
  Job<T> job{p, PlanWork(p), nullptr};
  const WorkLayout& layout = job.layout;
  std::vector<float> partials;
  if (layout.chunks_per_tile > 1) {
    partials.resize(static_cast<size_t>(layout.tile_count * layout.chunks_per_tile * layout.vectors_per_tile *
                                        PartialLayout{p.v_head_size}.stride()));
    job.partials = partials.data();
  }
  auto run_chunk = [&job](size_t item) {
    RunChunk(job, static_cast<int64_t>(item) / job.layout.chunks_per_tile,
             static_cast<int64_t>(item) % job.layout.chunks_per_tile);
  };
  ParallelFor(runner, static_cast<size_t>(layout.tile_count * layout.chunks_per_tile), run_chunk);
  if (job.out_of_memory) return Status::Error("SparseAttention: out of memory for the attention scratch buffers");
  if (job.partials != nullptr) {
    auto combine = [&job](size_t tile) { CombineChunks(job, static_cast<int64_t>(tile)); };
    ParallelFor(runner, static_cast<size_t>(layout.tile_count), combine);
  }
  return Status::Ok();
}

}  // namespace

Status DenseAttention(const AttentionParams& params, const ParallelRunner& runner) {
  return VisitAttentionType(params.type, [&](auto element) {
    return RunDenseAttention<decltype(element)>(params, runner);
  });
}

}  // namespace ortsparse::cpu
