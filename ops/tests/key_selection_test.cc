// The selection building blocks against sort-based references: the top-k of a row of scores (ties,
// non-candidates, samples that mislead the bound estimate), the weighted unit selection of quest
// and saap, and hyper's codes and their sortLSH rank.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu/key_selection.h"
#include "attention/cpu/key_summaries.h"

namespace ortsparse::cpu {
namespace {

constexpr float kInfinity = std::numeric_limits<float>::infinity();

// The k best candidates by (score, then position order), sorted by position.
std::vector<int32_t> ReferenceTopK(const std::vector<float>& scores, int64_t k, bool later_first) {
  std::vector<int32_t> candidates;
  for (size_t i = 0; i < scores.size(); ++i) {
    if (scores[i] > -kInfinity) candidates.push_back(static_cast<int32_t>(i));
  }
  std::sort(candidates.begin(), candidates.end(), [&](int32_t a, int32_t b) {
    if (scores[a] != scores[b]) return scores[a] > scores[b];
    return later_first ? a > b : a < b;
  });
  candidates.resize(std::min<size_t>(candidates.size(), static_cast<size_t>(std::max<int64_t>(k, 0))));
  std::sort(candidates.begin(), candidates.end());
  return candidates;
}

void ExpectTopK(const std::vector<float>& scores, int64_t k, const std::string& what) {
  for (bool later_first : {false, true}) {
    std::vector<int32_t> picked;
    SelectTopK(scores.data(), static_cast<int64_t>(scores.size()), k, later_first, &picked);
    EXPECT_EQ(picked, ReferenceTopK(scores, k, later_first)) << what << ", k = " << k << ", later_first = " << later_first;
  }
}

TEST(SelectTopKTest, MatchesASortOnDistinctScores) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<float> scores(50000);
  for (float& s : scores) s = normal(rng);
  for (int64_t k : {0, 1, 100, 2048, 49999, 50000, 60000}) ExpectTopK(scores, k, "normal scores");
}

TEST(SelectTopKTest, BreaksMassiveTiesByPosition) {
  std::mt19937 rng(2);
  std::uniform_int_distribution<int> rounds(1, 4);  // as hash's matching rounds
  std::vector<float> scores(40000);
  for (float& s : scores) s = static_cast<float>(rounds(rng));
  for (int64_t k : {1, 2048, 10000, 30000}) ExpectTopK(scores, k, "four distinct scores");
  std::fill(scores.begin(), scores.end(), 0.5f);
  ExpectTopK(scores, 2048, "one score");
  for (size_t i = 0; i < scores.size(); ++i) scores[i] = i % 2 == 0 ? 0.0f : -0.0f;  // equal scores
  ExpectTopK(scores, 777, "signed zeros");
}

TEST(SelectTopKTest, NeverTakesNonCandidates) {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> uniform;
  std::vector<float> scores(30000);
  for (float& s : scores) {
    const float u = uniform(rng);
    s = u < 0.3f ? -kInfinity : u < 0.31f ? std::nanf("") : u < 0.312f ? kInfinity : normal(rng);
  }
  for (int64_t k : {10, 2048, 20000, 21000, 30000}) ExpectTopK(scores, k, "with -inf, NaN and inf");
}

// A sample that sees only the best scores sets its bound too high; the selection must notice.
TEST(SelectTopKTest, RecoversFromAMisleadingSample) {
  std::vector<float> scores(40000, 0.0f);
  for (size_t i = 0; i < scores.size(); i += 39) scores[i] = 10.0f;  // the sample's stride
  ExpectTopK(scores, 2048, "sample of the best only");
  std::vector<float> ascending(40000);
  std::iota(ascending.begin(), ascending.end(), -20000.0f);
  ExpectTopK(ascending, 2048, "ascending scores");
}

// BestLeftOut: units (pages, clusters) taken by rank until their weights reach `needed`.
TEST(BestLeftOutTest, TakesUnitsInRankOrderUntilTheirWeightSuffices) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> coarse(0, 5), weight(1, 16);
  for (int trial = 0; trial < 200; ++trial) {
    const int64_t count = 1 + trial * 3;
    std::vector<float> scores(count);
    std::vector<int32_t> weights(count);
    for (int64_t u = 0; u < count; ++u) {
      scores[u] = static_cast<float>(coarse(rng));  // many ties: by id
      weights[u] = weight(rng);
    }
    const int64_t needed = 1 + trial * 5;
    std::vector<int32_t> ids(count);
    std::iota(ids.begin(), ids.end(), 0);
    const UnitRanking ranking{scores.data()};
    const int32_t left_out = BestLeftOut(ids.data(), count, ranking, weights.data(), 16, needed);

    std::vector<int32_t> order(count);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), ranking);
    std::vector<bool> expected(count, false);
    int64_t held = 0;
    for (int32_t u : order) {
      if (held >= needed) break;
      expected[u] = true;
      held += weights[u];
    }
    for (int32_t u = 0; u < count; ++u) {
      EXPECT_EQ(IsTaken(u, left_out, ranking), expected[u]) << "trial " << trial << ", unit " << u;
    }
  }
}

// The rank of a code is its Gray-code decoding: codes of consecutive ranks differ in one bit.
TEST(HyperCodeTest, RankDecodesTheGrayCode) {
  for (uint32_t rank = 0; rank < (1u << 16); ++rank) {
    const uint32_t code = rank ^ (rank >> 1), next = (rank + 1) ^ ((rank + 1) >> 1);
    ASSERT_EQ(GrayRank(code), rank);
    ASSERT_EQ(__builtin_popcount(code ^ next), 1) << "rank " << rank;
  }
  for (uint32_t rank : {(1u << 24) - 1, 1u << 23, 0x5a5a5au, 0xabcdefu}) EXPECT_EQ(GrayRank(rank ^ (rank >> 1)), rank);
}

// Bit i of a code is whether x lies strictly on the positive side of hyperplane i (0 on it).
TEST(HyperCodeTest, CodeHasABitPerHyperplane) {
  constexpr int64_t kWidth = 20, kBits = 5;  // not a multiple of the four rows DotRows takes at a time
  std::vector<float> hyperplanes(kBits * kWidth, 0.0f), x(kWidth, 0.0f), products(kBits);
  for (int64_t i = 0; i < kBits; ++i) hyperplanes[i * kWidth + 3 * i] = 1.0f;  // hyperplane i: x[3i] = 0
  x[0] = 2.0f;    // bit 0 set
  x[3] = -1.0f;   // bit 1 clear
  x[9] = 0.5f;    // bit 3 set; x[6] = 0 and x[12] = 0: bits 2 and 4 clear
  EXPECT_EQ(HyperCode(hyperplanes.data(), kBits, kWidth, x.data(), products.data()), 0b01001u);
  x[12] = 1e-30f;  // tiny, but positive
  EXPECT_EQ(HyperCode(hyperplanes.data(), kBits, kWidth, x.data(), products.data()), 0b11001u);
}

}  // namespace
}  // namespace ortsparse::cpu
