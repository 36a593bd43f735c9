// ParseBenchAttack and PoisonTrainedValues (client/client_host.h): the attacks of the
// robust-aggregation benchmark (bench/robust/run.sh) on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "client/client_host.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl {
namespace {

// A prunable 2x2 weight and a 2-element bias.
TensorSet Model(std::vector<float> weight, std::vector<float> bias) {
  TensorSet s;
  s.tensors.push_back({"fc.weight", {2, 2}, std::move(weight), true});
  s.tensors.push_back({"fc.bias", {2}, std::move(bias), false});
  return s;
}

// Keeps every weight but the last.
Mask DropLastWeight(const TensorSet& layout) {
  Mask m = Mask::Full(layout);
  m.Set(0, 3, false);
  return m;
}

BenchAttack Parsed(const std::string& text) {
  absl::StatusOr<BenchAttack> a = ParseBenchAttack(text, "0-2,7");
  EXPECT_TRUE(a.ok()) << text << ": " << a.status();
  return a.ok() ? *a : BenchAttack{};
}

TEST(ParseBenchAttackTest, ValueAttacks) {
  BenchAttack scale = Parsed("scale:-10");
  EXPECT_EQ(scale.kind, BenchAttack::kScale);
  EXPECT_EQ(scale.scale, -10);
  EXPECT_EQ(scale.clients, (std::set<int64_t>{0, 1, 2, 7}));
  EXPECT_EQ(Parsed("scale:2.5").scale, 2.5);
  EXPECT_EQ(Parsed("signflip").kind, BenchAttack::kSignFlip);
  BenchAttack noise = Parsed("noise:0.05");
  EXPECT_EQ(noise.kind, BenchAttack::kNoise);
  EXPECT_EQ(noise.noise_sigma, 0.05);
  EXPECT_EQ(Parsed("noise:0").noise_sigma, 0);
}

TEST(ParseBenchAttackTest, ExistingKindsStillParse) {
  EXPECT_EQ(Parsed("none").kind, BenchAttack::kNone);
  EXPECT_EQ(Parsed("return-served").kind, BenchAttack::kReturnServed);
  EXPECT_EQ(Parsed("bias:990").bias_delta, 990);
  EXPECT_EQ(Parsed("refetch:3").refetches, 3);
}

TEST(ParseBenchAttackTest, RefusesBadInput) {
  for (const char* bad :
       {"scale:abc", "scale:", "scale", "scale:inf", "scale:nan", "noise:-1", "noise:", "noise",
        "noise:inf", "noise:x", "signflip:1", "signflip:", "flip", "bias:abc", "refetch:-1", ""}) {
    absl::StatusOr<BenchAttack> a = ParseBenchAttack(bad, "0");
    ASSERT_FALSE(a.ok()) << bad;
    EXPECT_TRUE(absl::IsInvalidArgument(a.status())) << bad;
    EXPECT_NE(a.status().message().find("signflip"), std::string::npos)
        << "the message lists the kinds";
  }
  EXPECT_FALSE(ParseBenchAttack("signflip", "x").ok());
}

TEST(PoisonTrainedValuesTest, ScaleAndSignFlipMoveAwayFromTheStart) {
  const TensorSet start = Model({1, 2, 3, 0}, {0.5f, -1});
  const Mask kept = DropLastWeight(start);
  const TensorSet trained = Model({2, 0, 3, 0}, {1, -1});  // w − s = {1, -2, 0, ·}, {0.5, 0}

  TensorSet scaled = trained;
  ASSERT_TRUE(PoisonTrainedValues(Parsed("scale:-10"), start, kept, 1, &scaled).ok());
  EXPECT_EQ(scaled.tensors[0].values, (std::vector<float>{-9, 22, 3, 0}));
  EXPECT_EQ(scaled.tensors[1].values, (std::vector<float>{-4.5f, -1}));

  TensorSet flipped = trained;
  ASSERT_TRUE(PoisonTrainedValues(Parsed("signflip"), start, kept, 1, &flipped).ok());
  EXPECT_EQ(flipped.tensors[0].values, (std::vector<float>{0, 4, 3, 0}));
  EXPECT_EQ(flipped.tensors[1].values, (std::vector<float>{0, -1}));

  TensorSet same = trained;
  ASSERT_TRUE(PoisonTrainedValues(Parsed("scale:1"), start, kept, 1, &same).ok());
  EXPECT_EQ(same.tensors[0].values, trained.tensors[0].values);
}

TEST(PoisonTrainedValuesTest, DroppedElementsStayZero) {
  // Even a start and a w that hold a value where the ticket drops it.
  const TensorSet start = Model({1, 1, 1, 5}, {0, 0});
  const Mask kept = DropLastWeight(start);
  for (const char* kind : {"scale:-10", "signflip", "noise:3"}) {
    TensorSet w = Model({2, 2, 2, 7}, {1, 1});
    ASSERT_TRUE(PoisonTrainedValues(Parsed(kind), start, kept, 9, &w).ok()) << kind;
    EXPECT_EQ(w.tensors[0].values[3], 0) << kind;
  }
}

TEST(PoisonTrainedValuesTest, NoiseHasTheAskedSpreadAndIsSeeded) {
  TensorSet start;
  start.tensors.push_back({"w", {100, 100}, std::vector<float>(10000, 0), true});
  const Mask kept = Mask::Full(start);
  TensorSet w = start;
  for (float& v : w.tensors[0].values) v = 1;
  TensorSet a = w, b = w, c = w;
  ASSERT_TRUE(PoisonTrainedValues(Parsed("noise:0.5"), start, kept, 42, &a).ok());
  ASSERT_TRUE(PoisonTrainedValues(Parsed("noise:0.5"), start, kept, 42, &b).ok());
  ASSERT_TRUE(PoisonTrainedValues(Parsed("noise:0.5"), start, kept, 43, &c).ok());
  EXPECT_EQ(a.tensors[0].values, b.tensors[0].values);
  EXPECT_NE(a.tensors[0].values, c.tensors[0].values);
  double sum = 0, sq = 0;
  for (float v : a.tensors[0].values) {
    sum += v - 1;
    sq += (v - 1) * (v - 1);
  }
  const double n = 10000, mean = sum / n, sd = std::sqrt(sq / n - mean * mean);
  EXPECT_NEAR(mean, 0, 0.02);  // 4 standard errors (0.5 / 100)
  EXPECT_NEAR(sd, 0.5, 0.015);

  TensorSet zero = w;
  ASSERT_TRUE(PoisonTrainedValues(Parsed("noise:0"), start, kept, 42, &zero).ok());
  EXPECT_EQ(zero.tensors[0].values, w.tensors[0].values);
}

TEST(PoisonTrainedValuesTest, RefusesOtherKindsAndMismatchedLayouts) {
  const TensorSet start = Model({1, 2, 3, 4}, {0, 0});
  const Mask kept = Mask::Full(start);
  TensorSet w = start;
  EXPECT_TRUE(absl::IsInvalidArgument(PoisonTrainedValues(Parsed("bias:1"), start, kept, 1, &w)));
  TensorSet other;
  other.tensors.push_back({"fc.weight", {4}, {1, 2, 3, 4}, true});
  EXPECT_FALSE(PoisonTrainedValues(Parsed("signflip"), start, kept, 1, &other).ok());
}

}  // namespace
}  // namespace lfl
