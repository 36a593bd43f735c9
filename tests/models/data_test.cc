#include "models/data.h"

#include <gtest/gtest.h>

namespace lfl {
namespace {

// Two 2-channel 2×2 images: channel 0 is constant 51 (0.2), channel 1 holds
// 0 and 255 in equal numbers (mean 0.5, stddev 0.5).
Dataset TwoChannelDataset() {
  Dataset dataset;
  dataset.name = "tiny";
  dataset.channels = 2;
  dataset.height = 2;
  dataset.width = 2;
  dataset.num_classes = 3;
  dataset.train.images = {51, 51, 51, 51, 0,   255, 0,   255,  //
                          51, 51, 51, 51, 255, 0,   255, 0};
  dataset.train.labels = {2, 0};
  return dataset;
}

TEST(DataTest, NormalizationIsPerChannelAndNeverDividesByZero) {
  const Dataset dataset = TwoChannelDataset();
  const Normalization norm = ComputeNormalization(dataset.train, 2);
  ASSERT_EQ(norm.mean.size(), 2u);
  ASSERT_EQ(norm.stddev.size(), 2u);
  EXPECT_NEAR(norm.mean[0], 0.2, 1e-6);
  EXPECT_EQ(norm.stddev[0], 1.f);  // Constant channel.
  EXPECT_NEAR(norm.mean[1], 0.5, 1e-6);
  EXPECT_NEAR(norm.stddev[1], 0.5, 1e-6);
}

TEST(DataTest, EmptySplitGetsIdentityNormalization) {
  const Normalization norm = ComputeNormalization(Split{}, 3);
  EXPECT_EQ(norm.mean, std::vector<float>(3, 0.f));
  EXPECT_EQ(norm.stddev, std::vector<float>(3, 1.f));
}

TEST(DataTest, TensorsAreNormalizedWithTheGivenStatistics) {
  const Dataset dataset = TwoChannelDataset();
  const TensorData data =
      ToTensorData(dataset.train, dataset, ComputeNormalization(dataset.train, 2));
  EXPECT_EQ(data.images.sizes(), (std::vector<int64_t>{2, 2, 2, 2}));
  EXPECT_EQ(data.images.scalar_type(), torch::kFloat32);
  EXPECT_EQ(data.labels.scalar_type(), torch::kInt64);
  EXPECT_TRUE(torch::equal(data.labels, torch::tensor({2, 0}, torch::kInt64)));
  // Channel 0 is (0.2 - 0.2) / 1 = 0; channel 1 is (0 - 0.5) / 0.5 = -1 or +1.
  EXPECT_EQ(data.images.select(1, 0).abs().max().item<float>(), 0.f);
  EXPECT_TRUE(torch::allclose(data.images.select(1, 1).abs(), torch::ones({2, 2, 2})));
  EXPECT_FLOAT_EQ(data.images[0][1][0][1].item<float>(), 1.f);
}

TEST(DataTest, TestSplitUsesTrainingStatistics) {
  Dataset dataset = TwoChannelDataset();
  dataset.test.images = std::vector<uint8_t>(8, 255);
  dataset.test.labels = {1};
  const TensorData test =
      ToTensorData(dataset.test, dataset, ComputeNormalization(dataset.train, 2));
  EXPECT_NEAR(test.images[0][0][0][0].item<float>(), 0.8, 1e-6);  // (1 - 0.2) / 1
  EXPECT_NEAR(test.images[0][1][0][0].item<float>(), 1.0, 1e-6);  // (1 - 0.5) / 0.5
}

}  // namespace
}  // namespace lfl
