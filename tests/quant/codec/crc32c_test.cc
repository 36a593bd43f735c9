#include "quant/codec/crc32c.h"

#include <random>
#include <string>

#include "gtest/gtest.h"

namespace lfl::codec {
namespace {

TEST(CodecCrc32cTest, MatchesTheStandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable("123456789"), 0xE3069283u);
}

TEST(CodecCrc32cTest, KnownVectorsFromRfc3720) {
  // iSCSI (RFC 3720, B.4): 32 bytes of zeros and 32 bytes of 0xFF.
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(CodecCrc32cTest, HardwareAndPortablePathsAgreeOnEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  std::string data(300, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t length = 0; offset + length <= data.size(); length += 7) {
      const std::string_view piece(data.data() + offset, length);
      ASSERT_EQ(Crc32c(piece), Crc32cPortable(piece)) << offset << " " << length;
    }
  }
}

TEST(CodecCrc32cTest, DetectsEverySingleBitFlip) {
  std::string data = "lottery tickets travel as bit planes";
  const uint32_t crc = Crc32c(data);
  for (size_t i = 0; i < data.size() * 8; ++i) {
    data[i / 8] ^= static_cast<char>(1 << (i % 8));
    EXPECT_NE(Crc32c(data), crc) << i;
    data[i / 8] ^= static_cast<char>(1 << (i % 8));
  }
}

}  // namespace
}  // namespace lfl::codec
