#include "quant/codec/bit_planes.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"

namespace lfl::codec::internal {
namespace {

// Plane markers on the wire.
constexpr uint8_t kPlaneZero = 0;  // every bit of the plane is 0; no bytes follow
constexpr uint8_t kPlaneRaw = 1;   // ceil(entries / 8) bytes follow, LSB-first

// Entries are processed in blocks whose byte-per-entry scratch stays in L1; within a block,
// eight entries at a time as the eight bytes of a little-endian uint64 ("a group").
constexpr size_t kBlock = 512;
constexpr uint64_t kLowBitOfEachByte = 0x0101010101010101ull;
constexpr uint64_t kLow7BitsOfEachByte = 0x7F7F7F7F7F7F7F7Full;

struct Tables {
  std::array<uint64_t, 256> spread;  // byte j of spread[b] is bit j of b
  std::array<uint8_t, 256> popcount;
  // Indexed by (mask << 8 | bits). deposit: the low popcount(mask) bits of `bits` moved to the
  // set positions of mask (pdep); extract: the bits of `bits` at mask's set positions packed
  // low (pext). Portable stand-ins for BMI2, one load each.
  std::array<uint8_t, 65536> deposit;
  std::array<uint8_t, 65536> extract;
};

const Tables& GetTables() {
  static const Tables* const tables = [] {
    auto* t = new Tables;
    for (int b = 0; b < 256; ++b) {
      t->spread[b] = 0;
      t->popcount[b] = 0;
      for (int j = 0; j < 8; ++j) {
        t->spread[b] |= static_cast<uint64_t>((b >> j) & 1) << (8 * j);
        t->popcount[b] += (b >> j) & 1;
      }
    }
    for (int mask = 0; mask < 256; ++mask) {
      for (int bits = 0; bits < 256; ++bits) {
        uint8_t deposit = 0, extract = 0;
        for (int j = 0, k = 0; j < 8; ++j) {
          if (((mask >> j) & 1) == 0) continue;
          deposit |= ((bits >> k) & 1) << j;
          extract |= ((bits >> j) & 1) << k;
          ++k;
        }
        t->deposit[mask << 8 | bits] = deposit;
        t->extract[mask << 8 | bits] = extract;
      }
    }
    return t;
  }();
  return *tables;
}

// Bit p of each byte of x, packed into one byte (byte j -> bit j).
inline uint8_t GatherBit(uint64_t x, int p) {
  return static_cast<uint8_t>((((x >> p) & kLowBitOfEachByte) * 0x0102040810204080ull) >> 56);
}

// One bit per byte of x: set when the byte is nonzero.
inline uint8_t NonzeroBytes(uint64_t x) {
  return GatherBit((((x & kLow7BitsOfEachByte) + kLow7BitsOfEachByte) | x), 7);
}

// Appends 0..8 bits at a time, LSB-first, into a buffer sized by the caller.
class SignWriter {
 public:
  explicit SignWriter(uint8_t* out) : out_(out) {}
  void Put(uint32_t bits, int n) {
    acc_ |= bits << fill_;
    fill_ += n;
    if (fill_ >= 8) {
      *out_++ = static_cast<uint8_t>(acc_);
      acc_ >>= 8;
      fill_ -= 8;
    }
  }
  void Finish() {
    if (fill_ > 0) *out_ = static_cast<uint8_t>(acc_);
  }

 private:
  uint8_t* out_;
  uint32_t acc_ = 0;
  int fill_ = 0;
};

// Takes 0..8 bits at a time from a copy of the sign plane padded with 8 zero bytes.
class SignReader {
 public:
  SignReader(const uint8_t* bytes, size_t size) : bytes_(bytes, bytes + size) {
    bytes_.resize(size + 8, 0);
  }
  uint32_t Take(int n) {
    const uint64_t window = LoadLittleEndian64(&bytes_[pos_ >> 3]) >> (pos_ & 7);
    pos_ += n;
    return static_cast<uint32_t>(window & ((1u << n) - 1));
  }

 private:
  std::vector<uint8_t> bytes_;
  size_t pos_ = 0;
};

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

// Number of set bits in the OR of the planes (each `size` bytes): the nonzero magnitudes.
size_t CountNonzero(const uint8_t* const* planes, int raw_planes, size_t size) {
  size_t nonzero = 0;
  size_t b = 0;
  for (; b + 8 <= size; b += 8) {
    uint64_t any = 0;
    for (int r = 0; r < raw_planes; ++r) any |= LoadLittleEndian64(planes[r] + b);
    nonzero += PopCount64(any);
  }
  for (; b < size; ++b) {
    uint8_t any = 0;
    for (int r = 0; r < raw_planes; ++r) any |= planes[r][b];
    nonzero += GetTables().popcount[any];
  }
  return nonzero;
}

struct LevelSummary {
  uint32_t any_bits = 0;  // OR of all magnitudes
  bool any_negative = false;
  size_t nonzero = 0;
};

LevelSummary Summarize(const int32_t* levels, size_t count) {
  LevelSummary s;
  uint32_t negative = 0;
  for (size_t i = 0; i < count; ++i) {
    const uint32_t mag = static_cast<uint32_t>(levels[i] < 0 ? -levels[i] : levels[i]);
    s.any_bits |= mag;
    negative |= levels[i] < 0;
    s.nonzero += mag != 0;
  }
  s.any_negative = negative != 0;
  return s;
}

}  // namespace

void AppendLevelPlanes(const int32_t* levels, size_t count, int bits, ByteWriter* out) {
  const Tables& tables = GetTables();
  const LevelSummary summary = Summarize(levels, count);
  const size_t groups = (count + 7) / 8;
  const size_t sign_size = summary.any_negative ? (summary.nonzero + 7) / 8 : 0;
  // Lay out markers and room for the raw planes first (appending may move the buffer), then
  // fill the planes in one pass over the levels.
  // By bit position; 0 for an all-zero plane (a raw plane follows its marker, so is never at 0).
  size_t offsets[8] = {};
  for (int p = bits - 1; p >= 0; --p) {
    const bool raw = ((summary.any_bits >> p) & 1) != 0;
    out->PutU8(raw ? kPlaneRaw : kPlaneZero);
    if (raw) offsets[p] = out->size();
    if (raw) out->AppendUninitialized(groups);
  }
  out->PutU8(summary.any_negative ? kPlaneRaw : kPlaneZero);
  const size_t sign_offset = out->size();
  out->AppendUninitialized(sign_size);
  uint8_t* planes[8];
  int plane_bits[8];
  int raw_planes = 0;
  for (int p = 0; p < bits; ++p) {
    if (offsets[p] == 0) continue;
    planes[raw_planes] = out->At(offsets[p]);
    plane_bits[raw_planes++] = p;
  }
  SignWriter sign_writer(out->At(sign_offset));
  alignas(8) uint8_t mag[kBlock], neg[kBlock];
  for (size_t begin = 0; begin < count; begin += kBlock) {
    const size_t n = std::min(kBlock, count - begin);
    std::fill(mag + n, mag + (n + 7) / 8 * 8, 0);
    std::fill(neg + n, neg + (n + 7) / 8 * 8, 0);
    for (size_t j = 0; j < n; ++j) {
      const int32_t level = levels[begin + j];
      mag[j] = static_cast<uint8_t>(level < 0 ? -level : level);
      neg[j] = level < 0;
    }
    for (size_t j = 0; j < n; j += 8) {
      const size_t g = (begin + j) / 8;
      const uint64_t m = LoadLittleEndian64(mag + j);
      for (int r = 0; r < raw_planes; ++r) planes[r][g] = GatherBit(m, plane_bits[r]);
      if (summary.any_negative) {
        const uint8_t nonzero = NonzeroBytes(m);
        const uint8_t negative = GatherBit(LoadLittleEndian64(neg + j), 0);
        sign_writer.Put(tables.extract[nonzero << 8 | negative], tables.popcount[nonzero]);
      }
    }
  }
  if (summary.any_negative) sign_writer.Finish();
}

absl::Status ReadLevelPlanes(ByteReader* in, size_t count, int bits, std::vector<int32_t>* levels) {
  const Tables& tables = GetTables();
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
  const size_t nonzero = CountNonzero(planes, raw_planes, groups);
  const uint8_t* sign_bytes;
  absl::Status status = ReadPlane(in, nonzero, &sign_bytes);
  if (!status.ok()) return status;
  SignReader signs(sign_bytes, sign_bytes == nullptr ? 0 : (nonzero + 7) / 8);

  levels->resize(count);
  int32_t* out = levels->data();
  alignas(8) uint8_t mag[kBlock], neg[kBlock];
  for (size_t begin = 0; begin < count; begin += kBlock) {
    const size_t n = std::min(kBlock, count - begin);
    for (size_t j = 0; j < n; j += 8) {
      const size_t g = (begin + j) / 8;
      uint64_t m = 0;
      uint8_t nonzero_bits = 0;
      for (int r = 0; r < raw_planes; ++r) {
        m |= tables.spread[planes[r][g]] << shifts[r];
        nonzero_bits |= planes[r][g];
      }
      StoreLittleEndian64(m, mag + j);
      uint8_t negative = 0;
      if (sign_bytes != nullptr) {
        const uint32_t taken = signs.Take(tables.popcount[nonzero_bits]);
        negative = tables.deposit[nonzero_bits << 8 | taken];
      }
      StoreLittleEndian64(tables.spread[negative], neg + j);
    }
    for (size_t j = 0; j < n; ++j) {
      const uint32_t negative = neg[j];
      out[begin + j] = static_cast<int32_t>((mag[j] ^ (0u - negative)) + negative);
    }
  }
  return absl::OkStatus();
}

}  // namespace lfl::codec::internal
