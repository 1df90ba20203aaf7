// A sparse method run over several steps (prompt, chunked prefill, decode) through the op's CPU
// path, each step checked against the fp64 references: the keys every query row attends
// (reference_methods), the output (reference_attention over those keys), and the method's state.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attention/attention_validation.h"
#include "attention_case.h"
#include "ortsparse/attention_params.h"
#include "reference_methods.h"

namespace ortsparse::testing {

struct MethodScenario {
  std::string name;
  DataType type = DataType::kFloat32;
  int64_t batch = 2, num_heads = 4, kv_num_heads = 2, head_size = 64;
  std::optional<float> scale;
  // Values on a dyadic grid (multiples of 1/4): scores and summaries are exact in fp32 and fp16, so
  // selections must match the reference exactly, ties included. Otherwise normal values.
  bool grid_values = true;
  int grid_steps = 8;  // grid values are multiples of 1/4 in [-grid_steps / 4, grid_steps / 4]; 1: ties galore
  RotaryKind rotary = RotaryKind::kNone;
  MaskKind mask = MaskKind::kNone;  // a boolean mask hiding scattered positions
  bool mask_per_head = false;       // ... differently for each query head
  int64_t local_window = -1;
  float softcap = 0.0f;

  attention::AttentionAttributes attributes;  // the method's; heads and the flags above are filled in
  int64_t clusters = 8, hidden = 16;          // saap
  bool uniform_classifier = false;            // saap: a zero second layer, so every cluster ties
  int64_t hash_rounds = 3, hash_half_buckets = 4;
  bool zero_hash_projections = false;  // every key and query in bucket 0: hash then reads every key
  int64_t hyper_bits = 4;              // hyper: L hyperplanes per KV head (16 codes over ~70 keys: ties)

  // Tokens each step appends: steps[0] is the prompt (first_prompt[b] <= steps[0] tokens of sequence
  // b, right-padded, in seqlens mode), the rest append steps[t] to every sequence.
  std::vector<int64_t> steps;
  std::vector<int32_t> first_prompt;
  bool seqlens = true;       // GroupQueryAttention mode with a cache of `capacity`; else concatenation
  int64_t capacity = 0;
  bool shared_buffers = true;  // seqlens mode: caches and state bound to past and present (in place)
  int64_t drop_state_at_step = -1;  // this step gets the cache without its past state (rebuilt from it)
  uint32_t seed = 1;  // of the token stream: scenarios with the same seed and shapes see the same tokens
};

void PrintTo(const MethodScenario& scenario, std::ostream* os);

// What the last step left, for comparisons between scenarios.
struct ScenarioOutcome {
  std::vector<double> state;  // valid rows only, per (b, KV head) in order
  std::vector<double> output;
  int64_t keys_left_out = 0;  // over all steps, rows and heads: keys seen but not attended
};

// Runs every step, checking each (gtest assertions); fills `outcome` if given.
void RunScenario(const MethodScenario& scenario, ScenarioOutcome* outcome = nullptr);

// The keys (b, i, h) attends, as [T_cap] flags: those it sees (Sees) that the kernel's selection
// lists, or all it sees without a selection (a dense step).
std::vector<uint8_t> SelectedKeysOf(const KeySelection* selection, const ReferenceProblem& problem,
                                    const ReferenceSequences& sequences, int64_t b, int64_t i, int64_t h);

// Calibration for `scenario`'s method (empty for methods without), as the op and the reference see it.
struct Calibration {
  std::vector<StoredTensor> tensors;  // method_data_0.. in order
  ReferenceMethod reference;
};
Calibration MakeCalibration(const MethodScenario& scenario);

}  // namespace ortsparse::testing
