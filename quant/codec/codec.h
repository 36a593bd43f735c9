// lfl_codec: the torch-free wire format for a model or model update (quant/FORMAT.md has the
// layout byte by byte). Both directions use it: the downlink θg ⊙ m_k and the uplink.
//
// A Payload holds one TensorRecord per tensor. Quantized values travel as integer *levels*;
// sender and receiver turn levels into floats with the one canonical Dequantize() below, so the
// server decodes bit-for-bit the weights the client holds.
//
// Everything here is thread-compatible (no shared mutable state) and never throws. Decode never
// reads out of bounds or crashes on any input, however corrupt.
#ifndef LFL_QUANT_CODEC_CODEC_H_
#define LFL_QUANT_CODEC_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lfl::codec {

// Magnitude bits of a quantized record range over 0..kMaxQuantBits; kRawBits marks raw float32.
inline constexpr int kMaxQuantBits = 8;
inline constexpr int kRawBits = 32;

// Canonical dequantization, used by the encoder's callers (BSQ, uniform quantizer) AND the
// decoder so that both sides compute bit-identical floats:
//   value = scale * float(level) / float((1 << bits) - 1);   bits == 0 -> 0.
// Requires 0 <= bits <= kMaxQuantBits. Inline so that dense loops vectorize; the expression must
// not be rewritten (e.g. as a multiplication by a reciprocal), or the two sides could differ.
inline float Dequantize(int32_t level, int bits, float scale) {
  if (bits == 0) return 0.f;
  return scale * static_cast<float>(level) / static_cast<float>((1 << bits) - 1);
}

// Masks are packed bits: element i is bit (i % 64) of word (i / 64); bits past numel are zero.
// The same layout as lfl::Mask::words().
using BitWords = std::vector<uint64_t>;

enum class MaskKind : uint8_t {
  kAll = 0,        // every element kept; no mask on the wire
  kReference = 1,  // the receiver already holds mask `mask_version` for this tensor
  kExplicit = 2,   // the mask travels with the record
};

struct TensorRecord {
  uint32_t id = 0;             // index of the tensor in the model's TensorSet
  std::vector<int64_t> shape;  // dims >= 0; rank 0 is a scalar (numel 1)
  uint8_t bits = kRawBits;     // 0..8: quantized magnitude bits (sign separate); 32: raw float32
  float scale = 0.f;           // >= 0 and finite when bits <= 8; not sent (decodes as 0) for 32
  MaskKind mask_kind = MaskKind::kAll;
  uint32_t mask_version = 0;  // kReference only: the mask version the receiver holds
  // kExplicit only: exactly ceil(numel / 64) words. The encoder sends it as a bitmap or as
  // Golomb-Rice coded gaps between kept (or between dropped) elements, whichever is smallest.
  BitWords mask;
  // bits <= 8: one signed level per kept element, in element order, |level| <= 2^bits - 1.
  std::vector<int32_t> levels;
  // bits == 32: one finite value per kept element, in element order.
  std::vector<float> values;
};

// The kept count of a record is numel for kAll, CountKept(mask) for kExplicit, and
// levels.size() (or values.size() when bits == 32) for kReference — it travels on the wire.
struct Payload {
  uint64_t round = 0;      // informational; the RPC layer also checks it
  uint32_t client_id = 0;  // informational
  // Any number of records in any order. Ids are not checked for uniqueness: matching records to
  // the model (ids, shapes) is the caller's job.
  std::vector<TensorRecord> tensors;
};

// Protects the receiver from absurd lengths: Decode refuses (ResourceExhausted) a payload that
// would make it allocate more than these allow, before allocating.
struct DecodeLimits {
  // Largest numel of one tensor, and largest single dim (2^28 elements = 1 GiB of float32).
  uint64_t max_elements_per_tensor = 1ull << 28;
  // Largest sum of numel over all records of one payload (bounds Decode's memory at about
  // 4 bytes per element; the biggest model in the zoo has a few million).
  uint64_t max_total_elements = 1ull << 28;
  uint32_t max_tensors = 4096;  // records per payload
  uint32_t max_rank = 8;        // dims per tensor
};

// Serializes a payload. Validates first and returns InvalidArgument naming the tensor when:
// bits is not in 0..8 or 32; a dim is negative or numel overflows; scale is negative or not
// finite (bits <= 8); a level is out of range (bits <= 8) or a value is not finite (bits 32);
// the count of levels/values differs from the kept count; a kExplicit mask has the wrong word
// count or bits set past numel; a kAll/kReference record carries mask words; the record uses
// the wrong one of levels/values.
absl::StatusOr<std::string> Encode(const Payload& payload);

// Parses and validates a payload. Every length is checked against the buffer and `limits`; the
// body's CRC-32C is checked before anything else is parsed. Errors:
//   InvalidArgument  wrong magic or unsupported format version/flags (the message names them),
//                    or a malformed record (bad bits, non-finite scale or value, level out of
//                    range, nonzero padding bits, trailing bytes, ...);
//   DataLoss         truncated input, body length mismatch or CRC-32C mismatch;
//   ResourceExhausted a count, rank, dim or numel beyond `limits`.
// On success the records satisfy everything Encode validates, so Encode(*Decode(b)) succeeds
// and decodes to an equal payload. A kReference record comes back with mask_kind kReference
// and levels/values sized to the kept count carried on the wire.
absl::StatusOr<Payload> Decode(std::string_view bytes, const DecodeLimits& limits = {});

// Expands a record to numel floats in element order: Dequantize(level) (or the raw value) at
// kept elements, 0 at dropped ones. `reference_mask` is required for kReference (ignored
// otherwise) and must have ceil(numel / 64) words, no bits past numel, and exactly the
// record's kept count set. InvalidArgument on any size mismatch or a bad bits value; level
// ranges are not re-checked (Encode and Decode do that). Resizes *dense to numel.
absl::Status ExpandToDense(const TensorRecord& record, const BitWords* reference_mask,
                           std::vector<float>* dense);

// Builds a record from `numel(shape)` dense values, keeping the elements whose mask bit is set
// (mask == nullptr -> all kept, mask_kind kAll; otherwise kExplicit with a copy of the first
// ceil(numel / 64) words, bits past numel cleared; missing words count as zero).
//   bits == 32: raw values.
//   bits 0..8:  uniform symmetric quantization — scale = max |kept value|,
//               level = round(v / scale * (2^bits - 1)) (half away from zero); all levels are 0
//               when scale == 0 or bits == 0. This is the "uniform k-bit" baseline, also used
//               for biases. Dequantize(level) is within scale / (2^bits - 1) / 2 of v (plus
//               float rounding).
// If a kept value is not finite the record gets scale = NaN (bits <= 8) or keeps the value
// (bits 32), so Encode refuses it. Requires `dense` to hold numel values and bits in {0..8, 32}.
TensorRecord QuantizeUniform(uint32_t id, const std::vector<int64_t>& shape, const float* dense,
                             const BitWords* mask, int bits);

// Number of set bits among the first `numel` bits of `mask` (missing words count as zero).
int64_t CountKept(const BitWords& mask, int64_t numel);

// numel of a shape, or InvalidArgument for a negative dim or an overflow past 2^62.
absl::StatusOr<int64_t> NumElements(const std::vector<int64_t>& shape);

}  // namespace lfl::codec

#endif  // LFL_QUANT_CODEC_CODEC_H_
