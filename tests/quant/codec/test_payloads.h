// Random records and payload comparison shared by the codec tests.
#ifndef LFL_TESTS_QUANT_CODEC_TEST_PAYLOADS_H_
#define LFL_TESTS_QUANT_CODEC_TEST_PAYLOADS_H_

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "quant/codec/codec.h"

namespace lfl::codec::testing {

inline int64_t Numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// Each element kept with probability `density`.
inline BitWords RandomMask(int64_t numel, double density, std::mt19937_64& rng) {
  BitWords mask((numel + 63) / 64, 0);
  std::bernoulli_distribution keep(density);
  for (int64_t i = 0; i < numel; ++i) {
    if (keep(rng)) mask[i / 64] |= uint64_t{1} << (i % 64);
  }
  return mask;
}

struct RecordSpec {
  std::vector<int64_t> shape;
  double density = 1.0;  // ignored for kAll
  int bits = 32;
  MaskKind kind = MaskKind::kAll;
  bool allow_zero_levels = true;  // false: every kept level is nonzero (when bits > 0)
};

// A valid record: random mask, levels uniform over the full signed range, normal values.
inline TensorRecord RandomRecord(uint32_t id, const RecordSpec& spec, std::mt19937_64& rng) {
  TensorRecord r;
  r.id = id;
  r.shape = spec.shape;
  r.bits = static_cast<uint8_t>(spec.bits);
  r.mask_kind = spec.kind;
  const int64_t numel = Numel(spec.shape);
  int64_t kept = numel;
  if (spec.kind != MaskKind::kAll) {
    BitWords mask = RandomMask(numel, spec.density, rng);
    kept = CountKept(mask, numel);
    r.mask_version = static_cast<uint32_t>(rng() % 1000);
    if (spec.kind == MaskKind::kExplicit) r.mask = std::move(mask);
  }
  if (spec.bits == 32) {
    std::normal_distribution<float> value(0.f, 0.1f);
    for (int64_t i = 0; i < kept; ++i) r.values.push_back(value(rng));
    return r;
  }
  r.scale = std::uniform_real_distribution<float>(0.01f, 2.f)(rng);
  const int32_t max_level = (1 << spec.bits) - 1;
  std::uniform_int_distribution<int32_t> level(-max_level, max_level);
  for (int64_t i = 0; i < kept; ++i) {
    int32_t l = level(rng);
    while (!spec.allow_zero_levels && max_level > 0 && l == 0) l = level(rng);
    r.levels.push_back(l);
  }
  return r;
}

inline bool SameFloatBits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// Field-by-field comparison with readable failures; floats compare bit for bit.
inline void ExpectSameRecord(const TensorRecord& a, const TensorRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.shape, b.shape);
  EXPECT_EQ(a.bits, b.bits);
  EXPECT_TRUE(SameFloatBits(a.scale, b.scale)) << a.scale << " vs " << b.scale;
  EXPECT_EQ(a.mask_kind, b.mask_kind);
  EXPECT_EQ(a.mask_version, b.mask_version);
  EXPECT_EQ(a.mask, b.mask);
  EXPECT_EQ(a.levels, b.levels);
  ASSERT_EQ(a.values.size(), b.values.size());
  for (size_t i = 0; i < a.values.size(); ++i) {
    ASSERT_TRUE(SameFloatBits(a.values[i], b.values[i])) << "value " << i;
  }
}

inline void ExpectSamePayload(const Payload& a, const Payload& b) {
  EXPECT_EQ(a.round, b.round);
  EXPECT_EQ(a.client_id, b.client_id);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    SCOPED_TRACE("tensor " + std::to_string(i));
    ExpectSameRecord(a.tensors[i], b.tensors[i]);
  }
}

}  // namespace lfl::codec::testing

#endif  // LFL_TESTS_QUANT_CODEC_TEST_PAYLOADS_H_
