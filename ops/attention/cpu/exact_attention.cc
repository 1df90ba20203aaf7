#include "attention/cpu/exact_attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <vector>

#include "attention/cpu/cpu_features.h"
#include "attention/cpu/element.h"
#include "attention/cpu/key_range.h"
#include "attention/cpu/vector_math.h"

namespace ortsparse::cpu {
namespace {

constexpr int64_t kKeyBlock = 64;            // keys per online-softmax step; K/V block stays in L1/L2
constexpr int64_t kTileQueryVectors = 32;    // (row, head) pairs sharing each K/V block
constexpr int64_t kMinChunkKeys = 256;       // flash-decoding chunks no shorter than this
constexpr int64_t kTargetWorkItems = 64;     // enough items to balance a pool of a few dozen threads
constexpr float kMinusInfinity = -std::numeric_limits<float>::infinity();

// How the work is cut: tiles of (sequence b, query heads sharing a key set, block of query rows),
// numbered as KeySelection describes, each split into the same number of key chunks. A tile's
// query vectors are its rows times its heads. Dense tiles take a KV head's whole group.
struct WorkLayout {
  int64_t group_size = 0;      // query heads per KV head
  int64_t heads_per_tile = 0;  // group_size, or 1 for a selection made per query head
  int64_t head_tiles = 0;      // per sequence
  int64_t rows_per_tile = 0;
  int64_t row_tiles = 0;  // per (b, head tile)
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

// A tile's keys, as a list of spans; the chunks of a tile split the list, not the positions.
struct Tile {
  int64_t batch;
  int64_t kv_head;
  int64_t first_head;
  int64_t row_begin;
  int64_t row_end;
  const KeySpan* spans;  // the selection's, or &dense_keys
  int64_t span_count;
  int64_t key_count;    // keys in all spans
  KeySpan dense_keys;   // without a selection: the union of the rows' visible keys
};

// Tile and its selected keys; the spans point into `tile` itself for dense attention, so a Tile
// is filled in place and never copied.
void DescribeTile(const AttentionParams& p, const WorkLayout& layout, int64_t tile_index, Tile* tile) {
  tile->batch = tile_index / (layout.head_tiles * layout.row_tiles);
  tile->first_head = tile_index / layout.row_tiles % layout.head_tiles * layout.heads_per_tile;
  tile->kv_head = tile->first_head / layout.group_size;
  tile->row_begin = tile_index % layout.row_tiles * layout.rows_per_tile;
  tile->row_end = std::min(tile->row_begin + layout.rows_per_tile, p.query_length);
  if (p.selection != nullptr) {
    const int64_t first = p.selection->span_offsets[tile_index];
    tile->spans = p.selection->spans + first;
    tile->span_count = p.selection->span_offsets[tile_index + 1] - first;
    tile->key_count = 0;
    for (int64_t s = 0; s < tile->span_count; ++s) tile->key_count += tile->spans[s].end - tile->spans[s].begin;
    return;
  }
  KeyRange keys = {std::numeric_limits<int64_t>::max(), 0};
  for (int64_t row = tile->row_begin; row < tile->row_end; ++row) {
    const KeyRange visible = VisibleKeys(p, tile->batch, row);
    if (visible.empty()) continue;
    keys.begin = std::min(keys.begin, visible.begin);
    keys.end = std::max(keys.end, visible.end);
  }
  if (keys.empty()) keys = {};
  tile->dense_keys = {static_cast<int32_t>(keys.begin), static_cast<int32_t>(keys.end)};
  tile->spans = &tile->dense_keys;
  tile->span_count = 1;
  tile->key_count = keys.end - keys.begin;
}

// Chunk `chunk` of a tile, as a range of indices into its list of keys.
KeyRange ChunkOf(int64_t key_count, int64_t chunk, int64_t chunk_count) {
  const int64_t length = (key_count + chunk_count - 1) / chunk_count;
  const int64_t begin = std::min(key_count, chunk * length);
  return {begin, std::min(key_count, begin + length)};
}

WorkLayout PlanWork(const AttentionParams& p) {
  WorkLayout layout;
  layout.group_size = p.num_heads / p.kv_num_heads;
  if (p.selection != nullptr) {
    layout.heads_per_tile = p.selection->heads_per_tile;
    layout.rows_per_tile = p.selection->rows_per_tile;
  } else {
    layout.heads_per_tile = layout.group_size;
    layout.rows_per_tile = std::max<int64_t>(1, std::min(p.query_length, kTileQueryVectors / layout.group_size));
  }
  layout.head_tiles = p.num_heads / layout.heads_per_tile;
  layout.row_tiles = (p.query_length + layout.rows_per_tile - 1) / layout.rows_per_tile;
  layout.tile_count = p.batch * layout.head_tiles * layout.row_tiles;
  layout.vectors_per_tile = layout.rows_per_tile * layout.heads_per_tile;
  int64_t longest_tile = 0;
  if (p.selection != nullptr) {
    const KeySpan* spans = p.selection->spans;
    for (int64_t t = 0; t < layout.tile_count; ++t) {
      int64_t keys = 0;
      for (int64_t s = p.selection->span_offsets[t]; s < p.selection->span_offsets[t + 1]; ++s) {
        keys += spans[s].end - spans[s].begin;
      }
      longest_tile = std::max(longest_tile, keys);
    }
  } else {
    for (int64_t b = 0; b < p.batch; ++b) longest_tile = std::max<int64_t>(longest_tile, p.key_counts[b]);
  }
  layout.chunks_per_tile = 1;
  if (layout.tile_count > 0 && layout.tile_count < kTargetWorkItems) {
    const int64_t wanted = (kTargetWorkItems + layout.tile_count - 1) / layout.tile_count;
    layout.chunks_per_tile = std::max<int64_t>(1, std::min(wanted, longest_tile / kMinChunkKeys));
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

// A run of consecutive cache positions inside a key block: positions [position, position + count)
// sit in the block's slots [slot, slot + count).
struct BlockPiece {
  int64_t position;
  int64_t count;
  int64_t slot;
};

// Copies the pieces' key and value rows, as fp32, into consecutive slots of the workspace blocks.
// Scattered rows defeat the hardware prefetchers, so both rows of a key are asked for a few keys
// ahead of their copy.
template <typename T>
ORTSPARSE_ALWAYS_INLINE void GatherAsFloat(const T* key_rows, int64_t key_stride, int64_t key_width,
                                           const T* value_rows, int64_t value_stride, int64_t value_width,
                                           const BlockPiece* pieces, int64_t piece_count, float* key_block,
                                           float* value_block) {
  constexpr int64_t kPrefetchKeys = 12;
  constexpr int64_t kLineElements = 64 / sizeof(T);
  int64_t ahead_piece = 0, ahead_row = 0;  // the key asked for next
  auto prefetch_next = [&] {
    if (ahead_piece == piece_count) return;
    const int64_t position = pieces[ahead_piece].position + ahead_row;
    for (int64_t e = 0; e < key_width; e += kLineElements) __builtin_prefetch(key_rows + position * key_stride + e);
    for (int64_t e = 0; e < value_width; e += kLineElements) __builtin_prefetch(value_rows + position * value_stride + e);
    if (++ahead_row == pieces[ahead_piece].count) {
      ++ahead_piece;
      ahead_row = 0;
    }
  };
  for (int64_t i = 0; i < kPrefetchKeys; ++i) prefetch_next();
  for (int64_t p = 0; p < piece_count; ++p) {
    for (int64_t j = 0; j < pieces[p].count; ++j) {
      prefetch_next();
      const int64_t position = pieces[p].position + j, slot = pieces[p].slot + j;
      RowToFloat(key_rows + position * key_stride, key_width, key_block + slot * key_width);
      RowToFloat(value_rows + position * value_stride, value_width, value_block + slot * value_width);
    }
  }
}

// Walks one chunk of a tile's list of keys, a block of up to kKeyBlock keys at a time.
class KeyCursor {
 public:
  KeyCursor(const Tile& tile, KeyRange chunk) : tile_(tile), done_(chunk.begin), end_(chunk.end) {
    if (chunk.empty()) return;
    int64_t listed = 0;  // keys in the spans before span_
    while (listed + (tile.spans[span_].end - tile.spans[span_].begin) <= chunk.begin) {
      listed += tile.spans[span_].end - tile.spans[span_].begin;
      ++span_;
    }
    position_ = tile.spans[span_].begin + (chunk.begin - listed);
  }

  // Fills `pieces` with the next block and returns its size, 0 at the end.
  int64_t NextBlock(BlockPiece* pieces, int64_t* piece_count) {
    *piece_count = 0;
    int64_t size = 0;
    while (size < kKeyBlock && done_ < end_) {
      const int64_t take = std::min({tile_.spans[span_].end - position_, kKeyBlock - size, end_ - done_});
      pieces[(*piece_count)++] = {position_, take, size};
      size += take;
      done_ += take;
      position_ += take;
      if (position_ == tile_.spans[span_].end && span_ + 1 < tile_.span_count) position_ = tile_.spans[++span_].begin;
    }
    return size;
  }

 private:
  const Tile& tile_;
  int64_t done_;
  int64_t end_;
  int64_t span_ = 0;
  int64_t position_ = 0;
};

// The slots of a block whose positions lie in `visible`: one run, as the pieces are sorted.
ORTSPARSE_ALWAYS_INLINE KeyRange VisibleSlots(const BlockPiece* pieces, int64_t piece_count, KeyRange visible) {
  KeyRange slots = {0, 0};
  int64_t p = 0;
  while (p < piece_count && pieces[p].position + pieces[p].count <= visible.begin) ++p;
  if (p == piece_count) return slots;
  slots.begin = pieces[p].slot + std::max<int64_t>(0, visible.begin - pieces[p].position);
  int64_t last = piece_count - 1;
  while (last >= p && pieces[last].position >= visible.end) --last;
  if (last < p) return {};
  slots.end = pieces[last].slot + std::min(pieces[last].count, visible.end - pieces[last].position);
  return slots;
}

// Adds the mask of (b, head, row) to the scores of slots [slots.begin, slots.end).
ORTSPARSE_ALWAYS_INLINE void ApplyMaskToSlots(const AttentionMask& mask, int64_t b, int64_t head, int64_t row,
                                              const BlockPiece* pieces, int64_t piece_count, KeyRange slots,
                                              float* scores) {
  for (int64_t p = 0; p < piece_count; ++p) {
    const int64_t begin = std::max(slots.begin, pieces[p].slot);
    const int64_t end = std::min(slots.end, pieces[p].slot + pieces[p].count);
    if (begin >= end) continue;
    ApplyMask(mask, b, head, row, pieces[p].position + (begin - pieces[p].slot), end - begin,
              scores + (begin - slots.begin));
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

// The hot loop: one chunk of keys of one tile, leaving every query vector's state in `ws`. Keys
// come in blocks of up to kKeyBlock: one run of positions is read where it lies (converted once if
// fp16), several runs (a selection) are gathered into the workspace first.
template <typename T>
ORTSPARSE_ALWAYS_INLINE void AttendChunkBody(const Job<T>& job, const Tile& tile, KeyRange chunk, const Workspace& ws) {
  const AttentionParams& p = job.params;
  const int64_t group = job.layout.heads_per_tile;
  const int64_t first_head = tile.first_head;
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
  KeyCursor cursor(tile, chunk);
  BlockPiece pieces[kKeyBlock];
  int64_t piece_count = 0;
  for (int64_t block_size; (block_size = cursor.NextBlock(pieces, &piece_count)) > 0;) {
    FloatRows keys{ws.key_block, D};
    FloatRows values{ws.value_block, Dv};
    if (piece_count == 1) {
      keys = BlockAsFloat(key_rows + pieces[0].position * p.key_strides[2], p.key_strides[2], block_size, D,
                          ws.key_block);
      values = BlockAsFloat(value_rows + pieces[0].position * p.value_strides[2], p.value_strides[2], block_size, Dv,
                            ws.value_block);
    } else {
      GatherAsFloat(key_rows, p.key_strides[2], D, value_rows, p.value_strides[2], Dv, pieces, piece_count, ws.key_block,
                    ws.value_block);
    }
    for (int64_t row = tile.row_begin; row < tile.row_end; ++row) {
      const KeyRange slots = VisibleSlots(pieces, piece_count, VisibleKeys(p, tile.batch, row));
      if (slots.empty()) continue;
      const int64_t count = slots.end - slots.begin;
      for (int64_t g = 0; g < group; ++g) {
        const int64_t vector = (row - tile.row_begin) * group + g;
        const float* q = ws.queries + vector * D;
        DotRows(q, keys.data + slots.begin * keys.stride, keys.stride, count, D, ws.scores);
        if (p.softcap > 0.0f) {
          for (int64_t j = 0; j < count; ++j) ws.scores[j] = p.softcap * std::tanh(ws.scores[j] / p.softcap);
        }
        if (p.mask.data != nullptr) {
          ApplyMaskToSlots(p.mask, tile.batch, first_head + g, row, pieces, piece_count, slots, ws.scores);
        }
        const FloatRows visible_values{values.data + slots.begin * values.stride, values.stride};
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
           (tile.first_head + g) * p.output_strides[2];
  const float inverse = sum > 0.0f ? 1.0f / sum : 0.0f;  // a row that saw no key produces zeros
  for (int64_t d = 0; d < p.v_head_size; ++d) out[d] = FromFloat<T>(accumulator[d] * inverse);
}

template <typename T>
void RunChunk(Job<T>& job, int64_t tile_index, int64_t chunk_index) {
  const AttentionParams& p = job.params;
  Tile tile;
  DescribeTile(p, job.layout, tile_index, &tile);
  Workspace ws;
  try {
    ws = Workspace::ForThisThread(p, job.layout);
  } catch (const std::bad_alloc&) {
    job.out_of_memory = true;
    return;
  }
  const KeyRange chunk = ChunkOf(tile.key_count, chunk_index, job.layout.chunks_per_tile);
  if (UseAvx2FmaKernels()) {
    AttendChunkAvx2(job, tile, chunk, ws);
  } else {
    AttendChunkBaseline(job, tile, chunk, ws);
  }

  const int64_t group = job.layout.heads_per_tile;
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
  Tile tile;
  DescribeTile(p, job.layout, tile_index, &tile);
  const int64_t Dv = p.v_head_size;
  const int64_t record_stride = PartialLayout{Dv}.stride();
  const int64_t chunks = job.layout.chunks_per_tile;
  const int64_t chunk_stride = job.layout.vectors_per_tile * record_stride;
  const int64_t group = job.layout.heads_per_tile;
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
Status RunExactAttention(const AttentionParams& p, const ParallelRunner& runner) {
  Job<T> job{p, PlanWork(p), nullptr};
  const WorkLayout& layout = job.layout;
  std::unique_ptr<float[]> partials;  // every chunk writes its records before they are merged
  if (layout.chunks_per_tile > 1) {
    partials.reset(new float[static_cast<size_t>(layout.tile_count * layout.chunks_per_tile *
                                                 layout.vectors_per_tile * PartialLayout{p.v_head_size}.stride())]);
    job.partials = partials.get();
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

Status ExactAttention(const AttentionParams& params, const ParallelRunner& runner) {
  return VisitAttentionType(params.type, [&](auto element) {
    return RunExactAttention<decltype(element)>(params, runner);
  });
}

}  // namespace ortsparse::cpu
