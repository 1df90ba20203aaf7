// The selection building blocks against sort-based references: the top-k of a row of scores (ties,
// non-candidates, samples that mislead the bound estimate) and the weighted unit selection of quest
// and saap.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention/cpu/key_selection.h"

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

}  // namespace
}  // namespace ortsparse::cpu
