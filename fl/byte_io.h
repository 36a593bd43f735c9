// Little-endian byte encoding shared by the checkpoint formats of fl/ and lottery/
// (TensorSet, Mask, ticket state). Not the wire codec (that lives in quant/codec).
//
// Every checkpoint blob is an envelope: magic (u32), format version (u32), body length (u64),
// FNV-1a-64 checksum of the body (u64), then the body. OpenEnvelope checks all four before a
// decoder reads a single body byte, so a truncated or bit-flipped file is refused, not misread.
#ifndef LFL_FL_BYTE_IO_H_
#define LFL_FL_BYTE_IO_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace lfl {

// Appends fixed-width little-endian values to a growing string.
class ByteWriter {
 public:
  void U8(uint8_t v);
  void U32(uint32_t v);
  void U64(uint64_t v);
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  void F32(float v);
  void F64(double v);
  // Raw bytes, no length prefix (write one with U64 first when the reader needs it).
  void Bytes(std::string_view bytes) { out_.append(bytes); }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads what ByteWriter wrote. Every call returns false (and reads nothing) when fewer bytes
// remain than it needs; callers turn that into a status.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  bool U8(uint8_t* v);
  bool U32(uint32_t* v);
  bool U64(uint64_t* v);
  bool I64(int64_t* v);
  bool F32(float* v);
  bool F64(double* v);
  bool Bytes(size_t n, std::string_view* bytes);
  size_t remaining() const { return in_.size(); }

 private:
  std::string_view in_;
};

// FNV-1a, 64-bit: a cheap corruption check, not a cryptographic hash.
uint64_t Fnv1a64(std::string_view bytes);

// Wraps `body` in the envelope described above.
std::string SealEnvelope(uint32_t magic, uint32_t version, std::string_view body);

// Returns the body of an envelope after checking magic, version, length and checksum.
// `format` names the format in error messages ("TensorSet", "Mask", ...).
// DataLossError for truncation or checksum mismatch, InvalidArgumentError for a wrong magic or
// an unsupported version. The view points into `bytes`.
absl::StatusOr<std::string_view> OpenEnvelope(std::string_view bytes, uint32_t magic,
                                              uint32_t version, std::string_view format);

}  // namespace lfl

#endif  // LFL_FL_BYTE_IO_H_
