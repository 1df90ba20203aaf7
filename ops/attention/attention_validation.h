// Validation of SparseAttention's attributes and inputs, independent of ONNX Runtime: from the
// inputs' types and shapes (and the values of the small integer inputs) it derives every size the
// op needs, or returns an error naming the input or attribute and the offending values.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ortsparse/data_type.h"
#include "ortsparse/sparse_method_params.h"
#include "ortsparse/status.h"

namespace ortsparse::attention {

enum InputIndex : int {
  kQuery,
  kKey,
  kValue,
  kPastKey,
  kPastValue,
  kSeqlensK,
  kTotalSequenceLength,
  kCosCache,
  kSinCache,
  kPositionIds,
  kAttentionMask,
  kPastIndex,
  kPastSummary,
  kMethodData0,
  kMethodData1,
  kMethodData2,
  kMethodData3,
  kInputCount
};

enum OutputIndex : int { kOutput, kPresentKey, kPresentValue, kPresentIndex, kPresentSummary, kSelectedKeys, kOutputCount };

const char* InputName(int index);

struct TensorInfo {
  bool present = false;  // false: optional input not given
  DataType type = DataType::kOther;
  std::vector<int64_t> shape;
  // Host data; read for seqlens_k, total_sequence_length and position_ids only.
  const void* data = nullptr;
};

using AttentionInputs = std::array<TensorInfo, kInputCount>;

struct AttentionAttributes {
  int64_t num_heads = 0;
  int64_t kv_num_heads = 0;
  std::optional<float> scale;  // default 1 / sqrt(head_size)
  float softcap = 0.0f;
  int64_t is_causal = 1;
  int64_t local_window_size = -1;
  int64_t do_rotary = 0;
  int64_t rotary_interleaved = 0;
  std::string method = "dense";
  float budget = 0.0625f;
  int64_t sink = 4;
  int64_t window = 64;
  int64_t dense_below = 1024;
  int64_t page_size = 16;       // quest
  std::optional<int64_t> rank;  // loki; default head_size / 4
  int64_t block_size = 64;      // block
  float gamma = 0.95f;          // block
};

Status ValidateAttributes(const AttentionAttributes& attributes);

// The method an attribute value names; nullopt for an unknown name.
std::optional<SparseMethod> ParseMethod(const std::string& name);

// Everything the op derives before it computes.
struct AttentionPlan {
  DataType type = DataType::kFloat32;  // T
  int64_t batch = 0;                   // B
  int64_t query_length = 0;            // S
  int64_t kv_length = 0;               // S_kv
  int64_t num_heads = 0;               // Hq
  int64_t kv_num_heads = 0;            // Hkv
  int64_t head_size = 0;               // D
  int64_t v_head_size = 0;             // Dv
  int64_t past_length = 0;             // P, 0 without past_key
  int64_t present_length = 0;          // T_cap with seqlens_k, P + S_kv without
  bool uses_seqlens = false;
  float scale = 1.0f;

  int64_t rotary_dim = 0;  // 0 unless do_rotary
  int64_t max_position = 0;
  int64_t position_ids_batch_stride = 0;  // 0 for position_ids of shape [1, S]

  bool has_mask = false;
  DataType mask_type = DataType::kBool;
  int64_t mask_strides[3] = {};  // over [B, Hq, S]; 0 where the mask broadcasts
  int64_t mask_length = 0;       // L

  // Per sequence b.
  std::vector<int32_t> past_lengths;      // past[b]
  std::vector<int32_t> valid_query_rows;  // rows that attend; the others produce zeros
  std::vector<int32_t> append_counts;     // new cache rows written at past[b]
  std::vector<int32_t> key_counts;        // valid cache rows after this step

  SparseMethod method = SparseMethod::kDense;
  // The state a method keeps (quest, loki: present_summary; saap, hash: present_index), of shape
  // [B, Hkv, state rows for T_cap, state_width]; -1 for methods without state.
  int state_output = -1;
  int64_t state_width = 0;
  bool state_has_past = false;  // the state's past input is given; otherwise it is built from the cache
  int64_t rank = 0;                 // loki
  int64_t clusters = 0;             // saap: C
  int64_t classifier_hidden = 0;    // saap: M
  int64_t hash_rounds = 0;          // hash: R; hyper: 1
  int64_t hash_half_buckets = 0;    // hash: NB / 2; hyper: L, the bits of a code

  // Method state outputs. A method's own state has its shape for T_cap; a state the method does not
  // keep passes through: the shape of its past input, [B, Hkv, 0, 0] without one.
  std::vector<int64_t> present_index_shape;
  std::vector<int64_t> present_summary_shape;
};

// What the kernels that will run the step can do and where the inputs' data is.
struct PlanOptions {
  bool allow_bfloat16 = false;  // the CUDA kernels store bf16; the CPU kernels do not
  // seqlens_k and position_ids are in device memory: their values are not read, and the
  // per-sequence vectors of the plan hold the shape-derived defaults (the kernels derive the
  // lengths on the device, clamped to the cache). total_sequence_length is always read on the host.
  bool sequence_values_on_device = false;
};

// Validates the attributes and every input, then (unless on the device) the values of seqlens_k
// and position_ids and that of total_sequence_length, and fills `plan`. Nothing is written anywhere
// else.
Status PlanAttention(const AttentionAttributes& attributes, const AttentionInputs& inputs, AttentionPlan* plan,
                     const PlanOptions& options = PlanOptions());

}  // namespace ortsparse::attention
