// Loads the real Fashion-MNIST (Debian's dataset-fashion-mnist) and checks the
// LotteryFL acceptance partition; skipped when the package is not installed.
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "partitioning/dataset.h"
#include "partitioning/partition.h"

namespace lfl {
namespace {

class FashionMnistTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    struct stat info;
    if (stat(DefaultDataDir(DatasetKind::kFashionMnist).c_str(), &info) != 0) return;
    absl::StatusOr<Dataset> loaded = LoadDataset(DatasetKind::kFashionMnist);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    data_ = new Dataset(*std::move(loaded));
  }
  static void TearDownTestSuite() {
    delete data_;
    data_ = nullptr;
  }
  void SetUp() override {
    if (data_ == nullptr) GTEST_SKIP() << "/usr/share/datasets/fashion-mnist is not installed";
  }
  static Dataset* data_;
};

Dataset* FashionMnistTest::data_ = nullptr;

TEST_F(FashionMnistTest, HasSixtyThousandBalancedTrainingImages) {
  EXPECT_EQ(data_->train.size(), 60000);
  EXPECT_EQ(data_->test.size(), 10000);
  EXPECT_EQ(data_->image_bytes(), 28 * 28);
  EXPECT_EQ(data_->train.images.size(), 60000u * 784);
  std::vector<int64_t> all(60000);
  for (int64_t i = 0; i < 60000; ++i) all[i] = i;
  for (int64_t count : LabelHistogram(data_->train, all, 10)) EXPECT_EQ(count, 6000);
  // Real pictures, not a blank buffer: most images have dark and bright pixels.
  const auto [dark, bright] =
      std::minmax_element(data_->train.images.begin(), data_->train.images.begin() + 784);
  EXPECT_LT(*dark, 16);
  EXPECT_GT(*bright, 200);
}

TEST_F(FashionMnistTest, LotteryFlShardsGiveTwoLabelsAndFortyImagesPerClient) {
  PartitionOptions options;  // shards, K = 2, S = 20
  options.clients = 100;
  absl::StatusOr<Partition> partition = MakePartition(*data_, options);
  ASSERT_TRUE(partition.ok()) << partition.status();
  ASSERT_EQ(partition->clients.size(), 100u);
  for (const ClientSplit& client : partition->clients) {
    const std::vector<int64_t> histogram = LabelHistogram(data_->train, client.train, 10);
    EXPECT_EQ(std::count(histogram.begin(), histogram.end(), 20), 2) << "client " << client.id;
    EXPECT_EQ(client.train.size(), 40u);
    EXPECT_EQ(client.test.size(), 200u);
    EXPECT_EQ(client.validation.size(), 8u);
  }
}

TEST_F(FashionMnistTest, DirichletCoversTheTrainingSet) {
  PartitionOptions options;
  options.scheme = PartitionScheme::kDirichlet;
  options.clients = 100;
  options.beta = 0.5;
  absl::StatusOr<Partition> partition = MakePartition(*data_, options);
  ASSERT_TRUE(partition.ok()) << partition.status();
  size_t total = 0;
  for (const ClientSplit& client : partition->clients) {
    EXPECT_GE(client.train.size(), 10u);
    total += client.train.size();
  }
  EXPECT_EQ(total, 60000u);
}

}  // namespace
}  // namespace lfl
