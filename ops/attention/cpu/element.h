// Element access shared by the CPU kernels: the attention type T is float or Float16 in storage,
// and every computation happens in fp32.
#pragma once

#include <cstdint>

#include "ortsparse/data_type.h"
#include "ortsparse/float16.h"

// Hot loops are compiled twice, for AVX2+FMA and for baseline x86-64 (see cpu_features.h);
// what they call must inline into both copies.
#if defined(__GNUC__)
#define ORTSPARSE_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ORTSPARSE_ALWAYS_INLINE inline
#endif

namespace ortsparse::cpu {

ORTSPARSE_ALWAYS_INLINE float ToFloat(float value) { return value; }
ORTSPARSE_ALWAYS_INLINE float ToFloat(Float16 value) { return HalfToFloat(value); }

template <typename T>
ORTSPARSE_ALWAYS_INLINE T FromFloat(float value);
template <>
ORTSPARSE_ALWAYS_INLINE float FromFloat<float>(float value) { return value; }
template <>
ORTSPARSE_ALWAYS_INLINE Float16 FromFloat<Float16>(float value) { return FloatToHalf(value); }

template <typename T>
ORTSPARSE_ALWAYS_INLINE void RowToFloat(const T* source, int64_t count, float* destination) {
  for (int64_t i = 0; i < count; ++i) destination[i] = ToFloat(source[i]);
}

template <typename T>
ORTSPARSE_ALWAYS_INLINE void RowFromFloat(const float* source, int64_t count, T* destination) {
  for (int64_t i = 0; i < count; ++i) destination[i] = FromFloat<T>(source[i]);
}

// A block of cache (or state) rows as fp32: fp32 rows are read where they are, fp16 ones are
// converted once into `scratch`, for all the queries that read the block.
struct FloatRows {
  const float* data;
  int64_t stride;
};

ORTSPARSE_ALWAYS_INLINE FloatRows BlockAsFloat(const float* rows, int64_t stride, int64_t, int64_t, float*) {
  return {rows, stride};
}

ORTSPARSE_ALWAYS_INLINE FloatRows BlockAsFloat(const Float16* rows, int64_t stride, int64_t row_count, int64_t width,
                                               float* scratch) {
  for (int64_t j = 0; j < row_count; ++j) RowToFloat(rows + j * stride, width, scratch + j * width);
  return {scratch, width};
}

// Calls fn with a value of the C++ type that stores `type` (float or Float16); callers have
// validated that `type` is one of the two.
template <typename Fn>
decltype(auto) VisitAttentionType(DataType type, Fn&& fn) {
  if (type == DataType::kFloat16) return fn(Float16{});
  return fn(float{});
}

}  // namespace ortsparse::cpu
