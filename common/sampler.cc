#include "common/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lfl {

uint64_t Sampler::UniformInt(uint64_t n) {
  // Reject the top partial block of 2^64 so every residue is equally likely.
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % n;
  uint64_t x = rng_();
  while (x >= limit) x = rng_();
  return x % n;
}

std::vector<int64_t> Sampler::Choose(std::vector<int64_t> ids, size_t want) {
  if (ids.size() <= want) return ids;
  for (size_t i = 0; i < want; ++i) std::swap(ids[i], ids[i + UniformInt(ids.size() - i)]);
  ids.resize(want);
  std::sort(ids.begin(), ids.end());
  return ids;
}

double Sampler::UniformOpen() {
  // 53 random bits, centred in their cell: never exactly 0 or 1.
  return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53;
}

double Sampler::Normal() {
  constexpr double kTwoPi = 6.283185307179586;
  const double radius = std::sqrt(-2.0 * std::log(UniformOpen()));
  return radius * std::cos(kTwoPi * UniformOpen());
}

double Sampler::LogGamma(double shape) {
  if (shape < 1.0) {
    // Gamma(a) = Gamma(a + 1) * U^(1/a), taken in logs.
    return LogGamma(shape + 1.0) + std::log(UniformOpen()) / shape;
  }
  const double d = shape - 1.0 / 3.0;
  const double c = 1.0 / std::sqrt(9.0 * d);
  while (true) {
    const double x = Normal();
    const double t = 1.0 + c * x;
    if (t <= 0.0) continue;
    const double v = t * t * t;
    if (std::log(UniformOpen()) < 0.5 * x * x + d - d * v + d * std::log(v)) {
      return std::log(d * v);
    }
  }
}

std::vector<double> Sampler::Dirichlet(double alpha, int64_t n) {
  std::vector<double> p(n);
  for (double& x : p) x = LogGamma(alpha);
  const double max_log = *std::max_element(p.begin(), p.end());
  double sum = 0.0;
  for (double& x : p) {
    x = std::exp(x - max_log);
    sum += x;
  }
  for (double& x : p) x /= sum;
  return p;
}

}  // namespace lfl
