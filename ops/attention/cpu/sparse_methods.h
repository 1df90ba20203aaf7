// The sparse methods on the CPU (docs/ops.md, "Methods"), as variants of shared building blocks: a
// method may keep per-key state next to the KV cache (UpdateMethodState), it selects the keys each
// query row attends (SelectKeys: per KV-head group for decoding, per row for hash and hyper prefill,
// per query head and block for block prefill), and the exact-attention kernel attends that selection.
#pragma once

#include "attention/cpu/key_selection.h"
#include "ortsparse/attention_params.h"
#include "ortsparse/parallel.h"
#include "ortsparse/sparse_method_params.h"
#include "ortsparse/status.h"

namespace ortsparse::cpu {

// Brings method.state up to date with the keys of this step, which `attention`'s cache already
// holds: the past rows are copied unless in place (or, when the state has no past, built from the
// cache), the keys at [past_lengths[b], key_counts[b]) are summarised, and the rows beyond are
// zeroed unless in place. Nothing to do for methods without state.
Status UpdateMethodState(const AttentionParams& attention, const SparseMethodParams& method,
                         const ParallelRunner& runner);

// The keys each tile attends on this step. *sparse is false, and `selected` untouched, when the
// step is attended densely: dense itself, a prefill of a decode-only method, a decode step of block
// or hyper.
Status SelectKeys(const AttentionParams& attention, const SparseMethodParams& method, const ParallelRunner& runner,
                  SelectedKeys* selected, bool* sparse);

// Diagnostics of a decode step: flags[(b * Hkv + h) * capacity + j] is true iff the group of KV
// head h of sequence b attends key j (every visible key when the step is dense).
struct SelectionFlags {
  bool* flags = nullptr;
  int64_t capacity = 0;
};

// The step's attention output: SelectKeys, then ExactAttention over the selection. With `report`
// (decode steps only), also flags the keys that selection holds.
Status SparseAttention(const AttentionParams& attention, const SparseMethodParams& method,
                       const ParallelRunner& runner, const SelectionFlags* report = nullptr);

}  // namespace ortsparse::cpu
