// FedProx's proximal term in the Trainer (TrainOptions::proximal_mu, proximal_anchor): it pulls
// the trained weights towards the anchor, by exactly mu · (w − anchor) per unit of lr, keeps
// pruned weights at zero, and at mu = 0 is not computed at all.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "models/trainer.h"
#include "tests/models/synthetic_net.h"

namespace lfl {
namespace {

using test::MakeMnistCnn;
using test::Range;
using test::SyntheticData;

std::vector<torch::Tensor> Copy(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& t : tensors) out.push_back(t.detach().clone());
  return out;
}

double Distance(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  double sum = 0;
  for (size_t i = 0; i < a.size(); ++i) sum += (a[i] - b[i]).square().sum().item<double>();
  return std::sqrt(sum);
}

bool BitIdentical(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

// Trains a fresh MnistCnn (seed 1) with `masks` and returns its weights.
std::vector<torch::Tensor> Trained(const TensorData& data, const TrainOptions& options,
                                   std::vector<torch::Tensor> masks = {}) {
  Net net = MakeMnistCnn(1);
  PlainSource source(*net, std::move(masks));
  absl::StatusOr<TrainStats> stats =
      Trainer::Train(*net, source, data, Range(0, data.labels.size(0)), options);
  EXPECT_TRUE(stats.ok()) << stats.status();
  return Copy(net->parameters());
}

TEST(ProximalTest, ALargerMuEndsCloserToTheAnchor) {
  const TensorData data = SyntheticData(256, 2);
  TrainOptions options;
  options.epochs = 3;
  options.lr = 0.05;
  options.seed = 4;
  const std::vector<torch::Tensor> start = Copy(MakeMnistCnn(1)->parameters());
  options.proximal_anchor = start;
  double previous = INFINITY;
  for (double mu : {0.0, 1.0, 10.0}) {
    options.proximal_mu = mu;
    const double distance = Distance(Trained(data, options), start);
    EXPECT_GT(distance, 0) << "mu " << mu << ": the weights still train";
    EXPECT_LT(distance, previous * (mu == 10.0 ? 0.5 : 0.99)) << "mu " << mu;
    previous = distance;
  }
}

// One full-batch step without momentum: the proximal run differs from the plain one by exactly
// lr · mu · (anchor − w0), the gradient of (mu/2)·‖w − anchor‖² (dropout draws the same mask).
TEST(ProximalTest, TheGradientIsMuTimesTheDistanceToTheAnchor) {
  const TensorData data = SyntheticData(64, 3);
  TrainOptions options;
  options.epochs = 1;
  options.batch_size = 64;
  options.momentum = 0;
  options.lr = 0.1;
  const std::vector<torch::Tensor> start = Copy(MakeMnistCnn(1)->parameters());
  const std::vector<torch::Tensor> plain = Trained(data, options);
  std::vector<torch::Tensor> anchor;
  for (const torch::Tensor& w : start) anchor.push_back(w + 0.5);
  options.proximal_mu = 2.0;
  options.proximal_anchor = anchor;
  const std::vector<torch::Tensor> prox = Trained(data, options);
  for (size_t i = 0; i < start.size(); ++i) {
    const torch::Tensor expected =
        plain[i] + options.lr * options.proximal_mu * (anchor[i] - start[i]);
    EXPECT_TRUE(torch::allclose(prox[i], expected, /*rtol=*/0, /*atol=*/1e-5)) << "parameter " << i;
  }
}

// An anchor that is not zero where the mask prunes still cannot move a pruned weight.
TEST(ProximalTest, PrunedWeightsStayExactlyZero) {
  const TensorData data = SyntheticData(128, 5);
  const std::vector<torch::Tensor> start = Copy(MakeMnistCnn(1)->parameters());
  std::vector<torch::Tensor> masks(start.size());
  std::vector<torch::Tensor> anchor;
  for (size_t i = 0; i < start.size(); ++i) {
    if (start[i].dim() > 1) {
      masks[i] =
          (torch::arange(start[i].numel()) % 3 != 0).to(torch::kFloat32).view(start[i].sizes());
    }
    anchor.push_back(start[i] + 1.0);
  }
  TrainOptions options;
  options.epochs = 2;
  options.proximal_mu = 10.0;
  options.proximal_anchor = anchor;
  const std::vector<torch::Tensor> trained = Trained(data, options, masks);
  int64_t pruned = 0;
  for (size_t i = 0; i < trained.size(); ++i) {
    if (!masks[i].defined()) continue;
    const torch::Tensor at_pruned = trained[i].masked_select(masks[i] == 0);
    pruned += at_pruned.numel();
    EXPECT_EQ(at_pruned.abs().max().item<float>(), 0.f) << "parameter " << i;
  }
  EXPECT_GT(pruned, 1000);
}

// mu = 0 computes no term at all: an anchor of NaNs, which any use would spread into every
// weight, leaves the run bit-identical to one without an anchor.
TEST(ProximalTest, MuZeroIsBitIdenticalToNoProximalTerm) {
  const TensorData data = SyntheticData(128, 6);
  TrainOptions options;
  options.epochs = 2;
  options.seed = 9;
  const std::vector<torch::Tensor> plain = Trained(data, options);
  for (const torch::Tensor& w : plain) {
    options.proximal_anchor.push_back(torch::full_like(w, std::numeric_limits<float>::quiet_NaN()));
  }
  options.proximal_mu = 0;
  EXPECT_TRUE(BitIdentical(Trained(data, options), plain));
}

TEST(ProximalTest, RefusesBadMuAndAnchorsThatDoNotFit) {
  const TensorData data = SyntheticData(16, 7);
  Net net = MakeMnistCnn(1);
  PlainSource source(*net, {});
  const std::vector<torch::Tensor> start = Copy(net->parameters());
  TrainOptions options;
  options.proximal_anchor = start;
  for (double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    options.proximal_mu = bad;
    EXPECT_EQ(Trainer::Train(*net, source, data, Range(0, 16), options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  options.proximal_mu = 1;
  options.proximal_anchor.pop_back();
  EXPECT_EQ(Trainer::Train(*net, source, data, Range(0, 16), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.proximal_anchor = start;
  options.proximal_anchor[0] = torch::zeros({3, 3});
  EXPECT_EQ(Trainer::Train(*net, source, data, Range(0, 16), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.proximal_anchor = start;
  EXPECT_TRUE(Trainer::Train(*net, source, data, Range(0, 16), options).ok());
}

}  // namespace
}  // namespace lfl
