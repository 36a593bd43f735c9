#include "common/sampler.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace lfl {
namespace {

TEST(SamplerTest, ChooseIsSortedDistinctAndDeterministic) {
  const std::vector<int64_t> ids = {3, 5, 8, 13, 21, 34, 55};
  const std::vector<int64_t> a = Sampler(7).Choose(ids, 3);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 3u);
  for (int64_t id : a) EXPECT_NE(std::find(ids.begin(), ids.end(), id), ids.end());
  EXPECT_EQ(Sampler(7).Choose(ids, 3), a);
  EXPECT_EQ(Sampler(7).Choose({4, 9}, 3), (std::vector<int64_t>{4, 9})) << "fewer than wanted: all";
}

// Every 2-subset of 5 ids is drawn equally often (10 subsets, 100,000 seeds: each count's
// standard deviation is ~95, so ±600 fails only a biased draw).
TEST(SamplerTest, ChooseDrawsEverySubsetEquallyOften) {
  std::map<std::vector<int64_t>, int> counts;
  for (uint64_t seed = 0; seed < 100000; ++seed) ++counts[Sampler(seed).Choose({0, 1, 2, 3, 4}, 2)];
  ASSERT_EQ(counts.size(), 10u);
  for (const auto& [subset, n] : counts) EXPECT_NEAR(n, 10000, 600) << subset[0] << "," << subset[1];
}

}  // namespace
}  // namespace lfl
