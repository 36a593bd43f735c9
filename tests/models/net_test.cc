#include "models/net.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <utility>

namespace lfl {
namespace {

int64_t CountParameters(NetImpl& net) {
  int64_t count = 0;
  for (const torch::Tensor& p : net.parameters()) count += p.numel();
  return count;
}

Net MakeOrDie(ModelKind kind, const NetShape& shape, uint64_t seed) {
  absl::StatusOr<Net> net = MakeNet(kind, shape, seed);
  EXPECT_TRUE(net.ok()) << net.status();
  return *std::move(net);
}

bool SameWeights(NetImpl& a, NetImpl& b) {
  const auto pa = a.parameters();
  const auto pb = b.parameters();
  if (pa.size() != pb.size()) return false;
  for (size_t i = 0; i < pa.size(); ++i) {
    if (!torch::equal(pa[i], pb[i])) return false;
  }
  return true;
}

TEST(NetTest, MnistCnnHasLotteryFlParameterCount) {
  Net net = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 1);
  EXPECT_EQ(CountParameters(*net), 21840);
}

TEST(NetTest, CifarCnnIsLeNet5) {
  Net net = MakeOrDie(ModelKind::kCifarCnn, NetShape{3, 32, 32, 10}, 1);
  EXPECT_EQ(CountParameters(*net), 62006);
}

TEST(NetTest, MlpHasTwoHiddenLayersOf200) {
  Net net = MakeOrDie(ModelKind::kMlp, NetShape{}, 1);
  EXPECT_EQ(CountParameters(*net), (784 * 200 + 200) + (200 * 200 + 200) + (200 * 10 + 10));
}

TEST(NetTest, EveryModelMapsInputsToClassLogits) {
  const std::pair<ModelKind, NetShape> cases[] = {
      {ModelKind::kMnistCnn, NetShape{1, 28, 28, 10}},
      {ModelKind::kCifarCnn, NetShape{3, 32, 32, 10}},
      {ModelKind::kFemnistCnn, NetShape{1, 28, 28, 62}},
      {ModelKind::kMlp, NetShape{3, 32, 32, 7}},
  };
  for (const auto& [kind, shape] : cases) {
    Net net = MakeOrDie(kind, shape, 3);
    const torch::Tensor logits =
        net->forward(torch::randn({5, shape.channels, shape.height, shape.width}));
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{5, shape.num_classes})) << ModelKindName(kind);
  }
}

TEST(NetTest, ModelNamesRoundTrip) {
  for (ModelKind kind :
       {ModelKind::kMnistCnn, ModelKind::kCifarCnn, ModelKind::kFemnistCnn, ModelKind::kMlp}) {
    absl::StatusOr<ModelKind> parsed = ParseModelKind(ModelKindName(kind));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(ParseModelKind("resnet").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(NetTest, DefaultModelFollowsDataset) {
  EXPECT_EQ(DefaultModelFor(DatasetKind::kCifar10), ModelKind::kCifarCnn);
  EXPECT_EQ(DefaultModelFor(DatasetKind::kEmnistBalanced), ModelKind::kFemnistCnn);
  EXPECT_EQ(DefaultModelFor(DatasetKind::kFashionMnist), ModelKind::kMnistCnn);
  EXPECT_EQ(DefaultModelFor(DatasetKind::kMnist), ModelKind::kMnistCnn);
}

TEST(NetTest, RefusesShapesTheConvolutionsCannotTake) {
  EXPECT_EQ(MakeNet(ModelKind::kMnistCnn, NetShape{1, 12, 12, 10}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeNet(ModelKind::kMlp, NetShape{1, 28, 28, 0}, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(MakeNet(ModelKind::kMlp, NetShape{1, 4, 4, 2}, 0).ok());
}

TEST(NetTest, InitialWeightsDependOnlyOnSeed) {
  Net a = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 42);
  torch::randn({100});  // Draws from the global generator must not matter.
  Net b = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 42);
  Net c = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 43);
  EXPECT_TRUE(SameWeights(*a, *b));
  EXPECT_FALSE(SameWeights(*a, *c));
}

TEST(NetTest, InitialWeightsFollowPyTorchDefaultRanges) {
  Net net = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 7);
  const auto params = net->parameters();
  for (size_t i = 0; i < params.size(); i += 2) {
    const double bound =
        1.0 / std::sqrt(static_cast<double>(params[i].numel() / params[i].size(0)));
    for (const torch::Tensor& p : {params[i], params[i + 1]}) {
      EXPECT_LE(p.abs().max().item<double>(), bound);
    }
    // Uniform(-b, b) has standard deviation b / sqrt(3).
    EXPECT_NEAR(params[i].std().item<double>(), bound / std::sqrt(3.0), 0.15 * bound);
  }
}

TEST(NetTest, TensorSetNamesAndPrunableFlags) {
  Net net = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 1);
  const TensorSet set = ToTensorSet(*net);
  const std::vector<std::string> names = {"conv1.weight", "conv1.bias", "conv2.weight",
                                          "conv2.bias",   "fc1.weight", "fc1.bias",
                                          "fc2.weight",   "fc2.bias"};
  ASSERT_EQ(set.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(set.tensors[i].name, names[i]);
    EXPECT_EQ(set.tensors[i].prunable, i % 2 == 0);
  }
  EXPECT_EQ(set.TotalElements(), 21840);
  EXPECT_EQ(set.tensors[2].shape, (std::vector<int64_t>{20, 10, 5, 5}));
}

TEST(NetTest, TensorSetRoundTrip) {
  Net source = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 1);
  Net target = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 2);
  ASSERT_FALSE(SameWeights(*source, *target));
  ASSERT_TRUE(LoadTensorSet(ToTensorSet(*source), target.get()).ok());
  EXPECT_TRUE(SameWeights(*source, *target));
}

TEST(NetTest, LoadRefusesMismatchesAndLeavesNetUnchanged) {
  Net net = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 1);
  Net reference = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 1);
  const TensorSet good = ToTensorSet(*MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 2));

  TensorSet wrong_shape = good;
  wrong_shape.tensors[4].shape = {25, 640};
  TensorSet wrong_name = good;
  wrong_name.tensors[0].name = "conv0.weight";
  TensorSet swapped = good;
  std::swap(swapped.tensors[0], swapped.tensors[2]);
  TensorSet missing = good;
  missing.tensors.pop_back();
  TensorSet short_values = good;
  short_values.tensors[7].values.pop_back();
  TensorSet not_finite = good;
  not_finite.tensors[6].values[3] = std::numeric_limits<float>::quiet_NaN();
  TensorSet infinite = good;
  infinite.tensors[1].values[0] = std::numeric_limits<float>::infinity();
  TensorSet other_model = ToTensorSet(*MakeOrDie(ModelKind::kMlp, NetShape{}, 2));

  for (const TensorSet* bad : {&wrong_shape, &wrong_name, &swapped, &missing, &short_values,
                               &not_finite, &infinite, &other_model}) {
    EXPECT_EQ(LoadTensorSet(*bad, net.get()).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(SameWeights(*net, *reference));
  }
}

TEST(NetTest, ForwardWithSubstitutedWeightsEqualsForwardAfterLoading) {
  for (ModelKind kind :
       {ModelKind::kMnistCnn, ModelKind::kCifarCnn, ModelKind::kFemnistCnn, ModelKind::kMlp}) {
    const NetShape shape{kind == ModelKind::kCifarCnn ? 3 : 1, 28, 28, 10};
    Net net = MakeOrDie(kind, shape, 1);
    Net other = MakeOrDie(kind, shape, 2);
    const torch::Tensor x = torch::randn({4, shape.channels, 28, 28});
    const torch::Tensor substituted = net->forward_with(x, other->parameters(), false, nullptr);
    ASSERT_TRUE(LoadTensorSet(ToTensorSet(*other), net.get()).ok());
    EXPECT_TRUE(torch::equal(substituted, net->forward(x))) << ModelKindName(kind);
  }
}

TEST(NetTest, DropoutDrawsOnlyFromTheGivenGenerator) {
  Net net = MakeOrDie(ModelKind::kMnistCnn, NetShape{}, 1);
  const torch::Tensor x = torch::randn({8, 1, 28, 28});
  torch::Generator g1 = at::detail::createCPUGenerator(5);
  torch::Generator g2 = at::detail::createCPUGenerator(5);
  torch::Generator g3 = at::detail::createCPUGenerator(6);
  const torch::Tensor a = net->forward_with(x, net->parameters(), true, &g1);
  torch::rand({100});  // Draws from the global generator must not matter.
  const torch::Tensor b = net->forward_with(x, net->parameters(), true, &g2);
  const torch::Tensor c = net->forward_with(x, net->parameters(), true, &g3);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, c));
  EXPECT_FALSE(torch::equal(a, net->forward(x)));  // Dropout is active in training.
}

}  // namespace
}  // namespace lfl
