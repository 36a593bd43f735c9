// Small builders shared by the fl/ and lottery/ tests.
#ifndef LFL_TESTS_FL_FL_TESTING_H_
#define LFL_TESTS_FL_FL_TESTING_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl::testing {

// One prunable 4x4 weight (every element `weight`) and a 4-element bias (every element `bias`):
// the model of the coordinator's attack tests, whose figures are easy to check by hand.
inline TensorSet FcModel(float weight, float bias) {
  TensorSet s;
  s.tensors.push_back({"fc.weight", {4, 4}, std::vector<float>(16, weight), true});
  s.tensors.push_back({"fc.bias", {4}, std::vector<float>(4, bias), false});
  return s;
}

// A small CNN-like layout with prunable weights (one not a multiple of 64 long) and biases.
inline TensorSet SmallModel(uint32_t seed) {
  TensorSet set;
  set.tensors = {{"conv1.weight", {4, 1, 3, 3}, {}, true},
                 {"conv1.bias", {4}, {}, false},
                 {"fc.weight", {3, 70}, {}, true},
                 {"fc.bias", {3}, {}, false}};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (NamedTensor& t : set.tensors) {
    t.values.resize(t.numel());
    for (float& v : t.values) v = dist(rng);
  }
  return set;
}

// Each prunable element kept with probability `keep`.
inline Mask RandomMask(const TensorSet& layout, uint32_t seed, double keep) {
  Mask mask = Mask::Full(layout);
  std::mt19937 rng(seed);
  std::bernoulli_distribution bit(keep);
  for (size_t t = 0; t < mask.num_tensors(); ++t) {
    if (!mask.prunable(t)) continue;
    for (int64_t i = 0; i < mask.numel(t); ++i) mask.Set(t, i, bit(rng));
  }
  return mask;
}

// Equal layouts and bit-for-bit equal values.
inline bool BitIdentical(const TensorSet& a, const TensorSet& b) {
  if (!a.SameLayout(b)) return false;
  for (size_t t = 0; t < a.size(); ++t) {
    const std::vector<float>& x = a.tensors[t].values;
    const std::vector<float>& y = b.tensors[t].values;
    if (x.size() != y.size() || (!x.empty() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) != 0)) {
      return false;
    }
  }
  return true;
}

}  // namespace lfl::testing

#endif  // LFL_TESTS_FL_FL_TESTING_H_
