// Vectorisable building blocks of the attention inner loops. No -ffast-math: reductions keep one
// independent partial sum per lane, which the compiler may vectorise without reassociating.
#pragma once

#include <cstdint>
#include <cstring>

#include "attention/cpu/element.h"

namespace ortsparse::cpu {

constexpr int kLanes = 16;  // two AVX2 registers, one AVX-512 register

ORTSPARSE_ALWAYS_INLINE float ReduceLanes(float (&lanes)[kLanes]) {
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  }
  return lanes[0];
}

ORTSPARSE_ALWAYS_INLINE float Dot(const float* a, const float* b, int64_t count) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += a[i + lane] * b[i + lane];
  }
  float tail = 0.0f;
  for (; i < count; ++i) tail += a[i] * b[i];
  return ReduceLanes(lanes) + tail;
}

// Eight floats as one SIMD value (GCC/Clang vector extensions: AVX in the AVX2 copies of the
// kernels, pairs of SSE registers in the baseline ones). A view of unaligned memory that may alias
// float arrays: `*AsVec8(p)` loads or stores p[0..8) with no alignment requirement.
typedef float Vec8 __attribute__((vector_size(32), aligned(4), may_alias));
typedef float Vec4 __attribute__((vector_size(16), aligned(4), may_alias));

ORTSPARSE_ALWAYS_INLINE Vec8* AsVec8(float* p) { return reinterpret_cast<Vec8*>(p); }
ORTSPARSE_ALWAYS_INLINE const Vec8* AsVec8(const float* p) { return reinterpret_cast<const Vec8*>(p); }
ORTSPARSE_ALWAYS_INLINE Vec4* AsVec4(float* p) { return reinterpret_cast<Vec4*>(p); }

// out = {a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, a6+a7, b4+b5, b6+b7}, the order of x86's hadd.
ORTSPARSE_ALWAYS_INLINE void AddAdjacentPairs(const Vec8& a, const Vec8& b, Vec8& out) {
#if defined(__clang__)
  out = __builtin_shufflevector(a, b, 0, 2, 8, 10, 4, 6, 12, 14) + __builtin_shufflevector(a, b, 1, 3, 9, 11, 5, 7, 13, 15);
#else
  typedef int32_t Index8 __attribute__((vector_size(32)));
  constexpr Index8 kEven = {0, 2, 8, 10, 4, 6, 12, 14};
  constexpr Index8 kOdd = {1, 3, 9, 11, 5, 7, 13, 15};
  out = __builtin_shuffle(a, b, kEven) + __builtin_shuffle(a, b, kOdd);
#endif
}

// The sums of the eight lanes of a, b, c and d: a transposing tree of pairwise adds, instead of
// four separate horizontal reductions.
ORTSPARSE_ALWAYS_INLINE Vec4 SumLanesOfFour(const Vec8& a, const Vec8& b, const Vec8& c, const Vec8& d) {
  Vec8 ab, cd, abcd;
  AddAdjacentPairs(a, b, ab);
  AddAdjacentPairs(c, d, cd);
  AddAdjacentPairs(ab, cd, abcd);  // {a, b, c, d} partial sums of lanes 0-3, then of lanes 4-7
  Vec4 low, high;  // the halves as vectors: one add, not four scalar extracts
  std::memcpy(&low, &abcd, sizeof(low));
  std::memcpy(&high, reinterpret_cast<const char*>(&abcd) + sizeof(low), sizeof(high));
  return low + high;
}

// {q . rows[r * row_stride, :] for r < 4}. Eight independent accumulators (two per row) hide the
// FMA latency a single dot product is bound by, and q is loaded once for the four rows.
ORTSPARSE_ALWAYS_INLINE Vec4 DotFourRows(const float* q, const float* rows, int64_t row_stride, int64_t count) {
  const float* r0 = rows;
  const float* r1 = r0 + row_stride;
  const float* r2 = r1 + row_stride;
  const float* r3 = r2 + row_stride;
  Vec8 a0 = {}, a1 = {}, b0 = {}, b1 = {}, c0 = {}, c1 = {}, d0 = {}, d1 = {};
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const Vec8 x0 = *AsVec8(q + i), x1 = *AsVec8(q + i + 8);
    a0 += x0 * *AsVec8(r0 + i);
    a1 += x1 * *AsVec8(r0 + i + 8);
    b0 += x0 * *AsVec8(r1 + i);
    b1 += x1 * *AsVec8(r1 + i + 8);
    c0 += x0 * *AsVec8(r2 + i);
    c1 += x1 * *AsVec8(r2 + i + 8);
    d0 += x0 * *AsVec8(r3 + i);
    d1 += x1 * *AsVec8(r3 + i + 8);
  }
  Vec4 dots = SumLanesOfFour(a0 + a1, b0 + b1, c0 + c1, d0 + d1);
  for (; i < count; ++i) {
    dots[0] += q[i] * r0[i];
    dots[1] += q[i] * r1[i];
    dots[2] += q[i] * r2[i];
    dots[3] += q[i] * r3[i];
  }
  return dots;
}

// out[r] = q . rows[r * row_stride, :] for r < row_count.
ORTSPARSE_ALWAYS_INLINE void DotRows(const float* q, const float* rows, int64_t row_stride, int64_t row_count,
                                     int64_t count, float* out) {
  int64_t r = 0;
  for (; r + 4 <= row_count; r += 4) *AsVec4(out + r) = DotFourRows(q, rows + r * row_stride, row_stride, count);
  for (; r < row_count; ++r) out[r] = Dot(q, rows + r * row_stride, count);
}

ORTSPARSE_ALWAYS_INLINE float Max(const float* values, int64_t count) {
  float lanes[kLanes];
  for (int lane = 0; lane < kLanes; ++lane) lanes[lane] = values[0];
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] = values[i + lane] > lanes[lane] ? values[i + lane] : lanes[lane];
  }
  for (; i < count; ++i) lanes[0] = values[i] > lanes[0] ? values[i] : lanes[0];
  for (int lane = 1; lane < kLanes; ++lane) lanes[0] = lanes[lane] > lanes[0] ? lanes[lane] : lanes[0];
  return lanes[0];
}

ORTSPARSE_ALWAYS_INLINE float Sum(const float* values, int64_t count) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= count; i += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += values[i + lane];
  }
  float tail = 0.0f;
  for (; i < count; ++i) tail += values[i];
  return ReduceLanes(lanes) + tail;
}

// exp(x) for x <= 0, the only arguments softmax needs once the running maximum is subtracted
// (-inf included, for masked keys). Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, and Cephes'
// degree-6 polynomial for exp(r): about 1 ulp, against several for a scalar libm call per score.
// Results below exp(-87) ~ 1.6e-38 flush to zero; next to the maximum's exp(0) = 1 they vanish in
// fp32 sums anyway.
ORTSPARSE_ALWAYS_INLINE float ExpNonPositive(float x) {
  constexpr float kFlushBelow = -87.0f;
  constexpr float kLog2E = 1.44269504088896341f;
  constexpr float kLn2High = 0.693359375f;  // ln 2 = kLn2High + kLn2Low, kLn2High exact in 9 bits
  constexpr float kLn2Low = -2.12194440e-4f;
  constexpr float kRoundingShift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float clamped = x < kFlushBelow ? kFlushBelow : x;
  const float shifted = clamped * kLog2E + kRoundingShift;
  const float n = shifted - kRoundingShift;
  uint32_t shifted_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof(shifted_bits));
  const int32_t exponent = static_cast<int32_t>(shifted_bits - 0x4b400000u);  // n as an integer
  const float r = clamped - n * kLn2High - n * kLn2Low;
  float poly = 1.9875691500e-4f;
  poly = poly * r + 1.3981999507e-3f;
  poly = poly * r + 8.3334519073e-3f;
  poly = poly * r + 4.1665795894e-2f;
  poly = poly * r + 1.6666665459e-1f;
  poly = poly * r + 5.0000001201e-1f;
  const float exp_r = poly * r * r + r + 1.0f;
  const uint32_t scale_bits = static_cast<uint32_t>(exponent + 127) << 23;  // 2^n, n >= -126
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof(scale));
  return x < kFlushBelow ? 0.0f : exp_r * scale;
}

ORTSPARSE_ALWAYS_INLINE void ExpNonPositiveInPlace(float* values, int64_t count) {
  for (int64_t i = 0; i < count; ++i) values[i] = ExpNonPositive(values[i]);
}

// accumulator += sum_j weights[j] * rows[j * row_stride, :]. The accumulator is walked in slices
// of 64 floats that stay in eight registers (eight independent FMA chains) for all the rows.
ORTSPARSE_ALWAYS_INLINE void AccumulateWeightedRows(const float* weights, const float* rows, int64_t row_stride,
                                                    int64_t row_count, int64_t width, float* accumulator) {
  constexpr int kSliceVectors = 8;
  int64_t d = 0;
  for (; d + 8 * kSliceVectors <= width; d += 8 * kSliceVectors) {
    Vec8 slice[kSliceVectors];
    for (int k = 0; k < kSliceVectors; ++k) slice[k] = *AsVec8(accumulator + d + 8 * k);
    for (int64_t j = 0; j < row_count; ++j) {
      const float w = weights[j];
      const float* row = rows + j * row_stride + d;
      for (int k = 0; k < kSliceVectors; ++k) slice[k] += w * *AsVec8(row + 8 * k);
    }
    for (int k = 0; k < kSliceVectors; ++k) *AsVec8(accumulator + d + 8 * k) = slice[k];
  }
  for (; d + 8 <= width; d += 8) {
    Vec8 slice = *AsVec8(accumulator + d);
    for (int64_t j = 0; j < row_count; ++j) slice += weights[j] * *AsVec8(rows + j * row_stride + d);
    *AsVec8(accumulator + d) = slice;
  }
  for (; d < width; ++d) {
    float sum = accumulator[d];
    for (int64_t j = 0; j < row_count; ++j) sum += weights[j] * rows[j * row_stride + d];
    accumulator[d] = sum;
  }
}

ORTSPARSE_ALWAYS_INLINE void ScaleInPlace(float* values, int64_t count, float factor) {
  for (int64_t i = 0; i < count; ++i) values[i] *= factor;
}

}  // namespace ortsparse::cpu
