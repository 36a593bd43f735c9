// Little-endian byte and bit streams used by the codec. Internal to lfl_codec.
//
// ByteWriter appends to a std::string it borrows. ByteReader walks a borrowed string_view and
// never reads past its end: every Read* returns false (and consumes nothing useful) when the
// input is too short or malformed, so callers turn a false into an error status.
#ifndef LFL_QUANT_CODEC_WIRE_IO_H_
#define LFL_QUANT_CODEC_WIRE_IO_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lfl::codec::internal {

inline uint64_t LoadLittleEndian64(const uint8_t* p) {
  uint64_t w;
  std::memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  return w;
}

// Set bits of w. Portable SWAR: __builtin_popcountll is a libgcc call on baseline x86-64.
inline int PopCount64(uint64_t w) {
  w -= (w >> 1) & 0x5555555555555555ull;
  w = (w & 0x3333333333333333ull) + ((w >> 2) & 0x3333333333333333ull);
  w = (w + (w >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return static_cast<int>((w * 0x0101010101010101ull) >> 56);
}

inline void StoreLittleEndian64(uint64_t w, uint8_t* p) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  w = __builtin_bswap64(w);
#endif
  std::memcpy(p, &w, 8);
}

class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}

  void PutU8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void PutU16(uint16_t v) { PutLittleEndian(v, 2); }
  void PutU32(uint32_t v) { PutLittleEndian(v, 4); }
  void PutU64(uint64_t v) { PutLittleEndian(v, 8); }
  void PutF32(float v) {
    uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    PutU32(bits);
  }
  // LEB128: 7 bits per byte, low group first, high bit = "more follows". At most 10 bytes.
  void PutVarint(uint64_t v) {
    while (v >= 0x80) {
      PutU8(static_cast<uint8_t>(v | 0x80));
      v >>= 7;
    }
    PutU8(static_cast<uint8_t>(v));
  }
  void PutBytes(const void* data, size_t n) { out_->append(static_cast<const char*>(data), n); }
  // Appends n bytes and returns a pointer to them (valid until the next append).
  uint8_t* AppendUninitialized(size_t n) {
    const size_t old = out_->size();
    out_->resize(old + n);
    return At(old);
  }
  size_t size() const { return out_->size(); }
  // The byte at `offset` (valid until the next append).
  uint8_t* At(size_t offset) { return reinterpret_cast<uint8_t*>(out_->data() + offset); }

 private:
  void PutLittleEndian(uint64_t v, int bytes) {
    char buf[8];
    for (int i = 0; i < bytes; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_->append(buf, bytes);
  }
  std::string* out_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}

  size_t remaining() const { return in_.size() - pos_; }
  size_t position() const { return pos_; }

  bool ReadU8(uint8_t* v) {
    if (remaining() < 1) return false;
    *v = static_cast<uint8_t>(in_[pos_++]);
    return true;
  }
  bool ReadU16(uint16_t* v) { return ReadLittleEndian(v, 2); }
  bool ReadU32(uint32_t* v) { return ReadLittleEndian(v, 4); }
  bool ReadU64(uint64_t* v) { return ReadLittleEndian(v, 8); }
  bool ReadF32(float* v) {
    uint32_t bits;
    if (!ReadU32(&bits)) return false;
    std::memcpy(v, &bits, sizeof bits);
    return true;
  }
  // Refuses varints longer than 10 bytes, bits beyond 64, and over-long encodings (a final
  // zero byte after the first), so every value has exactly one encoding.
  bool ReadVarint(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t byte;
      if (!ReadU8(&byte)) return false;
      const uint64_t group = byte & 0x7F;
      if (shift == 63 && group > 1) return false;
      result |= group << shift;
      if ((byte & 0x80) == 0) {
        if (byte == 0 && shift > 0) return false;
        *v = result;
        return true;
      }
    }
    return false;
  }
  // Points *bytes at the next n input bytes without copying.
  bool ReadBytes(uint64_t n, const uint8_t** bytes) {
    if (remaining() < n) return false;
    *bytes = reinterpret_cast<const uint8_t*>(in_.data() + pos_);
    pos_ += static_cast<size_t>(n);
    return true;
  }

 private:
  template <typename T>
  bool ReadLittleEndian(T* v, int bytes) {
    if (remaining() < static_cast<size_t>(bytes)) return false;
    uint64_t result = 0;
    for (int i = 0; i < bytes; ++i) {
      result |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += bytes;
    *v = static_cast<T>(result);
    return true;
  }
  std::string_view in_;
  size_t pos_ = 0;
};

// Bit stream, least significant bit of each byte first (bit i of the stream is bit i % 8 of
// byte i / 8). Used for Golomb-Rice coded gaps. Writes whole words into a buffer sized up
// front, so the caller must know the stream's length in bits (or an upper bound).
class BitWriter {
 public:
  explicit BitWriter(uint64_t max_bits) : buffer_((max_bits + 7) / 8 + 8, 0) {}

  // Appends the low `n` bits of v, n <= 56.
  void PutBits(uint64_t v, int n) {
    if (n == 0) return;
    acc_ |= (v & ((uint64_t{1} << n) - 1)) << fill_;
    fill_ += n;
    // Store the whole word; keep only the bits of the partial byte (fill_ stays <= 7).
    StoreLittleEndian64(acc_, &buffer_[byte_]);
    const int whole_bytes = fill_ / 8;
    byte_ += whole_bytes;
    acc_ = whole_bytes == 8 ? 0 : acc_ >> (8 * whole_bytes);
    fill_ %= 8;
  }
  // A Golomb-Rice code: (v >> k) zero bits, a one bit, then the low k bits of v; k <= 56.
  void PutRice(uint64_t v, int k) {
    uint64_t q = v >> k;
    const uint64_t remainder = v & ((uint64_t{1} << k) - 1);
    if (q + 1 + k <= 56) {
      PutBits((uint64_t{1} << q) | (remainder << (q + 1)), static_cast<int>(q) + 1 + k);
      return;
    }
    for (; q >= 56; q -= 56) PutBits(0, 56);
    PutBits(uint64_t{1} << q, static_cast<int>(q) + 1);
    PutBits(remainder, k);
  }
  // The stream written so far, padded with zero bits to a whole byte.
  std::string_view bytes() const {
    return std::string_view(reinterpret_cast<const char*>(buffer_.data()),
                            byte_ + (fill_ > 0 ? 1 : 0));
  }

 private:
  std::vector<uint8_t> buffer_;  // 8 spare bytes: PutBits always stores a whole word
  size_t byte_ = 0;
  uint64_t acc_ = 0;
  int fill_ = 0;
};

class BitReader {
 public:
  BitReader(const uint8_t* data, size_t size) : data_(data), size_bits_(uint64_t{size} * 8) {}

  uint64_t bits_consumed() const { return pos_; }

  // Reads n <= 56 bits.
  bool ReadBits(int n, uint64_t* v) {
    if (size_bits_ - pos_ < static_cast<uint64_t>(n)) return false;
    *v = n == 0 ? 0 : Window() & ((uint64_t{1} << n) - 1);
    pos_ += n;
    return true;
  }
  // Reads a Golomb-Rice code (see BitWriter::PutRice), k <= 56; false when the stream ends
  // first or the quotient would exceed `max_quotient`.
  bool ReadRice(int k, uint64_t max_quotient, uint64_t* v) {
    const size_t byte = static_cast<size_t>(pos_ >> 3);
    if (byte + 8 <= static_cast<size_t>(size_bits_ >> 3)) {
      // Fast path: 57+ valid bits in one load hold the whole code.
      const uint64_t window = LoadLittleEndian64(data_ + byte) >> (pos_ & 7);
      const int zeros = window == 0 ? 64 : __builtin_ctzll(window);
      if (zeros + 1 + k <= 56) {
        if (static_cast<uint64_t>(zeros) > max_quotient) return false;
        *v = (static_cast<uint64_t>(zeros) << k) |
             ((window >> (zeros + 1)) & ((uint64_t{1} << k) - 1));
        pos_ += zeros + 1 + k;
        return true;
      }
    }
    uint64_t quotient, remainder;
    if (!ReadUnary(max_quotient, &quotient) || !ReadBits(k, &remainder)) return false;
    *v = (quotient << k) | remainder;
    return true;
  }
  // Counts zero bits up to the next one bit (consumed too); false when the stream ends first or
  // the count would exceed `max_zeros`.
  bool ReadUnary(uint64_t max_zeros, uint64_t* q) {
    uint64_t zeros = 0;
    while (pos_ < size_bits_) {
      const uint64_t available = std::min<uint64_t>(56, size_bits_ - pos_);
      const uint64_t window = Window() & ((uint64_t{1} << available) - 1);
      if (window != 0) {
        const int tz = __builtin_ctzll(window);
        zeros += tz;
        pos_ += tz + 1;
        if (zeros > max_zeros) return false;
        *q = zeros;
        return true;
      }
      zeros += available;
      pos_ += available;
      if (zeros > max_zeros) return false;
    }
    return false;
  }

 private:
  // At least 56 valid bits starting at pos_ (fewer near the end; the rest are zero).
  uint64_t Window() const {
    const size_t byte = static_cast<size_t>(pos_ >> 3);
    const size_t size_bytes = static_cast<size_t>(size_bits_ >> 3);
    uint64_t w = 0;
    if (size_bytes - byte >= 8) {
      w = LoadLittleEndian64(data_ + byte);
    } else {
      for (size_t i = 0; byte + i < size_bytes; ++i) w |= uint64_t{data_[byte + i]} << (8 * i);
    }
    return w >> (pos_ & 7);
  }
  const uint8_t* data_;
  uint64_t size_bits_;
  uint64_t pos_ = 0;
};

}  // namespace lfl::codec::internal

#endif  // LFL_QUANT_CODEC_WIRE_IO_H_
