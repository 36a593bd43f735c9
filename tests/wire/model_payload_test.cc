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

// A mask with the same kept count per tensor as `m`, but a different one: in every prunable
// tensor the first kept element is dropped and the first dropped element kept.
Mask SwapOneBitPerTensor(const Mask& m) {
  Mask out = m;
  for (size_t t = 0; t < m.num_tensors(); ++t) {
    if (!m.prunable(t)) continue;
    int64_t kept = -1, dropped = -1;
    for (int64_t i = 0; i < m.numel(t) && (kept < 0 || dropped < 0); ++i) {
      if (m.Get(t, i) && kept < 0) kept = i;
      if (!m.Get(t, i) && dropped < 0) dropped = i;
    }
    if (kept < 0 || dropped < 0) continue;
    out.Set(t, kept, false);
    out.Set(t, dropped, true);
  }
  return out;
}

std::string EncodeReferencing(const TensorSet& model, const Mask& mask, uint32_t version) {
  EncodeSpec spec;
  spec.mask = &mask;
  spec.send_mask = false;
  spec.mask_version = version;
  absl::StatusOr<std::string> bytes = EncodeModel(model, spec);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

TEST(ModelPayloadTest, SeveralHeldMasksTheReferencedVersionDecodes) {
  TensorSet model = RandomModel(21);
  const Mask first = SparseMask(model, 0.4, 22);
  const Mask second = SwapOneBitPerTensor(first);
  ASSERT_NE(first, second);
  for (size_t t = 0; t < model.size(); ++t) ASSERT_EQ(first.Kept(t), second.Kept(t));

  const std::string refs_second = EncodeReferencing(model, second, 8);
  const std::string refs_first = EncodeReferencing(model, first, 7);
  for (const std::vector<HeldMask>& held :
       {std::vector<HeldMask>{{7, &first}, {8, &second}}, std::vector<HeldMask>{{8, &second}, {7, &first}}}) {
    absl::StatusOr<DecodedModel> back = DecodeModel(refs_second, model, held);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_TRUE(back->mask_referenced);
    EXPECT_FALSE(back->mask_sent);
    EXPECT_EQ(back->referenced_version, 8u);
    EXPECT_EQ(back->mask, second);
    EXPECT_NE(back->mask, first);
    TensorSet expected = model;
    second.ApplyTo(&expected);
    for (size_t t = 0; t < model.size(); ++t) {
      EXPECT_EQ(back->values.tensors[t].values, expected.tensors[t].values) << model.tensors[t].name;
    }

    absl::StatusOr<DecodedModel> back_first = DecodeModel(refs_first, model, held);
    ASSERT_TRUE(back_first.ok()) << back_first.status();
    EXPECT_EQ(back_first->referenced_version, 7u);
    EXPECT_EQ(back_first->mask, first);
    TensorSet expected_first = model;
    first.ApplyTo(&expected_first);
    for (size_t t = 0; t < model.size(); ++t) {
      EXPECT_EQ(back_first->values.tensors[t].values, expected_first.tensors[t].values);
    }
  }
  // The single-mask overload agrees with the list form.
  absl::StatusOr<DecodedModel> single = DecodeModel(refs_second, model, &second, 8);
  ASSERT_TRUE(single.ok()) << single.status();
  EXPECT_EQ(single->mask, second);
}

TEST(ModelPayloadTest, ReferenceToAnUnheldVersionIsAFailedPrecondition) {
  TensorSet model = RandomModel(23);
  const Mask first = SparseMask(model, 0.5, 24);
  const Mask second = SwapOneBitPerTensor(first);
  const std::string refs_five = EncodeReferencing(model, second, 5);
  const std::vector<HeldMask> held{{3, &first}, {4, &second}};
  absl::Status s = DecodeModel(refs_five, model, held).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_TRUE(absl::IsFailedPrecondition(DecodeModel(refs_five, model, std::vector<HeldMask>{}).status()));
  // A listed version without a mask is not held.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      DecodeModel(refs_five, model, std::vector<HeldMask>{{3, &first}, {5, nullptr}}).status()));
  // Holding it makes the same bytes decode.
  absl::StatusOr<DecodedModel> ok = DecodeModel(refs_five, model, std::vector<HeldMask>{{4, &first}, {5, &second}});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->mask, second);
}

TEST(ModelPayloadTest, TensorsReferencingDifferentVersionsAreRefused) {
  TensorSet model = RandomModel(25);
  const Mask first = SparseMask(model, 0.3, 26);
  const Mask second = SwapOneBitPerTensor(first);
  for (size_t t = 0; t < model.size(); ++t) ASSERT_EQ(first.Kept(t), second.Kept(t));
  const std::vector<HeldMask> held{{1, &first}, {2, &second}};
  // Every tensor references version 1; then the last prunable tensor is re-labelled version 2.
  absl::StatusOr<codec::Payload> payload = codec::Decode(EncodeReferencing(model, first, 1));
  ASSERT_TRUE(payload.ok()) << payload.status();
  int references = 0;
  for (const codec::TensorRecord& r : payload->tensors) references += r.mask_kind == codec::MaskKind::kReference;
  ASSERT_EQ(references, 2) << "both prunable tensors must reference the mask";
  // Unchanged, the payload decodes (so the refusal below is about the mix alone).
  absl::StatusOr<std::string> same = codec::Encode(*payload);
  ASSERT_TRUE(same.ok());
  ASSERT_TRUE(DecodeModel(*same, model, held).ok());
  for (auto it = payload->tensors.rbegin(); it != payload->tensors.rend(); ++it) {
    if (it->mask_kind == codec::MaskKind::kReference) {
      it->mask_version = 2;
      break;
    }
  }
  absl::StatusOr<std::string> mixed = codec::Encode(*payload);
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  absl::Status s = DecodeModel(*mixed, model, held).status();
  EXPECT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // The other order of the mix is refused as well.
  for (codec::TensorRecord& r : payload->tensors) {
    if (r.mask_kind == codec::MaskKind::kReference) r.mask_version = r.mask_version == 2 ? 1 : 2;
  }
  absl::StatusOr<std::string> mixed2 = codec::Encode(*payload);
  ASSERT_TRUE(mixed2.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(DecodeModel(*mixed2, model, held).status()));
}

TEST(ModelPayloadTest, HeldMaskOfAnotherLayoutIsRefusedNotRead) {
  TensorSet model = RandomModel(27);
  const Mask mask = SparseMask(model, 0.5, 28);
  const std::string refs = EncodeReferencing(model, mask, 2);
  TensorSet smaller = model;
  smaller.tensors.pop_back();  // drops fc.weight, tensor id 2
  const Mask foreign = Mask::Full(smaller);
  absl::Status s = DecodeModel(refs, model, std::vector<HeldMask>{{2, &foreign}}).status();
  EXPECT_FALSE(s.ok()) << "a held mask that does not match the layout must not be used";
  // A mask of a larger layout whose referenced tensors happen to agree is refused too.
  TensorSet larger = model;
  larger.tensors.push_back({"extra.weight", {4}, std::vector<float>(4), true});
  Mask bigger = Mask::Full(larger);
  for (size_t t = 0; t < model.size(); ++t) {
    if (model.tensors[t].prunable) ASSERT_TRUE(bigger.SetWords(t, mask.words(t)).ok());
  }
  s = DecodeModel(refs, model, std::vector<HeldMask>{{2, &bigger}}).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // The matching mask decodes the same bytes.
  EXPECT_TRUE(DecodeModel(refs, model, std::vector<HeldMask>{{2, &mask}}).ok());
}

}  // namespace
}  // namespace lfl
