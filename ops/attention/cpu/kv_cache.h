// Appending the new keys or values of a step to the KV cache, on the CPU.
#pragma once

#include "ortsparse/attention_params.h"
#include "ortsparse/parallel.h"

namespace ortsparse::cpu {

// Writes params.present as KvAppendParams describes (copy of the past unless in place, new rows,
// rotated when params.rotary is set, zeroed tail unless in place).
void AppendToKvCache(const KvAppendParams& params, const ParallelRunner& runner);

}  // namespace ortsparse::cpu
