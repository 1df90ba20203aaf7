// Host side of a decode step: the plan (launch sizes and workspace layout, from host-known
// capacities only), the support check, and the launches in order:
//   dense, block:    [memset counters] attention
//   streaming:       prepare, attention
//   topk/loki/quest: prepare, score rows, filter, filter of a large bucket, attention
//   hash:            prepare, score buckets, filter, filter of a large bucket, attention
//   saap:            prepare, cluster weights and classifier (+ ranking), expand, attention
#include <algorithm>
#include <cmath>

#include "attention/cuda/decode_kernels.h"
#include "ortsparse/cuda_attention.h"

namespace ortsparse::cuda {
namespace {

using detail::DecodeArgs;
using detail::LaunchShape;
using detail::UnitKind;

constexpr const char* kOp = "SparseAttention (CUDA decode): ";
// Attention blocks read at least this many keys (selected keys of a sparse row): more blocks hide
// latency, each adds a partial result for the last block to merge.
constexpr int64_t kMinKeysPerSplit = 256;
constexpr int64_t kMinSelectedKeysPerSplit = 128;
constexpr int64_t kSelectBlocksPerSm = 2;     // blocks of scoring and filtering the grid aims for
constexpr int64_t kMaxChunkKeys = 4096;       // units of a scoring block: keys ...
constexpr int64_t kMaxChunkPages = 1024;      // ... or pages
constexpr size_t kWorkspaceAlignment = 256;

bool SelectsKeys(SparseMethod method) { return detail::DecodeSelectsKeys(method); }
bool RanksUnits(SparseMethod method) { return SelectsKeys(method) && method != SparseMethod::kStreaming; }

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t RoundUp(int64_t a, int64_t b) { return CeilDiv(a, b) * b; }

struct Plan {
  DecodeArgs args{};
  bool selects = false;
  bool ranks = false;
  size_t workspace_bytes = 0;
};

// Carves the workspace: each call reserves `bytes` (aligned) and returns where they start (null
// while only sizing).
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<char*>(base)) {}
  template <typename T>
  T* Take(int64_t count) {
    const size_t offset = used_;
    used_ += RoundUp(static_cast<int64_t>(count * sizeof(T)), kWorkspaceAlignment);
    return base_ == nullptr || count == 0 ? nullptr : reinterpret_cast<T*>(base_ + offset);
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

cudaError_t MultiprocessorCount(int* count) {
  int device = 0;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  return cudaDeviceGetAttribute(count, cudaDevAttrMultiProcessorCount, device);
}

cudaError_t OverlapsLaunches(bool* overlap) {
  int device = 0, major = 0;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  ORTSPARSE_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  *overlap = major >= 9;
  return cudaSuccess;
}

// Attention blocks that fit on a multiprocessor at once: the tensor-core kernels of 16-bit caches
// take about 110 KiB of shared memory each, the fp32 kernel more.
int64_t AttentionBlocksPerMultiprocessor(DataType type) { return type == DataType::kFloat32 ? 1 : 2; }

Plan MakePlan(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity, int multiprocessors,
              void* workspace) {
  Plan plan;
  DecodeArgs& args = plan.args;
  args.attention = a;
  args.attention.selection = nullptr;
  args.method = m;
  plan.selects = SelectsKeys(m.method);
  plan.ranks = RanksUnits(m.method);
  args.segments = static_cast<int>(a.batch * a.kv_num_heads);
  args.group = static_cast<int>(a.num_heads / a.kv_num_heads);
  args.head_tiles = static_cast<int>(CeilDiv(args.group, detail::kMaxTileHeads));
  args.key_capacity = key_capacity;
  const int64_t D = a.head_size;
  const int64_t segments = args.segments;

  args.unit = !plan.ranks                        ? UnitKind::kNone
              : m.method == SparseMethod::kQuest ? UnitKind::kPage
              : m.method == SparseMethod::kSaap  ? UnitKind::kCluster
                                                 : UnitKind::kKey;
  switch (args.unit) {
    case UnitKind::kKey: args.units_capacity = key_capacity; break;
    case UnitKind::kPage: args.units_capacity = CeilDiv(key_capacity, m.page_size); break;
    case UnitKind::kCluster: args.units_capacity = m.clusters; break;
    default: args.units_capacity = 0; break;
  }
  if (plan.ranks) {  // scoring blocks: saap's count keys, quest's score pages, the others score keys
    const bool pages = args.unit == UnitKind::kPage;
    const int64_t chunked = pages ? args.units_capacity : key_capacity;
    const int64_t blocks_per_segment = std::max<int64_t>(1, CeilDiv(kSelectBlocksPerSm * multiprocessors, segments));
    args.chunk_units = std::clamp<int64_t>(RoundUp(CeilDiv(chunked, blocks_per_segment), detail::kSelectThreads),
                                           detail::kSelectThreads, pages ? kMaxChunkPages : kMaxChunkKeys);
    args.chunk_positions = args.chunk_units * (pages ? m.page_size : 1);
    args.chunks = CeilDiv(chunked, args.chunk_units);
    args.bitmap_words = args.chunks * args.chunk_positions / 32;
  }
  switch (m.method) {
    case SparseMethod::kTopK:
    case SparseMethod::kQuest: args.feature_width = static_cast<int>(D); break;
    case SparseMethod::kLoki: args.feature_width = static_cast<int>(m.rank); break;
    default: args.feature_width = 0; break;
  }
  int64_t largest_position = std::max<int64_t>(0, key_capacity - 1), position_bits = 0;
  while (largest_position >> position_bits) ++position_bits;
  args.hash_shift = static_cast<int>(std::max<int64_t>(0, position_bits - 24));

  // Attention splits: about one wave of blocks over the device; a sparse row's at most
  // kListCapacity keys each.
  int64_t bound = key_capacity;  // keys a row may attend
  if (plan.selects) {
    const int64_t picks = m.budget <= 1.0f ? static_cast<int64_t>(std::ceil(m.budget * static_cast<float>(key_capacity)))
                                           : static_cast<int64_t>(std::floor(m.budget));
    switch (m.method) {
      case SparseMethod::kStreaming: bound = m.sink + m.window; break;
      case SparseMethod::kSaap: bound = key_capacity; break;  // a cluster can hold any number of keys
      case SparseMethod::kQuest: bound = m.sink + m.window + picks + m.page_size; break;
      default: bound = m.sink + m.window + picks; break;
    }
    bound = std::min(key_capacity, std::max(bound, m.dense_below));
  }
  bound = std::max<int64_t>(1, bound);
  const int64_t tiles = segments * args.head_tiles;
  const int64_t target = std::max<int64_t>(1, AttentionBlocksPerMultiprocessor(a.type) * multiprocessors / tiles);
  const int64_t min_keys = plan.ranks ? kMinSelectedKeysPerSplit : kMinKeysPerSplit;
  args.splits = static_cast<int>(std::max(plan.ranks ? CeilDiv(bound, detail::kListCapacity) : 1,
                                          std::min(CeilDiv(bound, min_keys), target)));

  Carver carve(workspace);
  if (plan.selects) {
    args.rows = carve.Take<detail::DecodeRow>(segments);
    args.states = carve.Take<detail::SelectionState>(segments);
    args.first_histogram = carve.Take<int>(segments * detail::kBins);
    args.second_histogram = carve.Take<int>(segments * detail::kBins);
  }
  args.attention_counters = carve.Take<int>(tiles);
  if (args.unit == UnitKind::kCluster) {
    args.cluster_weights = carve.Take<int>(segments * m.clusters);
    args.cluster_taken = carve.Take<int>(segments * m.clusters);
    args.cluster_logits = carve.Take<float>(segments * args.group * m.clusters);
    args.classifier_blocks = static_cast<int>(args.group * CeilDiv(m.clusters, detail::kSelectThreads));
  }
  args.features = carve.Take<float>(segments * args.group * args.feature_width);
  if (m.method == SparseMethod::kHash) args.query_buckets = carve.Take<int>(segments * args.group * m.hash_rounds);
  if (plan.ranks) {
    args.scores = carve.Take<float>(segments * args.units_capacity);
    args.candidates = carve.Take<int>(segments * args.units_capacity);
    args.bitmap = carve.Take<uint32_t>(segments * args.bitmap_words);
    args.block_counts = carve.Take<int>(segments * args.chunks);
    args.block_prefix = carve.Take<int>(segments * (args.chunks + 1));
  }
  const int64_t partials = tiles * args.splits * detail::kMaxTileHeads;
  args.partial_stats = carve.Take<float2>(partials);
  args.partial_sums = carve.Take<float>(partials * D);
  plan.workspace_bytes = carve.used();
  return plan;
}

cudaError_t PlanLaunch(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity, void* workspace,
                       Plan* plan) {
  if (!CheckDecodeSupport(a, m, key_capacity).ok()) return cudaErrorInvalidValue;
  int multiprocessors = 0;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(MultiprocessorCount(&multiprocessors));
  *plan = MakePlan(a, m, key_capacity, multiprocessors, workspace);
  return cudaSuccess;
}

cudaError_t LaunchAttention(const DecodeArgs& args, const LaunchShape& shape) {
  switch (args.attention.type) {
    case DataType::kFloat16: return detail::LaunchDecodeAttentionOf<__half>(args, shape);
    case DataType::kBFloat16: return detail::LaunchDecodeAttentionOf<__nv_bfloat16>(args, shape);
    default: return detail::LaunchDecodeAttentionOf<float>(args, shape);
  }
}

}  // namespace

namespace detail {
int ScoringHeadsPerPass(int group) { return group <= 1 ? 1 : group <= 2 ? 2 : group <= 4 ? 4 : 8; }
}  // namespace detail

Status CheckDecodeSupport(const AttentionParams& a, const SparseMethodParams& m, int64_t key_capacity) {
  if (a.type != DataType::kFloat16 && a.type != DataType::kBFloat16 && a.type != DataType::kFloat32) {
    return ErrorStatus(kOp, "the attention type must be float16, bfloat16 or float32, got ", DataTypeName(a.type));
  }
  if (a.query_length != 1) return ErrorStatus(kOp, "decode steps have one query row, got ", a.query_length);
  const Status shapes = CheckHeadsAndCapacity(kOp, a, key_capacity);
  if (!shapes.ok()) return shapes;
  const int64_t element = DataTypeSize(a.type);
  if ((a.key_strides[2] * element) % 16 != 0 || (a.value_strides[2] * element) % 16 != 0) {
    return ErrorStatus(kOp, "cache rows must start at 16-byte boundaries, got row strides of ", a.key_strides[2],
                       " and ", a.value_strides[2], " elements");
  }
  const int64_t group = a.num_heads / a.kv_num_heads;
  switch (m.method) {
    case SparseMethod::kTopK:
    case SparseMethod::kQuest:
    case SparseMethod::kLoki:
      if (group * a.head_size > 8192) {
        return ErrorStatus(kOp, "group size ", group, " times head size ", a.head_size, " exceeds 8192");
      }
      break;
    case SparseMethod::kSaap:
      if (m.clusters < 1 || m.clusters > kMaxSaapClusters) {
        return ErrorStatus(kOp, "saap clusters (", m.clusters, ") must be in [1, ", kMaxSaapClusters, "]");
      }
      if (m.classifier_hidden < 1 || (a.head_size + m.classifier_hidden) * 4 > 48 * 1024) {
        return ErrorStatus(kOp, "saap classifier hidden units (", m.classifier_hidden, ") must be in [1, ",
                           48 * 1024 / 4 - a.head_size, "]");
      }
      break;
    case SparseMethod::kHash:
      if (m.hash_rounds < 1 || m.hash_rounds > 255 || group * m.hash_rounds > detail::kMaxQueryBuckets) {
        return ErrorStatus(kOp, "hash rounds (", m.hash_rounds, ") must be in [1, 255] with group size (", group,
                           ") x rounds at most ", detail::kMaxQueryBuckets);
      }
      if (m.hash_half_buckets < 1 || m.hash_half_buckets > 512) {
        return ErrorStatus(kOp, "hash buckets / 2 (", m.hash_half_buckets, ") must be in [1, 512]");
      }
      break;
    default:
      break;
  }
  if (SelectsKeys(m.method) && m.budget <= 0.0f) return ErrorStatus(kOp, "budget (", m.budget, ") must be positive");
  if (m.method == SparseMethod::kQuest && m.page_size < 1) {
    return ErrorStatus(kOp, "page_size (", m.page_size, ") must be positive");
  }
  if (m.method == SparseMethod::kLoki && (m.rank < 1 || m.rank > a.head_size)) {
    return ErrorStatus(kOp, "rank (", m.rank, ") must be in [1, ", a.head_size, "]");
  }
  return Status::Ok();
}

size_t SparseDecodeWorkspaceBytes(const AttentionParams& attention, const SparseMethodParams& method,
                                  int64_t key_capacity) {
  Plan plan;
  if (PlanLaunch(attention, method, key_capacity, nullptr, &plan) != cudaSuccess) return 0;
  return plan.workspace_bytes;
}

cudaError_t LaunchSparseDecode(const AttentionParams& attention, const SparseMethodParams& method,
                               int64_t key_capacity, void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  Plan plan;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(PlanLaunch(attention, method, key_capacity, workspace, &plan));
  if (workspace == nullptr || workspace_bytes < plan.workspace_bytes) return cudaErrorInvalidValue;
  const DecodeArgs& args = plan.args;
  bool overlap = false;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(OverlapsLaunches(&overlap));
  const unsigned segments = static_cast<unsigned>(args.segments);
  LaunchShape attention_shape{dim3(args.splits, segments, args.head_tiles), dim3(detail::kAttentionThreads), 0, stream,
                              overlap};
  if (!plan.selects) {  // counters zeroed here; nothing else to prepare
    ORTSPARSE_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(args.attention_counters, 0, sizeof(int) * segments * args.head_tiles, stream));
    attention_shape.overlap_previous = false;
    return LaunchAttention(args, attention_shape);
  }
  size_t prepare_bytes = 0;
  switch (method.method) {
    case SparseMethod::kLoki:
    case SparseMethod::kHash:
      prepare_bytes = sizeof(float) * attention.head_size;
      break;
    default:
      break;
  }
  ORTSPARSE_CUDA_RETURN_IF_ERROR(
      detail::LaunchPrepare(args, {dim3(segments), dim3(detail::kSelectThreads), prepare_bytes, stream, overlap}));
  if (plan.ranks) {
    const LaunchShape chunked{dim3(static_cast<unsigned>(args.chunks), segments), dim3(detail::kSelectThreads), 0,
                              stream, overlap};
    switch (method.method) {
      case SparseMethod::kSaap:
        ORTSPARSE_CUDA_RETURN_IF_ERROR(detail::LaunchClusterWeights(args, chunked));
        ORTSPARSE_CUDA_RETURN_IF_ERROR(detail::LaunchExpandClusters(args, chunked));
        break;
      case SparseMethod::kHash:
        ORTSPARSE_CUDA_RETURN_IF_ERROR(detail::LaunchScoreHash(args, chunked));
        ORTSPARSE_CUDA_RETURN_IF_ERROR(detail::LaunchFilterUnits(args, chunked));
        break;
      default:
        ORTSPARSE_CUDA_RETURN_IF_ERROR(detail::LaunchScoreRows(args, chunked));
        ORTSPARSE_CUDA_RETURN_IF_ERROR(detail::LaunchFilterUnits(args, chunked));
        break;
    }
  }
  return LaunchAttention(args, attention_shape);
}

cudaError_t LaunchSelectedKeyFlags(const AttentionParams& attention, const SparseMethodParams& method,
                                   int64_t key_capacity, const void* workspace, bool* flags, cudaStream_t stream) {
  Plan plan;
  ORTSPARSE_CUDA_RETURN_IF_ERROR(PlanLaunch(attention, method, key_capacity, const_cast<void*>(workspace), &plan));
  const unsigned slices = static_cast<unsigned>(std::min<int64_t>(CeilDiv(key_capacity, 256), 1024));
  return detail::LaunchSelectedFlags(plan.args, flags,
                                     {dim3(slices, static_cast<unsigned>(plan.args.segments)), dim3(256), 0, stream, false});
}

}  // namespace ortsparse::cuda
