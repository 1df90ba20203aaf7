// IEEE 754 binary16 storage and exact, portable conversions to and from fp32.
#pragma once

#include <cstdint>
#include <cstring>

namespace ortsparse {

// Same layout as Ort::Float16_t / MLFloat16: the 16 raw bits.
struct Float16 {
  uint16_t bits;
};
static_assert(sizeof(Float16) == 2, "Float16 must be exactly the 16 storage bits");

namespace detail {
inline float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}
inline uint32_t FloatToBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}
}  // namespace detail

// Exact for every input, subnormals, infinities and NaNs included. Written with selects instead of
// branches so that loops converting whole rows vectorise.
inline float HalfToFloat(Float16 half) {
  constexpr uint32_t kShiftedExponent = 0x7c00u << 13;  // binary16 exponent field, moved to fp32's
  const uint32_t magnitude = (static_cast<uint32_t>(half.bits) & 0x7fffu) << 13;
  const uint32_t exponent = magnitude & kShiftedExponent;
  const uint32_t rebiased = magnitude + ((127u - 15u) << 23);
  // Inf/NaN: push the exponent to fp32's all-ones.
  const uint32_t special = rebiased + ((128u - 16u) << 23);
  // Zero/subnormal: give it the smallest normal exponent, then subtract that implicit leading one;
  // the subtraction is exact and renormalises the value.
  const float subnormal = detail::BitsToFloat(rebiased + (1u << 23)) - detail::BitsToFloat(113u << 23);
  uint32_t bits = exponent == kShiftedExponent ? special : rebiased;
  bits = exponent == 0 ? detail::FloatToBits(subnormal) : bits;
  return detail::BitsToFloat(bits | (static_cast<uint32_t>(half.bits) & 0x8000u) << 16);
}

// Rounds to nearest, ties to even; overflows to infinity; NaN stays a (quiet) NaN.
inline Float16 FloatToHalf(float value) {
  constexpr uint32_t kFloatInfinity = 255u << 23;
  constexpr uint32_t kHalfOverflow = (127u + 16u) << 23;  // 65536: rounds to inf from here on
  constexpr uint32_t kHalfMinNormal = 113u << 23;          // 2^-14
  uint32_t bits = detail::FloatToBits(value);
  const uint32_t sign = bits & 0x80000000u;
  bits ^= sign;
  uint32_t half;
  if (bits >= kHalfOverflow) {
    half = bits > kFloatInfinity ? 0x7e00u : 0x7c00u;
  } else if (bits < kHalfMinNormal) {
    // Adding 0.5 aligns the 10 subnormal mantissa bits at the bottom of the fp32 mantissa; the
    // fp32 addition itself rounds to nearest even.
    constexpr uint32_t kDenormMagic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    half = detail::FloatToBits(detail::BitsToFloat(bits) + detail::BitsToFloat(kDenormMagic)) - kDenormMagic;
  } else {
    const uint32_t mantissa_is_odd = (bits >> 13) & 1u;
    bits += ((15u - 127u) << 23) + 0xfffu + mantissa_is_odd;  // rebias, and round half to even
    half = bits >> 13;
  }
  return Float16{static_cast<uint16_t>(half | sign >> 16)};
}

}  // namespace ortsparse
