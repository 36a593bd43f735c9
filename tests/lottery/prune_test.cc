#include "lottery/prune.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fl/fl_testing.h"

namespace lfl {
namespace {

// One prunable layer of `n` weights with distinct magnitudes in a shuffled order, plus a bias.
TensorSet Layer(int64_t n, uint32_t seed) {
  std::vector<float> w(n);
  for (int64_t i = 0; i < n; ++i) w[i] = (i % 2 ? -1.0f : 1.0f) * static_cast<float>(i + 1);
  std::mt19937 rng(seed);
  std::shuffle(w.begin(), w.end(), rng);
  TensorSet set;
  set.tensors = {{"fc.weight", {n}, w, true}, {"fc.bias", {3}, {0.0f, 0.0f, 0.0f}, false}};
  return set;
}

TEST(DecidePruneTest, PrunesOnlyWhenAccurateEnoughAndAboveTarget) {
  const PruneOptions options{0.2, 0.1};
  EXPECT_TRUE(DecidePrune(0.9, 0.9, 1.0, options));  // >= threshold
  EXPECT_TRUE(DecidePrune(0.95, 0.9, 1.0, options));
  EXPECT_FALSE(DecidePrune(0.89, 0.9, 1.0, options));
  EXPECT_FALSE(DecidePrune(0.99, 0.9, 0.1, options));  // at the target
  EXPECT_FALSE(DecidePrune(0.99, 0.9, 0.05, options));
  EXPECT_TRUE(DecidePrune(0.99, 0.9, 0.11, options));
}

TEST(PruneByMagnitudeTest, RemovesRoundRateTimesKeptPerLayer) {
  TensorSet model = testing::SmallModel(4);  // 36- and 210-element weights
  Mask mask = Mask::Full(model);
  PruneOptions options{0.2, 0.1};
  std::vector<int64_t> kept = {36, 210};
  for (int step = 0; step < 4; ++step) {
    ASSERT_TRUE(PruneByMagnitude(model, options, &mask).value());
    for (int layer = 0; layer < 2; ++layer) {
      kept[layer] -= std::llround(0.2 * static_cast<double>(kept[layer]));
      EXPECT_EQ(mask.Kept(layer * 2), kept[layer]) << "step " << step << " layer " << layer;
    }
  }
}

TEST(PruneByMagnitudeTest, NeverGoesBelowCeilTargetTimesNumel) {
  // 0.1 * 30 evaluates to 3.0000000000000004 in double; the floor must still be 3, not 4.
  TensorSet model = Layer(30, 1);
  Mask mask = Mask::Full(model);
  PruneOptions options{0.5, 0.1};
  int steps = 0;
  while (PruneByMagnitude(model, options, &mask).value()) {
    ASSERT_GE(mask.Kept(0), 3);
    ASSERT_LT(++steps, 10);
  }
  EXPECT_EQ(mask.Kept(0), 3);
  // 17 elements at density 0.5 keep ceil(8.5) = 9.
  TensorSet odd = Layer(17, 2);
  Mask odd_mask = Mask::Full(odd);
  while (PruneByMagnitude(odd, {0.9, 0.5}, &odd_mask).value()) {
  }
  EXPECT_EQ(odd_mask.Kept(0), 9);
}

TEST(PruneByMagnitudeTest, SmallestMagnitudesGoFirst) {
  TensorSet model = Layer(50, 3);
  Mask mask = Mask::Full(model);
  ASSERT_TRUE(PruneByMagnitude(model, {0.2, 0.1}, &mask).value());
  const std::vector<float>& w = model.tensors[0].values;
  for (int64_t i = 0; i < 50; ++i) {
    // Magnitudes are 1..50: exactly the ten smallest (|w| <= 10) are dropped.
    EXPECT_EQ(mask.Get(0, i), std::fabs(w[i]) > 10.0f) << "w[" << i << "] = " << w[i];
  }
}

TEST(PruneByMagnitudeTest, OnlyKeptElementsAreCandidates) {
  TensorSet model = Layer(50, 3);
  Mask mask = Mask::Full(model);
  ASSERT_TRUE(PruneByMagnitude(model, {0.2, 0.1}, &mask).value());
  // Later weights change: the dropped ones are now zero (masked training), survivors reshuffle.
  TensorSet later = Layer(50, 99);
  mask.ApplyTo(&later);
  Mask before = mask;
  ASSERT_TRUE(PruneByMagnitude(later, {0.2, 0.1}, &mask).value());
  EXPECT_EQ(mask.Kept(0), 32);  // 40 - round(8)
  std::vector<float> newly_dropped;
  for (int64_t i = 0; i < 50; ++i) {
    float magnitude = std::fabs(later.tensors[0].values[i]);
    if (!before.Get(0, i)) {
      EXPECT_FALSE(mask.Get(0, i)) << "dropped element " << i << " came back";
    } else if (!mask.Get(0, i)) {
      newly_dropped.push_back(magnitude);
    }
  }
  ASSERT_EQ(newly_dropped.size(), 8u);
  float largest_dropped = *std::max_element(newly_dropped.begin(), newly_dropped.end());
  for (int64_t i = 0; i < 50; ++i) {
    if (mask.Get(0, i)) {
      EXPECT_GT(std::fabs(later.tensors[0].values[i]), largest_dropped);
    }
  }
}

TEST(PruneByMagnitudeTest, TiesBreakByLowerIndex) {
  TensorSet set;
  set.tensors = {{"w", {10}, std::vector<float>(10, 0.5f), true}};
  set.tensors[0].values[3] = -0.5f;
  Mask mask = Mask::Full(set);
  ASSERT_TRUE(PruneByMagnitude(set, {0.3, 0.0}, &mask).value());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(mask.Get(0, i), i >= 3) << i;
}

TEST(PruneByMagnitudeTest, BiasesAreNeverPruned) {
  TensorSet model = testing::SmallModel(4);
  Mask mask = Mask::Full(model);
  for (int step = 0; step < 20; ++step)
    ASSERT_TRUE(PruneByMagnitude(model, {0.2, 0.0}, &mask).ok());
  EXPECT_EQ(mask.Kept(1), 4);
  EXPECT_EQ(mask.Kept(3), 3);
  EXPECT_TRUE(mask.words(1).empty());
}

TEST(PruneByMagnitudeTest, NothingToDoReturnsFalse) {
  TensorSet model = Layer(10, 1);
  Mask mask = Mask::Full(model);
  EXPECT_FALSE(PruneByMagnitude(model, {0.2, 1.0}, &mask).value());  // target is density 1
  EXPECT_FALSE(PruneByMagnitude(model, {0.0, 0.1}, &mask).value());
  EXPECT_FALSE(PruneByMagnitude(model, {0.04, 0.1}, &mask).value());  // round(0.4) = 0
  EXPECT_EQ(mask, Mask::Full(model));
}

TEST(PruneByMagnitudeTest, RefusesBadInputAndLeavesMaskUnchanged) {
  TensorSet model = testing::SmallModel(4);
  Mask mask = Mask::Full(model);
  const Mask full = mask;
  EXPECT_FALSE(PruneByMagnitude(model, {1.5, 0.1}, &mask).ok());
  EXPECT_FALSE(PruneByMagnitude(model, {0.2, -0.1}, &mask).ok());
  EXPECT_FALSE(PruneByMagnitude(model, {std::nan(""), 0.1}, &mask).ok());
  TensorSet nan = model;
  nan.tensors[2].values[100] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(PruneByMagnitude(nan, {0.2, 0.1}, &mask).ok());
  TensorSet no_values = model;
  no_values.tensors[2].values.clear();
  EXPECT_FALSE(PruneByMagnitude(no_values, {0.2, 0.1}, &mask).ok());
  Mask other = Mask::Full(Layer(10, 1));
  EXPECT_FALSE(PruneByMagnitude(model, {0.2, 0.1}, &other).ok());
  EXPECT_EQ(mask, full);
}

TEST(RewindTest, ReproducesThetaZeroAtKeptPositionsAndZeroElsewhere) {
  TensorSet theta0 = testing::SmallModel(10);
  TensorSet current = testing::SmallModel(11);
  Mask mask = testing::RandomMask(theta0, 12, 0.4);
  TensorSet rewound = Rewind(theta0, current, mask).value();
  ASSERT_TRUE(rewound.CheckLayout(theta0).ok());
  for (size_t t = 0; t < theta0.size(); ++t) {
    for (int64_t i = 0; i < theta0.tensors[t].numel(); ++i) {
      float want = mask.Get(t, i) ? theta0.tensors[t].values[i] : 0.0f;
      EXPECT_EQ(rewound.tensors[t].values[i], want) << theta0.tensors[t].name << "[" << i << "]";
    }
  }
  // Biases come back to θ0 too, not the current values.
  EXPECT_EQ(rewound.tensors[1].values, theta0.tensors[1].values);
  EXPECT_NE(rewound.tensors[1].values, current.tensors[1].values);
}

TEST(RewindTest, RefusesMismatchedLayouts) {
  TensorSet theta0 = testing::SmallModel(10);
  Mask mask = Mask::Full(theta0);
  EXPECT_FALSE(Rewind(theta0, Layer(5, 1), mask).ok());
  EXPECT_FALSE(Rewind(theta0, theta0, Mask::Full(Layer(5, 1))).ok());
  TensorSet layout_only = theta0;
  for (NamedTensor& t : layout_only.tensors) t.values.clear();
  EXPECT_FALSE(Rewind(layout_only, theta0, mask).ok());
}

}  // namespace
}  // namespace lfl
