// The order-statistic aggregators (keeper-median, keeper-trimmed-mean, dense-median) on
// hand-computed cases, and the properties every registered aggregator must have: Merge equals
// adding everything to one, bit for bit, in any order; a refused update or Merge leaves the
// aggregator unchanged.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "fl/aggregator.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fl/fl_testing.h"

namespace lfl {
namespace {

using ::testing::ElementsAre;

// w: prunable {4}; b: bias {2}.
TensorSet Tiny(std::vector<float> w, std::vector<float> b) {
  TensorSet set;
  set.tensors = {{"w", {4}, std::move(w), true}, {"b", {2}, std::move(b), false}};
  return set;
}

Mask TinyMask(std::array<bool, 4> keep) {
  Mask mask = Mask::Full(Tiny({0, 0, 0, 0}, {0, 0}));
  for (int i = 0; i < 4; ++i) mask.Set(0, i, keep[i]);
  return mask;
}

AggregatorOptions MinKeepers(int64_t min_keepers) {
  AggregatorOptions options;
  options.min_keepers = min_keepers;
  return options;
}

std::unique_ptr<Aggregator> Make(AggregatorKind kind, const TensorSet& layout,
                                 AggregatorOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Aggregator>> agg = MakeAggregator(kind, layout, options);
  EXPECT_TRUE(agg.ok()) << agg.status();
  return agg.ok() ? *std::move(agg) : nullptr;
}

// Five clients on Tiny, weight 1 each:
//   w[0] kept by all five:        3, 1, 4, 1, 5   (sorted 1 1 3 4 5: median 3, mean 2.8)
//   w[1] kept by c0..c3:          1, 2, 3, 10     (median 2.5, mean 4)
//   w[2] kept by c0, c1 (2 of 5): 6, 8            (median = mean = 7; with the others' 0s: 0)
//   w[3] kept by nobody:          previous 40
//   b (kept by all):              {5,4,3,2,1}, {0,0,9,9,9}
struct FiveClients {
  TensorSet previous = Tiny({10, 20, 30, 40}, {-1, -1});
  std::vector<TensorSet> values = {Tiny({3, 1, 6, 99}, {5, 0}), Tiny({1, 2, 8, 99}, {4, 0}),
                                   Tiny({4, 3, 99, 99}, {3, 9}), Tiny({1, 10, 99, 99}, {2, 9}),
                                   Tiny({5, 99, 99, 99}, {1, 9})};
  std::vector<Mask> masks = {
      TinyMask({true, true, true, false}), TinyMask({true, true, true, false}),
      TinyMask({true, true, false, false}), TinyMask({true, true, false, false}),
      TinyMask({true, false, false, false})};

  TensorSet Run(Aggregator& agg, std::vector<int64_t> weights = {1, 1, 1, 1, 1}) const {
    for (size_t k = 0; k < values.size(); ++k) {
      EXPECT_TRUE(agg.Add({static_cast<int64_t>(k), &values[k], &masks[k], weights[k]}).ok());
    }
    absl::StatusOr<TensorSet> out = agg.Finish(previous);
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : TensorSet{};
  }
};

TEST(KeeperMedianTest, MedianOverTheKeepersByHand) {
  FiveClients five;
  std::unique_ptr<Aggregator> agg =
      Make(AggregatorKind::kKeeperMedian, five.previous, MinKeepers(1));
  TensorSet out = five.Run(*agg);
  // Odd count (5) -> the middle value; even (4, 2) -> the mean of the two middle ones; the
  // 2-of-5 element ignores the three clients that dropped it; nobody's keeps 40.
  EXPECT_THAT(out.tensors[0].values, ElementsAre(3.0f, 2.5f, 7.0f, 40.0f));
  EXPECT_THAT(out.tensors[1].values, ElementsAre(3.0f, 9.0f));
  EXPECT_EQ(agg->name(), "keeper-median");
  EXPECT_EQ(agg->updates(), 5);
  EXPECT_FALSE(agg->decomposable());
}

TEST(KeeperMedianTest, IsUnweighted) {
  FiveClients five;
  std::unique_ptr<Aggregator> agg =
      Make(AggregatorKind::kKeeperMedian, five.previous, MinKeepers(1));
  // c4 (w[0] = 5, the largest) weighs 1000: a weighted median would be 5.
  TensorSet out = five.Run(*agg, {1, 1, 1, 1, 1000});
  EXPECT_EQ(out.tensors[0].values[0], 3.0f);
  EXPECT_EQ(out.tensors[0].values[1], 2.5f);
}

TEST(KeeperMedianTest, FewKeepersTakeTheirMaskedMean) {
  FiveClients five;
  // Default min_keepers 3: w[2] has 2 keepers (6 weighing 1, 8 weighing 3) -> (6 + 24) / 4.
  std::unique_ptr<Aggregator> agg = Make(AggregatorKind::kKeeperMedian, five.previous);
  TensorSet out = five.Run(*agg, {1, 3, 1, 1, 1});
  EXPECT_EQ(out.tensors[0].values[2], 7.5f);
  EXPECT_EQ(out.tensors[0].values[1], 2.5f) << "4 keepers: still the median";
  EXPECT_EQ(out.tensors[0].values[3], 40.0f) << "kept by nobody: previous";
  // min_keepers 5: w[1]'s 4 keepers (1·1, 2·3, 3·1, 10·1) take their weighted mean 20 / 6.
  std::unique_ptr<Aggregator> strict =
      Make(AggregatorKind::kKeeperMedian, five.previous, MinKeepers(5));
  TensorSet mean = five.Run(*strict, {1, 3, 1, 1, 1});
  EXPECT_EQ(mean.tensors[0].values[1], static_cast<float>(20.0 / 6.0));
  EXPECT_EQ(mean.tensors[0].values[0], 3.0f) << "5 keepers: the median";
}

TEST(KeeperMedianTest, BelowMinKeepersEverywhereIsMaskedMeanBitForBit) {
  const TensorSet model = testing::SmallModel(4);
  std::unique_ptr<Aggregator> median = Make(AggregatorKind::kKeeperMedian, model, MinKeepers(1000));
  std::unique_ptr<Aggregator> mean = Make(AggregatorKind::kMaskedMean, model);
  for (uint32_t k = 0; k < 6; ++k) {
    const TensorSet values = testing::SmallModel(100 + k);
    const Mask mask = testing::RandomMask(model, 200 + k, 0.6);
    const ClientUpdate u{k, &values, &mask, 1 + 7 * k};
    ASSERT_TRUE(median->Add(u).ok());
    ASSERT_TRUE(mean->Add(u).ok());
  }
  EXPECT_TRUE(testing::BitIdentical(median->Finish(model).value(), mean->Finish(model).value()));
}

TEST(KeeperMedianTest, MinKeepersBelowOneIsRefused) {
  absl::StatusOr<std::unique_ptr<Aggregator>> agg =
      MakeAggregator(AggregatorKind::kKeeperMedian, Tiny({0, 0, 0, 0}, {0, 0}), MinKeepers(0));
  EXPECT_EQ(agg.status().code(), absl::StatusCode::kInvalidArgument);
}

AggregatorOptions Trim(double trim_fraction, int64_t min_keepers = 3) {
  AggregatorOptions options;
  options.trim_fraction = trim_fraction;
  options.min_keepers = min_keepers;
  return options;
}

TEST(KeeperTrimmedMeanTest, FiveKeepersAtTrimPoint2DropOneEachEndWeighted) {
  FiveClients five;
  std::unique_ptr<Aggregator> agg =
      Make(AggregatorKind::kKeeperTrimmedMean, five.previous, Trim(0.2));
  // Weights c0..c4 = 2, 3, 1, 1, 1.
  TensorSet out = five.Run(*agg, {2, 3, 1, 1, 1});
  // w[0]: 1(c1) 1(c3) 3(c0) 4(c2) 5(c4); the tie at 1 is cut by client id, so c1 goes, c3
  // stays: (1·1 + 3·2 + 4·1) / 4 = 2.75 (c3 cut instead would give 13 / 6).
  EXPECT_EQ(out.tensors[0].values[0], 2.75f);
  // w[1]: 4 keepers, floor(0.8) = 0 cut: (1·2 + 2·3 + 3·1 + 10·1) / 7 = 3.
  EXPECT_EQ(out.tensors[0].values[1], 3.0f);
  // w[2]: 2 keepers < min_keepers 3: masked mean (6·2 + 8·3) / 5.
  EXPECT_EQ(out.tensors[0].values[2], 7.2f);
  EXPECT_EQ(out.tensors[0].values[3], 40.0f) << "kept by nobody: previous";
  // b[0]: 1(c4) 2(c3) 3(c2) 4(c1) 5(c0) -> (2·1 + 3·1 + 4·3) / 5; b[1]: 0(c0) 0(c1) 9 9 9(c4)
  // -> (0·3 + 9·1 + 9·1) / 5.
  EXPECT_THAT(out.tensors[1].values, ElementsAre(3.4f, 3.6f));
  EXPECT_EQ(agg->name(), "keeper-trimmed-mean");
  EXPECT_FALSE(agg->decomposable());
}

TEST(KeeperTrimmedMeanTest, FewKeepersAreNotTrimmed) {
  const TensorSet previous = Tiny({0, 0, 0, 0}, {0, 0});
  const std::vector<TensorSet> values = {Tiny({1, 0, 0, 0}, {0, 0}), Tiny({2, 0, 0, 0}, {0, 0}),
                                         Tiny({9, 0, 0, 0}, {0, 0})};
  // Three keepers at trim 0.4: floor(1.2) = 1 cut from each end leaves 2; below min_keepers 4
  // all three count: 12 / 3.
  for (const auto& [min_keepers, expected] : {std::pair<int64_t, float>{3, 2.0f}, {4, 4.0f}}) {
    std::unique_ptr<Aggregator> agg =
        Make(AggregatorKind::kKeeperTrimmedMean, previous, Trim(0.4, min_keepers));
    for (size_t k = 0; k < values.size(); ++k) {
      ASSERT_TRUE(agg->Add({static_cast<int64_t>(k), &values[k], nullptr, 1}).ok());
    }
    EXPECT_EQ(agg->Finish(previous).value().tensors[0].values[0], expected) << min_keepers;
  }
}

TEST(KeeperTrimmedMeanTest, CutIsFloorOfTheShareEvenWhenDoubleRoundsItDown) {
  // 100 keepers with values i² (i = 1..100), trim 0.29: 0.29 · 100 is 28.999999999999996 in
  // double, but 29 go from each end: the mean of i² for i = 30..71 is 113281 / 42 (cutting 28
  // would give 119306 / 44).
  TensorSet layout;
  layout.tensors = {{"w", {1}, {0}, true}};
  std::unique_ptr<Aggregator> agg = Make(AggregatorKind::kKeeperTrimmedMean, layout, Trim(0.29));
  for (int i = 1; i <= 100; ++i) {
    TensorSet v = layout;
    v.tensors[0].values[0] = static_cast<float>(i * i);
    ASSERT_TRUE(agg->Add({i, &v, nullptr, 1}).ok());
  }
  EXPECT_FLOAT_EQ(agg->Finish(layout).value().tensors[0].values[0], 113281.0f / 42.0f);
}

TEST(KeeperTrimmedMeanTest, TrimZeroIsMaskedMeanBitForBit) {
  const TensorSet model = testing::SmallModel(4);
  std::unique_ptr<Aggregator> trimmed = Make(AggregatorKind::kKeeperTrimmedMean, model, Trim(0));
  std::unique_ptr<Aggregator> mean = Make(AggregatorKind::kMaskedMean, model);
  for (uint32_t k = 0; k < 6; ++k) {
    const TensorSet values = testing::SmallModel(100 + k);
    const Mask mask = testing::RandomMask(model, 200 + k, 0.6);
    const ClientUpdate u{k, &values, &mask, 1 + 7 * k};
    ASSERT_TRUE(trimmed->Add(u).ok());
    ASSERT_TRUE(mean->Add(u).ok());
  }
  EXPECT_TRUE(testing::BitIdentical(trimmed->Finish(model).value(), mean->Finish(model).value()));
}

TEST(KeeperTrimmedMeanTest, OptionsOutOfRangeAreRefused) {
  const TensorSet layout = Tiny({0, 0, 0, 0}, {0, 0});
  for (double bad : {-0.1, 0.5, 0.7, std::nan("")}) {
    EXPECT_EQ(MakeAggregator(AggregatorKind::kKeeperTrimmedMean, layout, Trim(bad)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  EXPECT_EQ(
      MakeAggregator(AggregatorKind::kKeeperTrimmedMean, layout, Trim(0.2, 0)).status().code(),
      absl::StatusCode::kInvalidArgument);
  // Just below 0.5, two keepers: one survives (no division by zero).
  std::unique_ptr<Aggregator> agg =
      Make(AggregatorKind::kKeeperTrimmedMean, layout, Trim(0.4999999999999, 1));
  const TensorSet a = Tiny({1, 1, 1, 1}, {1, 1});
  const TensorSet b = Tiny({3, 3, 3, 3}, {3, 3});
  ASSERT_TRUE(agg->Add({0, &a, nullptr, 1}).ok());
  ASSERT_TRUE(agg->Add({1, &b, nullptr, 1}).ok());
  EXPECT_EQ(agg->Finish(layout).value().tensors[0].values[0], 2.0f);
}

TEST(KeeperTrimmedMeanTest, MergeOfOtherOptionsIsRefused) {
  const TensorSet layout = Tiny({0, 0, 0, 0}, {0, 0});
  std::unique_ptr<Aggregator> agg = Make(AggregatorKind::kKeeperTrimmedMean, layout, Trim(0.2));
  EXPECT_EQ(agg->Merge(*Make(AggregatorKind::kKeeperTrimmedMean, layout, Trim(0.1))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(agg->Merge(*Make(AggregatorKind::kKeeperTrimmedMean, layout, Trim(0.2, 4))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(agg->Merge(*Make(AggregatorKind::kKeeperTrimmedMean, layout, Trim(0.2))).ok());
}

TEST(DenseMedianTest, DroppersCountAsZeroByHand) {
  FiveClients five;
  std::unique_ptr<Aggregator> agg = Make(AggregatorKind::kDenseMedian, five.previous);
  // Weights and min_keepers play no part.
  TensorSet out = five.Run(*agg, {1, 3, 1, 1, 1000});
  // w[0]: 1 1 3 4 5 -> 3; w[1]: 0(c4) 1 2 3 10 -> 2; w[2], the 2-of-5 element: 0 0 0 6 8 -> 0
  // (keeper-median: 7); w[3] kept by nobody: previous 40.
  EXPECT_THAT(out.tensors[0].values, ElementsAre(3.0f, 2.0f, 0.0f, 40.0f));
  EXPECT_THAT(out.tensors[1].values, ElementsAre(3.0f, 9.0f));
  EXPECT_EQ(agg->name(), "dense-median");
  EXPECT_FALSE(agg->decomposable());
  std::unique_ptr<Aggregator> strict =
      Make(AggregatorKind::kDenseMedian, five.previous, MinKeepers(1000));
  EXPECT_TRUE(testing::BitIdentical(five.Run(*strict), out));
}

TEST(DenseMedianTest, EvenCountTakesTheMeanOfTheMiddleTwo) {
  const TensorSet previous = Tiny({10, 20, 30, 40}, {0, 0});
  const Mask drops_first = TinyMask({false, true, true, true});
  const Mask keeps_all = TinyMask({true, true, true, true});
  const std::vector<TensorSet> values = {Tiny({99, 1, 1, 1}, {4, 1}), Tiny({5, 2, 2, 2}, {3, 1}),
                                         Tiny({9, 3, 3, 3}, {2, 1}), Tiny({7, 4, 4, 4}, {1, 1})};
  std::unique_ptr<Aggregator> agg = Make(AggregatorKind::kDenseMedian, previous);
  for (size_t k = 0; k < values.size(); ++k) {
    ASSERT_TRUE(
        agg->Add({static_cast<int64_t>(k), &values[k], k == 0 ? &drops_first : &keeps_all, 1})
            .ok());
  }
  // w[0]: 0(c0 drops it) 5 7 9 -> 6; w[1..3]: 1 2 3 4 -> 2.5; b: 1 2 3 4 -> 2.5, 1.
  TensorSet out = agg->Finish(previous).value();
  EXPECT_THAT(out.tensors[0].values, ElementsAre(6.0f, 2.5f, 2.5f, 2.5f));
  EXPECT_THAT(out.tensors[1].values, ElementsAre(2.5f, 1.0f));
}

// --- Properties of every registered aggregator ------------------------------------------------

struct Held {
  TensorSet values;
  Mask mask;
  int64_t weight;
};

// Values on a coarse grid (ties are common, between clients of different weights), random
// masks, one update without a mask.
std::vector<Held> RandomUpdates(const TensorSet& model, int n) {
  std::vector<Held> updates;
  for (int k = 0; k < n; ++k) {
    TensorSet values = testing::SmallModel(10 + k);
    for (NamedTensor& t : values.tensors) {
      for (float& x : t.values) x = std::round(x * 4) / 4;
    }
    updates.push_back(
        {std::move(values), testing::RandomMask(model, 50 + k, 0.7), 1 + (k * 5) % 7});
  }
  return updates;
}

ClientUpdate UpdateOf(const std::vector<Held>& updates, size_t k) {
  const Mask* mask = k == 0 ? nullptr : &updates[k].mask;
  return {static_cast<int64_t>(k), &updates[k].values, mask, updates[k].weight};
}

// Every name in config/modes/run_modes.cc, so a newly registered aggregator is tested too.
std::vector<AggregatorKind> RegisteredKinds() {
  std::vector<AggregatorKind> kinds;
  for (const auto& [name, kind] : ModeNames<AggregatorKind>()) kinds.push_back(kind);
  return kinds;
}

class EveryAggregatorTest : public ::testing::TestWithParam<AggregatorKind> {};

TEST_P(EveryAggregatorTest, MergeOfTwoHalvesEqualsAddingAllToOne) {
  const TensorSet model = testing::SmallModel(1);
  const std::vector<Held> updates = RandomUpdates(model, 9);
  std::unique_ptr<Aggregator> all = Make(GetParam(), model);
  for (size_t k = 0; k < updates.size(); ++k) ASSERT_TRUE(all->Add(UpdateOf(updates, k)).ok());
  const TensorSet expected = all->Finish(model).value();

  for (bool first_half_first : {true, false}) {
    std::unique_ptr<Aggregator> low = Make(GetParam(), model);
    std::unique_ptr<Aggregator> high = Make(GetParam(), model);
    // Interleaved halves, each added in reverse order.
    for (size_t k = updates.size(); k-- > 0;)
      ASSERT_TRUE((k % 2 ? low : high)->Add(UpdateOf(updates, k)).ok());
    Aggregator& into = first_half_first ? *low : *high;
    ASSERT_TRUE(into.Merge(first_half_first ? *high : *low).ok());
    EXPECT_EQ(into.updates(), all->updates());
    EXPECT_TRUE(testing::BitIdentical(into.Finish(model).value(), expected)) << first_half_first;
  }
}

TEST_P(EveryAggregatorTest, RefusedUpdateLeavesItUnchanged) {
  const TensorSet model = testing::SmallModel(1);
  const std::vector<Held> updates = RandomUpdates(model, 3);
  std::unique_ptr<Aggregator> agg = Make(GetParam(), model);
  ASSERT_TRUE(agg->Add(UpdateOf(updates, 0)).ok());
  ASSERT_TRUE(agg->Add(UpdateOf(updates, 1)).ok());
  const TensorSet before = agg->Finish(model).value();

  TensorSet nan = updates[2].values;
  nan.tensors[3].values[2] = std::numeric_limits<float>::quiet_NaN();
  TensorSet huge = updates[2].values;
  huge.tensors[0].values[0] = 2e9f;
  TensorSet short_tensor = updates[2].values;
  short_tensor.tensors[2].values.pop_back();
  TensorSet other_layout = updates[2].values;
  other_layout.tensors[1].name = "conv1.other";
  const Mask wrong_mask = Mask::Full(Tiny({0, 0, 0, 0}, {0, 0}));
  const Mask& mask = updates[2].mask;
  for (const ClientUpdate& bad : std::vector<ClientUpdate>{{7, &nan, &mask, 1},
                                                           {7, &huge, &mask, 1},
                                                           {7, &short_tensor, &mask, 1},
                                                           {7, &other_layout, &mask, 1},
                                                           {7, &updates[2].values, &wrong_mask, 1},
                                                           {7, &updates[2].values, &mask, 0},
                                                           {7, nullptr, &mask, 1}}) {
    EXPECT_EQ(agg->Add(bad).code(), absl::StatusCode::kInvalidArgument);
  }
  EXPECT_EQ(agg->updates(), 2);
  EXPECT_TRUE(testing::BitIdentical(agg->Finish(model).value(), before));
}

TEST_P(EveryAggregatorTest, MergeOfAnotherKindOrLayoutIsRefused) {
  const TensorSet model = testing::SmallModel(1);
  const std::vector<Held> updates = RandomUpdates(model, 2);
  std::unique_ptr<Aggregator> agg = Make(GetParam(), model);
  ASSERT_TRUE(agg->Add(UpdateOf(updates, 0)).ok());
  const TensorSet before = agg->Finish(model).value();
  for (const auto& [name, other_kind] : ModeNames<AggregatorKind>()) {
    if (other_kind == GetParam()) continue;
    std::unique_ptr<Aggregator> other = Make(other_kind, model);
    ASSERT_TRUE(other->Add(UpdateOf(updates, 1)).ok());
    EXPECT_EQ(agg->Merge(*other).code(), absl::StatusCode::kInvalidArgument) << name;
  }
  std::unique_ptr<Aggregator> other_layout = Make(GetParam(), Tiny({0, 0, 0, 0}, {0, 0}));
  EXPECT_EQ(agg->Merge(*other_layout).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(agg->updates(), 1);
  EXPECT_TRUE(testing::BitIdentical(agg->Finish(model).value(), before));
}

TEST_P(EveryAggregatorTest, ElementKeptByNobodyKeepsItsPreviousValue) {
  const TensorSet previous = Tiny({10, 20, 30, 40}, {-1, -1});
  std::unique_ptr<Aggregator> agg = Make(GetParam(), previous);
  const Mask keeps_first = TinyMask({true, false, false, false});
  const TensorSet a = Tiny({1, 99, 99, 99}, {0, 0});
  const TensorSet b = Tiny({2, 99, 99, 99}, {0, 0});
  ASSERT_TRUE(agg->Add({0, &a, &keeps_first, 1}).ok());
  ASSERT_TRUE(agg->Add({1, &b, &keeps_first, 1}).ok());
  EXPECT_THAT(agg->Finish(previous).value().tensors[0].values,
              ElementsAre(1.5f, 20.0f, 30.0f, 40.0f));
}

INSTANTIATE_TEST_SUITE_P(Registered, EveryAggregatorTest, ::testing::ValuesIn(RegisteredKinds()),
                         [](const ::testing::TestParamInfo<AggregatorKind>& info) {
                           std::string name(ModeName(info.param));
                           name.erase(std::remove(name.begin(), name.end(), '-'), name.end());
                           return name;
                         });

}  // namespace
}  // namespace lfl
