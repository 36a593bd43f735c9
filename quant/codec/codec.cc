#include "quant/codec/codec.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "quant/codec/bit_planes.h"
#include "quant/codec/crc32c.h"
#include "quant/codec/mask_coding.h"
#include "quant/codec/wire_io.h"

namespace lfl::codec {
namespace {

using internal::ByteReader;
using internal::ByteWriter;
using internal::WireMask;

constexpr char kMagic[4] = {'L', 'F', 'L', 'Q'};
constexpr uint16_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 20;  // magic, version, flags, body length, CRC-32C
constexpr int64_t kMaxNumel = int64_t{1} << 62;
constexpr int kMaxWireRank = 255;

size_t WordCount(int64_t numel) { return static_cast<size_t>((numel + 63) / 64); }

bool ValidBits(int bits) { return (bits >= 0 && bits <= kMaxQuantBits) || bits == kRawBits; }

int32_t MaxLevel(int bits) { return (int32_t{1} << bits) - 1; }

absl::Status WithTensorContext(const absl::Status& status, size_t index) {
  return absl::Status(status.code(), absl::StrCat("tensor ", index, ": ", status.message()));
}

constexpr uint32_t kInfinityBits = 0x7F800000u;

// max |v| as an IEEE-754 bit pattern, branch-free so that the loop vectorizes. For non-negative
// floats integer order is float order, and every non-finite pattern is >= kInfinityBits.
uint32_t MaxAbsBits(const float* values, size_t n) {
  uint32_t max_abs_bits = 0;
  for (size_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, &values[i], sizeof b);
    max_abs_bits = std::max(max_abs_bits, b & 0x7FFFFFFFu);
  }
  return max_abs_bits;
}

// Index of the first non-finite value, or n.
size_t FirstNonFinite(const float* values, size_t n) {
  if (MaxAbsBits(values, n) < kInfinityBits) return n;
  size_t i = 0;
  while (std::isfinite(values[i])) ++i;
  return i;
}

constexpr bool kLittleEndianHost = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// ---------------------------------------------------------------------------------------------
// Encoding

// The kept count implied by the record's mask, or InvalidArgument for an inconsistent mask.
absl::StatusOr<int64_t> KeptCountForEncode(const TensorRecord& r, int64_t numel) {
  switch (r.mask_kind) {
    case MaskKind::kAll:
      if (!r.mask.empty()) return absl::InvalidArgumentError("kAll record carries mask words");
      return numel;
    case MaskKind::kReference: {
      if (!r.mask.empty())
        return absl::InvalidArgumentError("kReference record carries mask words");
      const size_t kept = r.bits == kRawBits ? r.values.size() : r.levels.size();
      if (kept > static_cast<uint64_t>(numel)) {
        return absl::InvalidArgumentError("kReference record holds more entries than numel");
      }
      return static_cast<int64_t>(kept);
    }
    case MaskKind::kExplicit:
      if (r.mask.size() != WordCount(numel)) {
        return absl::InvalidArgumentError(
            absl::StrCat("mask has ", r.mask.size(), " words, expected ", WordCount(numel)));
      }
      if (numel % 64 != 0 && (r.mask.back() >> (numel % 64)) != 0) {
        return absl::InvalidArgumentError("mask has bits set past numel");
      }
      return CountKept(r.mask, numel);
  }
  return absl::InvalidArgumentError("unknown mask kind");
}

absl::Status ValidateQuantized(const TensorRecord& r, int64_t kept) {
  if (!std::isfinite(r.scale) || r.scale < 0) {
    return absl::InvalidArgumentError(absl::StrCat("scale ", r.scale, " is not finite and >= 0"));
  }
  if (!r.values.empty()) return absl::InvalidArgumentError("quantized record carries values");
  if (r.levels.size() != static_cast<uint64_t>(kept)) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.levels.size(), " levels for ", kept, " kept elements"));
  }
  // Branch-free min/max first (vectorizes); find the culprit only on failure.
  const int32_t max_level = MaxLevel(r.bits);
  int32_t lowest = 0, highest = 0;
  for (int32_t level : r.levels) {
    lowest = std::min(lowest, level);
    highest = std::max(highest, level);
  }
  if (lowest >= -max_level && highest <= max_level) return absl::OkStatus();
  for (size_t i = 0;; ++i) {
    if (r.levels[i] > max_level || r.levels[i] < -max_level) {
      return absl::InvalidArgumentError(
          absl::StrCat("level ", r.levels[i], " at entry ", i, " is outside +-", max_level));
    }
  }
}

absl::Status ValidateRaw(const TensorRecord& r, int64_t kept) {
  if (!r.levels.empty()) return absl::InvalidArgumentError("raw float32 record carries levels");
  if (r.values.size() != static_cast<uint64_t>(kept)) {
    return absl::InvalidArgumentError(
        absl::StrCat(r.values.size(), " values for ", kept, " kept elements"));
  }
  const size_t bad = FirstNonFinite(r.values.data(), r.values.size());
  if (bad != r.values.size()) {
    return absl::InvalidArgumentError(absl::StrCat("value at entry ", bad, " is not finite"));
  }
  return absl::OkStatus();
}

// Returns the kept count of a valid record.
absl::StatusOr<int64_t> ValidateRecord(const TensorRecord& r) {
  if (!ValidBits(r.bits)) {
    return absl::InvalidArgumentError(absl::StrCat("bits ", r.bits, " not in 0..8 or 32"));
  }
  if (r.shape.size() > kMaxWireRank) return absl::InvalidArgumentError("rank exceeds 255");
  absl::StatusOr<int64_t> numel = NumElements(r.shape);
  if (!numel.ok()) return numel.status();
  absl::StatusOr<int64_t> kept = KeptCountForEncode(r, *numel);
  if (!kept.ok()) return kept.status();
  absl::Status status = r.bits == kRawBits ? ValidateRaw(r, *kept) : ValidateQuantized(r, *kept);
  if (!status.ok()) return status;
  return kept;
}

void AppendMask(const TensorRecord& r, int64_t numel, int64_t kept, ByteWriter* out) {
  out->PutVarint(r.mask_version);
  switch (r.mask_kind) {
    case MaskKind::kAll:
      out->PutU8(static_cast<uint8_t>(WireMask::kAll));
      return;
    case MaskKind::kReference:
      out->PutU8(static_cast<uint8_t>(WireMask::kReference));
      out->PutVarint(static_cast<uint64_t>(kept));
      return;
    case MaskKind::kExplicit:
      internal::AppendExplicitMask(r.mask, static_cast<uint64_t>(numel), out);
      return;
  }
}

void AppendRawValues(const std::vector<float>& values, ByteWriter* out) {
  uint8_t* bytes = out->AppendUninitialized(values.size() * 4);
  if (kLittleEndianHost) {
    if (!values.empty()) std::memcpy(bytes, values.data(), values.size() * 4);
    return;
  }
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int b = 0; b < 4; ++b) *bytes++ = static_cast<uint8_t>(bits >> (8 * b));
  }
}

absl::Status AppendRecord(const TensorRecord& r, ByteWriter* out) {
  absl::StatusOr<int64_t> kept = ValidateRecord(r);
  if (!kept.ok()) return kept.status();
  const int64_t numel = *NumElements(r.shape);
  out->PutVarint(r.id);
  out->PutU8(static_cast<uint8_t>(r.shape.size()));
  for (int64_t dim : r.shape) out->PutVarint(static_cast<uint64_t>(dim));
  out->PutU8(r.bits);
  if (r.bits != kRawBits) out->PutF32(r.scale);
  AppendMask(r, numel, *kept, out);
  if (r.bits == kRawBits) {
    AppendRawValues(r.values, out);
  } else if (r.bits > 0) {
    internal::AppendLevelPlanes(r.levels.data(), r.levels.size(), r.bits, out);
  }
  return absl::OkStatus();
}

// Fills the kHeaderSize bytes reserved at the front of `bytes` for the body that follows.
void WriteHeader(std::string* bytes) {
  const std::string_view body = std::string_view(*bytes).substr(kHeaderSize);
  std::string header;
  ByteWriter out(&header);
  out.PutBytes(kMagic, sizeof kMagic);
  out.PutU16(kFormatVersion);
  out.PutU16(0);  // flags: none defined in version 1
  out.PutU64(body.size());
  out.PutU32(Crc32c(body));
  bytes->replace(0, kHeaderSize, header);
}

// ---------------------------------------------------------------------------------------------
// Decoding

// Tracks the element budget of DecodeLimits across the records of one payload.
struct DecodeBudget {
  const DecodeLimits& limits;
  uint64_t total_elements = 0;
};

absl::Status Truncated(const char* what) {
  return absl::DataLossError(absl::StrCat("truncated ", what));
}

absl::Status TooLarge(const char* what, uint64_t value, uint64_t limit) {
  return absl::ResourceExhaustedError(
      absl::StrCat(what, " ", value, " exceeds the decode limit ", limit));
}

// Reads a varint that must fit in `max`.
absl::Status ReadBoundedVarint(ByteReader* in, uint64_t max, const char* what, uint64_t* v) {
  if (!in->ReadVarint(v)) return Truncated(what);
  if (*v > max) return absl::InvalidArgumentError(absl::StrCat(what, " ", *v, " out of range"));
  return absl::OkStatus();
}

absl::Status ReadShape(ByteReader* in, DecodeBudget* budget, TensorRecord* r, int64_t* numel) {
  const DecodeLimits& limits = budget->limits;
  uint8_t rank;
  if (!in->ReadU8(&rank)) return Truncated("rank");
  if (rank > limits.max_rank) return TooLarge("rank", rank, limits.max_rank);
  uint64_t product = 1;
  r->shape.resize(rank);
  for (int i = 0; i < rank; ++i) {
    uint64_t dim;
    if (!in->ReadVarint(&dim)) return Truncated("dim");
    if (dim > limits.max_elements_per_tensor) {
      return TooLarge("dim", dim, limits.max_elements_per_tensor);
    }
    if (dim != 0 && product > limits.max_elements_per_tensor / dim) {
      return TooLarge("numel of dims so far times", dim, limits.max_elements_per_tensor);
    }
    product *= dim;
    r->shape[i] = static_cast<int64_t>(dim);
  }
  budget->total_elements += product;
  if (budget->total_elements > limits.max_total_elements) {
    return TooLarge("total numel", budget->total_elements, limits.max_total_elements);
  }
  *numel = static_cast<int64_t>(product);
  return absl::OkStatus();
}

absl::Status ReadScale(ByteReader* in, TensorRecord* r) {
  uint8_t bits;
  if (!in->ReadU8(&bits)) return Truncated("bits");
  if (!ValidBits(bits)) {
    return absl::InvalidArgumentError(absl::StrCat("bits ", bits, " not in 0..8 or 32"));
  }
  r->bits = bits;
  if (bits == kRawBits) return absl::OkStatus();
  if (!in->ReadF32(&r->scale)) return Truncated("scale");
  if (!std::isfinite(r->scale) || r->scale < 0) {
    return absl::InvalidArgumentError("scale is not finite and >= 0");
  }
  return absl::OkStatus();
}

// Reads the mask section; returns the kept count.
absl::StatusOr<int64_t> ReadMask(ByteReader* in, int64_t numel, TensorRecord* r) {
  uint64_t version;
  absl::Status status =
      ReadBoundedVarint(in, std::numeric_limits<uint32_t>::max(), "mask version", &version);
  if (!status.ok()) return status;
  r->mask_version = static_cast<uint32_t>(version);
  uint8_t kind;
  if (!in->ReadU8(&kind)) return Truncated("mask kind");
  switch (static_cast<WireMask>(kind)) {
    case WireMask::kAll:
      r->mask_kind = MaskKind::kAll;
      return numel;
    case WireMask::kReference: {
      r->mask_kind = MaskKind::kReference;
      uint64_t kept;
      status = ReadBoundedVarint(in, static_cast<uint64_t>(numel), "kept count", &kept);
      if (!status.ok()) return status;
      return static_cast<int64_t>(kept);
    }
    case WireMask::kBitmap:
    case WireMask::kKeptGaps:
    case WireMask::kDroppedGaps:
      r->mask_kind = MaskKind::kExplicit;
      status = internal::ReadExplicitMask(static_cast<WireMask>(kind), numel, in, &r->mask);
      if (!status.ok()) return status;
      return CountKept(r->mask, numel);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown mask kind ", kind));
}

absl::Status ReadRawValues(ByteReader* in, int64_t kept, std::vector<float>* values) {
  const uint8_t* bytes;
  if (static_cast<uint64_t>(kept) > in->remaining() / 4 ||
      !in->ReadBytes(static_cast<uint64_t>(kept) * 4, &bytes)) {
    return Truncated("raw values");
  }
  values->resize(static_cast<size_t>(kept));
  if (kLittleEndianHost) {
    if (kept > 0) std::memcpy(values->data(), bytes, static_cast<size_t>(kept) * 4);
  } else {
    for (int64_t i = 0; i < kept; ++i) {
      uint32_t bits = 0;
      for (int b = 0; b < 4; ++b) bits |= uint32_t{bytes[4 * i + b]} << (8 * b);
      std::memcpy(&(*values)[i], &bits, 4);
    }
  }
  const size_t bad = FirstNonFinite(values->data(), values->size());
  if (bad != values->size()) {
    return absl::InvalidArgumentError(absl::StrCat("value at entry ", bad, " is not finite"));
  }
  return absl::OkStatus();
}

absl::Status ReadRecord(ByteReader* in, DecodeBudget* budget, TensorRecord* r) {
  uint64_t id;
  absl::Status status = ReadBoundedVarint(in, std::numeric_limits<uint32_t>::max(), "id", &id);
  if (!status.ok()) return status;
  r->id = static_cast<uint32_t>(id);
  int64_t numel = 0;
  status = ReadShape(in, budget, r, &numel);
  if (status.ok()) status = ReadScale(in, r);
  if (!status.ok()) return status;
  absl::StatusOr<int64_t> kept = ReadMask(in, numel, r);
  if (!kept.ok()) return kept.status();
  if (r->bits == kRawBits) return ReadRawValues(in, *kept, &r->values);
  if (r->bits == 0) {
    r->levels.assign(static_cast<size_t>(*kept), 0);
    return absl::OkStatus();
  }
  return internal::ReadLevelPlanes(in, static_cast<size_t>(*kept), r->bits, &r->levels);
}

absl::StatusOr<std::string_view> ReadHeader(std::string_view bytes) {
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    return absl::InvalidArgumentError("bad magic: not an LFLQ payload");
  }
  if (bytes.size() < kHeaderSize) return Truncated("header");
  ByteReader in(bytes.substr(sizeof kMagic));
  uint16_t version, flags;
  uint64_t body_size;
  uint32_t crc;
  in.ReadU16(&version);
  in.ReadU16(&flags);
  in.ReadU64(&body_size);
  in.ReadU32(&crc);
  if (version != kFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported LFLQ format version ", version,
                                                   " (this decoder reads version ", kFormatVersion,
                                                   ")"));
  }
  if (flags != 0) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported LFLQ flags ", flags));
  }
  const std::string_view body = bytes.substr(kHeaderSize);
  if (body_size != body.size()) {
    return absl::DataLossError(
        absl::StrCat("body length ", body.size(), " but header says ", body_size));
  }
  if (Crc32c(body) != crc) return absl::DataLossError("body CRC-32C mismatch");
  return body;
}

// ---------------------------------------------------------------------------------------------
// Dense helpers

// Writes Dequantize(levels[j]) (or values[j]) for the j-th kept element.
class KeptWriter {
 public:
  KeptWriter(const TensorRecord& r, float* dense) : r_(r), dense_(dense) {}
  // Elements [begin, begin + n) are all kept.
  void Run(int64_t begin, int64_t n) {
    float* out = dense_ + begin;
    if (r_.bits == kRawBits) {
      std::copy_n(r_.values.data() + next_, n, out);
    } else if (r_.bits > 0) {
      const int32_t* levels = r_.levels.data() + next_;
      const int bits = r_.bits;
      const float scale = r_.scale;
      for (int64_t i = 0; i < n; ++i) out[i] = Dequantize(levels[i], bits, scale);
    }
    next_ += n;
  }
  void One(int64_t pos) {
    if (r_.bits == kRawBits) {
      dense_[pos] = r_.values[next_];
    } else if (r_.bits > 0) {
      dense_[pos] = Dequantize(r_.levels[next_], r_.bits, r_.scale);
    }
    ++next_;
  }

 private:
  const TensorRecord& r_;
  float* dense_;
  int64_t next_ = 0;
};

void ExpandMasked(const TensorRecord& r, const BitWords& mask, int64_t numel, float* dense) {
  KeptWriter writer(r, dense);
  for (size_t w = 0; w < mask.size(); ++w) {
    const int64_t base = static_cast<int64_t>(w) * 64;
    uint64_t bits = mask[w];
    if (bits == ~uint64_t{0} && base + 64 <= numel) {
      writer.Run(base, 64);
      continue;
    }
    for (; bits != 0; bits &= bits - 1) writer.One(base + __builtin_ctzll(bits));
  }
}

absl::Status CheckMaskWords(const BitWords& mask, int64_t numel, const char* what) {
  if (mask.size() != WordCount(numel)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " has ", mask.size(), " words, expected ", WordCount(numel)));
  }
  if (numel % 64 != 0 && (mask.back() >> (numel % 64)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has bits set past numel"));
  }
  return absl::OkStatus();
}

// The mask that selects the kept elements, or null for kAll.
absl::StatusOr<const BitWords*> SelectMask(const TensorRecord& r, const BitWords* reference,
                                           int64_t numel, size_t entries) {
  const BitWords* mask = nullptr;
  if (r.mask_kind == MaskKind::kExplicit) mask = &r.mask;
  if (r.mask_kind == MaskKind::kReference) {
    if (reference == nullptr) {
      return absl::InvalidArgumentError("kReference record needs the reference mask");
    }
    mask = reference;
  }
  const int64_t kept = mask == nullptr ? numel : CountKept(*mask, numel);
  if (mask != nullptr) {
    absl::Status status = CheckMaskWords(*mask, numel, "mask");
    if (!status.ok()) return status;
  }
  if (static_cast<uint64_t>(kept) != entries) {
    return absl::InvalidArgumentError(
        absl::StrCat("record holds ", entries, " entries but the mask keeps ", kept));
  }
  return mask;
}

// Rounds half away from zero without libm, so the loop vectorizes. |q| < 2^23 here, so the
// integer part is exact and q - truncated is exact too.
inline int32_t RoundHalfAway(float q) {
  const int32_t truncated = static_cast<int32_t>(q);
  const float fraction = q - static_cast<float>(truncated);
  return truncated + (fraction >= 0.5f) - (fraction <= -0.5f);
}

void QuantizeLevels(const float* kept, size_t n, int bits, TensorRecord* r) {
  const uint32_t max_abs_bits = MaxAbsBits(kept, n);
  const bool finite = max_abs_bits < kInfinityBits;
  float scale;
  std::memcpy(&scale, &max_abs_bits, sizeof scale);
  r->scale = finite ? scale : std::numeric_limits<float>::quiet_NaN();
  if (bits == 0 || scale == 0.f || !finite) {
    r->levels.assign(n, 0);
    return;
  }
  r->levels.resize(n);
  int32_t* levels = r->levels.data();
  const float max_level = static_cast<float>(MaxLevel(bits));
  for (size_t i = 0; i < n; ++i) levels[i] = RoundHalfAway(kept[i] / scale * max_level);
}

}  // namespace

int64_t CountKept(const BitWords& mask, int64_t numel) {
  if (numel <= 0) return 0;
  const size_t words = std::min(mask.size(), WordCount(numel));
  int64_t kept = 0;
  for (size_t w = 0; w < words; ++w) {
    uint64_t bits = mask[w];
    const int64_t rest = numel - static_cast<int64_t>(w) * 64;
    if (rest < 64) bits &= (uint64_t{1} << rest) - 1;
    kept += internal::PopCount64(bits);
  }
  return kept;
}

absl::StatusOr<int64_t> NumElements(const std::vector<int64_t>& shape) {
  int64_t numel = 1;
  for (int64_t dim : shape) {
    if (dim < 0) return absl::InvalidArgumentError(absl::StrCat("negative dim ", dim));
    if (dim != 0 && numel > kMaxNumel / dim) {
      return absl::InvalidArgumentError("numel overflows 2^62");
    }
    numel *= dim;
  }
  return numel;
}

absl::StatusOr<std::string> Encode(const Payload& payload) {
  std::string bytes(kHeaderSize, '\0');  // the header is filled in once the body is known
  ByteWriter out(&bytes);
  out.PutVarint(payload.round);
  out.PutVarint(payload.client_id);
  out.PutVarint(payload.tensors.size());
  for (size_t i = 0; i < payload.tensors.size(); ++i) {
    absl::Status status = AppendRecord(payload.tensors[i], &out);
    if (!status.ok()) return WithTensorContext(status, i);
  }
  WriteHeader(&bytes);
  return bytes;
}

absl::StatusOr<Payload> Decode(std::string_view bytes, const DecodeLimits& limits) {
  absl::StatusOr<std::string_view> body = ReadHeader(bytes);
  if (!body.ok()) return body.status();
  ByteReader in(*body);
  Payload payload;
  uint64_t client_id, count;
  if (!in.ReadVarint(&payload.round)) return Truncated("round");
  absl::Status status =
      ReadBoundedVarint(&in, std::numeric_limits<uint32_t>::max(), "client id", &client_id);
  if (!status.ok()) return status;
  payload.client_id = static_cast<uint32_t>(client_id);
  if (!in.ReadVarint(&count)) return Truncated("tensor count");
  if (count > limits.max_tensors) return TooLarge("tensor count", count, limits.max_tensors);
  payload.tensors.resize(static_cast<size_t>(count));
  DecodeBudget budget{limits};
  for (size_t i = 0; i < payload.tensors.size(); ++i) {
    status = ReadRecord(&in, &budget, &payload.tensors[i]);
    if (!status.ok()) return WithTensorContext(status, i);
  }
  if (in.remaining() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(in.remaining(), " trailing bytes in body"));
  }
  return payload;
}

absl::Status ExpandToDense(const TensorRecord& record, const BitWords* reference_mask,
                           std::vector<float>* dense) {
  if (!ValidBits(record.bits)) {
    return absl::InvalidArgumentError(absl::StrCat("bits ", record.bits, " not in 0..8 or 32"));
  }
  absl::StatusOr<int64_t> numel = NumElements(record.shape);
  if (!numel.ok()) return numel.status();
  const size_t entries = record.bits == kRawBits ? record.values.size() : record.levels.size();
  absl::StatusOr<const BitWords*> mask = SelectMask(record, reference_mask, *numel, entries);
  if (!mask.ok()) return mask.status();
  if (*mask == nullptr && record.bits != 0) {
    dense->resize(static_cast<size_t>(*numel));  // every element is overwritten
    KeptWriter(record, dense->data()).Run(0, *numel);
  } else {
    dense->assign(static_cast<size_t>(*numel), 0.f);
    if (*mask != nullptr) ExpandMasked(record, **mask, *numel, dense->data());
  }
  return absl::OkStatus();
}

TensorRecord QuantizeUniform(uint32_t id, const std::vector<int64_t>& shape, const float* dense,
                             const BitWords* mask, int bits) {
  TensorRecord r;
  r.id = id;
  r.shape = shape;
  r.bits = static_cast<uint8_t>(bits);
  const int64_t numel = NumElements(shape).value_or(0);
  const bool raw = bits == kRawBits;
  if (!raw && (bits < 0 || bits > kMaxQuantBits)) return r;  // Encode refuses the record
  if (mask == nullptr) {
    if (raw) r.values.assign(dense, dense + numel);
    if (!raw) QuantizeLevels(dense, static_cast<size_t>(numel), bits, &r);
    return r;
  }
  r.mask_kind = MaskKind::kExplicit;
  r.mask.assign(WordCount(numel), 0);
  std::copy_n(mask->begin(), std::min(mask->size(), r.mask.size()), r.mask.begin());
  if (numel % 64 != 0) r.mask.back() &= (uint64_t{1} << (numel % 64)) - 1;
  std::vector<float> kept;
  kept.reserve(static_cast<size_t>(CountKept(r.mask, numel)));
  for (size_t w = 0; w < r.mask.size(); ++w) {
    for (uint64_t b = r.mask[w]; b != 0; b &= b - 1) {
      kept.push_back(dense[w * 64 + __builtin_ctzll(b)]);
    }
  }
  if (raw) r.values = std::move(kept);
  if (!raw) QuantizeLevels(kept.data(), kept.size(), bits, &r);
  return r;
}

}  // namespace lfl::codec
