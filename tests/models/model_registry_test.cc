// Models that are not in the zoo: RegisterModel / MakeNamedNet with an embedding program's own
// torch::nn::Module (conv + batch norm + linear).

#include <gtest/gtest.h>

#include <string>

#include "models/net.h"

namespace lfl {
namespace {

struct TinyBnNetImpl : torch::nn::Module {
  explicit TinyBnNetImpl(const NetShape& shape)
      : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(shape.channels, 4, 3)))),
        bn(register_module("bn", torch::nn::BatchNorm2d(4))),
        fc(register_module("fc", torch::nn::Linear(4 * (shape.height - 2) * (shape.width - 2), shape.num_classes))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc(torch::relu(bn(conv(x))).flatten(1)); }
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d bn;
  torch::nn::Linear fc;
};
TORCH_MODULE(TinyBnNet);

const NetShape kShape{1, 8, 8, 3};

// Registered once for the whole test program (the registry is process-wide).
class ModelRegistryTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(RegisterModel("tiny-bn", [](const NetShape& s) { return WrapModule(TinyBnNet(s)); }).ok());
    ASSERT_TRUE(RegisterModel("wrong-width", [](const NetShape& s) {
                  return WrapModule(TinyBnNet(NetShape{s.channels, s.height, s.width, s.num_classes + 1}));
                }).ok());
  }
  static Net MakeOrDie(uint64_t seed) {
    absl::StatusOr<Net> net = MakeNamedNet("tiny-bn", kShape, seed);
    EXPECT_TRUE(net.ok()) << net.status();
    return *std::move(net);
  }
};

TEST_F(ModelRegistryTest, UnknownNameIsAClearError) {
  absl::StatusOr<Net> net = MakeNamedNet("resnet-9000", kShape, 1);
  ASSERT_EQ(net.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(net.status().message());
  EXPECT_NE(message.find("'resnet-9000'"), std::string::npos) << message;
  EXPECT_NE(message.find("mnist-cnn"), std::string::npos) << message;
  EXPECT_NE(message.find("tiny-bn"), std::string::npos) << message;
}

TEST_F(ModelRegistryTest, RefusesEmptyZooAndDuplicateNames) {
  auto factory = [](const NetShape& s) { return WrapModule(TinyBnNet(s)); };
  EXPECT_EQ(RegisterModel("", factory).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterModel("mnist-cnn", factory).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterModel("tiny-bn", factory).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RegisterModel("no-factory", nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ModelRegistryTest, ZooNamesStillBuildTheZoo) {
  absl::StatusOr<Net> net = MakeNamedNet("mlp", NetShape{}, 3);
  ASSERT_TRUE(net.ok()) << net.status();
  EXPECT_EQ(ToTensorSet(**net).tensors.front().name, "fc1.weight");
}

TEST_F(ModelRegistryTest, ForwardThatDoesNotMatchTheShapeIsRefused) {
  absl::StatusOr<Net> net = MakeNamedNet("wrong-width", kShape, 1);
  EXPECT_EQ(net.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(net.status().message()).find("not [1, 3]"), std::string::npos) << net.status();
}

TEST_F(ModelRegistryTest, ConvAndLinearWeightsArePrunableOtherParametersAreNot) {
  Net net = MakeOrDie(1);
  const TensorSet set = ToTensorSet(*net);
  std::vector<std::pair<std::string, bool>> layout;
  for (const NamedTensor& t : set.tensors) layout.emplace_back(t.name, t.prunable);
  const std::vector<std::pair<std::string, bool>> expected = {
      {"conv.weight", true}, {"conv.bias", false}, {"bn.weight", false},
      {"bn.bias", false},    {"fc.weight", true},  {"fc.bias", false}};
  EXPECT_EQ(layout, expected);
}

TEST_F(ModelRegistryTest, Theta0DependsOnlyOnTheSeed) {
  const TensorSet a = ToTensorSet(*MakeOrDie(7));
  const TensorSet b = ToTensorSet(*MakeOrDie(7));
  const TensorSet c = ToTensorSet(*MakeOrDie(8));
  ASSERT_EQ(a.tensors.size(), c.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    EXPECT_EQ(a.tensors[i].values, b.tensors[i].values) << a.tensors[i].name;
    const bool drawn = a.tensors[i].name.rfind("bn.", 0) != 0;
    EXPECT_EQ(a.tensors[i].values != c.tensors[i].values, drawn) << a.tensors[i].name;
  }
  // Batch norm keeps the module's own (constant) initialization: scale 1, shift 0.
  EXPECT_EQ(a.tensors[2].values, std::vector<float>(4, 1.f));
  EXPECT_EQ(a.tensors[3].values, std::vector<float>(4, 0.f));
  // PyTorch's default conv range: |w| <= 1/sqrt(fan_in) = 1/3 for a 1x3x3 kernel.
  for (float w : a.tensors[0].values) EXPECT_LE(std::abs(w), 1.f / 3.f);
}

TEST_F(ModelRegistryTest, SubstitutedWeightsGiveTheirOwnLogitsAndGradients) {
  Net net = MakeOrDie(1);
  Net other = MakeOrDie(2);
  const TensorSet own_before = ToTensorSet(*net);
  const torch::Tensor x = torch::randn({5, 1, 8, 8}, at::detail::createCPUGenerator(3));
  const torch::Tensor labels = torch::tensor({0, 1, 2, 0, 1});

  // The other net's weights, as non-leaf tensors of leaves (as BSQ's bit planes give them).
  std::vector<torch::Tensor> leaves, weights;
  for (const torch::Tensor& p : other->parameters()) {
    leaves.push_back(p.detach().clone().requires_grad_(true));
    weights.push_back(leaves.back() * 1.0);
  }
  torch::Tensor substituted = net->forward_with(x, weights, /*train=*/true, nullptr);
  torch::nn::functional::cross_entropy(substituted, labels).backward();

  torch::Tensor reference = other->forward_with(x, other->parameters(), /*train=*/true, nullptr);
  torch::nn::functional::cross_entropy(reference, labels).backward();

  EXPECT_TRUE(torch::allclose(substituted, reference));
  const std::vector<torch::Tensor> params = other->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    ASSERT_TRUE(leaves[i].grad().defined()) << i;
    EXPECT_TRUE(torch::allclose(leaves[i].grad(), params[i].grad(), 1e-5, 1e-6)) << i;
  }
  // The net's own parameters are untouched and took no gradient.
  EXPECT_EQ(ToTensorSet(*net).tensors[0].values, own_before.tensors[0].values);
  for (const torch::Tensor& p : net->parameters()) EXPECT_FALSE(p.grad().defined());
}

}  // namespace
}  // namespace lfl
