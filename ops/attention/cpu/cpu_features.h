// Runtime choice between the AVX2+FMA and the baseline copies of a hot loop. GCC's target_clones
// with arch=haswell/x86-64-v3 dispatches on CPU model or on the whole v3 feature set, which
// misses CPUs (and hypervisors) that have AVX2 and FMA but hide another v3 feature; so the kernels
// carry two explicitly targeted copies and pick one on the two features they actually use.
// ORTSPARSE_CPU_BASELINE=1 in the environment forces the baseline copies (tests run both).
#pragma once

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#define ORTSPARSE_HAS_AVX2_VARIANT 1
#define ORTSPARSE_TARGET_AVX2_FMA __attribute__((target("avx2,fma")))
#else
#define ORTSPARSE_HAS_AVX2_VARIANT 0
#define ORTSPARSE_TARGET_AVX2_FMA
#endif

namespace ortsparse::cpu {

inline bool UseAvx2FmaKernels() {
#if ORTSPARSE_HAS_AVX2_VARIANT
  static const bool use = [] {
    const char* baseline = std::getenv("ORTSPARSE_CPU_BASELINE");
    if (baseline != nullptr && std::strcmp(baseline, "1") == 0) return false;
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return use;
#else
  return false;
#endif
}

}  // namespace ortsparse::cpu
