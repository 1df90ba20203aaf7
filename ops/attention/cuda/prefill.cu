// Host side of a prefill step: the support check, the plan (launch sizes and workspace layout,
// from host-known capacities only) and the launches:
//   dense and the decode-only methods: attention
//   block:                             mean keys, block selection, block-sparse attention
//   hash:                              per slab of rows: row selection, row-sparse attention
//   hyper:                             key codes and their sort, then per slab as hash
// Row selections keep a bitmap over the keys per row; the rows are cut into slabs so that those
// bitmaps stay within kRowSelectionBudget bytes, and each slab is selected and attended in turn.
#include <algorithm>
#include <cstdint>

#include "attention/cuda/cuda_common.cuh"
#include "attention/cuda/prefill_kernels.h"
#include "ortsparse/cuda_attention.h"

namespace ortsparse::cuda {
namespace {

constexpr const char* kOp = "SparseAttention (CUDA prefill): ";
// Attention blocks of 4 warps; block-sparse ones cover 64 rows (one 16-row tile per warp) so that a
// block's rows lie in one query block, dense ones 128 (two tiles per warp: half the shared-memory
// reads per product).
constexpr int kAttentionWarps = 4;
constexpr int kSparseRowTiles = 1;
constexpr int kDenseRowTiles = 2;
constexpr int64_t kRowsPerBlock = kAttentionWarps * prefill::kRowsPerWarp;  // the fewest rows of a block
static_assert(kRowsPerBlock * kSparseRowTiles == prefill::kRowBlock,
              "a sparse attention block covers the rows of one row-selection block");
constexpr size_t kWorkspaceAlignment = 256;
// Selection blocks handle several query blocks while their shared memory stays within this.
constexpr size_t kSelectSharedBudget = 96 * 1024;
// Row selections: the bitmaps of one slab of rows take at most this much (or one block of rows).
// Slabs of a few thousand rows at long contexts (2,048 rows of a 128k cache with 8 KV heads) keep
// the attention's grids a few waves deep.
constexpr size_t kRowSelectionBudget = size_t{256} << 20;

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
size_t Aligned(size_t bytes) { return (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment; }

const char* MethodName(SparseMethod method) {
  switch (method) {
    case SparseMethod::kDense: return "dense";
    case SparseMethod::kTopK: return "topk";
    case SparseMethod::kStreaming: return "streaming";
    case SparseMethod::kLoki: return "loki";
    case SparseMethod::kQuest: return "quest";
    case SparseMethod::kSaap: return "saap";
    case SparseMethod::kHash: return "hash";
    case SparseMethod::kBlock: return "block";
    case SparseMethod::kHyper: return "hyper";
  }
  return "unknown";
}

enum class PlanKind { kDense, kBlock, kHash, kHyper };

PlanKind KindOf(SparseMethod method) {
  switch (method) {
    case SparseMethod::kBlock: return PlanKind::kBlock;
    case SparseMethod::kHash: return PlanKind::kHash;
    case SparseMethod::kHyper: return PlanKind::kHyper;
    default: return PlanKind::kDense;  // dense, and the decode-only methods (their prefill is exact)
  }
}

struct Plan {
  PlanKind kind = PlanKind::kDense;
  prefill::AttentionArgs attention{};
  prefill::SelectArgs select{};     // block
  prefill::RowSelectArgs rows{};    // hash, hyper (row_begin set per slab)
  prefill::SortArgs sort{};         // hyper
  int row_tiles = kSparseRowTiles;  // 16-bit kernels: 16-row tiles per warp
  int64_t rows_per_attention_block = kRowsPerBlock;
  size_t workspace_bytes = 0;
};

// Carves `bytes` off the workspace (null when sizing only).
class WorkspaceCarver {
 public:
  explicit WorkspaceCarver(void* base) : base_(static_cast<char*>(base)) {}
  template <typename T>
  T* Take(size_t bytes) {
    T* piece = base_ == nullptr ? nullptr : reinterpret_cast<T*>(base_ + used_);
    used_ += Aligned(bytes);
    return piece;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

Plan MakePlan(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity, void* workspace) {
  Plan plan;
  plan.kind = KindOf(m.method);
  prefill::AttentionArgs& args = plan.attention;
  args.attention = a;
  args.attention.selection = nullptr;
  args.group = static_cast<int>(a.num_heads / a.kv_num_heads);
  args.row_begin = 0;
  args.row_end = static_cast<int>(a.query_length);
  const bool fp32 = a.type == DataType::kFloat32;
  plan.row_tiles = plan.kind == PlanKind::kDense ? kDenseRowTiles : kSparseRowTiles;
  plan.rows_per_attention_block = fp32 ? prefill::kRowBlock : kRowsPerBlock * plan.row_tiles;
  args.query_tiles = static_cast<int>(CeilDiv(a.query_length, plan.rows_per_attention_block));
  args.scale_log2 = a.scale * kLog2e;
  WorkspaceCarver carver(workspace);

  if (plan.kind == PlanKind::kBlock) {
    prefill::SelectArgs& s = plan.select;
    s.attention = args.attention;
    s.method = m;
    s.group = args.group;
    s.key_blocks = static_cast<int>(CeilDiv(key_capacity, m.block_size));
    s.query_blocks = static_cast<int>(CeilDiv(a.query_length, m.block_size));
    s.words = static_cast<int>(CeilDiv(s.key_blocks, 32));
    s.sort_capacity = 1;
    while (s.sort_capacity < s.key_blocks) s.sort_capacity *= 2;
    s.blocks_per_cta = prefill::MaxSelectBlocksPerCta();
    while (s.blocks_per_cta > 1 && prefill::SelectSharedBytes(s) > kSelectSharedBudget) s.blocks_per_cta /= 2;
    s.mean_keys = carver.Take<float>(sizeof(float) * a.batch * a.kv_num_heads * s.key_blocks * a.head_size);
    s.kept = carver.Take<uint32_t>(sizeof(uint32_t) * a.batch * a.num_heads * s.query_blocks * s.words);
    args.kept = s.kept;
    args.kept_group = 1;
    args.query_blocks = s.query_blocks;
    args.words = s.words;
    args.block_size = static_cast<int>(m.block_size);
    args.tiles_per_block = static_cast<int>(m.block_size / prefill::kKeysPerTile);
  } else if (plan.kind == PlanKind::kHash || plan.kind == PlanKind::kHyper) {
    prefill::RowSelectArgs& r = plan.rows;
    r.attention = args.attention;
    r.method = m;
    r.group = args.group;
    r.key_capacity = static_cast<int>(key_capacity);
    const int64_t tiles = CeilDiv(key_capacity, prefill::kKeysPerTile);
    r.tile_words = static_cast<int>(CeilDiv(tiles, 32));
    r.row_words = static_cast<int>(2 * tiles);  // whole tiles: the attention reads a tile's two words
    r.bucket_words = static_cast<int>(CeilDiv(2 * m.hash_half_buckets, 32));
    const int64_t bytes_per_row = int64_t{4} * a.batch * a.kv_num_heads * r.row_words;
    const int64_t budget_rows = static_cast<int64_t>(kRowSelectionBudget) / bytes_per_row / prefill::kRowBlock;
    const int64_t step_blocks = CeilDiv(a.query_length, prefill::kRowBlock);
    r.query_blocks = static_cast<int>(std::min(std::max<int64_t>(budget_rows, 1), step_blocks));
    r.slab_rows = r.query_blocks * prefill::kRowBlock;
    if (plan.kind == PlanKind::kHyper) {
      prefill::SortArgs& sort = plan.sort;
      sort.attention = args.attention;
      sort.method = m;
      sort.key_capacity = r.key_capacity;
      sort.chunks = static_cast<int>(CeilDiv(key_capacity, prefill::kSortChunk));
      sort.passes = static_cast<int>(CeilDiv(m.hash_half_buckets, 8));
      const size_t entry_bytes = sizeof(uint64_t) * a.batch * a.kv_num_heads * key_capacity;
      sort.entries[0] = carver.Take<uint64_t>(entry_bytes);
      sort.entries[1] = carver.Take<uint64_t>(entry_bytes);
      sort.counts = carver.Take<int>(sizeof(int) * a.batch * a.kv_num_heads * 256 * sort.chunks);
      r.sorted = sort.entries[sort.passes % 2];
    }
    r.kept = carver.Take<uint32_t>(sizeof(uint32_t) * a.batch * a.kv_num_heads * r.query_blocks * r.tile_words);
    r.row_keys = carver.Take<uint32_t>(sizeof(uint32_t) * a.batch * a.kv_num_heads * r.slab_rows * r.row_words);
    args.kept = r.kept;
    args.kept_group = args.group;
    args.query_blocks = r.query_blocks;
    args.words = r.tile_words;
    args.block_size = prefill::kRowBlock;
    args.tiles_per_block = 1;
    args.row_keys = r.row_keys;
    args.row_words = r.row_words;
    args.slab_rows = r.slab_rows;
  }
  plan.workspace_bytes = carver.used();
  return plan;
}

// The attention kernel of the step's type over args' rows.
cudaError_t LaunchAttention(const Plan& plan, const prefill::AttentionArgs& args, cudaStream_t stream) {
  switch (args.attention.type) {
    case DataType::kFloat16: return prefill::LaunchPrefillAttentionFp16(args, plan.row_tiles, stream);
    case DataType::kBFloat16: return prefill::LaunchPrefillAttentionBf16(args, plan.row_tiles, stream);
    case DataType::kFloat32: return prefill::LaunchPrefillAttentionFp32(args, stream);
    default: return cudaErrorInvalidValue;
  }
}

bool Misaligned(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 != 0; }

// What CheckPrefillSupport checks of the sizes and attributes, not of where the tensors lie: the
// workspace's size depends on these only.
Status CheckPrefillShape(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity) {
  if (a.type != DataType::kFloat16 && a.type != DataType::kBFloat16 && a.type != DataType::kFloat32) {
    return ErrorStatus(kOp, "the attention type must be float16, bfloat16 or float32, got ", DataTypeName(a.type));
  }
  if (a.query_length < 1 || CeilDiv(a.query_length, kRowsPerBlock) > 65535) {
    return ErrorStatus(kOp, "sequence length ", a.query_length, " is outside [1, ", 65535 * kRowsPerBlock, "]");
  }
  if (a.batch < 1 || a.batch > 65535) return ErrorStatus(kOp, "batch size ", a.batch, " is outside [1, 65535]");
  const Status shapes = CheckHeadsAndCapacity(kOp, a, key_capacity);
  if (!shapes.ok()) return shapes;
  const int64_t element = DataTypeSize(a.type);
  const int64_t* strides[] = {a.query_strides, a.key_strides, a.value_strides, a.output_strides};
  const char* names[] = {"query", "key cache", "value cache", "output"};
  for (int i = 0; i < 4; ++i) {
    for (int axis = 0; axis < 3; ++axis) {
      if ((strides[i][axis] * element) % 16 != 0) {
        return ErrorStatus(kOp, names[i], " rows must start at 16-byte boundaries, got a stride of ", strides[i][axis],
                           " elements on axis ", axis);
      }
    }
  }
  if (a.mask.data != nullptr && a.mask.type != DataType::kBool && a.mask.type != a.type) {
    return ErrorStatus(kOp, "the mask must be bool or ", DataTypeName(a.type), ", got ", DataTypeName(a.mask.type));
  }
  if (m.method == SparseMethod::kBlock) {
    if (m.block_size < prefill::kKeysPerTile || m.block_size % prefill::kKeysPerTile != 0) {
      return ErrorStatus(kOp, "block_size (", m.block_size, ") must be a multiple of ", prefill::kKeysPerTile);
    }
    if (!(m.gamma > 0.0f && m.gamma <= 1.0f)) return ErrorStatus(kOp, "gamma (", m.gamma, ") must be in (0, 1]");
    if (CeilDiv(key_capacity, m.block_size) > kMaxPrefillKeyBlocks) {
      return ErrorStatus(kOp, "key capacity ", key_capacity, " holds more than ", kMaxPrefillKeyBlocks,
                         " blocks of block_size ", m.block_size, " (use a larger block_size)");
    }
  }
  if (m.method == SparseMethod::kHash || m.method == SparseMethod::kHyper) {
    const char* name = MethodName(m.method);
    if (m.hash_projections == nullptr) return ErrorStatus(kOp, "method ", name, " needs its projections (method_data_0)");
    if (CeilDiv(key_capacity, prefill::kKeysPerTile) > kMaxPrefillKeyTiles) {
      return ErrorStatus(kOp, "key capacity ", key_capacity, " exceeds the ", kMaxPrefillKeyTiles * prefill::kKeysPerTile,
                         " keys of a ", name, " prefill");
    }
    if (!(m.budget > 0.0f)) return ErrorStatus(kOp, "budget (", m.budget, ") must be positive");
  }
  if (m.method == SparseMethod::kHash) {
    if (m.hash_rounds < 1 || m.hash_half_buckets < 1) {
      return ErrorStatus(kOp, "hash needs at least one round and two buckets, got ", m.hash_rounds, " rounds of ",
                         2 * m.hash_half_buckets, " buckets");
    }
    if (m.hash_rounds * CeilDiv(2 * m.hash_half_buckets, 32) > prefill::kMaxHashMaskWords) {
      return ErrorStatus(kOp, "hash prefill handles rounds x ceil(buckets / 32) up to ", prefill::kMaxHashMaskWords,
                         ", got ", m.hash_rounds, " rounds of ", 2 * m.hash_half_buckets, " buckets");
    }
    if (m.state.width < m.hash_rounds) {
      return ErrorStatus(kOp, "hash prefill needs the keys' buckets of ", m.hash_rounds,
                         " rounds as method state, got a state of width ", m.state.width);
    }
  }
  if (m.method == SparseMethod::kHyper && (m.hash_rounds != 1 || m.hash_half_buckets < 1 || m.hash_half_buckets > 24)) {
    return ErrorStatus(kOp, "hyper needs one round of 1 to 24 hyperplanes, got ", m.hash_rounds, " rounds of ",
                       m.hash_half_buckets);
  }
  return Status::Ok();
}

}  // namespace

Status CheckPrefillSupport(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity) {
  ORTSPARSE_RETURN_IF_ERROR(CheckPrefillShape(a, m, key_capacity));
  const void* pointers[] = {a.query, a.key_cache, a.value_cache, a.output};
  const char* names[] = {"query", "key cache", "value cache", "output"};
  for (int i = 0; i < 4; ++i) {
    if (Misaligned(pointers[i])) return ErrorStatus(kOp, names[i], " must start at a 16-byte boundary");
  }
  if (m.method == SparseMethod::kHash && (m.raw_query == nullptr || m.state.present == nullptr)) {
    return ErrorStatus(kOp, "hash prefill needs the raw queries and the keys' buckets (method state)");
  }
  return Status::Ok();
}

size_t PrefillWorkspaceBytes(const AttentionParams& attention, const SparseMethodParams& method,
                             int64_t key_capacity) {
  if (!CheckPrefillShape(attention, method, key_capacity).ok()) return 0;
  return MakePlan(attention, method, key_capacity, nullptr).workspace_bytes;
}

cudaError_t LaunchPrefill(const AttentionParams& attention, const SparseMethodParams& method, int64_t key_capacity,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (!CheckPrefillSupport(attention, method, key_capacity).ok()) return cudaErrorInvalidValue;
  Plan plan = MakePlan(attention, method, key_capacity, workspace);
  if (plan.workspace_bytes > 0 && (workspace == nullptr || workspace_bytes < plan.workspace_bytes)) {
    return cudaErrorInvalidValue;
  }
  switch (plan.kind) {
    case PlanKind::kDense: return LaunchAttention(plan, plan.attention, stream);
    case PlanKind::kBlock:
      ORTSPARSE_CUDA_RETURN_IF_ERROR(prefill::LaunchBlockSelection(plan.select, stream));
      return LaunchAttention(plan, plan.attention, stream);
    default: break;
  }
  if (plan.kind == PlanKind::kHyper) ORTSPARSE_CUDA_RETURN_IF_ERROR(prefill::LaunchHyperSort(plan.sort, stream));
  const int S = static_cast<int>(attention.query_length);
  for (int begin = 0; begin < S; begin += plan.rows.slab_rows) {
    const int end = std::min(S, begin + plan.rows.slab_rows);
    plan.rows.row_begin = begin;
    ORTSPARSE_CUDA_RETURN_IF_ERROR(plan.kind == PlanKind::kHash ? prefill::LaunchHashSelection(plan.rows, stream)
                                                                 : prefill::LaunchHyperSelection(plan.rows, stream));
    prefill::AttentionArgs slab = plan.attention;
    slab.row_begin = begin;
    slab.row_end = end;
    slab.query_tiles = static_cast<int>(CeilDiv(end - begin, plan.rows_per_attention_block));
    ORTSPARSE_CUDA_RETURN_IF_ERROR(LaunchAttention(plan, slab, stream));
  }
  return cudaSuccess;
}

PrefillBlockSelection DescribePrefillBlockSelection(const AttentionParams& attention, const SparseMethodParams& method,
                                                    int64_t key_capacity, const void* workspace) {
  PrefillBlockSelection view;
  if (method.method != SparseMethod::kBlock || !CheckPrefillShape(attention, method, key_capacity).ok()) return view;
  const Plan plan = MakePlan(attention, method, key_capacity, const_cast<void*>(workspace));
  view.kept = plan.select.kept;
  view.query_blocks = plan.select.query_blocks;
  view.key_blocks = plan.select.key_blocks;
  view.words = plan.select.words;
  return view;
}

PrefillRowSelection DescribePrefillRowSelection(const AttentionParams& attention, const SparseMethodParams& method,
                                                int64_t key_capacity, const void* workspace) {
  PrefillRowSelection view;
  const bool rows = method.method == SparseMethod::kHash || method.method == SparseMethod::kHyper;
  if (!rows || !CheckPrefillShape(attention, method, key_capacity).ok()) return view;
  const Plan plan = MakePlan(attention, method, key_capacity, const_cast<void*>(workspace));
  view.row_keys = plan.rows.row_keys;
  view.slab_rows = plan.rows.slab_rows;
  view.first_row = (attention.query_length - 1) / plan.rows.slab_rows * plan.rows.slab_rows;
  view.words = plan.rows.row_words;
  return view;
}

}  // namespace ortsparse::cuda
