// Exact ("dense") attention on the CPU.
#pragma once

#include "ortsparse/attention_params.h"
#include "ortsparse/parallel.h"
#include "ortsparse/status.h"

namespace ortsparse::cpu {

// Computes params.output; see AttentionParams for the semantics. Streams the cache in blocks of
// keys with an online softmax (never a S x T score matrix), accumulating in fp32. The query heads
// of one KV head are processed together, so each cache row is read once per group; with few
// (sequence, KV head) tiles, as in decoding, the key range is split into chunks whose partial
// results are merged afterwards (flash-decoding), to keep every thread busy.
// Fails only when a thread cannot get its scratch memory.
Status DenseAttention(const AttentionParams& params, const ParallelRunner& runner);

}  // namespace ortsparse::cpu
