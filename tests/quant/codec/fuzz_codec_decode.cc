// libFuzzer target for codec::Decode. Each input is decoded twice: as is (header checks) and
// wrapped in a freshly computed header (so arbitrary bytes reach the body parser past the
// CRC-32C). Whatever decodes must satisfy the codec's contract, or the target traps:
//   Encode(decoded) succeeds and decodes to the same payload, and ExpandToDense accepts every
//   record (referenced masks get a stand-in mask with the right kept count).
// Built by tests/quant/codec/CMakeLists.txt when LFL_FUZZ=ON with clang, or standalone by
// run_fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "quant/codec/codec.h"
#include "quant/codec/crc32c.h"
#include "quant/codec/wire_io.h"

namespace lfl::codec {
namespace {

void Require(bool property) {
  if (!property) __builtin_trap();
}

std::string Seal(std::string_view body) {
  std::string bytes;
  internal::ByteWriter out(&bytes);
  out.PutBytes("LFLQ", 4);
  out.PutU16(1);
  out.PutU16(0);
  out.PutU64(body.size());
  out.PutU32(Crc32c(body));
  bytes.append(body);
  return bytes;
}

bool SameRecord(const TensorRecord& a, const TensorRecord& b) {
  return a.id == b.id && a.shape == b.shape && a.bits == b.bits &&
         std::memcmp(&a.scale, &b.scale, sizeof a.scale) == 0 && a.mask_kind == b.mask_kind &&
         a.mask_version == b.mask_version && a.mask == b.mask && a.levels == b.levels &&
         a.values.size() == b.values.size() &&
         (a.values.empty() ||
          std::memcmp(a.values.data(), b.values.data(), a.values.size() * sizeof(float)) == 0);
}

// The first `kept` elements of `numel` set.
BitWords PrefixMask(int64_t numel, size_t kept) {
  BitWords mask((numel + 63) / 64, 0);
  for (size_t i = 0; i < kept; ++i) mask[i / 64] |= uint64_t{1} << (i % 64);
  return mask;
}

void CheckContract(const absl::StatusOr<Payload>& decoded, const DecodeLimits& limits) {
  if (!decoded.ok()) return;
  const absl::StatusOr<std::string> again = Encode(*decoded);
  Require(again.ok());
  const absl::StatusOr<Payload> twice = Decode(*again, limits);
  Require(twice.ok() && twice->round == decoded->round && twice->client_id == decoded->client_id &&
          twice->tensors.size() == decoded->tensors.size());
  std::vector<float> dense;
  for (size_t i = 0; i < decoded->tensors.size(); ++i) {
    const TensorRecord& r = decoded->tensors[i];
    Require(SameRecord(r, twice->tensors[i]));
    const size_t entries = r.bits == kRawBits ? r.values.size() : r.levels.size();
    const BitWords reference = r.mask_kind == MaskKind::kReference
                                   ? PrefixMask(*NumElements(r.shape), entries)
                                   : BitWords{};
    Require(ExpandToDense(r, &reference, &dense).ok());
  }
}

}  // namespace
}  // namespace lfl::codec

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace lfl::codec;
  DecodeLimits limits;  // small, so that a few input bytes cannot ask for gigabytes
  limits.max_elements_per_tensor = 1 << 20;
  limits.max_total_elements = 1 << 22;
  limits.max_tensors = 256;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckContract(Decode(input, limits), limits);
  CheckContract(Decode(Seal(input), limits), limits);
  return 0;
}
