// fl/clipping: distances, scales and the adaptive bound on hand-computed cases.
#include "fl/clipping.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace lfl {
namespace {

// fc.weight (prunable, 4 elements) and fc.bias (2 elements).
TensorSet Two(std::vector<float> w, std::vector<float> b) {
  TensorSet s;
  s.tensors.push_back({"fc.weight", {2, 2}, std::move(w), true});
  s.tensors.push_back({"fc.bias", {2}, std::move(b), false});
  return s;
}

TEST(UpdateDistance, CountsKeptWeightsAndEveryBias) {
  const TensorSet origin = Two({0, 0, 0, 0}, {0, 0});
  const TensorSet update = Two({3, 100, 0, 0}, {0, 4});
  EXPECT_DOUBLE_EQ(UpdateDistance(update, origin, nullptr), std::sqrt(9.0 + 10000.0 + 16.0));
  Mask kept = Mask::Full(origin);
  kept.Set(0, 1, false);  // the 100 is a pruned element: not part of the update
  EXPECT_DOUBLE_EQ(UpdateDistance(update, origin, &kept), 5.0);  // sqrt(3² + 4²)
}

TEST(ClipScale, HandComputed) {
  EXPECT_DOUBLE_EQ(ClipScale(5, 10), 1);
  EXPECT_DOUBLE_EQ(ClipScale(10, 10), 1);
  EXPECT_DOUBLE_EQ(ClipScale(20, 10), 0.5);
  EXPECT_DOUBLE_EQ(ClipScale(990, 1.98), 0.002);
  EXPECT_DOUBLE_EQ(ClipScale(3, std::numeric_limits<double>::infinity()), 1);
  EXPECT_DOUBLE_EQ(ClipScale(3, 0), 0);
  EXPECT_DOUBLE_EQ(ClipScale(0, 0), 1);
}

TEST(ClipTowards, ScalesTheDeltaOfKeptElementsOnly) {
  const TensorSet origin = Two({1, 1, 1, 1}, {2, 2});
  TensorSet update = Two({4, 7, 1, 1}, {2, 6});  // kept delta (3, ·, 0, 0 | 0, 4): distance 5
  Mask kept = Mask::Full(origin);
  kept.Set(0, 1, false);
  ASSERT_DOUBLE_EQ(UpdateDistance(update, origin, &kept), 5.0);
  const double scale = ClipScale(5.0, 2.5);
  ASSERT_TRUE(ClipTowards(origin, &kept, scale, &update).ok());
  EXPECT_FLOAT_EQ(update.tensors[0].values[0], 2.5f);  // 1 + 3·0.5
  EXPECT_FLOAT_EQ(update.tensors[0].values[1], 7.f);   // dropped: untouched
  EXPECT_FLOAT_EQ(update.tensors[0].values[2], 1.f);
  EXPECT_FLOAT_EQ(update.tensors[1].values[1], 4.f);  // 2 + 4·0.5
  EXPECT_NEAR(UpdateDistance(update, origin, &kept), 2.5, 1e-6);
}

TEST(ClipTowards, ScaleOneIsBitIdentical) {
  const TensorSet origin = Two({0.1f, 0.2f, 0.3f, 0.4f}, {0.5f, 0.6f});
  TensorSet update = Two({0.7f, 1e-30f, -3.3f, 0.123456789f}, {-0.f, 9.9f});
  const TensorSet before = update;
  ASSERT_TRUE(ClipTowards(origin, nullptr, 1.0, &update).ok());
  for (size_t t = 0; t < update.size(); ++t) {
    for (size_t i = 0; i < update.tensors[t].values.size(); ++i) {
      EXPECT_EQ(std::signbit(update.tensors[t].values[i]),
                std::signbit(before.tensors[t].values[i]));
      EXPECT_EQ(update.tensors[t].values[i], before.tensors[t].values[i]);
    }
  }
}

TEST(ClipTowards, RefusesBadScaleAndLayout) {
  const TensorSet origin = Two({0, 0, 0, 0}, {0, 0});
  TensorSet update = origin;
  EXPECT_FALSE(ClipTowards(origin, nullptr, 1.5, &update).ok());
  EXPECT_FALSE(ClipTowards(origin, nullptr, std::nan(""), &update).ok());
  TensorSet other;
  other.tensors.push_back({"x", {1}, {0.f}, false});
  EXPECT_FALSE(ClipTowards(other, nullptr, 0.5, &update).ok());
}

TEST(AdaptiveClipBound, InitialBoundIsAFractionOfTheModelNorm) {
  AdaptiveClipBound b(ClipOptions{4, 8, 2, 0.5});
  EXPECT_DOUBLE_EQ(b.Bound(10), 5);
  EXPECT_TRUE(std::isinf(b.Bound(0)));  // no scale to go by
  b.Add(1.0);
  EXPECT_DOUBLE_EQ(b.Bound(10), 5);  // one distance is not yet history
  b.Add(3.0);
  EXPECT_DOUBLE_EQ(b.Median(), 2.0);
  EXPECT_DOUBLE_EQ(b.Bound(10), 8.0);  // 4 × median(1, 3)
}

TEST(AdaptiveClipBound, MedianOverTheWindowResistsOneOutlier) {
  AdaptiveClipBound b(ClipOptions{2, 4, 1, 0.5});
  for (double d : {0.5, 0.6, 0.4}) b.Add(d);
  b.Add(990);  // an attacker's distance, were it not clipped
  EXPECT_DOUBLE_EQ(b.Median(), 0.55);
  EXPECT_DOUBLE_EQ(b.Bound(1), 1.1);
  b.Add(0.7);  // the window drops the oldest (0.5): 0.6 0.4 990 0.7
  EXPECT_EQ(b.history(), 4u);
  EXPECT_DOUBLE_EQ(b.Median(), 0.65);
  b.Add(std::numeric_limits<double>::quiet_NaN());
  b.Add(-1);
  EXPECT_EQ(b.history(), 4u);
}

TEST(AdaptiveClipBound, DisabledByANonPositiveMultiplier) {
  AdaptiveClipBound b(ClipOptions{0, 8, 1, 0.5});
  b.Add(1);
  EXPECT_TRUE(std::isinf(b.Bound(10)));
}

}  // namespace
}  // namespace lfl
