#include "models/max_pool.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

namespace lfl {
namespace {

// Values and input gradients of MaxPool2x2 and torch::max_pool2d(x, 2).
void ExpectSameAsTorch(const torch::Tensor& input) {
  const torch::Tensor a = input.clone().requires_grad_(true);
  const torch::Tensor b = input.clone().requires_grad_(true);
  const torch::Tensor ours = MaxPool2x2(a);
  const torch::Tensor theirs = torch::max_pool2d(b, 2);
  ASSERT_EQ(ours.sizes(), theirs.sizes());
  EXPECT_TRUE(torch::equal(ours, theirs));
  const torch::Tensor upstream = torch::randn(ours.sizes());
  (ours * upstream).sum().backward();
  (theirs * upstream).sum().backward();
  EXPECT_TRUE(torch::equal(a.grad(), b.grad()));
}

TEST(MaxPoolTest, MatchesTorchOnRandomInputs) {
  torch::Generator generator = at::detail::createCPUGenerator(1);
  ExpectSameAsTorch(torch::randn({3, 4, 24, 24}, generator));
}

TEST(MaxPoolTest, MatchesTorchOnOddSizesByFlooring) {
  torch::Generator generator = at::detail::createCPUGenerator(2);
  ExpectSameAsTorch(torch::randn({2, 3, 7, 9}, generator));
}

TEST(MaxPoolTest, TiesGoToTheFirstElementLikeTorch) {
  torch::Generator generator = at::detail::createCPUGenerator(3);
  // Values in {0, 1, 2}: most windows hold ties.
  ExpectSameAsTorch(torch::randint(3, {2, 5, 8, 8}, generator).to(torch::kFloat32));
}

TEST(MaxPoolTest, AcceptsNonContiguousInputs) {
  torch::Generator generator = at::detail::createCPUGenerator(4);
  ExpectSameAsTorch(torch::randn({2, 8, 8, 3}, generator).permute({0, 3, 1, 2}));
}

TEST(MaxPoolTest, RefusesOtherRanksAndTypes) {
  EXPECT_THROW(MaxPool2x2(torch::zeros({4, 4})), c10::Error);
  EXPECT_THROW(MaxPool2x2(torch::zeros({1, 1, 4, 4}, torch::kFloat64)), c10::Error);
}

}  // namespace
}  // namespace lfl
