// ClientStepOptions::gate_on_test: the LotteryFL reference's gate, which judges the global ticket
// on the client's local test split instead of its validation slice.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <numeric>

#include "runtime/client_step.h"

namespace lfl {
namespace {

std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> v(static_cast<size_t>(to - from));
  std::iota(v.begin(), v.end(), from);
  return v;
}

TEST(GateSplitTest, TheGateJudgesOnTheSplitItIsTold) {
  // Four learnable classes; the "test" data holds the same images with every label shifted by
  // one, so a net that learned the training data scores high on validation and low on test.
  torch::Generator generator = at::detail::createCPUGenerator(5);
  const torch::Tensor templates = torch::randn({4, 1, 28, 28}, generator);
  TensorData train;
  train.labels = torch::randint(4, {128}, generator, torch::kInt64);
  train.images =
      templates.index_select(0, train.labels) + 0.5 * torch::randn({128, 1, 28, 28}, generator);
  TensorData shifted{train.images, (train.labels + 1).remainder(4)};
  ClientSplit split;
  split.train = Range(0, 64);
  split.validation = Range(64, 128);
  split.test = Range(64, 128);
  absl::StatusOr<Net> net = MakeNet(ModelKind::kMnistCnn, NetShape{}, 7);
  ASSERT_TRUE(net.ok()) << net.status();
  const TensorSet theta0 = ToTensorSet(**net);
  StepContext ctx;
  ctx.data = ClientData{&train, &shifted, &split, &theta0};
  ctx.options.train.epochs = 30;
  ctx.options.train.lr = 0.05;
  ctx.options.train.seed = 3;
  ASSERT_TRUE(TrainTicket(ctx, {}, 30, net->get()).ok());
  const Mask full = Mask::Full(theta0);
  const double validation = *Trainer::Evaluate(**net, train, split.validation);
  const double test = *LocalTestAccuracy(ctx, **net);
  ASSERT_GT(validation, test + 0.2);  // the net learned the true labels, not the shifted ones
  ctx.options.accuracy_threshold = (validation + test) / 2;

  absl::StatusOr<GateOutcome> on_validation = Gate(ctx, **net, full);
  ASSERT_TRUE(on_validation.ok()) << on_validation.status();
  EXPECT_DOUBLE_EQ(on_validation->validation_accuracy, validation);
  EXPECT_TRUE(on_validation->prune);

  ctx.options.gate_on_test = true;
  absl::StatusOr<GateOutcome> on_test = Gate(ctx, **net, full);
  ASSERT_TRUE(on_test.ok()) << on_test.status();
  EXPECT_DOUBLE_EQ(on_test->validation_accuracy, test);
  EXPECT_FALSE(on_test->prune);
}

}  // namespace
}  // namespace lfl
