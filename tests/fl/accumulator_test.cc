#include "fl/accumulator.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

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

TEST(MaskedMeanAccumulatorTest, MaskedMeanByHand) {
  TensorSet previous = Tiny({10, 20, 30, 40}, {0, 0});
  MaskedMeanAccumulator acc(previous);
  Mask a_mask = TinyMask({true, true, false, false});
  Mask b_mask = TinyMask({true, false, true, false});
  ASSERT_TRUE(acc.Add(Tiny({1, 2, 0, 0}, {1, 1}), &a_mask, 1).ok());
  ASSERT_TRUE(acc.Add(Tiny({5, 0, 7, 0}, {3, 5}), &b_mask, 1).ok());
  TensorSet out = acc.Finish(previous).value();
  // Element 0 kept by both, 1 only by A, 2 only by B, 3 by nobody (keeps 40); biases averaged.
  EXPECT_THAT(out.tensors[0].values, ElementsAre(3.0f, 2.0f, 7.0f, 40.0f));
  EXPECT_THAT(out.tensors[1].values, ElementsAre(2.0f, 3.0f));
  EXPECT_EQ(acc.updates(), 2);
}

TEST(MaskedMeanAccumulatorTest, ValuesAtDroppedElementsAreIgnored) {
  TensorSet previous = Tiny({10, 20, 30, 40}, {0, 0});
  MaskedMeanAccumulator acc(previous);
  Mask mask = TinyMask({true, false, false, false});
  ASSERT_TRUE(acc.Add(Tiny({1, 99, 99, 99}, {0, 0}), &mask, 1).ok());
  EXPECT_THAT(acc.Finish(previous).value().tensors[0].values,
              ElementsAre(1.0f, 20.0f, 30.0f, 40.0f));
}

TEST(MaskedMeanAccumulatorTest, WeightedFedAvgByHand) {
  TensorSet previous = Tiny({0, 0, 0, 0}, {0, 0});
  MaskedMeanAccumulator acc(previous);
  ASSERT_TRUE(acc.Add(Tiny({1, 2, 3, 4}, {1, 1}), nullptr, 1).ok());
  ASSERT_TRUE(acc.Add(Tiny({5, 6, 7, 8}, {3, 5}), nullptr, 3).ok());
  TensorSet out = acc.Finish(previous).value();
  EXPECT_THAT(out.tensors[0].values, ElementsAre(4.0f, 5.0f, 6.0f, 7.0f));
  EXPECT_THAT(out.tensors[1].values, ElementsAre(2.5f, 4.0f));
  EXPECT_EQ(acc.total_weight(), 4);
}

TEST(MaskedMeanAccumulatorTest, MeanOfEqualValuesIsExact) {
  TensorSet model = testing::SmallModel(9);
  MaskedMeanAccumulator acc(model);
  for (int64_t w : {1, 7, 1000}) ASSERT_TRUE(acc.Add(model, nullptr, w).ok());
  EXPECT_TRUE(testing::BitIdentical(acc.Finish(model.ZerosLike()).value(), model));
}

struct Update {
  TensorSet values;
  Mask mask;
  int64_t weight;
};

std::vector<Update> RandomUpdates(int n) {
  std::vector<Update> updates;
  for (int k = 0; k < n; ++k) {
    TensorSet values = testing::SmallModel(100 + k);
    for (NamedTensor& t : values.tensors) {
      for (float& v : t.values) v *= std::pow(10.0f, static_cast<float>(k - 2));  // mixed scales
    }
    Mask mask = testing::RandomMask(values, 200 + k, 0.6);
    updates.push_back({std::move(values), std::move(mask), 1 + 13 * k});
  }
  return updates;
}

TensorSet Aggregate(const std::vector<Update>& updates, const std::vector<int>& order,
                    const TensorSet& previous) {
  MaskedMeanAccumulator acc(previous);
  for (int i : order) {
    EXPECT_TRUE(acc.Add(updates[i].values, &updates[i].mask, updates[i].weight).ok());
  }
  return acc.Finish(previous).value();
}

TEST(MaskedMeanAccumulatorTest, AllPermutationsGiveBitIdenticalResults) {
  std::vector<Update> updates = RandomUpdates(5);
  TensorSet previous = testing::SmallModel(1);
  std::vector<int> order = {0, 1, 2, 3, 4};
  TensorSet reference = Aggregate(updates, order, previous);
  int permutations = 0;
  while (std::next_permutation(order.begin(), order.end())) {
    ASSERT_TRUE(testing::BitIdentical(Aggregate(updates, order, previous), reference));
    ++permutations;
  }
  EXPECT_EQ(permutations, 119);
}

// Contrast: IEEE float addition is not associative, so a plain running sum depends on the
// arrival order; the fixed-point accumulator does not.
TEST(MaskedMeanAccumulatorTest, OrderDoesNotMatterWhereFloatSumsDo) {
  TensorSet layout;
  layout.tensors = {{"x", {}, {0.0f}, false}};
  std::vector<float> xs = {1e8f, 1.0f, -1e8f};
  volatile float forward = (xs[0] + xs[1]) + xs[2];
  volatile float reordered = (xs[0] + xs[2]) + xs[1];
  ASSERT_NE(forward, reordered);

  std::vector<float> results;
  for (const std::vector<int>& order : {std::vector<int>{0, 1, 2}, std::vector<int>{0, 2, 1}}) {
    MaskedMeanAccumulator acc(layout);
    for (int i : order) {
      TensorSet update = layout;
      update.tensors[0].values[0] = xs[i];
      ASSERT_TRUE(acc.Add(update, nullptr, 1).ok());
    }
    results.push_back(acc.Finish(layout).value().tensors[0].values[0]);
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_FLOAT_EQ(results[0], 1.0f / 3.0f);
}

TEST(MaskedMeanAccumulatorTest, MergeOfHalvesEqualsOneAccumulator) {
  std::vector<Update> updates = RandomUpdates(5);
  TensorSet previous = testing::SmallModel(1);
  MaskedMeanAccumulator first(previous), second(previous);
  for (int i : {0, 3})
    ASSERT_TRUE(first.Add(updates[i].values, &updates[i].mask, updates[i].weight).ok());
  for (int i : {1, 2, 4})
    ASSERT_TRUE(second.Add(updates[i].values, &updates[i].mask, updates[i].weight).ok());
  ASSERT_TRUE(first.Merge(second).ok());
  EXPECT_EQ(first.updates(), 5);
  EXPECT_TRUE(testing::BitIdentical(first.Finish(previous).value(),
                                    Aggregate(updates, {0, 1, 2, 3, 4}, previous)));
}

TEST(MaskedMeanAccumulatorTest, MergeRefusesOtherLayouts) {
  MaskedMeanAccumulator a(testing::SmallModel(1));
  MaskedMeanAccumulator b(Tiny({0, 0, 0, 0}, {0, 0}));
  EXPECT_EQ(a.Merge(b).code(), absl::StatusCode::kInvalidArgument);
}

class RefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_ = testing::SmallModel(1);
    acc_ = std::make_unique<MaskedMeanAccumulator>(previous_);
    ASSERT_TRUE(acc_->Add(testing::SmallModel(2), nullptr, 2).ok());
    before_ = acc_->Finish(previous_).value();
  }
  // The refused update must leave sums, weights and counts exactly as they were.
  void ExpectRefusedAndUntouched(const TensorSet& values, const Mask* mask, int64_t weight) {
    EXPECT_FALSE(acc_->Add(values, mask, weight).ok());
    EXPECT_EQ(acc_->updates(), 1);
    EXPECT_EQ(acc_->total_weight(), 2);
    EXPECT_TRUE(testing::BitIdentical(acc_->Finish(previous_).value(), before_));
  }
  TensorSet previous_, before_;
  std::unique_ptr<MaskedMeanAccumulator> acc_;
};

TEST_F(RefusalTest, WrongLayout) {
  TensorSet renamed = testing::SmallModel(3);
  renamed.tensors[3].name = "other.bias";
  ExpectRefusedAndUntouched(renamed, nullptr, 1);
  TensorSet short_values = testing::SmallModel(3);
  short_values.tensors[3].values.pop_back();
  ExpectRefusedAndUntouched(short_values, nullptr, 1);
}

TEST_F(RefusalTest, NonFiniteInTheLastTensor) {
  TensorSet update = testing::SmallModel(3);
  update.tensors.back().values.back() = std::numeric_limits<float>::quiet_NaN();
  ExpectRefusedAndUntouched(update, nullptr, 1);
  update.tensors.back().values.back() = std::numeric_limits<float>::infinity();
  ExpectRefusedAndUntouched(update, nullptr, 1);
}

TEST_F(RefusalTest, ValueBeyondTheExactnessBound) {
  TensorSet update = testing::SmallModel(3);
  update.tensors.back().values.back() = 3e9f;
  ExpectRefusedAndUntouched(update, nullptr, 1);
}

TEST_F(RefusalTest, BadWeights) {
  ExpectRefusedAndUntouched(testing::SmallModel(3), nullptr, 0);
  ExpectRefusedAndUntouched(testing::SmallModel(3), nullptr, -5);
  ExpectRefusedAndUntouched(testing::SmallModel(3), nullptr, MaskedMeanAccumulator::kMaxWeight + 1);
}

TEST_F(RefusalTest, MaskOfAnotherLayout) {
  Mask other = Mask::Full(Tiny({0, 0, 0, 0}, {0, 0}));
  ExpectRefusedAndUntouched(testing::SmallModel(3), &other, 1);
}

TEST(MaskedMeanAccumulatorTest, TotalWeightIsCapped) {
  TensorSet model = Tiny({1, 2, 3, 4}, {5, 6});
  MaskedMeanAccumulator acc(model);
  int64_t per_add = MaskedMeanAccumulator::kMaxWeight;
  int64_t fits = MaskedMeanAccumulator::kMaxTotalWeight / per_add;
  for (int64_t i = 0; i < fits; ++i) ASSERT_TRUE(acc.Add(model, nullptr, per_add).ok());
  EXPECT_EQ(acc.Add(model, nullptr, 1).code(), absl::StatusCode::kResourceExhausted);
  // At the cap, extreme values still average exactly.
  EXPECT_TRUE(testing::BitIdentical(acc.Finish(model.ZerosLike()).value(), model));
}

TEST(MaskedMeanAccumulatorTest, ExtremeValuesAtFullWeightStayExact) {
  TensorSet model = Tiny({1073741824.0f, -1073741824.0f, 1e-10f, -3.5f}, {0.5f, 0});
  MaskedMeanAccumulator acc(model);
  int64_t per_add = MaskedMeanAccumulator::kMaxWeight;
  for (int64_t i = 0; i < MaskedMeanAccumulator::kMaxTotalWeight / per_add; ++i) {
    ASSERT_TRUE(acc.Add(model, nullptr, per_add).ok());
  }
  TensorSet out = acc.Finish(model.ZerosLike()).value();
  EXPECT_EQ(out.tensors[0].values[0], model.tensors[0].values[0]);
  EXPECT_EQ(out.tensors[0].values[1], model.tensors[0].values[1]);
  EXPECT_FLOAT_EQ(out.tensors[0].values[2], 1e-10f);  // below 2^-37: rounded, not exact
  EXPECT_EQ(out.tensors[0].values[3], -3.5f);
}

TEST(MaskedMeanAccumulatorTest, FinishRefusesAnotherLayout) {
  MaskedMeanAccumulator acc(testing::SmallModel(1));
  EXPECT_FALSE(acc.Finish(Tiny({0, 0, 0, 0}, {0, 0})).ok());
  TensorSet layout_only = testing::SmallModel(1);
  for (NamedTensor& t : layout_only.tensors) t.values.clear();
  EXPECT_FALSE(acc.Finish(layout_only).ok());
}

}  // namespace
}  // namespace lfl
