// Host side of a prefill step: the support check, the plan (launch sizes and workspace layout,
// from host-known capacities only) and the launches:
//   dense and the decode-only methods: attention
//   block:                             mean keys, block selection, block-sparse attention
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
constexpr size_t kWorkspaceAlignment = 256;
// Selection blocks handle several query blocks while their shared memory stays within this.
constexpr size_t kSelectSharedBudget = 96 * 1024;

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

struct Plan {
  prefill::AttentionArgs attention{};
  prefill::SelectArgs select{};
  bool block = false;
  int row_tiles = kSparseRowTiles;
  size_t workspace_bytes = 0;
};

Plan MakePlan(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity, void* workspace) {
  Plan plan;
  prefill::AttentionArgs& args = plan.attention;
  args.attention = a;
  args.attention.selection = nullptr;
  args.group = static_cast<int>(a.num_heads / a.kv_num_heads);
  const bool block = m.method == SparseMethod::kBlock;
  plan.row_tiles = block ? kSparseRowTiles : kDenseRowTiles;
  args.query_tiles = static_cast<int>(CeilDiv(a.query_length, kRowsPerBlock * plan.row_tiles));
  args.scale_log2 = a.scale * kLog2e;
  plan.block = block;
  if (!plan.block) return plan;

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
  const size_t mean_bytes = Aligned(sizeof(float) * a.batch * a.kv_num_heads * s.key_blocks * a.head_size);
  const size_t kept_bytes = Aligned(sizeof(uint32_t) * a.batch * a.num_heads * s.query_blocks * s.words);
  plan.workspace_bytes = mean_bytes + kept_bytes;
  if (workspace != nullptr) {
    s.mean_keys = static_cast<float*>(workspace);
    s.kept = reinterpret_cast<uint32_t*>(static_cast<char*>(workspace) + mean_bytes);
  }
  args.kept = s.kept;
  args.query_blocks = s.query_blocks;
  args.words = s.words;
  args.block_size = static_cast<int>(m.block_size);
  args.tiles_per_block = static_cast<int>(m.block_size / prefill::kKeysPerTile);
  return plan;
}

bool Misaligned(const void* pointer) { return reinterpret_cast<uintptr_t>(pointer) % 16 != 0; }

}  // namespace

Status CheckPrefillSupport(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity) {
  if (a.type != DataType::kFloat16 && a.type != DataType::kBFloat16) {
    return ErrorStatus(kOp, "the attention type must be float16 or bfloat16, got ", DataTypeName(a.type),
                       " (run float32 prefill on the CPU provider)");
  }
  if (m.method == SparseMethod::kHash || m.method == SparseMethod::kHyper) {
    return ErrorStatus(kOp, "method ", MethodName(m.method),
                       " has no CUDA prefill yet (run its prefill on the CPU provider; its decode steps run on CUDA)");
  }
  if (a.query_length < 1 || CeilDiv(a.query_length, kRowsPerBlock) > 65535) {
    return ErrorStatus(kOp, "sequence length ", a.query_length, " is outside [1, ", 65535 * kRowsPerBlock, "]");
  }
  if (a.batch < 1 || a.batch > 65535) return ErrorStatus(kOp, "batch size ", a.batch, " is outside [1, 65535]");
  if (a.head_size != 64 && a.head_size != 80 && a.head_size != 96 && a.head_size != 128) {
    return ErrorStatus(kOp, "head size ", a.head_size, " is not one of 64, 80, 96, 128");
  }
  if (a.v_head_size != a.head_size) {
    return ErrorStatus(kOp, "value head size ", a.v_head_size, " differs from the key head size ", a.head_size);
  }
  if (a.kv_num_heads <= 0 || a.num_heads % a.kv_num_heads != 0) {
    return ErrorStatus(kOp, "num_heads (", a.num_heads, ") must be a multiple of kv_num_heads (", a.kv_num_heads, ")");
  }
  if (a.selection != nullptr) return ErrorStatus(kOp, "a precomputed key selection is not supported");
  if (key_capacity <= 0 || key_capacity > (int64_t{1} << 30)) {
    return ErrorStatus(kOp, "key capacity ", key_capacity, " is outside [1, 2^30]");
  }
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
  const void* pointers[] = {a.query, a.key_cache, a.value_cache, a.output};
  for (int i = 0; i < 4; ++i) {
    if (Misaligned(pointers[i])) return ErrorStatus(kOp, names[i], " must start at a 16-byte boundary");
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
  return Status::Ok();
}

size_t PrefillWorkspaceBytes(const AttentionParams& attention, const SparseMethodParams& method,
                             int64_t key_capacity) {
  if (!CheckPrefillSupport(attention, method, key_capacity).ok()) return 0;
  return MakePlan(attention, method, key_capacity, nullptr).workspace_bytes;
}

cudaError_t LaunchPrefill(const AttentionParams& attention, const SparseMethodParams& method, int64_t key_capacity,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  if (!CheckPrefillSupport(attention, method, key_capacity).ok()) return cudaErrorInvalidValue;
  const Plan plan = MakePlan(attention, method, key_capacity, workspace);
  if (plan.workspace_bytes > 0 && (workspace == nullptr || workspace_bytes < plan.workspace_bytes)) {
    return cudaErrorInvalidValue;
  }
  if (plan.block) ORTSPARSE_CUDA_RETURN_IF_ERROR(prefill::LaunchBlockSelection(plan.select, stream));
  return attention.type == DataType::kFloat16
             ? prefill::LaunchPrefillAttentionFp16(plan.attention, plan.row_tiles, stream)
             : prefill::LaunchPrefillAttentionBf16(plan.attention, plan.row_tiles, stream);
}

PrefillBlockSelection DescribePrefillBlockSelection(const AttentionParams& attention, const SparseMethodParams& method,
                                                    int64_t key_capacity, const void* workspace) {
  PrefillBlockSelection view;
  if (method.method != SparseMethod::kBlock || !CheckPrefillSupport(attention, method, key_capacity).ok()) return view;
  const Plan plan = MakePlan(attention, method, key_capacity, const_cast<void*>(workspace));
  view.kept = plan.select.kept;
  view.query_blocks = plan.select.query_blocks;
  view.key_blocks = plan.select.key_blocks;
  view.words = plan.select.words;
  return view;
}

}  // namespace ortsparse::cuda
