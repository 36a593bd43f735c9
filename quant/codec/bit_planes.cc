#include "quant/codec/bit_planes.h"

#include <array>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace lfl::codec::internal {
namespace {

// Plane markers on the wire.
constexpr uint8_t kPlaneZero = 0;  // every bit of the plane is 0; no bytes follow
constexpr uint8_t kPlaneRaw = 1;   // ceil(entries / 8) bytes follow, LSB-first

constexpr uint64_t kLowBitOfEachByte = 0x0101010101010101ull;

// Eight magnitudes are handled at once as the eight bytes of a little-endian uint64.
// Bit p of each byte of x, packed into one byte (byte j -> bit j).
inline uint8_t GatherPlaneByte(uint64_t x, int p) {
  return static_cast<uint8_t>((((x >> p) & kLowBitOfEachByte) * 0x0102040810204080ull) >> 56);
}

// kSpread[b]: byte j is bit j of b (the inverse of GatherPlaneByte for p == 0).
constexpr std::array<uint64_t, 256> MakeSpreadTable() {
  std::array<uint64_t, 256> t{};
  for (uint64_t b = 0; b < 256; ++b) {
    for (int j = 0; j < 8; ++j) t[b] |= ((b >> j) & 1) << (8 * j);
  }
  return t;
}
constexpr std::array<uint64_t, 256> kSpread = MakeSpreadTable();

// Number of nonzero bytes in x.
inline int CountNonzeroBytes(uint64_t x) {
  constexpr uint64_t kLow7 = 0x7F7F7F7F7F7F7F7Full;
  return __builtin_popcountll((((x & kLow7) + kLow7) | x) & ~kLow7);
}

void AppendSignPlane(const int32_t* levels, size_t count, size_t nonzero, ByteWriter* out) {
  uint8_t* signs = out->AppendUninitialized((nonzero + 7) / 8);
  uint64_t acc = 0;
  int fill = 0;
  for (size_t i = 0; i < count; ++i) {
    acc |= static_cast<uint64_t>(levels[i] < 0) << fill;
    fill += levels[i] != 0;
    if (fill == 64) {
      StoreLittleEndian64(acc, signs);
      signs += 8;
      acc = 0;
      fill = 0;
    }
  }
  for (int b = 0; b < fill; b += 8) *signs++ = static_cast<uint8_t>(acc >> b);
}

// Reads a plane marker and, for a raw plane, its bytes; *bytes is null for an all-zero plane.
absl::Status ReadPlane(ByteReader* in, size_t entries, const uint8_t** bytes) {
  uint8_t marker;
  if (!in->ReadU8(&marker)) return absl::DataLossError("truncated bit-plane marker");
  *bytes = nullptr;
  if (marker == kPlaneZero) return absl::OkStatus();
  if (marker != kPlaneRaw) {
    return absl::InvalidArgumentError(absl::StrCat("bad bit-plane marker ", marker));
  }
  const size_t size = (entries + 7) / 8;
  if (!in->ReadBytes(size, bytes)) return absl::DataLossError("truncated bit plane");
  if (entries % 8 != 0 && ((*bytes)[size - 1] >> (entries % 8)) != 0) {
    return absl::InvalidArgumentError("bit plane has padding bits set");
  }
  return absl::OkStatus();
}

// Applies the signs (bit s of `signs` for the s-th nonzero magnitude) to the magnitudes.
void ApplySigns(const uint8_t* mags, const std::vector<uint8_t>& signs, size_t count,
                int32_t* levels) {
  uint64_t s = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint32_t mag = mags[i];
    const uint32_t nonzero = mag != 0;
    const uint32_t negative = (signs[s >> 3] >> (s & 7)) & nonzero;
    levels[i] = static_cast<int32_t>((mag ^ (0u - negative)) + negative);
    s += nonzero;
  }
}

}  // namespace

void AppendLevelPlanes(const int32_t* levels, size_t count, int bits, ByteWriter* out) {
  const size_t groups = (count + 7) / 8;
  std::vector<uint8_t> mags(groups * 8, 0);
  uint32_t any_bits = 0;
  bool any_negative = false;
  size_t nonzero = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint32_t mag = static_cast<uint32_t>(std::abs(levels[i]));
    mags[i] = static_cast<uint8_t>(mag);
    any_bits |= mag;
    any_negative |= levels[i] < 0;
    nonzero += mag != 0;
  }
  for (int p = bits - 1; p >= 0; --p) {
    if (((any_bits >> p) & 1) == 0) {
      out->PutU8(kPlaneZero);
      continue;
    }
    out->PutU8(kPlaneRaw);
    uint8_t* plane = out->AppendUninitialized(groups);
    for (size_t g = 0; g < groups; ++g) {
      plane[g] = GatherPlaneByte(LoadLittleEndian64(&mags[8 * g]), p);
    }
  }
  out->PutU8(any_negative ? kPlaneRaw : kPlaneZero);
  if (any_negative) AppendSignPlane(levels, count, nonzero, out);
}

absl::Status ReadLevelPlanes(ByteReader* in, size_t count, int bits, std::vector<int32_t>* levels) {
  const uint8_t* planes[8];
  int shifts[8];
  int raw_planes = 0;
  for (int p = bits - 1; p >= 0; --p) {
    const uint8_t* bytes;
    absl::Status status = ReadPlane(in, count, &bytes);
    if (!status.ok()) return status;
    if (bytes == nullptr) continue;
    planes[raw_planes] = bytes;
    shifts[raw_planes++] = p;
  }
  const size_t groups = (count + 7) / 8;
  std::vector<uint8_t> mags(groups * 8);
  size_t nonzero = 0;
  for (size_t g = 0; g < groups; ++g) {
    uint64_t m = 0;
    for (int r = 0; r < raw_planes; ++r) m |= kSpread[planes[r][g]] << shifts[r];
    StoreLittleEndian64(m, &mags[8 * g]);
    nonzero += CountNonzeroBytes(m);
  }
  const uint8_t* sign_bytes;
  absl::Status status = ReadPlane(in, nonzero, &sign_bytes);
  if (!status.ok()) return status;
  levels->resize(count);
  if (sign_bytes == nullptr) {
    for (size_t i = 0; i < count; ++i) (*levels)[i] = mags[i];
    return absl::OkStatus();
  }
  // One spare byte: the loop peeks at the next sign even after the last nonzero magnitude.
  std::vector<uint8_t> signs(sign_bytes, sign_bytes + (nonzero + 7) / 8);
  signs.push_back(0);
  ApplySigns(mags.data(), signs, count, levels->data());
  return absl::OkStatus();
}

}  // namespace lfl::codec::internal
