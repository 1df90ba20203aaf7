// Exact attention on the CPU: over every visible key (dense), or over the keys a sparse method
// selected (params.selection).
#pragma once

#include "ortsparse/attention_params.h"
#include "ortsparse/parallel.h"
#include "ortsparse/status.h"

namespace ortsparse::cpu {

// Computes params.output; see AttentionParams for the semantics. Streams the tile's keys in blocks
// with an online softmax (never a S x T score matrix), accumulating in fp32. The query heads that
// share a key set are processed together, so each cache row is read once per tile; selected keys
// are gathered block by block into the same loop. With few tiles, as in decoding, a tile's keys are
// split into chunks whose partial results are merged afterwards (flash-decoding), to keep every
// thread busy. Fails only when a thread cannot get its scratch memory.
Status ExactAttention(const AttentionParams& params, const ParallelRunner& runner);

}  // namespace ortsparse::cpu
