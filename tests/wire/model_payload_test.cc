#include "wire/model_payload.h"

#include <random>

#include <gtest/gtest.h>

namespace lfl {
namespace {

TensorSet RandomModel(uint64_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 0.1f);
  TensorSet s;
  s.tensors.push_back({"conv.weight", {8, 1, 5, 5}, std::vector<float>(200), true});
  s.tensors.push_back({"conv.bias", {8}, std::vector<float>(8), false});
  s.tensors.push_back({"fc.weight", {10, 64}, std::vector<float>(640), true});
  for (NamedTensor& t : s.tensors) {
    for (float& v : t.values) v = n(rng);
  }
  return s;
}

Mask SparseMask(const TensorSet& layout, double keep, uint64_t seed) {
  std::mt19937 rng(seed);
  std::bernoulli_distribution b(keep);
  Mask m = Mask::Full(layout);
  for (size_t t = 0; t < layout.size(); ++t) {
    if (!layout.tensors[t].prunable) continue;
    for (int64_t i = 0; i < layout.tensors[t].numel(); ++i) m.Set(t, i, b(rng));
  }
  return m;
}

TEST(ModelPayloadTest, Fp32RoundTripIsExactUnderTheMask) {
  TensorSet model = RandomModel(1);
  Mask mask = SparseMask(model, 0.3, 2);
  EncodeSpec spec;
  spec.mask = &mask;
  absl::StatusOr<std::string> bytes = EncodeModel(model, spec);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<DecodedModel> back = DecodeModel(*bytes, model, nullptr, 0);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->mask_sent);
  EXPECT_EQ(back->mask, mask);
  TensorSet expected = model;
  mask.ApplyTo(&expected);
  for (size_t t = 0; t < model.size(); ++t) EXPECT_EQ(back->values.tensors[t].values, expected.tensors[t].values);
}

TEST(ModelPayloadTest, ReferencedMaskIsSmallerAndNeedsTheHeldVersion) {
  TensorSet model = RandomModel(3);
  Mask mask = SparseMask(model, 0.2, 4);
  EncodeSpec spec;
  spec.mask = &mask;
  spec.mask_version = 5;
  const std::string sent = *EncodeModel(model, spec);
  spec.send_mask = false;
  const std::string referenced = *EncodeModel(model, spec);
  EXPECT_LT(referenced.size(), sent.size());
  absl::StatusOr<DecodedModel> ok = DecodeModel(referenced, model, &mask, 5);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->mask, mask);
  EXPECT_TRUE(ok->mask_referenced);
  EXPECT_TRUE(absl::IsFailedPrecondition(DecodeModel(referenced, model, &mask, 4).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(DecodeModel(referenced, model, nullptr, 5).status()));
}

TEST(ModelPayloadTest, UniformBitsShrinkThePayloadAndBoundTheError) {
  TensorSet model = RandomModel(5);
  size_t previous = SIZE_MAX;
  for (int bits : {32, 8, 4, 2}) {
    EncodeSpec spec;
    spec.weight_bits = bits;
    spec.other_bits = bits == 32 ? 32 : 8;
    std::vector<int> layer_bits;
    absl::StatusOr<std::string> bytes = EncodeModel(model, spec, &layer_bits);
    ASSERT_TRUE(bytes.ok());
    EXPECT_LT(bytes->size(), previous);
    previous = bytes->size();
    EXPECT_EQ(layer_bits, std::vector<int>({bits, bits}));
    absl::StatusOr<DecodedModel> back = DecodeModel(*bytes, model, nullptr, 0);
    ASSERT_TRUE(back.ok());
    for (size_t t = 0; t < model.size(); ++t) {
      const auto& a = model.tensors[t].values;
      float max_abs = 0;
      for (float v : a) max_abs = std::max(max_abs, std::abs(v));
      const int b = model.tensors[t].prunable ? bits : spec.other_bits;
      const float step = b == 32 ? 0.f : max_abs / float((1 << b) - 1);
      for (size_t i = 0; i < a.size(); ++i) EXPECT_LE(std::abs(back->values.tensors[t].values[i] - a[i]), step / 2 + 1e-6f);
    }
  }
}

TEST(ModelPayloadTest, ExactLevelsDecodeToTheCanonicalValues) {
  TensorSet model = RandomModel(7);
  std::vector<std::optional<ExactLevels>> exact(model.size());
  ExactLevels e{3, 0.25f, std::vector<int32_t>(200)};
  for (int i = 0; i < 200; ++i) e.levels[i] = (i % 15) - 7;
  exact[0] = e;
  EncodeSpec spec;
  spec.exact = &exact;
  spec.weight_bits = 8;
  spec.other_bits = 8;
  std::vector<int> bits;
  absl::StatusOr<DecodedModel> back = DecodeModel(*EncodeModel(model, spec, &bits), model, nullptr, 0);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(bits, std::vector<int>({3, 8}));
  for (int i = 0; i < 200; ++i) EXPECT_EQ(back->values.tensors[0].values[i], codec::Dequantize(e.levels[i], 3, 0.25f));
}

TEST(ModelPayloadTest, WrongLayoutIsRefused) {
  TensorSet model = RandomModel(9);
  const std::string bytes = *EncodeModel(model, EncodeSpec{});
  TensorSet other = model;
  other.tensors[2].shape = {64, 10};
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeModel(bytes, other, nullptr, 0).status()));
  TensorSet fewer = model;
  fewer.tensors.pop_back();
  EXPECT_FALSE(DecodeModel(bytes, fewer, nullptr, 0).ok());
  EXPECT_FALSE(DecodeModel(bytes.substr(0, bytes.size() / 2), model, nullptr, 0).ok());
}

TEST(ModelPayloadTest, FullMaskCostsNothing) {
  TensorSet model = RandomModel(11);
  Mask full = Mask::Full(model);
  EncodeSpec with;
  with.mask = &full;
  EXPECT_EQ(EncodeModel(model, with)->size(), EncodeModel(model, EncodeSpec{})->size());
}

}  // namespace
}  // namespace lfl
