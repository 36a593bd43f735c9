#include "quant/bsq/bsq.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "models/net.h"
#include "models/trainer.h"
#include "quant/codec/codec.h"

namespace lfl {
namespace {

// Two 2×2 linear layers with biases: small enough to compute by hand.
class TinyNet : public NetImpl {
 public:
  TinyNet(std::vector<float> w1, std::vector<float> w2) {
    register_parameter("w1", torch::tensor(w1).view({2, 2}));
    register_parameter("b1", torch::zeros({2}));
    register_parameter("w2", torch::tensor(w2).view({2, 2}));
    register_parameter("b2", torch::zeros({2}));
  }
  torch::Tensor forward_with(const torch::Tensor& x, const std::vector<torch::Tensor>& w, bool,
                             torch::Generator*) override {
    return torch::linear(torch::linear(x.flatten(1), w[0], w[1]), w[2], w[3]);
  }
};

std::vector<float> Flat(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().reshape({-1}).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

// Random images labelled by their brightest 2×2 block among ten on the
// middle row: learnable, so the task loss does not just shrink the weights.
TensorData SyntheticData(int64_t n) {
  torch::manual_seed(3);
  torch::Tensor images = torch::randn({n, 1, 28, 28});
  torch::Tensor blocks = images.index(
      {torch::indexing::Slice(), 0, torch::indexing::Slice(12, 14), torch::indexing::Slice(4, 24)});
  torch::Tensor labels = blocks.reshape({n, 2, 10, 2}).sum({1, 3}).argmax(1);
  return TensorData{images, labels};
}

std::vector<int64_t> AllIndices(int64_t n) {
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  return idx;
}

Net MnistCnn() {
  absl::StatusOr<Net> net = MakeNet(ModelKind::kMnistCnn, NetShape{}, /*seed=*/11);
  EXPECT_TRUE(net.ok()) << net.status();
  return *net;
}

// Keeps every other element of each prunable weight.
std::vector<torch::Tensor> CheckerMasks(NetImpl& net) {
  std::vector<torch::Tensor> masks;
  for (const torch::Tensor& p : net.parameters()) {
    if (p.dim() < 2) {
      masks.emplace_back();
      continue;
    }
    masks.push_back((torch::arange(p.numel()) % 2 == 0).to(torch::kFloat32).view(p.sizes()));
  }
  return masks;
}

TrainOptions FastOptions(int64_t epochs) {
  TrainOptions options;
  options.epochs = epochs;
  options.batch_size = 16;
  return options;
}

TEST(BsqSourceTest, StartsAtUniformInitialBitsOfTheWeights) {
  TinyNet net({0.9f, -0.3f, 0.f, 0.6f}, {0.5f, 0.25f, 7.f, 0.f});
  BsqOptions options;
  options.initial_bits = 2;
  BsqSource source(
      net, {torch::Tensor(), torch::Tensor(), torch::tensor({1.f, 1.f, 0.f, 1.f}), torch::Tensor()},
      options);
  EXPECT_EQ(source.Bits(), (std::vector<int>{2, 2}));
  const std::vector<torch::Tensor> w = source.EffectiveWeights();
  // s1 = 0.9, levels {3, -1, 0, 2}; s2 = 0.5 (the masked 7 is ignored), levels {3, 2, 0, 0}.
  const std::vector<int32_t> l1 = {3, -1, 0, 2}, l2 = {3, 2, 0, 0};
  const std::vector<float> w1 = Flat(w[0]), w2 = Flat(w[2]);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(w1[i], codec::Dequantize(l1[i], 2, 0.9f)) << i;
    EXPECT_EQ(w2[i], codec::Dequantize(l2[i], 2, 0.5f)) << i;
  }
  EXPECT_TRUE(w[1].is_same(net.parameters()[1]));  // biases stay the net's own tensors
}

TEST(BsqSourceTest, PerLayerInitialBitsOverrideTheDefault) {
  TinyNet net({0.9f, -0.3f, 0.f, 0.6f}, {0.5f, 0.25f, 7.f, 0.f});
  BsqOptions options;
  options.initial_bits = 8;
  options.layer_initial_bits = {1, 0};  // a federated client's previous precision
  BsqSource source(net, {}, options);
  EXPECT_EQ(source.Bits(), (std::vector<int>{1, 0}));
  const std::vector<torch::Tensor> w = source.EffectiveWeights();
  // Layer 1 at 1 bit, s = 0.9: levels round(v / 0.9) = {1, 0, 0, 1}; layer 2 at 0 bits is zero.
  const std::vector<int32_t> l1 = {1, 0, 0, 1};
  const std::vector<float> w1 = Flat(w[0]), w2 = Flat(w[2]);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(w1[i], codec::Dequantize(l1[i], 1, 0.9f)) << i;
    EXPECT_EQ(w2[i], 0.f) << i;
  }
  // A missing entry falls back to initial_bits.
  options.layer_initial_bits = {3};
  BsqSource partial(net, {}, options);
  EXPECT_EQ(partial.Bits(), (std::vector<int>{3, 8}));
}

TEST(BsqSourceTest, PenaltyIsWeightedBitPlaneGroupLasso) {
  TinyNet net({0.9f, -0.3f, 0.f, 0.6f}, {0.5f, 0.25f, 7.f, 0.f});
  BsqOptions options;
  options.initial_bits = 2;
  options.alpha = 0.5;
  BsqSource source(
      net, {torch::Tensor(), torch::Tensor(), torch::tensor({1.f, 1.f, 0.f, 1.f}), torch::Tensor()},
      options);
  // Layer 1: levels {3, -1, 0, 2} → p0 = 1000, p1 = 1001, q0 = 0100, q1 = 0000:
  //   ‖[p0; q0]‖ = √2, ‖[p1; q1]‖ = √2; weight 4 kept · 2 bits / 7 kept.
  // Layer 2: levels {3, 2, 0, 0} → p0 = 1000, p1 = 1100: norms 1 and √2; weight 3·2/7.
  const double expected =
      0.5 * (4.0 * 2 / 7 * (2 * std::sqrt(2.0)) + 3.0 * 2 / 7 * (1 + std::sqrt(2.0)));
  EXPECT_NEAR(source.Penalty().item<double>(), expected, 1e-5);

  options.alpha = 0;
  BsqSource unregularized(net, {}, options);
  EXPECT_FALSE(unregularized.Penalty().defined());
}

TEST(BsqSourceTest, MaskedWeightsStayExactlyZeroAndExportIsExact) {
  Net net = MnistCnn();
  const std::vector<torch::Tensor> masks = CheckerMasks(*net);
  BsqOptions options;
  options.alpha = 20;
  options.interval = 4;
  options.finetune_steps = 3;
  BsqSource source(*net, masks, options);
  const TensorData data = SyntheticData(128);
  ASSERT_TRUE(Trainer::Train(*net, source, data, AllIndices(128), FastOptions(2)).ok());

  const std::vector<torch::Tensor> params = net->parameters();
  const std::vector<QuantizedWeight> exported = source.Export();
  ASSERT_EQ(exported.size(), 4u);
  for (const QuantizedWeight& q : exported) {
    const std::vector<float> w = Flat(params[q.param_index]);
    const std::vector<float> keep = Flat(masks[q.param_index]);
    ASSERT_EQ(q.levels.size(), w.size());
    for (size_t i = 0; i < w.size(); ++i) {
      ASSERT_EQ(w[i], codec::Dequantize(q.levels[i], q.bits, q.scale)) << q.param_index << "/" << i;
      if (keep[i] == 0.f) {
        ASSERT_EQ(w[i], 0.f);
        ASSERT_EQ(q.levels[i], 0);
      }
    }
  }
  // The forward pass used exactly the weights now in the net.
  const std::vector<torch::Tensor> effective = source.EffectiveWeights();
  for (const QuantizedWeight& q : exported) {
    EXPECT_TRUE(torch::equal(effective[q.param_index], params[q.param_index])) << q.param_index;
  }
}

TEST(BsqSourceTest, LargeAlphaLowersBitsAndZeroAlphaKeepsEight) {
  const TensorData data = SyntheticData(128);
  BsqOptions options;
  options.interval = 4;
  options.finetune_steps = 2;

  options.alpha = 0;
  Net plain = MnistCnn();
  BsqSource unregularized(*plain, {}, options);
  ASSERT_TRUE(Trainer::Train(*plain, unregularized, data, AllIndices(128), FastOptions(3)).ok());
  EXPECT_EQ(unregularized.Bits(), (std::vector<int>{8, 8, 8, 8}));
  EXPECT_DOUBLE_EQ(MeanBits(unregularized.Export()), 8.0);

  options.alpha = 200;
  Net squeezed = MnistCnn();
  BsqSource regularized(*squeezed, {}, options);
  ASSERT_TRUE(Trainer::Train(*squeezed, regularized, data, AllIndices(128), FastOptions(3)).ok());
  for (int bits : regularized.Bits()) EXPECT_LE(bits, 8);
  EXPECT_LT(MeanBits(regularized.Export()), 5.0) << ::testing::PrintToString(regularized.Bits());
}

TEST(BsqSourceTest, MismatchedMaskIsAnError) {
  Net net = MnistCnn();
  std::vector<torch::Tensor> masks = CheckerMasks(*net);
  masks[0] = torch::ones({3});
  BsqSource source(*net, masks, BsqOptions{});
  const TensorData data = SyntheticData(16);
  EXPECT_FALSE(Trainer::Train(*net, source, data, AllIndices(16), FastOptions(1)).ok());

  BsqSource too_few(*net, {torch::ones({3})}, BsqOptions{});
  EXPECT_FALSE(Trainer::Train(*net, too_few, data, AllIndices(16), FastOptions(1)).ok());
}

TEST(UniformQuantSourceTest, FinishWritesExactKBitWeightsAndKeepsMasks) {
  Net net = MnistCnn();
  const std::vector<torch::Tensor> masks = CheckerMasks(*net);
  UniformQuantSource source(*net, masks, 2);
  const TensorData data = SyntheticData(64);
  ASSERT_TRUE(Trainer::Train(*net, source, data, AllIndices(64), FastOptions(1)).ok());
  EXPECT_EQ(source.Bits(), (std::vector<int>{2, 2, 2, 2}));
  EXPECT_DOUBLE_EQ(MeanBits(source.Export()), 2.0);
  const std::vector<torch::Tensor> params = net->parameters();
  for (const QuantizedWeight& q : source.Export()) {
    const std::vector<float> w = Flat(params[q.param_index]);
    const std::vector<float> keep = Flat(masks[q.param_index]);
    for (size_t i = 0; i < w.size(); ++i) {
      ASSERT_LE(std::abs(q.levels[i]), 3);
      ASSERT_EQ(w[i], codec::Dequantize(q.levels[i], 2, q.scale));
      if (keep[i] == 0.f) ASSERT_EQ(w[i], 0.f);
    }
  }
}

TEST(UniformQuantSourceTest, PerLayerBitsIncludingAZeroLayer) {
  Net net = MnistCnn();
  const std::vector<torch::Tensor> masks = CheckerMasks(*net);
  UniformQuantSource source(*net, masks, std::vector<int>{8, 3, 1, 0});
  const TensorData data = SyntheticData(64);
  ASSERT_TRUE(Trainer::Train(*net, source, data, AllIndices(64), FastOptions(1)).ok());
  const std::vector<QuantizedWeight> out = source.Export();
  ASSERT_EQ(out.size(), 4u);
  const std::vector<torch::Tensor> params = net->parameters();
  const std::vector<int> want = {8, 3, 1, 0};
  for (size_t k = 0; k < out.size(); ++k) {
    const QuantizedWeight& q = out[k];
    EXPECT_EQ(q.bits, want[k]) << k;
    const std::vector<float> w = Flat(params[q.param_index]);
    const std::vector<float> keep = Flat(masks[q.param_index]);
    int32_t largest = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      largest = std::max(largest, std::abs(q.levels[i]));
      ASSERT_EQ(w[i], codec::Dequantize(q.levels[i], q.bits, q.scale));
      if (keep[i] == 0.f || want[k] == 0) ASSERT_EQ(w[i], 0.f);
    }
    // The top level is used: the scale is the layer's largest kept magnitude.
    if (want[k] > 0) EXPECT_EQ(largest, (1 << want[k]) - 1) << k;
  }
}

TEST(MeanBitsTest, WeightsByElementCount) {
  EXPECT_DOUBLE_EQ(MeanBits({}), 0.0);
  const std::vector<QuantizedWeight> w = {{0, 8, 1.f, std::vector<int32_t>(1)},
                                          {2, 2, 1.f, std::vector<int32_t>(3)}};
  EXPECT_DOUBLE_EQ(MeanBits(w), (8.0 + 3 * 2.0) / 4);
}

}  // namespace
}  // namespace lfl
