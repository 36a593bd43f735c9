#include "fl/mask.h"

#include <string>

#include "fl/byte_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fl/fl_testing.h"

namespace lfl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr size_t kConvW = 0, kConvB = 1, kFcW = 2;

TEST(MaskTest, FullKeepsEverything) {
  TensorSet layout = testing::SmallModel(1);
  Mask mask = Mask::Full(layout);
  ASSERT_EQ(mask.num_tensors(), 4u);
  EXPECT_DOUBLE_EQ(mask.Density(), 1.0);
  EXPECT_EQ(mask.Kept(kFcW), 210);
  EXPECT_EQ(mask.words(kFcW).size(), 4u);                                // ceil(210 / 64)
  EXPECT_EQ(mask.words(kFcW).back(), (uint64_t{1} << (210 - 192)) - 1);  // no bits past numel
  EXPECT_TRUE(mask.words(kConvB).empty());
  EXPECT_FALSE(mask.prunable(kConvB));
  EXPECT_TRUE(mask.Get(kConvB, 3));
}

TEST(MaskTest, SetGetUseThePackedWordLayout) {
  Mask mask = Mask::Full(testing::SmallModel(1));
  mask.Set(kFcW, 70, false);
  EXPECT_FALSE(mask.Get(kFcW, 70));
  EXPECT_TRUE(mask.Get(kFcW, 69));
  EXPECT_EQ(mask.words(kFcW)[1], ~(uint64_t{1} << 6));  // element 70 = bit 6 of word 1
  EXPECT_EQ(mask.Kept(kFcW), 209);
  mask.Set(kFcW, 70, true);
  EXPECT_EQ(mask.Kept(kFcW), 210);
}

TEST(MaskTest, DensityCountsPrunableElementsOnly) {
  Mask mask = Mask::Full(testing::SmallModel(1));
  for (int64_t i = 0; i < 36; ++i) mask.Set(kConvW, i, i % 4 == 0);  // 9 of 36 kept
  EXPECT_DOUBLE_EQ(mask.Density(kConvW), 0.25);
  EXPECT_DOUBLE_EQ(mask.Density(kConvB), 1.0);
  EXPECT_DOUBLE_EQ(mask.Density(), (9.0 + 210.0) / (36.0 + 210.0));
}

TEST(MaskTest, SetWordsChecksSizeAndClearsTail) {
  Mask mask = Mask::Full(testing::SmallModel(1));
  EXPECT_FALSE(mask.SetWords(kFcW, {1, 2, 3}).ok());
  EXPECT_FALSE(mask.SetWords(kConvB, {}).ok());
  EXPECT_FALSE(mask.SetWords(9, {}).ok());
  ASSERT_TRUE(mask.SetWords(kFcW, {0, 0, 0, ~uint64_t{0}}).ok());
  EXPECT_EQ(mask.Kept(kFcW), 210 - 192);
  EXPECT_EQ(mask.words(kFcW).back(), (uint64_t{1} << 18) - 1);
}

TEST(MaskTest, ApplyToZeroesDroppedElementsOnly) {
  TensorSet set = testing::SmallModel(1);
  TensorSet original = set;
  Mask mask = testing::RandomMask(set, 7, 0.5);
  ASSERT_TRUE(mask.CheckMatches(set).ok());
  mask.ApplyTo(&set);
  for (size_t t = 0; t < set.size(); ++t) {
    for (int64_t i = 0; i < set.tensors[t].numel(); ++i) {
      float want = mask.Get(t, i) ? original.tensors[t].values[i] : 0.0f;
      EXPECT_EQ(set.tensors[t].values[i], want) << set.tensors[t].name << "[" << i << "]";
    }
  }
}

TEST(MaskTest, AsFloatIsZeroOne) {
  TensorSet layout;
  layout.tensors = {{"w", {3}, {}, true}};
  Mask mask = Mask::Full(layout);
  mask.Set(0, 1, false);
  EXPECT_THAT(mask.AsFloat(0), ElementsAre(1.0f, 0.0f, 1.0f));
}

TEST(MaskTest, CheckMatchesRefusesOtherLayouts) {
  TensorSet layout = testing::SmallModel(1);
  Mask mask = Mask::Full(layout);
  TensorSet other = layout;
  other.tensors[2].shape = {3, 71};
  EXPECT_THAT(mask.CheckMatches(other).message(), HasSubstr("fc.weight"));
  other = layout;
  other.tensors.pop_back();
  EXPECT_FALSE(mask.CheckMatches(other).ok());
}

TEST(MaskTest, EqualityComparesBits) {
  TensorSet layout = testing::SmallModel(1);
  Mask a = testing::RandomMask(layout, 1, 0.5);
  Mask b = a;
  EXPECT_EQ(a, b);
  b.Set(kFcW, 0, !b.Get(kFcW, 0));
  EXPECT_NE(a, b);
}

TEST(MaskSerializationTest, RoundTrip) {
  Mask mask = testing::RandomMask(testing::SmallModel(1), 5, 0.3);
  absl::StatusOr<Mask> back = Mask::Deserialize(mask.Serialize());
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, mask);
  EXPECT_EQ(Mask::Deserialize(Mask().Serialize()).value(), Mask());
}

TEST(MaskSerializationTest, TruncationsAndByteFlipsAreRefused) {
  std::string bytes = testing::RandomMask(testing::SmallModel(1), 5, 0.3).Serialize();
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(Mask::Deserialize(bytes.substr(0, n)).ok()) << "prefix " << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(Mask::Deserialize(bad).ok()) << "byte " << i;
  }
}

TEST(MaskSerializationTest, BitsPastNumelAndHugeCountsAreRefused) {
  auto seal = [](ByteWriter w) { return SealEnvelope(0x4d4c464c, 1, w.Take()); };
  ByteWriter tail;
  tail.U64(1);
  tail.U8(1);
  tail.I64(3);
  tail.U64(0xf);  // bit 3 set, numel 3
  EXPECT_THAT(Mask::Deserialize(seal(std::move(tail))).status().message(),
              HasSubstr("past its 3 elements"));

  ByteWriter huge;
  huge.U64(1);
  huge.U8(1);
  huge.I64(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Mask::Deserialize(seal(std::move(huge))).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace lfl

namespace lfl {
namespace {

TEST(MaskCopyOnWriteTest, CopiesShareUntilOneChanges) {
  TensorSet layout = testing::SmallModel(1);
  const Mask a = Mask::Full(layout);
  Mask b = a;
  EXPECT_EQ(a.storage_identity(), b.storage_identity()) << "a copy shares the bits";
  b.Set(kFcW, 5, false);
  EXPECT_NE(a.storage_identity(), b.storage_identity());
  EXPECT_TRUE(a.Get(kFcW, 5)) << "changing the copy leaves the original as it was";
  EXPECT_FALSE(b.Get(kFcW, 5));
  EXPECT_TRUE(b.IsSubsetOf(a));
  EXPECT_FALSE(a.IsSubsetOf(b));
  Mask c = b;
  ASSERT_TRUE(c.SetWords(kFcW, std::vector<uint64_t>(4, 0)).ok());
  EXPECT_EQ(c.Kept(kFcW), 0);
  EXPECT_EQ(b.Kept(kFcW), 209);
}

}  // namespace
}  // namespace lfl
