// LoadLocalRunData: a client host that reads its clients' exported files gets exactly those
// clients' images (normalized as the server's global model), the server's θ0, a seeded
// validation slice of the partition's size, and clear errors; a local run's update reports the
// downlink's accuracy on the client's own test split, a partition run's does not spend on it.
#include "runtime/local_data.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "partitioning/export.h"
#include "runtime/local_update.h"
#include "tests/partitioning/test_files.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

// A tiny MNIST-format dataset on disk: 40 training and 20 test images a class, class-dependent
// pixels so that a model can learn something.
std::string WriteDataset() {
  const std::string dir = test::MakeTempDir();
  for (const auto& [stem, count] : {std::pair<std::string, int64_t>("train", 400), {"t10k", 200}}) {
    Split split = test::MakeSplit(count, 28 * 28, 10);
    for (int64_t i = 0; i < count; ++i) {
      const int64_t label = split.labels[i];
      for (int64_t p = 0; p < 28 * 28; ++p) {
        if (p / 78 == label) split.images[i * 28 * 28 + p] = 255;
      }
    }
    test::WriteMnistFiles(dir, "", stem, split, 28, 28, false);
  }
  return dir;
}

RunConfig LocalConfig(const std::string& data_dir) {
  RunConfig c;
  c.dataset = DatasetKind::kMnist;
  c.data_dir = data_dir;
  c.client_data = ClientDataSource::kLocal;
  c.clients = 4;
  c.samples_per_class = 10;
  c.test_per_client = 15;
  c.validation_fraction = 0.2;
  c.local_epochs = 1;
  c.algorithm = Algorithm::kLotteryFl;
  c.seed = 5;
  return c;
}

// The rows of `images` at `indices`, sorted bytewise (to compare sets of images).
std::vector<std::vector<float>> Rows(const torch::Tensor& images,
                                     const std::vector<int64_t>& indices) {
  std::vector<std::vector<float>> rows;
  for (int64_t i : indices) {
    const torch::Tensor row = images[i].contiguous();
    rows.emplace_back(row.data_ptr<float>(), row.data_ptr<float>() + row.numel());
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::vector<int64_t> Concat(std::vector<int64_t> a, const std::vector<int64_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

class LocalDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    config_ = LocalConfig(WriteDataset());
    absl::StatusOr<std::shared_ptr<const RunData>> server = LoadRunData(config_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *server;
    absl::StatusOr<Dataset> dataset = LoadDataset(config_.dataset, config_.data_dir);
    ASSERT_TRUE(dataset.ok());
    export_dir_ = test::MakeTempDir();
    ASSERT_TRUE(ExportPartition(*dataset, server_->partition, export_dir_).ok());
  }
  RunConfig config_;
  std::shared_ptr<const RunData> server_;
  std::string export_dir_;
};

TEST_F(LocalDataTest, HostedClientsGetExactlyTheirOwnImagesAndTheServersTheta0) {
  absl::StatusOr<std::shared_ptr<const RunData>> local =
      LoadLocalRunData(config_, export_dir_, {1, 3});
  ASSERT_TRUE(local.ok()) << local.status();
  const RunData& data = **local;
  ASSERT_EQ(data.partition.clients.size(), 4u);
  EXPECT_EQ(data.theta0.size(), server_->theta0.size());
  for (size_t t = 0; t < data.theta0.size(); ++t) {
    EXPECT_EQ(data.theta0.tensors[t].values, server_->theta0.tensors[t].values)
        << data.theta0.tensors[t].name;
  }
  EXPECT_EQ(data.model, server_->model);
  for (int64_t id : {0, 2}) {
    const ClientSplit& split = data.partition.clients[id];
    EXPECT_TRUE(split.train.empty() && split.validation.empty() && split.test.empty()) << id;
  }
  for (int64_t id : {1, 3}) {
    SCOPED_TRACE(id);
    const ClientSplit& mine = data.partition.clients[id];
    const ClientSplit& theirs = server_->partition.clients[id];
    EXPECT_EQ(mine.id, id);
    // The same images, normalized alike, and slices of the partition's sizes.
    EXPECT_EQ(Rows(data.train.images, Concat(mine.train, mine.validation)),
              Rows(server_->train.images, Concat(theirs.train, theirs.validation)));
    EXPECT_EQ(Rows(data.test.images, mine.test), Rows(server_->test.images, theirs.test));
    EXPECT_EQ(mine.train.size(), theirs.train.size());
    EXPECT_EQ(mine.validation.size(), theirs.validation.size());
    std::set<int64_t> train(mine.train.begin(), mine.train.end());
    for (int64_t v : mine.validation) EXPECT_EQ(train.count(v), 0u) << v;
    EXPECT_EQ(mine.noise_sigma, 0.f);
  }
  EXPECT_EQ(data.train.images.size(0), 2 * (20 + 4));
}

TEST_F(LocalDataTest, ValidationSliceIsSeeded) {
  auto validation = [&](uint64_t seed) {
    RunConfig c = config_;
    c.seed = seed;
    absl::StatusOr<std::shared_ptr<const RunData>> local = LoadLocalRunData(c, export_dir_, {2});
    EXPECT_TRUE(local.ok()) << local.status();
    return (*local)->partition.clients[2].validation;
  };
  EXPECT_EQ(validation(5), validation(5));
  EXPECT_NE(validation(5), validation(6));
  EXPECT_EQ(LocalValidationSize(24, 0.2), 4);
  EXPECT_EQ(LocalValidationSize(24, 0), 0);
  EXPECT_EQ(LocalValidationSize(1, 0.5), 0);
}

TEST_F(LocalDataTest, LocalRunsUseFixedNormalization) {
  const Normalization fixed = FixedNormalization(DatasetKind::kMnist);
  RunConfig partition_run = config_;
  partition_run.client_data = ClientDataSource::kPartition;
  absl::StatusOr<std::shared_ptr<const RunData>> computed = LoadRunData(partition_run);
  ASSERT_TRUE(computed.ok());
  // The first pixel of the first training image (label 0) is a 255 byte in this dataset.
  const float white = (1.f - fixed.mean[0]) / fixed.stddev[0];
  EXPECT_FLOAT_EQ(server_->train.images[0][0][0][0].item<float>(), white);
  EXPECT_GT(std::abs((*computed)->train.images[0][0][0][0].item<float>() - white), 0.1f);
  EXPECT_EQ(FixedNormalization(DatasetKind::kCifar10).mean.size(), 3u);
}

TEST_F(LocalDataTest, ALoneClientMayUseTheDirectoryItself) {
  absl::StatusOr<std::shared_ptr<const RunData>> lone =
      LoadLocalRunData(config_, export_dir_ + "/client-2", {2});
  ASSERT_TRUE(lone.ok()) << lone.status();
  absl::StatusOr<std::shared_ptr<const RunData>> nested =
      LoadLocalRunData(config_, export_dir_, {2});
  ASSERT_TRUE(nested.ok()) << nested.status();
  EXPECT_TRUE(torch::equal((*lone)->train.images, (*nested)->train.images));
  // Two clients never share one directory.
  absl::Status two = LoadLocalRunData(config_, export_dir_ + "/client-2", {2, 3}).status();
  EXPECT_TRUE(absl::IsNotFound(two)) << two;
  EXPECT_THAT(two.message(), HasSubstr("client-2/client-2/train-images-idx3-ubyte"));
}

TEST_F(LocalDataTest, ErrorsNameTheProblem) {
  RunConfig partition_run = config_;
  partition_run.client_data = ClientDataSource::kPartition;
  absl::Status s = LoadLocalRunData(partition_run, export_dir_, {0}).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("partition"));

  s = LoadLocalRunData(config_, export_dir_, {4}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("client id 4"));

  s = LoadLocalRunData(config_, export_dir_ + "/nowhere", {0, 1}).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("nowhere/client-0/train-images-idx3-ubyte"));

  // Another dataset's files: Fashion-MNIST files are IDX too, but CIFAR-10 batches are not.
  RunConfig cifar = config_;
  cifar.dataset = DatasetKind::kCifar10;
  s = LoadLocalRunData(cifar, export_dir_, {0}).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("client-0/data_batch_1.bin"));
  test::WriteFile(export_dir_ + "/client-0/data_batch_1.bin",
                  test::ReadRaw(export_dir_ + "/client-0/train-images-idx3-ubyte"));
  s = LoadLocalRunData(cifar, export_dir_, {0}).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("client 0: " + export_dir_ + "/client-0/data_batch_1.bin"));
}

TEST_F(LocalDataTest, LocalRunsReportTheDownlinksAccuracyOnTheClientsTestSplit) {
  absl::StatusOr<std::shared_ptr<const RunData>> local =
      LoadLocalRunData(config_, export_dir_, {1});
  ASSERT_TRUE(local.ok()) << local.status();
  DecodedModel downlink;
  downlink.values = server_->theta0;
  downlink.mask = Mask::Full(server_->theta0);
  absl::StatusOr<LocalResult> result = RunLocalUpdate(**local, 1, 1, 0, downlink, 0);
  ASSERT_TRUE(result.ok()) << result.status();
  absl::StatusOr<Net> net = NewNet(**local);
  ASSERT_TRUE(net.ok());
  absl::StatusOr<double> want =
      Trainer::Evaluate(**net, (*local)->test, (*local)->partition.clients[1].test);
  ASSERT_TRUE(want.ok());
  EXPECT_DOUBLE_EQ(result->step.global_masked_accuracy, *want);
  EXPECT_EQ(result->num_samples, 20);
  EXPECT_EQ(result->test_count, 15);

  RunConfig partition_run = config_;
  partition_run.client_data = ClientDataSource::kPartition;
  EXPECT_TRUE(ClientStepOptionsFor(config_, 1, 1, 0)->evaluate_downlink);
  EXPECT_FALSE(ClientStepOptionsFor(partition_run, 1, 1, 0)->evaluate_downlink);
  absl::StatusOr<std::shared_ptr<const RunData>> partitioned = LoadRunData(partition_run);
  ASSERT_TRUE(partitioned.ok());
  result = RunLocalUpdate(**partitioned, 1, 1, 0, downlink, 0);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->step.global_masked_accuracy, -1);
}

}  // namespace
}  // namespace lfl
