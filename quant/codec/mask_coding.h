// Coding of explicit masks: a raw bitmap, or Golomb-Rice coded gaps between the positions of
// the minority bit value (kept elements when the mask is sparse, dropped ones when it is
// dense), whichever is smaller. Internal to lfl_codec; the layout is in quant/FORMAT.md.
#ifndef LFL_QUANT_CODEC_MASK_CODING_H_
#define LFL_QUANT_CODEC_MASK_CODING_H_

#include <cstdint>

#include "absl/status/status.h"
#include "quant/codec/codec.h"
#include "quant/codec/wire_io.h"

namespace lfl::codec::internal {

// The mask-kind byte of a record on the wire.
enum class WireMask : uint8_t {
  kAll = 0,
  kReference = 1,
  kBitmap = 2,
  kKeptGaps = 3,
  kDroppedGaps = 4,
};

// Appends the kind byte and the smallest coding of `mask` (ceil(numel / 64) words, no bits
// past numel). Returns the kind chosen.
WireMask AppendExplicitMask(const BitWords& mask, uint64_t numel, ByteWriter* out);

// Reads the coding that follows a kBitmap / kKeptGaps / kDroppedGaps kind byte into `mask`
// (resized to ceil(numel / 64) words). InvalidArgument / DataLoss on malformed or short input.
absl::Status ReadExplicitMask(WireMask kind, uint64_t numel, ByteReader* in, BitWords* mask);

}  // namespace lfl::codec::internal

#endif  // LFL_QUANT_CODEC_MASK_CODING_H_
