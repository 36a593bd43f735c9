// Trains MnistCnn on real Fashion-MNIST (Debian's dataset-fashion-mnist).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <numeric>

#include "models/data.h"
#include "models/net.h"
#include "models/trainer.h"
#include "partitioning/dataset.h"

namespace lfl {
namespace {

constexpr char kDataDir[] = "/usr/share/datasets/fashion-mnist";

TEST(FashionMnistTest, MnistCnnLearnsFromTwoThousandImages) {
  if (!std::filesystem::exists(kDataDir)) GTEST_SKIP() << kDataDir << " is missing";
  absl::StatusOr<Dataset> dataset = LoadDataset(DatasetKind::kFashionMnist, kDataDir);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  SetMathThreads(1);
  const Normalization norm = ComputeNormalization(dataset->train, dataset->channels);
  const TensorData train = ToTensorData(dataset->train, *dataset, norm);
  const TensorData test = ToTensorData(dataset->test, *dataset, norm);
  std::vector<int64_t> train_slice(2000), test_slice(2000);
  std::iota(train_slice.begin(), train_slice.end(), 0);
  std::iota(test_slice.begin(), test_slice.end(), 0);

  absl::StatusOr<Net> net = MakeNet(ModelKind::kMnistCnn, NetShape{}, 1);
  ASSERT_TRUE(net.ok()) << net.status();
  absl::StatusOr<double> before = Trainer::Evaluate(**net, test, test_slice);
  ASSERT_TRUE(before.ok()) << before.status();

  PlainSource source(**net, {});
  TrainOptions options;  // LotteryFL defaults: lr 0.01, momentum 0.5, batch 32.
  options.epochs = 10;
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<TrainStats> stats = Trainer::Train(**net, source, train, train_slice, options);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(stats.ok()) << stats.status();
  absl::StatusOr<double> after = Trainer::Evaluate(**net, test, test_slice);
  ASSERT_TRUE(after.ok()) << after.status();

  RecordProperty("accuracy_before", std::to_string(*before));
  RecordProperty("accuracy_after", std::to_string(*after));
  // Recorded, not asserted: timings belong to bench/ (bench_models_throughput), not to unit tests.
  RecordProperty("train_seconds", std::to_string(seconds));
  EXPECT_LT(*before, 0.3);
  EXPECT_GE(*after, 0.70);
}

}  // namespace
}  // namespace lfl
