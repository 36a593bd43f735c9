// Decode refuses every truncated, corrupted or absurd payload with an error — never a crash or
// an out-of-bounds read (run under -DLFL_SANITIZE=ON to check the latter) — and Encode refuses
// invalid records. Hand-made bodies follow quant/FORMAT.md.
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "quant/codec/codec.h"
#include "quant/codec/crc32c.h"
#include "quant/codec/wire_io.h"
#include "tests/quant/codec/test_payloads.h"

namespace lfl::codec {
namespace {

using ::testing::HasSubstr;
using testing::RandomRecord;

// A small payload that uses every record variant: gap-coded and bitmap masks, a referenced
// mask, zero-bit, raw float32 and dense quantized records.
Payload SmallPayload() {
  std::mt19937_64 rng(2024);
  Payload p;
  p.round = 17;
  p.client_id = 3;
  p.tensors.push_back(RandomRecord(0, {{6, 40}, 0.05, 4, MaskKind::kExplicit}, rng));
  p.tensors.push_back(RandomRecord(1, {{70}, 0.5, 2, MaskKind::kExplicit}, rng));
  p.tensors.push_back(RandomRecord(2, {{50}, 0.3, 3, MaskKind::kReference}, rng));
  p.tensors.push_back(RandomRecord(3, {{5}, 1.0, 0, MaskKind::kAll}, rng));
  p.tensors.push_back(RandomRecord(4, {{9}, 0.6, 32, MaskKind::kExplicit}, rng));
  p.tensors.push_back(RandomRecord(5, {{3, 3}, 1.0, 8, MaskKind::kAll}, rng));
  return p;
}

std::string EncodeOrDie(const Payload& p) {
  absl::StatusOr<std::string> bytes = Encode(p);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

// Header per FORMAT.md around an arbitrary body.
std::string WithHeader(const std::string& body, uint16_t version = 1, uint16_t flags = 0) {
  std::string bytes;
  internal::ByteWriter out(&bytes);
  out.PutBytes("LFLQ", 4);
  out.PutU16(version);
  out.PutU16(flags);
  out.PutU64(body.size());
  out.PutU32(Crc32c(body));
  return bytes + body;
}

constexpr size_t kHeaderSize = 20;

// Re-seals a corrupted payload so that its (possibly bogus) body reaches the parser.
std::string Reseal(const std::string& bytes) { return WithHeader(bytes.substr(kHeaderSize)); }

// Decoded payloads must be valid: re-encoding succeeds and gives back the same payload.
void ExpectValidIfAccepted(const absl::StatusOr<Payload>& decoded) {
  if (!decoded.ok()) return;
  absl::StatusOr<std::string> again = Encode(*decoded);
  ASSERT_TRUE(again.ok()) << again.status();
  absl::StatusOr<Payload> twice = Decode(*again);
  ASSERT_TRUE(twice.ok()) << twice.status();
  testing::ExpectSamePayload(*twice, *decoded);
}

TEST(CodecCorruptionTest, SmallPayloadRoundTrips) {
  const Payload p = SmallPayload();
  absl::StatusOr<Payload> decoded = Decode(EncodeOrDie(p));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  testing::ExpectSamePayload(*decoded, p);
}

TEST(CodecCorruptionTest, EveryTruncationIsRefused) {
  const std::string bytes = EncodeOrDie(SmallPayload());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(Decode(std::string_view(bytes.data(), n)).ok()) << "prefix " << n;
    // Also with a header that matches the shortened body: the parser itself must notice.
    if (n > kHeaderSize) EXPECT_FALSE(Decode(Reseal(bytes.substr(0, n))).ok()) << "resealed " << n;
  }
}

TEST(CodecCorruptionTest, EveryFlippedByteIsRefused) {
  const std::string bytes = EncodeOrDie(SmallPayload());
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (uint8_t flip : {0x01, 0x80, 0xFF}) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(corrupt[i] ^ flip);
      EXPECT_FALSE(Decode(corrupt).ok()) << "byte " << i << " flip " << int{flip};
    }
  }
}

// With the CRC recomputed, corrupt bodies exercise the parser's own checks: each is refused or
// decodes to a valid payload.
TEST(CodecCorruptionTest, ResealedCorruptBodiesAreRefusedOrValid) {
  const std::string bytes = EncodeOrDie(SmallPayload());
  int refused = 0, total = 0;
  for (size_t i = kHeaderSize; i < bytes.size(); ++i) {
    for (uint8_t flip : {0x01, 0x02, 0x10, 0x80, 0xFF}) {
      std::string corrupt = bytes;
      corrupt[i] = static_cast<char>(corrupt[i] ^ flip);
      const absl::StatusOr<Payload> decoded = Decode(Reseal(corrupt));
      ++total;
      refused += !decoded.ok();
      ExpectValidIfAccepted(decoded);
    }
  }
  // Flips in level bits legitimately decode to other levels; structure flips must not.
  EXPECT_GT(refused, total / 4);
}

TEST(CodecCorruptionTest, RandomGarbageIsRefused) {
  std::mt19937_64 rng(1);
  for (int trial = 0; trial < 2000; ++trial) {
    std::string body(rng() % 64, '\0');
    for (char& c : body) c = static_cast<char>(rng());
    ExpectValidIfAccepted(Decode(WithHeader(body)));
  }
}

// ---------------------------------------------------------------------------------------------
// Header

TEST(CodecHeaderTest, WrongMagicIsNamed) {
  std::string bytes = EncodeOrDie(SmallPayload());
  bytes[0] = 'X';
  const absl::Status status = Decode(bytes).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("magic"));
  EXPECT_THAT(Decode("").status().message(), HasSubstr("magic"));
  EXPECT_THAT(Decode("LFL").status().message(), HasSubstr("magic"));
}

TEST(CodecHeaderTest, WrongVersionIsNamed) {
  const absl::Status status = Decode(WithHeader(std::string(3, '\0'), 2)).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("version 2"));
}

TEST(CodecHeaderTest, UnknownFlagsAreRefused) {
  EXPECT_THAT(Decode(WithHeader(std::string(3, '\0'), 1, 4)).status().message(),
              HasSubstr("flags"));
}

TEST(CodecHeaderTest, LengthAndChecksumMismatchesAreDataLoss) {
  const std::string bytes = EncodeOrDie(SmallPayload());
  EXPECT_EQ(Decode(bytes + "x").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Decode(bytes.substr(0, kHeaderSize)).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Decode(bytes.substr(0, 12)).status().code(), absl::StatusCode::kDataLoss);
  std::string bad_crc = bytes;
  bad_crc[16] ^= 1;
  EXPECT_THAT(Decode(bad_crc).status().message(), HasSubstr("CRC-32C"));
}

TEST(CodecHeaderTest, EmptyPayloadIsTheSmallestValidOne) {
  const std::string body("\0\0\0", 3);  // round 0, client 0, no tensors
  ASSERT_TRUE(Decode(WithHeader(body)).ok());
  EXPECT_EQ(EncodeOrDie(Payload{}), WithHeader(body));
}

// ---------------------------------------------------------------------------------------------
// Hand-made bodies: absurd lengths and malformed records

class CodecBodyTest : public ::testing::Test {
 protected:
  CodecBodyTest() : out_(&body_) {
    out_.PutVarint(1);  // round
    out_.PutVarint(2);  // client id
  }
  // Starts a one-tensor body with the record fields up to (excluding) the scale.
  void Record(std::vector<uint64_t> dims, uint8_t bits) {
    out_.PutVarint(1);  // tensor count
    out_.PutVarint(0);  // id
    out_.PutU8(static_cast<uint8_t>(dims.size()));
    for (uint64_t d : dims) out_.PutVarint(d);
    out_.PutU8(bits);
  }
  absl::Status Decoded(const DecodeLimits& limits = {}) {
    return Decode(WithHeader(body_), limits).status();
  }
  std::string body_;
  internal::ByteWriter out_;
};

TEST_F(CodecBodyTest, WellFormedHandMadeRecordDecodes) {
  Record({10}, 2);
  out_.PutF32(1.f);
  out_.PutVarint(0);    // mask version
  out_.PutU8(0);        // kAll
  out_.PutU8(1);        // plane bit 1: raw
  out_.PutU16(0x0201);  // entries 0 and 9 have bit 1
  out_.PutU8(0);        // plane bit 0: zero
  out_.PutU8(1);        // sign plane over 2 nonzero entries: raw
  out_.PutU8(0x02);     // the second (entry 9) is negative
  absl::StatusOr<Payload> p = Decode(WithHeader(body_));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->tensors[0].levels, (std::vector<int32_t>{2, 0, 0, 0, 0, 0, 0, 0, 0, -2}));
}

TEST_F(CodecBodyTest, TensorCountBeyondLimit) {
  out_.PutVarint(uint64_t{1} << 40);
  EXPECT_EQ(Decoded().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(CodecBodyTest, RankBeyondLimit) {
  Record(std::vector<uint64_t>(9, 1), 32);
  EXPECT_EQ(Decoded().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(CodecBodyTest, AbsurdDim) {
  Record({uint64_t{1} << 40}, 32);
  EXPECT_EQ(Decoded().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(CodecBodyTest, DimsWhoseProductOverflows) {
  Record({uint64_t{1} << 20, uint64_t{1} << 20, uint64_t{1} << 20, uint64_t{1} << 20}, 32);
  EXPECT_EQ(Decoded().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(CodecBodyTest, TotalElementsBeyondLimitWithZeroBitRecords) {
  // Zero-bit records cost no data bytes per element, so only the limit stops the allocation.
  out_.PutVarint(2);
  for (int i = 0; i < 2; ++i) {
    out_.PutVarint(i);
    out_.PutU8(1);
    out_.PutVarint(600);
    out_.PutU8(0);  // bits
    out_.PutF32(1.f);
    out_.PutVarint(0);
    out_.PutU8(0);  // kAll
  }
  EXPECT_TRUE(Decoded().ok());
  DecodeLimits limits;
  limits.max_total_elements = 1000;
  EXPECT_EQ(Decoded(limits).code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(CodecBodyTest, OverlongVarint) {
  body_.clear();
  body_.append(11, '\xff');
  EXPECT_FALSE(Decoded().ok());
  body_.assign("\x80\x00\x00\x00", 4);  // round 0 spelled with a redundant byte
  EXPECT_FALSE(Decoded().ok());
}

TEST_F(CodecBodyTest, BadBits) {
  for (uint8_t bits : {9, 16, 31, 33, 255}) {
    body_.resize(2);
    Record({4}, bits);
    out_.PutF32(1.f);
    EXPECT_THAT(Decoded().message(), HasSubstr("bits")) << int{bits};
  }
}

TEST_F(CodecBodyTest, BadScale) {
  for (float scale :
       {-1.f, std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()}) {
    body_.resize(2);
    Record({4}, 3);
    out_.PutF32(scale);
    EXPECT_THAT(Decoded().message(), HasSubstr("scale")) << scale;
  }
}

TEST_F(CodecBodyTest, UnknownMaskKind) {
  Record({4}, 32);
  out_.PutVarint(0);
  out_.PutU8(9);
  EXPECT_THAT(Decoded().message(), HasSubstr("mask kind"));
}

TEST_F(CodecBodyTest, ReferenceKeptCountBeyondNumel) {
  Record({4}, 32);
  out_.PutVarint(0);
  out_.PutU8(1);
  out_.PutVarint(5);
  EXPECT_EQ(Decoded().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CodecBodyTest, HugeClaimedRawRecordIsRefusedBeforeAllocating) {
  Record({uint64_t{1} << 27}, 32);
  out_.PutVarint(0);
  out_.PutU8(1);
  out_.PutVarint(uint64_t{1} << 27);  // 512 MiB of floats claimed, none present
  EXPECT_EQ(Decoded().code(), absl::StatusCode::kDataLoss);
}

TEST_F(CodecBodyTest, BitmapWithBitsPastNumel) {
  Record({4}, 32);
  out_.PutVarint(0);
  out_.PutU8(2);
  out_.PutU8(0x11);  // bit 4 is past numel
  out_.PutF32(1.f);
  EXPECT_THAT(Decoded().message(), HasSubstr("past numel"));
}

TEST_F(CodecBodyTest, GapStreams) {
  struct Case {
    uint64_t count;
    uint8_t k;
    std::string stream;
    const char* why;
  };
  const std::vector<Case> cases = {
      {5, 0, std::string("\x01", 1), "count beyond numel"},
      {1, 60, std::string("\x01", 1), "Rice parameter too large"},
      {1, 0, std::string("\x00", 1), "unary never terminates"},
      {1, 2, std::string("\x10", 1), "gap 4 points past numel 4"},
      {1, 0, std::string("\x01\x00", 2), "trailing stream byte"},
      {1, 0, std::string("\x03", 1), "nonzero padding bits"},
  };
  for (const Case& c : cases) {
    body_.resize(2);
    Record({4}, 32);
    out_.PutVarint(0);
    out_.PutU8(3);  // kept gaps
    out_.PutVarint(c.count);
    out_.PutU8(c.k);
    out_.PutVarint(c.stream.size());
    out_.PutBytes(c.stream.data(), c.stream.size());
    out_.PutF32(1.f);  // one raw value for one kept element
    EXPECT_EQ(Decoded().code(), absl::StatusCode::kInvalidArgument) << c.why;
  }
}

TEST_F(CodecBodyTest, BadPlaneMarkerAndPadding) {
  Record({4}, 1);
  out_.PutF32(1.f);
  out_.PutVarint(0);
  out_.PutU8(0);
  out_.PutU8(2);  // marker 2 is undefined
  EXPECT_THAT(Decoded().message(), HasSubstr("marker"));

  body_.resize(2);
  Record({4}, 1);
  out_.PutF32(1.f);
  out_.PutVarint(0);
  out_.PutU8(0);
  out_.PutU8(1);
  out_.PutU8(0x20);  // entry 5 of 4
  out_.PutU8(0);
  EXPECT_THAT(Decoded().message(), HasSubstr("padding"));
}

TEST_F(CodecBodyTest, NonFiniteRawValue) {
  Record({1}, 32);
  out_.PutVarint(0);
  out_.PutU8(0);
  out_.PutF32(std::numeric_limits<float>::infinity());
  EXPECT_THAT(Decoded().message(), HasSubstr("not finite"));
}

TEST_F(CodecBodyTest, TrailingBytesInBody) {
  out_.PutVarint(0);
  out_.PutU8(0);
  EXPECT_THAT(Decoded().message(), HasSubstr("trailing"));
}

// ---------------------------------------------------------------------------------------------
// Encode validation

absl::Status EncodeOne(const TensorRecord& r) {
  Payload p;
  p.tensors = {TensorRecord{}, r};  // second position: the error must name "tensor 1"
  p.tensors[0].shape = {};
  p.tensors[0].values = {1.f};
  return Encode(p).status();
}

TensorRecord Quantized(int bits, std::vector<int32_t> levels) {
  TensorRecord r;
  r.shape = {static_cast<int64_t>(levels.size())};
  r.bits = static_cast<uint8_t>(bits);
  r.scale = 1.f;
  r.levels = std::move(levels);
  return r;
}

TEST(CodecEncodeTest, LevelOutOfRange) {
  EXPECT_TRUE(EncodeOne(Quantized(4, {15, -15, 0})).ok());
  for (int32_t level : {16, -16, 1 << 30, std::numeric_limits<int32_t>::min()}) {
    const absl::Status status = EncodeOne(Quantized(4, {0, level}));
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), HasSubstr("tensor 1"));
    EXPECT_THAT(status.message(), HasSubstr("level"));
  }
  EXPECT_FALSE(EncodeOne(Quantized(0, {1})).ok());
}

TEST(CodecEncodeTest, InvalidRecords) {
  TensorRecord r = Quantized(9, {1});
  EXPECT_THAT(EncodeOne(r).message(), HasSubstr("bits"));
  r = Quantized(4, {1});
  r.scale = -1.f;
  EXPECT_THAT(EncodeOne(r).message(), HasSubstr("scale"));
  r = Quantized(4, {1, 2});
  r.shape = {3};
  EXPECT_THAT(EncodeOne(r).message(), HasSubstr("levels for 3"));
  r.shape = {-2};
  EXPECT_THAT(EncodeOne(r).message(), HasSubstr("negative"));
  r.shape = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_THAT(EncodeOne(r).message(), HasSubstr("overflow"));
  r = Quantized(4, {1, 2});
  r.values = {1.f};
  EXPECT_FALSE(EncodeOne(r).ok());

  TensorRecord raw;
  raw.shape = {2};
  raw.values = {1.f, std::numeric_limits<float>::quiet_NaN()};
  EXPECT_THAT(EncodeOne(raw).message(), HasSubstr("not finite"));
  raw.values = {1.f, 2.f};
  raw.levels = {1};
  EXPECT_FALSE(EncodeOne(raw).ok());
}

TEST(CodecEncodeTest, InconsistentMasks) {
  TensorRecord r = Quantized(4, {1, 2});
  r.shape = {70};
  r.mask_kind = MaskKind::kExplicit;
  r.mask = {0x3};  // needs 2 words
  EXPECT_THAT(EncodeOne(r).message(), HasSubstr("words"));
  r.mask = {0x3, uint64_t{1} << 6};  // bit 70 is past numel
  EXPECT_THAT(EncodeOne(r).message(), HasSubstr("past numel"));
  r.mask = {0x3, 0};
  EXPECT_TRUE(EncodeOne(r).ok());
  r.mask_kind = MaskKind::kAll;
  EXPECT_FALSE(EncodeOne(r).ok());
  r.mask_kind = MaskKind::kReference;
  EXPECT_FALSE(EncodeOne(r).ok());
  r.mask.clear();
  EXPECT_TRUE(EncodeOne(r).ok());
  r.shape = {1};  // two entries cannot be kept out of one element
  EXPECT_FALSE(EncodeOne(r).ok());
}

}  // namespace
}  // namespace lfl::codec
