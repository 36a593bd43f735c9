// Round trips, mask-coding choice, payload size against the cost formula, and the dense helpers.
#include "quant/codec/codec.h"

#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "quant/codec/mask_coding.h"
#include "quant/codec/wire_io.h"
#include "tests/quant/codec/test_payloads.h"

namespace lfl::codec {
namespace {

using testing::ExpectSamePayload;
using testing::Numel;
using testing::RandomMask;
using testing::RandomRecord;
using testing::RecordSpec;

Payload RoundTrip(const Payload& payload) {
  absl::StatusOr<std::string> bytes = Encode(payload);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  if (!bytes.ok()) return {};
  absl::StatusOr<Payload> decoded = Decode(*bytes);
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  return decoded.ok() ? *decoded : Payload{};
}

// Shapes with odd sizes so that plane, bitmap and word tails are exercised.
const std::vector<std::vector<int64_t>>& TestShapes() {
  static const std::vector<std::vector<int64_t>> shapes = {
      {}, {1}, {7}, {64}, {65}, {8, 1, 5, 5}, {37, 3, 11}, {2000}, {0, 4}};
  return shapes;
}

class CodecRoundTripTest : public ::testing::TestWithParam<std::tuple<double, int>> {};

TEST_P(CodecRoundTripTest, EveryMaskKindAndShapeComesBackExactly) {
  const auto [density, bits] = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(density * 1000) * 100 + bits);
  Payload payload;
  payload.round = 123456789012345ull;
  payload.client_id = 4000000000u;
  uint32_t id = 0;
  for (const auto& shape : TestShapes()) {
    for (MaskKind kind : {MaskKind::kAll, MaskKind::kReference, MaskKind::kExplicit}) {
      payload.tensors.push_back(RandomRecord(id++, {shape, density, bits, kind}, rng));
    }
  }
  ExpectSamePayload(RoundTrip(payload), payload);
}

INSTANTIATE_TEST_SUITE_P(CodecDensitiesAndBits, CodecRoundTripTest,
                         ::testing::Combine(::testing::Values(0.0, 0.01, 0.1, 0.5, 1.0),
                                            ::testing::Values(0, 1, 2, 3, 4, 5, 6, 7, 8, 32)));

TEST(CodecRoundTripEdgeTest, EmptyPayloadAndExtremeLevels) {
  ExpectSamePayload(RoundTrip(Payload{}), Payload{});
  TensorRecord r;
  r.shape = {6};
  r.bits = 8;
  r.scale = 0.f;
  r.levels = {255, -255, 0, 1, -1, 128};
  Payload payload;
  payload.tensors = {r};
  ExpectSamePayload(RoundTrip(payload), payload);
}

// ---------------------------------------------------------------------------------------------
// Mask coding choice

size_t CodedMaskBytes(const BitWords& mask, int64_t numel, internal::WireMask* kind) {
  std::string out;
  internal::ByteWriter writer(&out);
  *kind = internal::AppendExplicitMask(mask, numel, &writer);
  return out.size() - 1;  // without the kind byte
}

TEST(CodecMaskCodingTest, SparseMaskUsesKeptGapsDenseOneDroppedGapsHalfFullOneTheBitmap) {
  std::mt19937_64 rng(11);
  const int64_t numel = 100000;
  internal::WireMask kind;
  const size_t bitmap_bytes = (numel + 7) / 8;

  const size_t sparse = CodedMaskBytes(RandomMask(numel, 0.01, rng), numel, &kind);
  EXPECT_EQ(kind, internal::WireMask::kKeptGaps);
  EXPECT_LT(sparse, bitmap_bytes / 5);

  const size_t dense = CodedMaskBytes(RandomMask(numel, 0.95, rng), numel, &kind);
  EXPECT_EQ(kind, internal::WireMask::kDroppedGaps);
  EXPECT_LT(dense, bitmap_bytes / 2);

  const size_t half = CodedMaskBytes(RandomMask(numel, 0.5, rng), numel, &kind);
  EXPECT_EQ(kind, internal::WireMask::kBitmap);
  EXPECT_EQ(half, bitmap_bytes);
}

double BinaryEntropy(double p) {
  if (p <= 0 || p >= 1) return 0;
  return -p * std::log2(p) - (1 - p) * std::log2(1 - p);
}

// The chosen coding is never bigger than the bitmap and stays within 10% of the mask's
// empirical entropy whenever gaps win (Golomb-Rice is near-optimal for geometric gaps).
TEST(CodecMaskCodingTest, ChosenCodingIsNoBiggerThanTheBitmapAndNearTheEntropy) {
  std::mt19937_64 rng(12);
  const int64_t numel = 200000;
  const size_t bitmap_bytes = (numel + 7) / 8;
  for (double density : {0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.99}) {
    SCOPED_TRACE(density);
    const BitWords mask = RandomMask(numel, density, rng);
    const double entropy_bytes =
        numel * BinaryEntropy(static_cast<double>(CountKept(mask, numel)) / numel) / 8;
    internal::WireMask kind;
    const size_t bytes = CodedMaskBytes(mask, numel, &kind);
    if (kind == internal::WireMask::kBitmap) {
      EXPECT_EQ(bytes, bitmap_bytes);
      EXPECT_GT(entropy_bytes, 0.8 * bitmap_bytes);  // gaps lose only on near-incompressible masks
    } else {
      EXPECT_LT(bytes, bitmap_bytes);
      EXPECT_LE(bytes, 1.10 * entropy_bytes + 16);
    }
    EXPECT_GE(bytes, 0.97 * entropy_bytes);
  }
}

TEST(CodecMaskCodingTest, EmptyFullAndTinyMasksRoundTrip) {
  std::mt19937_64 rng(13);
  for (int64_t numel : {0, 1, 63, 64, 65, 1000}) {
    for (double density : {0.0, 0.003, 0.5, 0.997, 1.0}) {
      TensorRecord r = RandomRecord(0, {{numel}, density, 3, MaskKind::kExplicit}, rng);
      Payload payload;
      payload.tensors = {r};
      ExpectSamePayload(RoundTrip(payload), payload);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Size against the cost formula: H(mask) + d * (n + 1) bits per weight (mask sent), or
// d * (n + 1) (mask referenced). Levels here are nonzero so the sign plane covers every entry.

double EncodedBits(const TensorRecord& r) {
  Payload payload;
  payload.tensors = {r};
  absl::StatusOr<std::string> bytes = Encode(payload);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? 8.0 * bytes->size() : 0;
}

class CodecSizeTest : public ::testing::TestWithParam<std::tuple<double, int>> {};

TEST_P(CodecSizeTest, PayloadSizeFollowsTheCostFormula) {
  const auto [density, bits] = GetParam();
  std::mt19937_64 rng(99);
  const int64_t numel = 1 << 18;
  const double overhead_bits = 8 * 64;  // header, shape, scale, plane markers
  for (MaskKind kind : {MaskKind::kExplicit, MaskKind::kReference}) {
    TensorRecord r = RandomRecord(0, {{numel}, density, bits, kind, false}, rng);
    const double kept = static_cast<double>(r.levels.size());
    double formula = kept * (bits + 1);
    if (kind == MaskKind::kExplicit) formula += numel * BinaryEntropy(density);
    const double actual = EncodedBits(r);
    EXPECT_LE(actual, 1.05 * formula + overhead_bits) << "kind " << static_cast<int>(kind);
    EXPECT_GE(actual, 0.98 * formula) << "kind " << static_cast<int>(kind);
  }
}

INSTANTIATE_TEST_SUITE_P(CodecDensitiesAndBits, CodecSizeTest,
                         ::testing::Combine(::testing::Values(0.01, 0.1, 0.5, 0.9),
                                            ::testing::Values(1, 2, 4, 8)));

TEST(CodecPlaneCostTest, AllZeroPlanesCostOneByteEach) {
  TensorRecord r;
  r.shape = {4096};
  r.bits = 8;
  r.scale = 1.f;
  r.levels.assign(4096, 0);
  for (int i = 0; i < 4096; i += 2) r.levels[i] = (i % 4 == 0) ? 1 : -1;  // only the LSB plane
  const double one_plane = EncodedBits(r);
  r.levels.assign(4096, 0);
  const double no_plane = EncodedBits(r);
  // The LSB plane (4096 bits) and a sign plane over 2048 entries; the other 7 are markers.
  EXPECT_EQ(one_plane - no_plane, 4096 + 2048);
  // FORMAT.md: 20-byte header; round, client id, count (1 byte each); id 1, rank 1, dim 4096
  // (2-byte varint), bits 1, scale 4, mask version 1, mask kind 1, 8 plane markers, sign marker.
  EXPECT_EQ(no_plane, 8 * (20 + 3 + 1 + 1 + 2 + 1 + 4 + 1 + 1 + 8 + 1));
}

// ---------------------------------------------------------------------------------------------
// Dense helpers

TEST(CodecQuantizeUniformTest, DequantizedValuesAreWithinHalfAStepOfTheInput) {
  std::mt19937_64 rng(5);
  std::normal_distribution<float> value(0.f, 0.05f);
  const std::vector<int64_t> shape = {20, 51};
  const int64_t numel = Numel(shape);
  std::vector<float> dense(numel);
  for (float& v : dense) v = value(rng);
  const BitWords mask = RandomMask(numel, 0.3, rng);
  for (const BitWords* m : {static_cast<const BitWords*>(nullptr), &mask}) {
    for (int bits = 1; bits <= 8; ++bits) {
      SCOPED_TRACE(bits);
      const TensorRecord r = QuantizeUniform(3, shape, dense.data(), m, bits);
      Payload payload;
      payload.tensors = {r};
      const Payload decoded = RoundTrip(payload);
      ASSERT_EQ(decoded.tensors.size(), 1u);
      std::vector<float> out;
      ASSERT_TRUE(ExpandToDense(decoded.tensors[0], nullptr, &out).ok());
      ASSERT_EQ(out.size(), dense.size());
      const float half_step = r.scale / static_cast<float>((1 << bits) - 1) / 2;
      float kept_max = 0;
      for (int64_t i = 0; i < numel; ++i) {
        const bool kept = m == nullptr || ((mask[i / 64] >> (i % 64)) & 1);
        if (!kept) {
          ASSERT_EQ(out[i], 0.f) << i;
          continue;
        }
        kept_max = std::max(kept_max, std::fabs(dense[i]));
        ASSERT_LE(std::fabs(out[i] - dense[i]), half_step * (1 + 1e-5f)) << i;
      }
      EXPECT_EQ(r.scale, kept_max);
    }
  }
}

TEST(CodecQuantizeUniformTest, ServerExpandsBitForBitWhatTheClientDequantizes) {
  std::mt19937_64 rng(6);
  for (int bits = 1; bits <= 8; ++bits) {
    const TensorRecord r = RandomRecord(0, {{999}, 0.4, bits, MaskKind::kExplicit}, rng);
    Payload payload;
    payload.tensors = {r};
    std::vector<float> server;
    ASSERT_TRUE(ExpandToDense(RoundTrip(payload).tensors.at(0), nullptr, &server).ok());
    size_t j = 0;
    for (int64_t i = 0; i < 999; ++i) {
      if ((r.mask[i / 64] >> (i % 64)) & 1) {
        const float client = Dequantize(r.levels[j++], bits, r.scale);
        ASSERT_TRUE(testing::SameFloatBits(server[i], client)) << i;
      }
    }
  }
}

TEST(CodecQuantizeUniformTest, RawAndZeroBitRecords) {
  const std::vector<float> dense = {1.5f, -2.f, 0.25f, 3.f};
  std::vector<float> out;
  TensorRecord raw = QuantizeUniform(0, {4}, dense.data(), nullptr, 32);
  ASSERT_TRUE(ExpandToDense(raw, nullptr, &out).ok());
  EXPECT_EQ(out, dense);
  TensorRecord zero = QuantizeUniform(0, {2, 2}, dense.data(), nullptr, 0);
  EXPECT_EQ(zero.scale, 3.f);
  ASSERT_TRUE(ExpandToDense(zero, nullptr, &out).ok());
  EXPECT_EQ(out, std::vector<float>(4, 0.f));
}

TEST(CodecQuantizeUniformTest, RoundsHalfAwayFromZeroAndHandlesAllZeroInput) {
  const std::vector<float> dense = {-4.f, -0.5f, 0.5f, 1.5f, 4.f};  // 4 bits: step 4/15
  const TensorRecord r = QuantizeUniform(0, {5}, dense.data(), nullptr, 4);
  EXPECT_EQ(r.levels, (std::vector<int32_t>{-15, -2, 2, 6, 15}));
  const std::vector<float> zeros(5, 0.f);
  const TensorRecord z = QuantizeUniform(0, {5}, zeros.data(), nullptr, 4);
  EXPECT_EQ(z.scale, 0.f);
  EXPECT_EQ(z.levels, std::vector<int32_t>(5, 0));
}

TEST(CodecQuantizeUniformTest, NonFiniteInputMakesARecordThatEncodeRefuses) {
  const std::vector<float> dense = {1.f, NAN, 2.f};
  Payload payload;
  payload.tensors = {QuantizeUniform(0, {3}, dense.data(), nullptr, 4)};
  EXPECT_EQ(Encode(payload).status().code(), absl::StatusCode::kInvalidArgument);
  payload.tensors = {QuantizeUniform(0, {3}, dense.data(), nullptr, 32)};
  EXPECT_EQ(Encode(payload).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CodecExpandToDenseTest, ReferenceRecordsUseTheReceiversMask) {
  std::mt19937_64 rng(8);
  const TensorRecord explicit_record = RandomRecord(0, {{300}, 0.2, 5, MaskKind::kExplicit}, rng);
  TensorRecord reference = explicit_record;
  reference.mask_kind = MaskKind::kReference;
  reference.mask.clear();
  std::vector<float> want, got;
  ASSERT_TRUE(ExpandToDense(explicit_record, nullptr, &want).ok());
  ASSERT_TRUE(ExpandToDense(reference, &explicit_record.mask, &got).ok());
  EXPECT_EQ(got, want);

  EXPECT_EQ(ExpandToDense(reference, nullptr, &got).code(), absl::StatusCode::kInvalidArgument);
  BitWords other = explicit_record.mask;
  other[0] ^= 1;  // one more or one fewer kept element
  EXPECT_EQ(ExpandToDense(reference, &other, &got).code(), absl::StatusCode::kInvalidArgument);
  BitWords short_mask(2, ~uint64_t{0});
  EXPECT_EQ(ExpandToDense(reference, &short_mask, &got).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CodecExpandToDenseTest, RefusesCountsThatDoNotMatchTheMask) {
  TensorRecord r;
  r.shape = {10};
  r.bits = 4;
  r.levels.assign(9, 1);
  std::vector<float> out;
  EXPECT_EQ(ExpandToDense(r, nullptr, &out).code(), absl::StatusCode::kInvalidArgument);
  r.bits = 9;
  r.levels.assign(10, 1);
  EXPECT_EQ(ExpandToDense(r, nullptr, &out).code(), absl::StatusCode::kInvalidArgument);
}

TEST(CodecCountKeptTest, CountsOnlyBitsBelowNumel) {
  const BitWords mask = {~uint64_t{0}, 0xFF};
  EXPECT_EQ(CountKept(mask, 128), 72);
  EXPECT_EQ(CountKept(mask, 68), 68);
  EXPECT_EQ(CountKept(mask, 10), 10);
  EXPECT_EQ(CountKept(mask, 1000), 72);
  EXPECT_EQ(CountKept(mask, 0), 0);
}

}  // namespace
}  // namespace lfl::codec
