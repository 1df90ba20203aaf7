// CUDA kernels of SparseAttention's decode steps (S = 1), of its prefill steps (S > 1, at the end)
// and of the cache and state updates around them, on the plain parameter structs of
// attention_params.h and sparse_method_params.h. Nothing here includes ONNX Runtime: the op layer
// fills the structs, tests and benchmarks too.
//
// Device memory: every data pointer of the structs (query, caches, output, mask, past_lengths,
// key_counts, valid_query_rows, raw_query, raw_keys, calibration, method state, rotary tables and
// position ids) must point to device memory. Lengths stay on the device: no function here copies
// from the device or synchronises with it. Launches are sized from host-known capacities
// (`key_capacity`, the largest number of keys any sequence may have, and the bounds documented
// per function) and the kernels read the actual lengths on the device.
//
// Limits of the decode kernels, checked by CheckDecodeSupport: attention type fp16, bf16 or fp32;
// head size D = Dv in {64, 80, 96, 128}; S = 1; no key selection list (AttentionParams::selection);
// saap with at most kMaxSaapClusters clusters, hash with at most 255 rounds.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "ortsparse/attention_params.h"
#include "ortsparse/sparse_method_params.h"
#include "ortsparse/status.h"

namespace ortsparse::cuda {

constexpr int64_t kMaxSaapClusters = 8192;

// Whether the decode kernels handle this step; the error names the parameter and its value.
Status CheckDecodeSupport(const AttentionParams& attention, const SparseMethodParams& method, int64_t key_capacity);

// Scratch a decode step needs (selection, partial results, counters), for LaunchSparseDecode.
size_t SparseDecodeWorkspaceBytes(const AttentionParams& attention, const SparseMethodParams& method,
                                  int64_t key_capacity);

// One decode step of `method` (docs/ops.md, "Methods"): selects, per (sequence, KV head), the keys
// the group attends and computes attention.output over them; dense (and block) attend every
// visible key. The caches and the method state must already hold this step's key
// (LaunchKvAppend, LaunchMethodStateUpdate). `workspace` holds at least
// SparseDecodeWorkspaceBytes(...) bytes of device memory, in any state; it is the selection that
// LaunchSelectedKeyFlags reads back. A few kernels, all on `stream`.
cudaError_t LaunchSparseDecode(const AttentionParams& attention, const SparseMethodParams& method,
                               int64_t key_capacity, void* workspace, size_t workspace_bytes, cudaStream_t stream);

// The `selected_keys` diagnostic of the step LaunchSparseDecode just ran with the same arguments and
// workspace: flags[(b * Hkv + h) * key_capacity + j] is true iff KV head h's group of sequence b
// attended key j (device memory, [B, Hkv, key_capacity]).
cudaError_t LaunchSelectedKeyFlags(const AttentionParams& attention, const SparseMethodParams& method,
                                   int64_t key_capacity, const void* workspace, bool* flags, cudaStream_t stream);

// Writes params.present as KvAppendParams describes (the past copied unless in place, the new rows,
// rotated when params.rotary is set, the rest zeroed unless in place). `max_append` bounds every
// append_counts[b] (the step's S).
cudaError_t LaunchKvAppend(const KvAppendParams& params, int64_t max_append, cudaStream_t stream);

// Rotates params.input into params.output (RotaryParams), rows i < row_counts[b].
cudaError_t LaunchRotary(const RotaryParams& params, cudaStream_t stream);

// Brings method.state up to date with the keys the cache holds, as the CPU's UpdateMethodState:
// past rows copied unless in place (or rebuilt from the cache when method.state.past is null),
// keys [past_lengths[b], key_counts[b]) summarised, the rows beyond zeroed unless in place.
// `max_new_keys` bounds key_counts[b] - past_lengths[b] (the step's S). No-op for stateless methods.
cudaError_t LaunchMethodStateUpdate(const AttentionParams& attention, const SparseMethodParams& method,
                                    int64_t key_capacity, int64_t max_new_keys, cudaStream_t stream);

// The lengths of each sequence b of a step, written to device arrays of `batch` int32 each.
// Without seqlens_k every sequence has the whole past: past = past_length, valid rows = query_length,
// appended = kv_length, keys = present_length. With seqlens_k (device memory, GroupQueryAttention's
// convention: keys = seqlens_k[b] + 1), as the CPU op derives them, except that values outside the
// cache are clamped to it rather than rejected (the host never reads them).
struct SequenceLengthParams {
  int64_t batch = 0;
  int64_t query_length = 0;    // S
  int64_t kv_length = 0;       // S_kv
  int64_t past_length = 0;     // P, past_key's length
  int64_t present_length = 0;  // T_cap
  const int32_t* seqlens_k = nullptr;
  int32_t* past_lengths = nullptr;
  int32_t* valid_query_rows = nullptr;
  int32_t* append_counts = nullptr;
  int32_t* key_counts = nullptr;
};

cudaError_t LaunchSequenceLengths(const SequenceLengthParams& params, cudaStream_t stream);

// ---- Prefill steps ------------------------------------------------------------------------------
// Attention of S >= 1 query rows per sequence (usually S > 1): dense for `dense` and the
// decode-only methods (their prefill is exact: docs/ops.md, "Methods"), block-sparse for `block`,
// row-sparse for `hash` and `hyper` (their selections run on the GPU first, the same as the CPU
// kernels'). fp16 and bf16 run a tensor-core flash-attention kernel, fp32 a plain fp32 one. The
// caches and the method state must already hold this step's keys (LaunchKvAppend,
// LaunchMethodStateUpdate with max_new_keys = S).
//
// Limits, checked by CheckPrefillSupport: attention type fp16, bf16 or fp32 (fp32 accumulation);
// head size D = Dv in {64, 80, 96, 128}; no key selection list; rows of the query, the caches and
// the output at 16-byte boundaries (strides, and the pointers when given); a mask of bool or the
// attention type; S at most 4,194,240; method dense, a decode-only method, block (block_size a
// multiple of 64, at most kMaxPrefillKeyBlocks key blocks in the capacity), hash (raw queries,
// projections and the keys' buckets as method state given; rounds x ceil(buckets / 32) at most
// 128) or hyper (1 to 24 hyperplanes); hash and hyper at most kMaxPrefillKeyTiles tiles of 64 keys
// in the capacity.
constexpr int64_t kMaxPrefillKeyBlocks = 8192;
constexpr int64_t kMaxPrefillKeyTiles = int64_t{1} << 16;

Status CheckPrefillSupport(const AttentionParams& attention, const SparseMethodParams& method, int64_t key_capacity);

// Scratch a prefill step needs (0 for a dense one): block means and the kept-block bitmaps
// (block); the keys' sort (hyper), the row bitmaps of a slab of rows and their kept tiles (hash,
// hyper: at most about 256 MiB of bitmaps, more only when one block of 64 rows needs more).
size_t PrefillWorkspaceBytes(const AttentionParams& attention, const SparseMethodParams& method,
                             int64_t key_capacity);

// One prefill step: attention.output for every row of every sequence (rows at or beyond
// valid_query_rows[b] get zeros). `workspace` holds at least PrefillWorkspaceBytes(...) bytes of
// device memory in any state (may be null when that is 0). A few kernels (hash and hyper: two per
// slab of rows), all on `stream`.
cudaError_t LaunchPrefill(const AttentionParams& attention, const SparseMethodParams& method, int64_t key_capacity,
                          void* workspace, size_t workspace_bytes, cudaStream_t stream);

// Where the block selection of the last LaunchPrefill with these arguments and workspace lies (for
// tests and benchmarks): key block c (positions [c * block_size, (c + 1) * block_size)) is kept for
// query block qb (rows [qb * block_size, ...)) of query head h of sequence b iff bit c % 32 of
//   kept[((b * Hq + h) * query_blocks + qb) * words + c / 32]
// is set (device memory). All null / 0 unless the method is block.
struct PrefillBlockSelection {
  const uint32_t* kept = nullptr;
  int64_t query_blocks = 0;
  int64_t key_blocks = 0;
  int64_t words = 0;
};
PrefillBlockSelection DescribePrefillBlockSelection(const AttentionParams& attention, const SparseMethodParams& method,
                                                    int64_t key_capacity, const void* workspace);

// Where the row selection of the last LaunchPrefill with these arguments and workspace lies (for
// tests and benchmarks), for the rows [first_row, S) of the last slab: row i of sequence b attends
// key j of KV head h's group iff bit j % 32 of
//   row_keys[((b * Hkv + h) * slab_rows + i - first_row) * words + j / 32]
// is set, for the keys j the row may see (bits of other keys are unspecified; device memory). All
// null / 0 unless the method is hash or hyper.
struct PrefillRowSelection {
  const uint32_t* row_keys = nullptr;
  int64_t first_row = 0;
  int64_t slab_rows = 0;
  int64_t words = 0;
};
PrefillRowSelection DescribePrefillRowSelection(const AttentionParams& attention, const SparseMethodParams& method,
                                                int64_t key_capacity, const void* workspace);

}  // namespace ortsparse::cuda
