#include "attention/cpu/sparse_methods.h"

#include <algorithm>
#include <vector>

#include "attention/cpu/exact_attention.h"
#include "attention/cpu/method_selection.h"

namespace ortsparse::cpu {
namespace {

// Hash and hyper prefills list every row's keys; rows are selected and attended in slabs whose
// lists stay below this many spans (32 MB) even if every key matched (hash) or every pick is a span
// of its own (hyper).
constexpr int64_t kPrefillSlabSpans = int64_t{1} << 22;

// The most spans a prefill row of a step lists: every key it sees (hash), or sink, window and its
// picks, which for hyper are at most k, plus group - 1 where its heads round k_lsh up.
int64_t RowSpanBound(const AttentionParams& attention, const SparseMethodParams& method) {
  const int64_t longest = *std::max_element(attention.key_counts, attention.key_counts + attention.batch);
  if (method.method != SparseMethod::kHyper) return longest;
  const int64_t group = attention.num_heads / attention.kv_num_heads;
  return std::min(longest, PartitionRow({0, longest}, method).picks + group + 1);
}

Status AttendSelection(const AttentionParams& attention, SelectedKeys* selected, const ParallelRunner& runner) {
  AttentionParams with_selection = attention;
  with_selection.selection = &selected->Flatten();
  return ExactAttention(with_selection, runner);
}

// Rows [begin, end) of a step, as a step of their own.
struct RowSlab {
  AttentionParams attention;
  SparseMethodParams method;
  std::vector<int32_t> past_lengths;
  std::vector<int32_t> valid_query_rows;

  RowSlab(const AttentionParams& a, const SparseMethodParams& m, int64_t begin, int64_t end) : attention(a), method(m) {
    for (int64_t b = 0; b < a.batch; ++b) {
      past_lengths.push_back(static_cast<int32_t>(a.past_lengths[b] + begin));
      valid_query_rows.push_back(static_cast<int32_t>(std::clamp<int64_t>(a.valid_query_rows[b] - begin, 0, end - begin)));
    }
    const int64_t element = DataTypeSize(a.type);
    attention.query_length = end - begin;
    attention.query = static_cast<const char*>(a.query) + begin * a.query_strides[1] * element;
    attention.output = static_cast<char*>(a.output) + begin * a.output_strides[1] * element;
    attention.past_lengths = past_lengths.data();
    attention.valid_query_rows = valid_query_rows.data();
    if (a.mask.data != nullptr) {
      const int64_t mask_element = a.mask.type == DataType::kBool ? 1 : element;
      attention.mask.data = static_cast<const char*>(a.mask.data) + begin * a.mask.row_stride * mask_element;
    }
    method.raw_query = static_cast<const char*>(m.raw_query) + begin * m.raw_query_strides[1] * element;
  }
};

// Flags the keys of a decode step's selection (every visible key when the step is dense).
void MarkSelectedKeys(const AttentionParams& attention, const SelectedKeys& selected, bool sparse,
                      const SelectionFlags& report) {
  const int64_t groups = attention.batch * attention.kv_num_heads;
  std::fill(report.flags, report.flags + groups * report.capacity, false);
  for (int64_t index = 0; index < groups; ++index) {
    bool* row = report.flags + index * report.capacity;
    if (!sparse) {
      const KeyRange visible = VisibleKeys(attention, index / attention.kv_num_heads, 0);
      std::fill(row + visible.begin, row + visible.end, true);
      continue;
    }
    for (const KeySpan& span : selected.tile(index)) std::fill(row + span.begin, row + span.end, true);
  }
}

}  // namespace

Status SelectKeys(const AttentionParams& attention, const SparseMethodParams& method, const ParallelRunner& runner,
                  SelectedKeys* selected, bool* sparse) {
  const bool decoding = attention.query_length == 1;
  switch (method.method) {
    case SparseMethod::kDense:
      *sparse = false;
      return Status::Ok();
    case SparseMethod::kHash:
      *sparse = true;
      return decoding ? SelectForDecode(attention, method, runner, selected)
                      : SelectHashPrefill(attention, method, runner, selected);
    case SparseMethod::kBlock:
      *sparse = !decoding;
      return decoding ? Status::Ok() : SelectBlockPrefill(attention, method, runner, selected);
    case SparseMethod::kHyper: {
      *sparse = !decoding;
      if (decoding) return Status::Ok();
      SortedKeyCodes codes;
      ORTSPARSE_RETURN_IF_ERROR(SortKeyCodes(attention, method, runner, &codes));
      return SelectHyperPrefill(attention, method, codes, runner, selected);
    }
    default:  // decode-only methods: prefill is exact
      *sparse = decoding;
      return decoding ? SelectForDecode(attention, method, runner, selected) : Status::Ok();
  }
}

Status SparseAttention(const AttentionParams& attention, const SparseMethodParams& method,
                       const ParallelRunner& runner, const SelectionFlags* report) {
  const int64_t S = attention.query_length;
  // Decode steps reuse the lists of the thread's last step (small) instead of allocating them.
  thread_local SelectedKeys decode_selected;
  SelectedKeys prefill_selected;
  SelectedKeys& selected = S == 1 ? decode_selected : prefill_selected;
  const bool hyper = method.method == SparseMethod::kHyper;
  if ((method.method == SparseMethod::kHash || hyper) && S > 1) {
    SortedKeyCodes codes;  // hyper: the keys are sorted once, for every slab
    if (hyper) ORTSPARSE_RETURN_IF_ERROR(SortKeyCodes(attention, method, runner, &codes));
    const int64_t row_spans = attention.batch * attention.kv_num_heads * RowSpanBound(attention, method);
    const int64_t rows_per_slab = std::max<int64_t>(1, kPrefillSlabSpans / std::max<int64_t>(1, row_spans));
    for (int64_t begin = 0; begin < S; begin += rows_per_slab) {
      const RowSlab slab(attention, method, begin, std::min(S, begin + rows_per_slab));
      ORTSPARSE_RETURN_IF_ERROR(hyper ? SelectHyperPrefill(slab.attention, slab.method, codes, runner, &selected)
                                      : SelectHashPrefill(slab.attention, slab.method, runner, &selected));
      ORTSPARSE_RETURN_IF_ERROR(AttendSelection(slab.attention, &selected, runner));
    }
    return Status::Ok();
  }
  bool sparse = false;
  ORTSPARSE_RETURN_IF_ERROR(SelectKeys(attention, method, runner, &selected, &sparse));
  if (report != nullptr) MarkSelectedKeys(attention, selected, sparse, *report);
  return sparse ? AttendSelection(attention, &selected, runner) : ExactAttention(attention, runner);
}

}  // namespace ortsparse::cpu
