// TorchEvaluator scores each distinct test image of a mask group once; the figures must be those
// of evaluating every client's split on its own (Trainer::Evaluate of θg ⊙ m_k on the split),
// summed group by group as the evaluator always did. Clients here share test images within and
// across groups, one names an image twice, one has none.
#include "runtime/torch_evaluator.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "models/trainer.h"
#include "runtime/run_data.h"
#include "tests/partitioning/test_files.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

// A tiny MNIST-format dataset: 40 training and 20 test images a class, a bright band per label
// over noise, so that a briefly trained net gets some images right and some wrong.
std::string WriteDataset() {
  const std::string dir = test::MakeTempDir();
  for (const auto& [stem, count] : {std::pair<std::string, int64_t>("train", 400), {"t10k", 200}}) {
    Split split = test::MakeSplit(count, 28 * 28, 10);
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t p = 0; p < 28 * 28; ++p) {
        split.images[i * 28 * 28 + p] =
            p / 78 == split.labels[i] ? 160 : split.images[i * 28 * 28 + p] / 2;
      }
    }
    test::WriteMnistFiles(dir, "", stem, split, 28, 28, false);
  }
  return dir;
}

// Drops the prunable elements i with i % period == phase.
Mask Pruned(const TensorSet& layout, int64_t period, int64_t phase) {
  Mask mask = Mask::Full(layout);
  for (size_t t = 0; t < mask.num_tensors(); ++t) {
    if (!mask.prunable(t)) continue;
    for (int64_t i = 0; i < mask.numel(t); ++i) {
      if (i % period == phase) mask.Set(t, i, false);
    }
  }
  return mask;
}

class TorchEvaluatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RunConfig config;
    config.dataset = DatasetKind::kMnist;
    config.data_dir = WriteDataset();
    config.partition = PartitionScheme::kIid;
    config.clients = 12;
    config.test_per_client = 10;
    config.seed = 3;
    absl::StatusOr<std::shared_ptr<const RunData>> loaded = LoadRunData(config);
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    auto data = std::make_shared<RunData>(**loaded);
    // Test splits drawn from a pool of 25 images: every image is named by several clients,
    // of the same group and of other groups.
    std::vector<int64_t> pool;
    for (int64_t j = 0; j < 25; ++j) pool.push_back(j * 8 + j % 3);
    for (int64_t k = 0; k < 12; ++k) {
      std::vector<int64_t>& test = data->partition.clients[k].test;
      test.clear();
      for (int64_t j = 0; j < 10; ++j) test.push_back(pool[(k * 3 + j * 7) % 25]);
    }
    data->partition.clients[4].test = {pool[5], pool[5], pool[9], 199, pool[5]};  // repeats
    data->partition.clients[7].test.clear();                                      // none
    data_ = data;

    // A briefly trained global model (θ0 alone predicts nearly one class everywhere).
    absl::StatusOr<Net> net = NewNet(*data_);
    ASSERT_TRUE(net.ok()) << net.status();
    PlainSource source(**net, {});
    std::vector<int64_t> all(400);
    for (int64_t i = 0; i < 400; ++i) all[i] = i;
    TrainOptions options;
    options.epochs = 1;
    options.lr = 0.02;
    options.seed = 9;
    ASSERT_TRUE(Trainer::Train(**net, source, data_->train, all, options).ok());
    request_.global = ToTensorSet(**net);
    request_.global_accuracy = false;
    // Three tickets, interleaved over the client ids: full, a third pruned, four fifths pruned.
    const Mask masks[3] = {Mask::Full(request_.global), Pruned(request_.global, 3, 0),
                           Pruned(request_.global, 5, 1)};
    for (int64_t k = 0; k < 12; ++k) {
      request_.clients.push_back(k);
      request_.masks.push_back(masks[k % 3]);
    }
  }

  // The old way: every client's own split through Trainer::Evaluate with its own masked model.
  std::vector<double> PerClient() {
    std::vector<double> out;
    for (size_t i = 0; i < request_.clients.size(); ++i) {
      const std::vector<int64_t>& test = data_->partition.clients[request_.clients[i]].test;
      if (test.empty()) {
        out.push_back(-1);
        continue;
      }
      TensorSet masked = request_.global;
      request_.masks[i].ApplyTo(&masked);
      absl::StatusOr<Net> net = NewNet(*data_);
      EXPECT_TRUE(net.ok());
      EXPECT_TRUE(LoadTensorSet(masked, net->get()).ok());
      absl::StatusOr<double> accuracy = Trainer::Evaluate(**net, data_->test, test);
      EXPECT_TRUE(accuracy.ok()) << accuracy.status();
      out.push_back(*accuracy);
    }
    return out;
  }

  // The mean over clients with test images, summed group by group (groups by mask hash,
  // members in request order).
  double MeanInGroupOrder(const std::vector<double>& per_client) {
    std::map<uint64_t, std::vector<size_t>> groups;
    for (size_t i = 0; i < request_.clients.size(); ++i) {
      groups[MaskHash(request_.masks[i])].push_back(i);
    }
    double sum = 0;
    int64_t counted = 0;
    for (const auto& [hash, members] : groups) {
      for (size_t i : members) {
        if (per_client[i] < 0) continue;
        sum += per_client[i];
        ++counted;
      }
    }
    return sum / static_cast<double>(counted);
  }

  std::shared_ptr<const RunData> data_;
  EvalRequest request_;
};

TEST_F(TorchEvaluatorTest, SharedTestImagesGiveThePerClientFigures) {
  const std::vector<double> expected = PerClient();
  // The case is not degenerate: the tickets disagree on some client, and the accuracies vary.
  std::set<double> values(expected.begin(), expected.end());
  EXPECT_GE(values.size(), 3u);
  bool masks_matter = false;
  {
    EvalRequest full = request_;
    for (Mask& m : full.masks) m = Mask::Full(full.global);
    TorchEvaluator evaluator(data_);
    absl::StatusOr<std::vector<double>> unpruned = evaluator.TicketAccuracies(full);
    ASSERT_TRUE(unpruned.ok()) << unpruned.status();
    for (size_t i = 0; i < expected.size(); ++i) masks_matter |= (*unpruned)[i] != expected[i];
  }
  EXPECT_TRUE(masks_matter) << "the pruned tickets predict like the full model: a weak test";

  TorchEvaluator evaluator(data_);
  absl::StatusOr<std::vector<double>> per_client = evaluator.TicketAccuracies(request_);
  ASSERT_TRUE(per_client.ok()) << per_client.status();
  EXPECT_EQ(*per_client, expected);
  EXPECT_EQ((*per_client)[7], -1) << "no test images";

  absl::StatusOr<EvalResult> result = evaluator.Evaluate(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->global_masked_accuracy, MeanInGroupOrder(expected));  // bit for bit
  EXPECT_EQ(result->global_accuracy, -1) << "not asked";
}

TEST_F(TorchEvaluatorTest, GroupOfOneAndSubsetsOfTheRequest) {
  // Any sub-request (the round's seeded sample) gives the same per-client figures.
  const std::vector<double> all = PerClient();
  TorchEvaluator evaluator(data_);
  for (const std::vector<size_t>& picked :
       std::vector<std::vector<size_t>>{{0}, {1, 4}, {2, 5, 8, 11}, {3, 4, 7, 10}}) {
    EvalRequest sub;
    sub.global = request_.global;
    sub.global_accuracy = false;
    std::vector<double> expected;
    for (size_t i : picked) {
      sub.clients.push_back(request_.clients[i]);
      sub.masks.push_back(request_.masks[i]);
      expected.push_back(all[i]);
    }
    absl::StatusOr<std::vector<double>> got = evaluator.TicketAccuracies(sub);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, expected) << picked.size() << " clients";
  }
}

TEST_F(TorchEvaluatorTest, BadTestIndexIsRefusedAndLeavesNothingBehind) {
  TorchEvaluator evaluator(data_);
  const absl::StatusOr<EvalResult> before = evaluator.Evaluate(request_);
  ASSERT_TRUE(before.ok()) << before.status();

  auto bad = std::make_shared<RunData>(*data_);
  bad->partition.clients[5].test.push_back(200);  // the test set has 200 images
  TorchEvaluator bad_evaluator(bad);
  const absl::StatusOr<EvalResult> refused = bad_evaluator.Evaluate(request_);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();

  EvalRequest none = request_;
  none.clients = {7};
  none.masks = {request_.masks[7]};
  const absl::StatusOr<EvalResult> empty = evaluator.Evaluate(none);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->global_masked_accuracy, -1) << "no client with test images";

  const absl::StatusOr<EvalResult> again = evaluator.Evaluate(request_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->global_masked_accuracy, before->global_masked_accuracy);
}

}  // namespace
}  // namespace lfl
