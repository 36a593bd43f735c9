#include "models/trainer.h"
#include "tests/models/synthetic_net.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <numeric>
#include <thread>
#include <utility>

namespace lfl {
namespace {

using test::MakeMnistCnn;
using test::Range;
using test::SyntheticData;

TrainStats TrainOrDie(NetImpl& net, ParameterSource& source, const TensorData& data,
                      const std::vector<int64_t>& indices, const TrainOptions& options) {
  absl::StatusOr<TrainStats> stats = Trainer::Train(net, source, data, indices, options);
  EXPECT_TRUE(stats.ok()) << stats.status();
  return stats.ok() ? *stats : TrainStats{};
}

// Trains a fresh MnistCnn (seed 1) on `data` with plain SGD and returns its
// weights.
std::vector<torch::Tensor> TrainedWeights(const TensorData& data, const TrainOptions& options) {
  Net net = MakeMnistCnn(1);
  PlainSource source(*net, {});
  TrainOrDie(*net, source, data, Range(0, data.labels.size(0)), options);
  return net->parameters();
}

bool BitIdentical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

TEST(TrainerTest, CountsStepsAndSamples) {
  const TensorData data = SyntheticData(100, 1);
  Net net = MakeMnistCnn(1);
  PlainSource source(*net, {});
  TrainOptions options;
  options.epochs = 3;
  options.batch_size = 32;  // 100 images: batches of 32, 32, 32, 4.
  const TrainStats stats = TrainOrDie(*net, source, data, Range(0, 100), options);
  EXPECT_EQ(stats.steps, 12);
  EXPECT_EQ(stats.samples, 300);
  EXPECT_GT(stats.mean_loss, 0);
}

TEST(TrainerTest, LossFallsOnALearnableTask) {
  const TensorData data = SyntheticData(512, 2);
  Net net = MakeMnistCnn(1);
  PlainSource source(*net, {});
  TrainOptions options;
  const double first = TrainOrDie(*net, source, data, Range(0, 512), options).mean_loss;
  options.epochs = 5;
  const double later = TrainOrDie(*net, source, data, Range(0, 512), options).mean_loss;
  EXPECT_LT(later, 0.8 * first);
  absl::StatusOr<double> accuracy = Trainer::Evaluate(*net, data, {});
  ASSERT_TRUE(accuracy.ok()) << accuracy.status();
  EXPECT_GT(*accuracy, 0.6);  // Chance is 0.25.
}

TEST(TrainerTest, MaskedWeightsStayExactlyZero) {
  const TensorData data = SyntheticData(96, 3);
  Net net = MakeMnistCnn(1);
  const std::vector<torch::Tensor> before = net->parameters();
  std::vector<torch::Tensor> initial;
  for (const torch::Tensor& p : before) initial.push_back(p.detach().clone());

  // Prune every other element of every weight tensor; leave biases unmasked.
  std::vector<torch::Tensor> masks(before.size());
  for (size_t i = 0; i < before.size(); i += 2) {
    masks[i] = (torch::arange(before[i].numel()) % 2).to(torch::kFloat32).view(before[i].sizes());
  }
  PlainSource source(*net, masks);
  TrainOptions options;
  options.epochs = 2;
  TrainOrDie(*net, source, data, Range(0, 96), options);

  const std::vector<torch::Tensor> after = net->parameters();
  for (size_t i = 0; i < after.size(); i += 2) {
    const torch::Tensor pruned = masks[i] == 0;
    EXPECT_EQ(after[i].masked_select(pruned).abs().max().item<float>(), 0.f) << i;
    // The kept weights trained.
    EXPECT_FALSE(torch::equal(after[i].masked_select(~pruned), initial[i].masked_select(~pruned)));
  }
}

TEST(TrainerTest, UnmaskedRunChangesEveryLayer) {
  const TensorData data = SyntheticData(96, 3);
  Net net = MakeMnistCnn(1);
  std::vector<torch::Tensor> initial;
  for (const torch::Tensor& p : net->parameters()) initial.push_back(p.detach().clone());
  PlainSource source(*net, {});
  TrainOrDie(*net, source, data, Range(0, 96), TrainOptions{});
  const std::vector<torch::Tensor> after = net->parameters();
  for (size_t i = 0; i < after.size(); ++i) EXPECT_FALSE(torch::equal(after[i], initial[i])) << i;
}

TEST(TrainerTest, SameSeedGivesBitIdenticalWeights) {
  const TensorData data = SyntheticData(128, 4);
  TrainOptions options;
  options.epochs = 2;
  options.seed = 11;
  options.noise_sigma = 0.3f;
  const auto a = TrainedWeights(data, options);
  const auto b = TrainedWeights(data, options);
  EXPECT_TRUE(BitIdentical(a, b));
  options.seed = 12;
  EXPECT_FALSE(BitIdentical(a, TrainedWeights(data, options)));
}

TEST(TrainerTest, ConcurrentTrainingMatchesSequential) {
  const TensorData data = SyntheticData(128, 5);
  TrainOptions options;
  options.epochs = 2;
  options.seed = 21;
  const auto sequential = TrainedWeights(data, options);
  std::vector<torch::Tensor> first, second;
  std::thread t1([&] { first = TrainedWeights(data, options); });
  std::thread t2([&] { second = TrainedWeights(data, options); });
  t1.join();
  t2.join();
  EXPECT_TRUE(BitIdentical(sequential, first));
  EXPECT_TRUE(BitIdentical(sequential, second));
}

TEST(TrainerTest, NoiseChangesTheRun) {
  const TensorData data = SyntheticData(64, 6);
  TrainOptions options;
  const auto clean = TrainedWeights(data, options);
  options.noise_sigma = 0.5f;
  EXPECT_FALSE(BitIdentical(clean, TrainedWeights(data, options)));
}

TEST(TrainerTest, RefusesBadArguments) {
  const TensorData data = SyntheticData(16, 7);
  Net net = MakeMnistCnn(1);
  PlainSource source(*net, {});
  const auto code = [&](const std::vector<int64_t>& indices, const TrainOptions& options) {
    return Trainer::Train(*net, source, data, indices, options).status().code();
  };
  TrainOptions options;
  EXPECT_EQ(code({}, options), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({0, 16}, options), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({-1}, options), absl::StatusCode::kInvalidArgument);
  options.batch_size = 0;
  EXPECT_EQ(code({0}, options), absl::StatusCode::kInvalidArgument);
  options = TrainOptions{};
  options.lr = -1;
  EXPECT_EQ(code({0}, options), absl::StatusCode::kInvalidArgument);
  options = TrainOptions{};
  options.momentum = 1;
  EXPECT_EQ(code({0}, options), absl::StatusCode::kInvalidArgument);
}

TEST(TrainerTest, RefusesMasksThatDoNotFit) {
  const TensorData data = SyntheticData(16, 7);
  Net net = MakeMnistCnn(1);
  std::vector<torch::Tensor> masks(net->parameters().size());
  masks[0] = torch::ones({3, 3});
  PlainSource wrong_shape(*net, masks);
  EXPECT_EQ(Trainer::Train(*net, wrong_shape, data, Range(0, 16), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  PlainSource wrong_count(*net, {torch::ones({10, 1, 5, 5})});
  EXPECT_EQ(Trainer::Train(*net, wrong_count, data, Range(0, 16), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A source that trains a scaled copy of the weights: effective = 2 * leaf.
// Records how the Trainer drives it.
class RecordingSource : public ParameterSource {
 public:
  explicit RecordingSource(NetImpl& net) : net_(net) { ResetLeaves(); }

  void Begin(int64_t total_steps) override { begun_with = total_steps; }
  std::vector<torch::Tensor> Trainable() override {
    ++trainable_calls;
    return leaves_;
  }
  std::vector<torch::Tensor> EffectiveWeights() override {
    std::vector<torch::Tensor> weights;
    for (const torch::Tensor& leaf : leaves_) weights.push_back(leaf * 2);
    return weights;
  }
  torch::Tensor Penalty() override { return leaves_[0].abs().sum() * 0; }
  void AfterBackward() override {
    for (const torch::Tensor& leaf : leaves_) all_grads_defined &= leaf.grad().defined();
  }
  bool AfterStep(int64_t step) override {
    steps_seen.push_back(step);
    if (step != 1) return false;
    ResetLeaves();
    return true;
  }
  void Finish() override {
    torch::NoGradGuard no_grad;
    const auto params = net_.parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(leaves_[i] * 2);
    finished = true;
  }

  int64_t begun_with = -1;
  int trainable_calls = 0;
  bool all_grads_defined = true;
  std::vector<int64_t> steps_seen;
  bool finished = false;

 private:
  void ResetLeaves() {
    leaves_.clear();
    for (const torch::Tensor& p : net_.parameters()) {
      leaves_.push_back((p.detach() / 2).requires_grad_(true));
    }
  }

  NetImpl& net_;
  std::vector<torch::Tensor> leaves_;
};

TEST(TrainerTest, DrivesAParameterSourceThroughItsHooks) {
  const TensorData data = SyntheticData(40, 8);
  Net net = MakeMnistCnn(1);
  std::vector<torch::Tensor> initial;
  for (const torch::Tensor& p : net->parameters()) initial.push_back(p.detach().clone());
  RecordingSource source(*net);
  TrainOptions options;
  options.epochs = 2;
  options.batch_size = 16;  // 3 steps per epoch.
  const TrainStats stats = TrainOrDie(*net, source, data, Range(0, 40), options);
  EXPECT_EQ(source.begun_with, 6);
  EXPECT_EQ(stats.steps, 6);
  EXPECT_EQ(source.steps_seen, (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(source.trainable_calls, 2);  // At the start and after the change at step 1.
  EXPECT_TRUE(source.all_grads_defined);
  EXPECT_TRUE(source.finished);
  EXPECT_FALSE(torch::equal(net->parameters()[0], initial[0]));
}

TEST(TrainerTest, RefusesSourcesWhoseWeightsDoNotFitTheNet) {
  class TruncatingSource : public PlainSource {
   public:
    using PlainSource::PlainSource;
    std::vector<torch::Tensor> EffectiveWeights() override {
      auto weights = PlainSource::EffectiveWeights();
      weights.pop_back();
      return weights;
    }
  };
  const TensorData data = SyntheticData(16, 9);
  Net net = MakeMnistCnn(1);
  TruncatingSource source(*net, {});
  EXPECT_EQ(Trainer::Train(*net, source, data, Range(0, 16), {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(EvaluateTest, CountsCorrectPredictions) {
  TensorData data = SyntheticData(2500, 10);  // More than one batch of 1000.
  Net net = MakeMnistCnn(1);
  {
    torch::NoGradGuard no_grad;
    data.labels = net->forward(data.images).argmax(1);
  }
  absl::StatusOr<double> all = Trainer::Evaluate(*net, data, {});
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, 1.0);

  // Make every image with an odd index wrong, then evaluate subsets.
  data.labels = data.labels.clone();
  data.labels.slice(0, 1, 2500, 2).add_(1).remainder_(10);
  EXPECT_EQ(*Trainer::Evaluate(*net, data, {}), 0.5);
  EXPECT_EQ(*Trainer::Evaluate(*net, data, {0, 2, 4, 1}), 0.75);
  std::vector<int64_t> odd;
  for (int64_t i = 1; i < 2500; i += 2) odd.push_back(i);
  EXPECT_EQ(*Trainer::Evaluate(*net, data, odd), 0.0);
}

TEST(EvaluateTest, NoiseIsSeededAndLowersAccuracy) {
  const TensorData data = SyntheticData(500, 11);
  Net net = MakeMnistCnn(1);
  PlainSource source(*net, {});
  TrainOptions options;
  options.epochs = 3;  // one epoch at lr 0.01 may still be at chance for some batch orders
  options.lr = 0.05;
  TrainOrDie(*net, source, data, Range(0, 500), options);
  ASSERT_GT(*Trainer::Evaluate(*net, data, {}), 0.6);
  const double clean = *Trainer::Evaluate(*net, data, {});
  const double noisy = *Trainer::Evaluate(*net, data, {}, 5.f, 1);
  EXPECT_EQ(noisy, *Trainer::Evaluate(*net, data, {}, 5.f, 1));
  EXPECT_LT(noisy, clean - 0.1);
}

TEST(EvaluateTest, RefusesOutOfRangeIndicesAndEmptySplits) {
  const TensorData data = SyntheticData(10, 12);
  Net net = MakeMnistCnn(1);
  EXPECT_EQ(Trainer::Evaluate(*net, data, {10}).status().code(),
            absl::StatusCode::kInvalidArgument);
  const TensorData empty{torch::zeros({0, 1, 28, 28}), torch::zeros({0}, torch::kInt64)};
  EXPECT_EQ(Trainer::Evaluate(*net, empty, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lfl
