// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, initial value and final xor 0xFFFFFFFF),
// the checksum of a codec payload's body. Debian's abseil 20220623 has no absl::crc32c, so the
// codec carries its own: the SSE4.2 crc32 instruction when the CPU has it, else slicing-by-8.
// Check value: Crc32c("123456789") == 0xE3069283.
#ifndef LFL_QUANT_CODEC_CRC32C_H_
#define LFL_QUANT_CODEC_CRC32C_H_

#include <cstdint>
#include <string_view>

namespace lfl::codec {

// Thread-safe; picks the fastest implementation available on this CPU.
uint32_t Crc32c(std::string_view data);

// The table-driven implementation alone (exposed so tests can compare it with Crc32c).
uint32_t Crc32cPortable(std::string_view data);

}  // namespace lfl::codec

#endif  // LFL_QUANT_CODEC_CRC32C_H_
