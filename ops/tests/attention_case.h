// A SparseAttention test case: its description, and the tensors it expands to, both as the op
// sees them (stored as fp32 or fp16) and as the fp64 reference sees them (the same stored values).
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "attention/attention_validation.h"
#include "ortsparse/data_type.h"
#include "reference_attention.h"

namespace ortsparse::testing {

enum class RotaryKind { kNone, kHalfSplit, kInterleaved };

struct AttentionCase {
  std::string name;
  DataType type = DataType::kFloat32;
  int64_t batch = 1, query_length = 1, num_heads = 4, kv_num_heads = 4, head_size = 64;
  std::optional<int64_t> kv_length;    // default: query_length
  std::optional<int64_t> v_head_size;  // default: head_size
  int64_t past_length = 0;             // past buffers' length (concatenation mode)

  bool causal = true;
  std::optional<float> scale;
  float softcap = 0.0f;
  int64_t local_window = -1;

  MaskKind mask = MaskKind::kNone;
  std::vector<int64_t> mask_leading_dims;  // the mask's shape without L, e.g. {B, 1, S}
  int64_t mask_columns_short_by = 0;       // L = present length - this
  int64_t first_row_visible_columns = -1;  // >= 0: bool mask row 0 shows only the keys below this

  RotaryKind rotary = RotaryKind::kNone;
  int64_t rotary_dim = 0;  // default: head_size
  bool position_ids = false;
  bool position_ids_broadcast = false;  // shape [1, S]

  // GroupQueryAttention mode: seqlens_k per sequence, total_sequence_length, and whether the
  // present cache is the past's buffer (then past_length is set to the capacity).
  std::vector<int32_t> seqlens_k;
  int32_t total_sequence_length = 0;
  bool shared_buffer = false;
};

void PrintTo(const AttentionCase& c, std::ostream* os);

// A tensor in the op's storage type, plus the fp64 values of what was stored.
struct StoredTensor {
  DataType type = DataType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<unsigned char> bytes;
  std::vector<double> values;
};

// Rounds `values` to `type` (fp32, fp16 or bool) and keeps both forms.
StoredTensor Store(DataType type, std::vector<int64_t> shape, const std::vector<double>& values);
std::vector<double> ReadStored(DataType type, const void* data, size_t count);
double RoundToType(DataType type, double value);

struct ExpandedCase {
  attention::AttentionAttributes attributes;
  ReferenceProblem problem;
  StoredTensor query, key, value, past_key, past_value, cos_cache, sin_cache, mask;
  std::vector<int32_t> seqlens_k;
  std::vector<int32_t> total_sequence_length;  // one value; a vector so that moves keep its address
  std::vector<int64_t> position_ids, position_ids_shape;
  attention::AttentionInputs inputs;  // views of the tensors above
};

ExpandedCase Expand(const AttentionCase& c, uint32_t seed);

// Seed of a case's random tensors: a hash of its name, so that every case has its own data.
uint32_t SeedOf(const AttentionCase& c);

// The results of the op on a case, read back as fp64.
struct OpResult {
  std::vector<double> output, present_key, present_value;
};

// Compares `actual` with the exact fp64 reference (see the tolerances in attention_case.cc); for
// fp16, `low_precision` is the reference of a plain fp16 implementation.
void ExpectMatches(const char* what, DataType type, const std::vector<double>& actual,
                   const std::vector<double>& exact, const std::vector<double>& low_precision);

// Compares the op's output and present caches on case `c` with both references.
void ExpectMatchesReference(const AttentionCase& c, const ExpandedCase& e, const OpResult& actual);

}  // namespace ortsparse::testing
