// The integer form of a BSQ-quantized tensor and the re-quantization step
// that renormalizes it (Yang et al., ICLR 2021, "BSQ", §3.3), torch-free.
//
// A tensor with n magnitude bits and scale s stores signed integer levels L
// with |L| <= 2^n - 1 and means W = s * L / (2^n - 1), exactly
// codec::Dequantize(L, n, s). Bit plane b (0 = LSB) of the tensor is bit b of
// |L| for every element. "n-bit" excludes the sign: storage is n + 1 bits per
// kept weight. n = 0 means every value is zero (scale is then 0).
#ifndef LFL_QUANT_BSQ_BIT_PLANES_H_
#define LFL_QUANT_BSQ_BIT_PLANES_H_

#include <cstdint>
#include <vector>

namespace lfl {

// The largest precision any layer may have: 8 magnitude bits (DESIGN §1).
inline constexpr int kMaxBsqBits = 8;

struct BitPlanes {
  int bits = 0;                 // n, 0..kMaxBsqBits
  float scale = 0.f;            // s, the value of level 2^n - 1
  std::vector<int32_t> levels;  // one signed level per element
};

// Largest level magnitude representable with `bits` magnitude bits: 2^bits - 1.
int32_t MaxLevel(int bits);

// Uniform symmetric quantization of `values` to `bits` (1..kMaxBsqBits) with
// s = max |v| over the kept elements: L = round-half-even(v / s * (2^n - 1)).
// `keep` is empty (every element kept) or one flag per value; dropped
// elements get level 0. When every kept value is 0 the result is all-zero
// with the requested bits and scale 0.
BitPlanes QuantizeUniform(const std::vector<float>& values, const std::vector<uint8_t>& keep,
                          int bits);

// Grows the precision until every |level| fits, for levels that carry past
// 2^n - 1 (BSQ bits live in [0, 2], so Σ_b round(p_b - q_b)·2^b can reach
// 2·(2^n - 1)). Each added MSB keeps the step s / (2^n - 1), so values are
// unchanged: s' = s·(2^{n+1} - 1)/(2^n - 1). The precision never exceeds
// max(bits, max_bits); magnitudes still too large saturate at 2^n - 1.
// A 0-bit input stays all-zero.
BitPlanes PropagateCarries(BitPlanes planes, int max_bits);

// Removes all-zero bit planes without changing any value (up to the float
// rounding of the new scale, computed in double):
//  - all-zero MSB (every |L| < 2^{n-1}): n -> n-1, s' = s·(2^{n-1} - 1)/(2^n - 1);
//  - all-zero LSB (every L even):        L -> L/2, n -> n-1,
//                                        s' = 2s·(2^{n-1} - 1)/(2^n - 1).
// Repeats until neither applies. An all-zero tensor ends at 0 bits, scale 0.
BitPlanes DropZeroPlanes(BitPlanes planes);

// The BSQ re-quantization step on already-rounded levels:
// DropZeroPlanes(PropagateCarries(planes, max_bits)).
BitPlanes Requantize(BitPlanes planes, int max_bits);

}  // namespace lfl

#endif  // LFL_QUANT_BSQ_BIT_PLANES_H_
