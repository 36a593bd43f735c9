// The project's portable random sampler: the partitioners, the trainer's batch
// order and anything else that must give the same draws on every machine. Built
// on std::mt19937_64 — whose output the standard fixes — with this file's own
// transforms, so a seed gives the same values with any standard library
// (std::shuffle, std::uniform_int_distribution, std::gamma_distribution and
// friends are implementation-defined).
#ifndef LOTTERYFL_COMMON_SAMPLER_H_
#define LOTTERYFL_COMMON_SAMPLER_H_

#include <algorithm>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace lfl {

class Sampler {
 public:
  explicit Sampler(uint64_t seed) : rng_(seed) {}

  // Uniform integer in [0, n); n > 0. Unbiased (rejection sampling).
  uint64_t UniformInt(uint64_t n);

  // Uniform double in the open interval (0, 1).
  double UniformOpen();

  // Standard normal (Box–Muller).
  double Normal();

  // A sample of Dir(alpha, ..., alpha) with n components (alpha > 0, n > 0);
  // the components are non-negative and sum to 1. Computed from log-gamma
  // samples, so tiny alpha does not underflow every component to zero.
  std::vector<double> Dirichlet(double alpha, int64_t n);

  // `want` of `ids`, uniformly without replacement (a partial Fisher–Yates shuffle over
  // UniformInt, so every subset is equally likely), sorted; all of them when there are no more.
  std::vector<int64_t> Choose(std::vector<int64_t> ids, size_t want);

  // Fisher–Yates shuffle.
  template <typename T>
  void Shuffle(std::vector<T>* items) {
    for (size_t i = items->size(); i > 1; --i) {
      std::swap((*items)[i - 1], (*items)[UniformInt(i)]);
    }
  }

 private:
  // log of a Gamma(shape, 1) sample (Marsaglia–Tsang; shape < 1 by boosting).
  double LogGamma(double shape);

  std::mt19937_64 rng_;
};

}  // namespace lfl

#endif  // LOTTERYFL_COMMON_SAMPLER_H_
