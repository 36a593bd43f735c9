#include "quant/bsq/bit_planes.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

namespace lfl {
namespace {

int32_t MaxMagnitude(const std::vector<int32_t>& levels) {
  int32_t m = 0;
  for (int32_t l : levels) m = std::max(m, std::abs(l));
  return m;
}

bool AllEven(const std::vector<int32_t>& levels) {
  return std::all_of(levels.begin(), levels.end(), [](int32_t l) { return l % 2 == 0; });
}

// s · num / den in double, rounded once to float.
float RescaledScale(float scale, double num, double den) {
  return static_cast<float>(static_cast<double>(scale) * num / den);
}

BitPlanes AllZero(std::vector<int32_t> levels) {
  std::fill(levels.begin(), levels.end(), 0);
  return BitPlanes{0, 0.f, std::move(levels)};
}

}  // namespace

int32_t MaxLevel(int bits) { return bits <= 0 ? 0 : (int32_t{1} << bits) - 1; }

BitPlanes QuantizeUniform(const std::vector<float>& values, const std::vector<uint8_t>& keep,
                          int bits) {
  bits = std::clamp(bits, 1, kMaxBsqBits);
  auto kept = [&](size_t i) { return keep.empty() || keep[i] != 0; };
  float scale = 0.f;
  for (size_t i = 0; i < values.size(); ++i) {
    if (kept(i)) scale = std::max(scale, std::fabs(values[i]));
  }
  BitPlanes out{bits, scale, std::vector<int32_t>(values.size(), 0)};
  if (scale == 0.f) return out;
  const float max_level = static_cast<float>(MaxLevel(bits));
  for (size_t i = 0; i < values.size(); ++i) {
    if (kept(i))
      out.levels[i] = static_cast<int32_t>(std::nearbyint(values[i] / scale * max_level));
  }
  return out;
}

BitPlanes PropagateCarries(BitPlanes planes, int max_bits) {
  if (planes.bits <= 0) return AllZero(std::move(planes.levels));
  const int32_t needed = MaxMagnitude(planes.levels);
  const int cap = std::clamp(std::max(planes.bits, max_bits), 1, kMaxBsqBits);
  while (needed > MaxLevel(planes.bits) && planes.bits < cap) {
    planes.scale = RescaledScale(planes.scale, MaxLevel(planes.bits + 1), MaxLevel(planes.bits));
    ++planes.bits;
  }
  const int32_t limit = MaxLevel(planes.bits);
  for (int32_t& l : planes.levels) l = std::clamp(l, -limit, limit);
  return planes;
}

BitPlanes DropZeroPlanes(BitPlanes planes) {
  if (planes.bits <= 0) return AllZero(std::move(planes.levels));
  while (planes.bits > 0) {
    const int32_t m = MaxMagnitude(planes.levels);
    if (m == 0) return AllZero(std::move(planes.levels));
    const int n = planes.bits;
    if (m <= MaxLevel(n - 1)) {
      planes.scale = RescaledScale(planes.scale, MaxLevel(n - 1), MaxLevel(n));
    } else if (AllEven(planes.levels)) {
      for (int32_t& l : planes.levels) l /= 2;
      planes.scale = RescaledScale(planes.scale, 2.0 * MaxLevel(n - 1), MaxLevel(n));
    } else {
      break;
    }
    --planes.bits;
  }
  return planes;
}

BitPlanes Requantize(BitPlanes planes, int max_bits) {
  return DropZeroPlanes(PropagateCarries(std::move(planes), max_bits));
}

}  // namespace lfl
