// Test data and nets shared by the torch tests of tests/models and tests/runtime.
#ifndef LOTTERYFL_TESTS_MODELS_SYNTHETIC_NET_H_
#define LOTTERYFL_TESTS_MODELS_SYNTHETIC_NET_H_

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "models/trainer.h"

namespace lfl::test {

// Four classes, each a fixed random template plus Gaussian noise of sd `noise`: something to
// learn in a few epochs. The same (n, seed, noise) gives the same data.
inline TensorData SyntheticData(int64_t n, uint64_t seed, double noise = 1.0) {
  torch::Generator generator = at::detail::createCPUGenerator(seed);
  const torch::Tensor templates = torch::randn({4, 1, 28, 28}, generator);
  TensorData data;
  data.labels = torch::randint(4, {n}, generator, torch::kInt64);
  const torch::Tensor jitter = torch::randn({n, 1, 28, 28}, generator);
  data.images = templates.index_select(0, data.labels) + (noise == 1.0 ? jitter : noise * jitter);
  return data;
}

// The indices from, from + 1, ..., to - 1.
inline std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> v(static_cast<size_t>(to - from));
  std::iota(v.begin(), v.end(), from);
  return v;
}

inline Net MakeMnistCnn(uint64_t seed) {
  absl::StatusOr<Net> net = MakeNet(ModelKind::kMnistCnn, NetShape{}, seed);
  EXPECT_TRUE(net.ok()) << net.status();
  return *std::move(net);
}

}  // namespace lfl::test

#endif  // LOTTERYFL_TESTS_MODELS_SYNTHETIC_NET_H_
