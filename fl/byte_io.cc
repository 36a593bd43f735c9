#include "fl/byte_io.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

constexpr size_t kEnvelopeHeaderBytes = 4 + 4 + 8 + 8;

}  // namespace

void ByteWriter::U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }

void ByteWriter::U32(uint32_t v) {
  for (int i = 0; i < 4; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
}

void ByteWriter::U64(uint64_t v) {
  for (int i = 0; i < 8; ++i) U8(static_cast<uint8_t>(v >> (8 * i)));
}

void ByteWriter::F32(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  U32(bits);
}

void ByteWriter::F64(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  U64(bits);
}

bool ByteReader::U8(uint8_t* v) {
  if (in_.empty()) return false;
  *v = static_cast<uint8_t>(in_[0]);
  in_.remove_prefix(1);
  return true;
}

bool ByteReader::U32(uint32_t* v) {
  if (in_.size() < 4) return false;
  uint32_t r = 0;
  for (int i = 0; i < 4; ++i) r |= static_cast<uint32_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
  in_.remove_prefix(4);
  *v = r;
  return true;
}

bool ByteReader::U64(uint64_t* v) {
  if (in_.size() < 8) return false;
  uint64_t r = 0;
  for (int i = 0; i < 8; ++i) r |= static_cast<uint64_t>(static_cast<uint8_t>(in_[i])) << (8 * i);
  in_.remove_prefix(8);
  *v = r;
  return true;
}

bool ByteReader::I64(int64_t* v) {
  uint64_t u;
  if (!U64(&u)) return false;
  *v = static_cast<int64_t>(u);
  return true;
}

bool ByteReader::F32(float* v) {
  uint32_t bits;
  if (!U32(&bits)) return false;
  std::memcpy(v, &bits, sizeof(bits));
  return true;
}

bool ByteReader::F64(double* v) {
  uint64_t bits;
  if (!U64(&bits)) return false;
  std::memcpy(v, &bits, sizeof(bits));
  return true;
}

bool ByteReader::Bytes(size_t n, std::string_view* bytes) {
  if (in_.size() < n) return false;
  *bytes = in_.substr(0, n);
  in_.remove_prefix(n);
  return true;
}

uint64_t Fnv1a64(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : bytes) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

std::string SealEnvelope(uint32_t magic, uint32_t version, std::string_view body) {
  ByteWriter w;
  w.U32(magic);
  w.U32(version);
  w.U64(body.size());
  w.U64(Fnv1a64(body));
  w.Bytes(body);
  return w.Take();
}

absl::StatusOr<std::string_view> OpenEnvelope(std::string_view bytes, uint32_t magic,
                                              uint32_t version, std::string_view format) {
  const std::string what(format);
  ByteReader r(bytes);
  uint32_t got_magic, got_version;
  uint64_t length, checksum;
  if (!r.U32(&got_magic) || !r.U32(&got_version) || !r.U64(&length) || !r.U64(&checksum)) {
    return absl::DataLossError(absl::StrCat(what, ": ", bytes.size(), " bytes, shorter than the ",
                                            kEnvelopeHeaderBytes, "-byte header"));
  }
  if (got_magic != magic) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": wrong magic number"));
  }
  if (got_version != version) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": unsupported format version ",
                                                   got_version, " (expected ", version, ")"));
  }
  if (length != r.remaining()) {
    return absl::DataLossError(
        absl::StrCat(what, ": header says ", length, " body bytes, ", r.remaining(), " present"));
  }
  std::string_view body = bytes.substr(kEnvelopeHeaderBytes);
  if (Fnv1a64(body) != checksum) {
    return absl::DataLossError(absl::StrCat(what, ": checksum mismatch"));
  }
  return body;
}

}  // namespace lfl
