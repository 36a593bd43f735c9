#include "fl/strategy.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fl/fl_testing.h"

namespace lfl {
namespace {

TEST(StrategyTest, FedAvgWeightsBySamplesWithoutMasks) {
  std::unique_ptr<Strategy> s = MakeFedAvg();
  EXPECT_EQ(s->name(), "fedavg");
  EXPECT_FALSE(s->uses_masks());
  EXPECT_TRUE(s->weight_by_samples());
  EXPECT_EQ(s->UpdateWeight(600), 600);
}

TEST(StrategyTest, LotteryFlUsesMasksAndIsUnweightedByDefault) {
  std::unique_ptr<Strategy> s = MakeLotteryFl();
  EXPECT_EQ(s->name(), "lotteryfl");
  EXPECT_TRUE(s->uses_masks());
  EXPECT_FALSE(s->weight_by_samples());
  EXPECT_EQ(s->UpdateWeight(600), 1);
  EXPECT_TRUE(MakeLotteryFl(true)->weight_by_samples());
}

TEST(StrategyTest, MakeStrategyByName) {
  EXPECT_EQ(MakeStrategy("fedavg").value()->name(), "fedavg");
  EXPECT_EQ(MakeStrategy("lotteryfl").value()->name(), "lotteryfl");
  absl::StatusOr<std::unique_ptr<Strategy>> bad = MakeStrategy("fedprox");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("fedprox"));
}

// One round through the strategy: the accumulator it hands out aggregates on the global
// layout, with per-client weights from UpdateWeight().
TEST(StrategyTest, FedAvgRoundIsTheSampleWeightedMean) {
  std::unique_ptr<Strategy> s = MakeFedAvg();
  TensorSet global;
  global.tensors = {{"w", {2}, {0, 0}, true}};
  std::unique_ptr<MaskedMeanAccumulator> acc = s->NewRound(global);
  TensorSet a = global, b = global;
  a.tensors[0].values = {1, 1};
  b.tensors[0].values = {4, 7};
  ASSERT_TRUE(acc->Add(a, nullptr, s->UpdateWeight(200)).ok());
  ASSERT_TRUE(acc->Add(b, nullptr, s->UpdateWeight(100)).ok());
  EXPECT_THAT(acc->Finish(global).value().tensors[0].values, ::testing::ElementsAre(2.0f, 3.0f));
}

}  // namespace
}  // namespace lfl
