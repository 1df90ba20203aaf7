// The scalar building blocks: fp16 <-> fp32 conversion and the softmax exponential.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "attention/cpu/vector_math.h"
#include "ortsparse/float16.h"

namespace ortsparse {
namespace {

// binary16 decoded from its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m for e = 0.
double DecodeHalf(uint16_t bits) {
  const int sign = bits >> 15, exponent = (bits >> 10) & 0x1f, mantissa = bits & 0x3ff;
  double magnitude;
  if (exponent == 0x1f) {
    magnitude = mantissa == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (exponent == 0) {
    magnitude = std::ldexp(mantissa, -24);
  } else {
    magnitude = std::ldexp(1024 + mantissa, exponent - 25);
  }
  return sign ? -magnitude : magnitude;
}

TEST(Float16Test, DecodesEveryHalfExactly) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const double expected = DecodeHalf(static_cast<uint16_t>(bits));
    const float actual = HalfToFloat(Float16{static_cast<uint16_t>(bits)});
    if (std::isnan(expected)) {
      EXPECT_TRUE(std::isnan(actual)) << std::hex << bits;
    } else {
      ASSERT_EQ(static_cast<double>(actual), expected) << std::hex << bits;
      ASSERT_EQ(std::signbit(actual), (bits & 0x8000) != 0) << std::hex << bits;  // -0 stays -0
    }
  }
}

TEST(Float16Test, RoundTripsEveryHalf) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const Float16 half{static_cast<uint16_t>(bits)};
    const Float16 back = FloatToHalf(HalfToFloat(half));
    if (std::isnan(HalfToFloat(half))) {
      EXPECT_TRUE(std::isnan(HalfToFloat(back))) << std::hex << bits;
    } else {
      ASSERT_EQ(back.bits, half.bits) << std::hex << bits;
    }
  }
}

// Between every pair of neighbouring finite halves: just below, at and just above the midpoint
// must round to the nearer one, and ties to the one with an even mantissa.
TEST(Float16Test, RoundsToNearestEven) {
  for (uint32_t bits = 0; bits < 0x7bff; ++bits) {
    const float low = HalfToFloat(Float16{static_cast<uint16_t>(bits)});
    const float high = HalfToFloat(Float16{static_cast<uint16_t>(bits + 1)});
    const float middle = static_cast<float>((static_cast<double>(low) + high) / 2);  // exact in fp32
    const uint16_t even = (bits & 1) == 0 ? bits : bits + 1;
    for (const float sign : {1.0f, -1.0f}) {
      const uint16_t sign_bit = sign < 0 ? 0x8000 : 0;
      ASSERT_EQ(FloatToHalf(sign * std::nextafter(middle, 0.0f)).bits, bits | sign_bit) << std::hex << bits;
      ASSERT_EQ(FloatToHalf(sign * middle).bits, even | sign_bit) << std::hex << bits;
      ASSERT_EQ(FloatToHalf(sign * std::nextafter(middle, 1e9f)).bits, (bits + 1) | sign_bit) << std::hex << bits;
    }
  }
}

TEST(Float16Test, OverflowsToInfinityAndKeepsNan) {
  EXPECT_EQ(FloatToHalf(65504.0f).bits, 0x7bff);   // largest half
  EXPECT_EQ(FloatToHalf(65519.99f).bits, 0x7bff);  // below the midpoint to 65536
  EXPECT_EQ(FloatToHalf(65520.0f).bits, 0x7c00);   // the tie rounds to even: infinity
  EXPECT_EQ(FloatToHalf(1e30f).bits, 0x7c00);
  EXPECT_EQ(FloatToHalf(-std::numeric_limits<float>::infinity()).bits, 0xfc00);
  EXPECT_TRUE(std::isnan(HalfToFloat(FloatToHalf(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(FloatToHalf(1e-9f).bits, 0x0000);  // below half the smallest subnormal
  EXPECT_EQ(FloatToHalf(-1e-9f).bits, 0x8000);
}

// The exponential against double precision over the whole range it serves, x <= 0.
TEST(ExpTest, IsAccurateForNonPositiveArguments) {
  double worst_relative_error = 0.0;
  for (float x = -86.9f; x <= 0.0f; x += 0.001f) {
    const double exact = std::exp(static_cast<double>(x));
    worst_relative_error = std::max(worst_relative_error, std::abs(cpu::ExpNonPositive(x) - exact) / exact);
  }
  EXPECT_LT(worst_relative_error, 2.5e-7);  // about 2 ulp of fp32
  EXPECT_EQ(cpu::ExpNonPositive(0.0f), 1.0f);
}

TEST(ExpTest, FlushesTinyResultsAndMaskedScoresToZero) {
  EXPECT_EQ(cpu::ExpNonPositive(-87.5f), 0.0f);
  EXPECT_EQ(cpu::ExpNonPositive(-1e30f), 0.0f);
  EXPECT_EQ(cpu::ExpNonPositive(-std::numeric_limits<float>::infinity()), 0.0f);
}

}  // namespace
}  // namespace ortsparse
