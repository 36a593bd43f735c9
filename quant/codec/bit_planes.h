// Bit-plane coding of quantized levels: the magnitude planes MSB-first, then the sign plane
// over the nonzero levels. Internal to lfl_codec; the layout is in quant/FORMAT.md.
#ifndef LFL_QUANT_CODEC_BIT_PLANES_H_
#define LFL_QUANT_CODEC_BIT_PLANES_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "quant/codec/wire_io.h"

namespace lfl::codec::internal {

// Appends the planes of `count` levels with |level| <= 2^bits - 1, 1 <= bits <= 8 (the caller
// has validated both).
void AppendLevelPlanes(const int32_t* levels, size_t count, int bits, ByteWriter* out);

// Reads the planes of `count` levels into *levels (resized to count). InvalidArgument /
// DataLoss on a bad marker, nonzero padding bits or short input.
absl::Status ReadLevelPlanes(ByteReader* in, size_t count, int bits, std::vector<int32_t>* levels);

}  // namespace lfl::codec::internal

#endif  // LFL_QUANT_CODEC_BIT_PLANES_H_
