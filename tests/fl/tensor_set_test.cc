#include "fl/tensor_set.h"

#include <cmath>
#include <limits>
#include <string>

#include "fl/byte_io.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fl/fl_testing.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

TEST(NamedTensorTest, NumelIsProductOfShapeAndOneForScalars) {
  EXPECT_EQ((NamedTensor{"w", {4, 1, 3, 3}, {}, true}.numel()), 36);
  EXPECT_EQ((NamedTensor{"s", {}, {}, false}.numel()), 1);
  EXPECT_EQ((NamedTensor{"e", {3, 0}, {}, false}.numel()), 0);
}

TEST(TensorSetTest, FindAndCounts) {
  TensorSet set = testing::SmallModel(1);
  ASSERT_NE(set.Find("fc.bias"), nullptr);
  EXPECT_EQ(set.Find("fc.bias")->numel(), 3);
  EXPECT_EQ(set.Find("nope"), nullptr);
  EXPECT_EQ(set.TotalElements(), 36 + 4 + 210 + 3);
  EXPECT_EQ(set.PrunableElements(), 36 + 210);
}

TEST(TensorSetTest, CheckLayoutNamesTheFirstDifference) {
  TensorSet expected = testing::SmallModel(1);
  EXPECT_TRUE(testing::SmallModel(2).CheckLayout(expected).ok());

  TensorSet renamed = expected;
  renamed.tensors[2].name = "fc2.weight";
  EXPECT_THAT(renamed.CheckLayout(expected).message(), HasSubstr("fc2.weight"));
  EXPECT_FALSE(renamed.SameLayout(expected));

  TensorSet reshaped = expected;
  reshaped.tensors[2].shape = {70, 3};
  EXPECT_THAT(reshaped.CheckLayout(expected).message(), HasSubstr("[3, 70]"));

  TensorSet flag = expected;
  flag.tensors[1].prunable = true;
  EXPECT_THAT(flag.CheckLayout(expected).message(), HasSubstr("conv1.bias"));

  TensorSet short_values = expected;
  short_values.tensors[3].values.pop_back();
  EXPECT_TRUE(short_values.SameLayout(expected));
  EXPECT_THAT(short_values.CheckLayout(expected).message(), HasSubstr("fc.bias"));

  TensorSet missing = expected;
  missing.tensors.pop_back();
  EXPECT_EQ(missing.CheckLayout(expected).code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorSetTest, CheckFiniteNamesTensorAndIndex) {
  TensorSet set = testing::SmallModel(1);
  EXPECT_TRUE(set.CheckFinite().ok());
  set.tensors[2].values[17] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THAT(set.CheckFinite().message(), HasSubstr("fc.weight[17]"));
  set.tensors[2].values[17] = 0.0f;
  set.tensors[0].values[5] = -std::numeric_limits<float>::infinity();
  EXPECT_THAT(set.CheckFinite().message(), HasSubstr("conv1.weight[5]"));
}

TEST(TensorSetTest, ZerosLikeKeepsLayout) {
  TensorSet set = testing::SmallModel(1);
  TensorSet zeros = set.ZerosLike();
  EXPECT_TRUE(zeros.CheckLayout(set).ok());
  for (const NamedTensor& t : zeros.tensors) {
    for (float v : t.values) EXPECT_EQ(v, 0.0f);
  }
}

TEST(TensorSetSerializationTest, RoundTripIsBitExact) {
  TensorSet set = testing::SmallModel(3);
  set.tensors.push_back({"scalar", {}, {-0.0f}, false});
  set.tensors.push_back({"empty", {0, 5}, {}, true});
  absl::StatusOr<TensorSet> back = DeserializeTensorSet(SerializeTensorSet(set));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(testing::BitIdentical(*back, set));
}

TEST(TensorSetSerializationTest, LayoutWithoutValuesRoundTrips) {
  TensorSet layout = testing::SmallModel(3);
  for (NamedTensor& t : layout.tensors) t.values.clear();
  absl::StatusOr<TensorSet> back = DeserializeTensorSet(SerializeTensorSet(layout));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->SameLayout(layout));
  for (const NamedTensor& t : back->tensors) EXPECT_TRUE(t.values.empty());
}

TEST(TensorSetSerializationTest, EveryTruncationIsRefused) {
  std::string bytes = SerializeTensorSet(testing::SmallModel(3));
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DeserializeTensorSet(bytes.substr(0, n)).ok()) << "prefix " << n;
  }
  EXPECT_FALSE(DeserializeTensorSet(bytes + "x").ok());
}

TEST(TensorSetSerializationTest, EveryByteFlipIsRefused) {
  std::string bytes = SerializeTensorSet(testing::SmallModel(3));
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] = static_cast<char>(bad[i] ^ 0x10);
    EXPECT_FALSE(DeserializeTensorSet(bad).ok()) << "byte " << i;
  }
}

// Bodies with a valid checksum but impossible contents: the decoder's own length checks refuse
// them without allocating what they claim.
TEST(TensorSetSerializationTest, ImpossibleLengthsBehindAValidChecksumAreRefused) {
  auto seal = [](ByteWriter w) { return SealEnvelope(0x544c464c, 1, w.Take()); };
  ByteWriter huge_name;
  huge_name.U64(1);
  huge_name.U64(uint64_t{1} << 60);
  EXPECT_EQ(DeserializeTensorSet(seal(std::move(huge_name))).status().code(),
            absl::StatusCode::kDataLoss);

  ByteWriter huge_values;
  huge_values.U64(1);
  huge_values.U64(1);
  huge_values.Bytes("w");
  huge_values.U8(1);
  huge_values.U32(2);
  huge_values.I64(int64_t{1} << 20);
  huge_values.I64(int64_t{1} << 20);
  huge_values.U64(uint64_t{1} << 40);
  absl::Status s = DeserializeTensorSet(seal(std::move(huge_values))).status();
  EXPECT_THAT(s.message(), HasSubstr("truncated values"));

  ByteWriter wrong_count;
  wrong_count.U64(1);
  wrong_count.U64(1);
  wrong_count.Bytes("w");
  wrong_count.U8(1);
  wrong_count.U32(1);
  wrong_count.I64(2);
  wrong_count.U64(3);
  for (int i = 0; i < 3; ++i) wrong_count.F32(1.0f);
  EXPECT_THAT(DeserializeTensorSet(seal(std::move(wrong_count))).status().message(),
              HasSubstr("3 values for shape [2]"));

  ByteWriter negative_dim;
  negative_dim.U64(1);
  negative_dim.U64(1);
  negative_dim.Bytes("w");
  negative_dim.U8(0);
  negative_dim.U32(1);
  negative_dim.I64(-4);
  EXPECT_THAT(DeserializeTensorSet(seal(std::move(negative_dim))).status().message(),
              HasSubstr("negative dimension"));
}

TEST(TensorSetSerializationTest, WrongMagicOrVersionIsInvalidArgument) {
  EXPECT_EQ(DeserializeTensorSet(SealEnvelope(0x12345678, 1, "")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(DeserializeTensorSet(SealEnvelope(0x544c464c, 9, "")).status().message(),
              HasSubstr("version 9"));
}

}  // namespace
}  // namespace lfl
