#include "quant/bsq/bit_planes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <vector>

#include "quant/codec/codec.h"

namespace lfl {
namespace {

using ::testing::ElementsAre;

std::vector<float> Values(const BitPlanes& p) {
  std::vector<float> out;
  for (int32_t l : p.levels) out.push_back(codec::Dequantize(l, p.bits, p.scale));
  return out;
}

// Values agree to float rounding of the rescaled scale (a few ulps).
void ExpectSameValues(const BitPlanes& a, const BitPlanes& b) {
  const std::vector<float> va = Values(a), vb = Values(b);
  ASSERT_EQ(va.size(), vb.size());
  for (size_t i = 0; i < va.size(); ++i) EXPECT_FLOAT_EQ(va[i], vb[i]) << "element " << i;
}

TEST(BitPlanesTest, MaxLevel) {
  EXPECT_EQ(MaxLevel(0), 0);
  EXPECT_EQ(MaxLevel(1), 1);
  EXPECT_EQ(MaxLevel(8), 255);
}

TEST(BitPlanesTest, QuantizeUniformUsesMaxOfKeptValuesAndZeroesDropped) {
  const BitPlanes p = QuantizeUniform({0.5f, -1.0f, 0.25f, 9.0f}, {1, 1, 1, 0}, 2);
  EXPECT_EQ(p.bits, 2);
  EXPECT_FLOAT_EQ(p.scale, 1.0f);
  // 0.5·3 = 1.5 rounds half-to-even to 2; 0.25·3 = 0.75 rounds to 1.
  EXPECT_THAT(p.levels, ElementsAre(2, -3, 1, 0));
}

TEST(BitPlanesTest, QuantizeUniformAllZeroKeptValues) {
  const BitPlanes p = QuantizeUniform({0.f, 3.f}, {1, 0}, 4);
  EXPECT_FLOAT_EQ(p.scale, 0.f);
  EXPECT_THAT(p.levels, ElementsAre(0, 0));
}

TEST(BitPlanesTest, CarryAddsMsbAndKeepsValues) {
  // 2 bits, levels up to 6 = 2·(2^2 - 1): bits in [0, 2] carried into bit 2.
  const BitPlanes in{2, 3.0f, {6, -1, 0, 3}};
  const BitPlanes out = PropagateCarries(in, 8);
  EXPECT_EQ(out.bits, 3);
  EXPECT_FLOAT_EQ(out.scale, 7.0f);  // 3 · 7/3
  EXPECT_THAT(out.levels, ElementsAre(6, -1, 0, 3));
  ExpectSameValues(in, out);
  // No plane is all-zero (6 needs bit 2, -1 needs bit 0): Requantize agrees.
  const BitPlanes req = Requantize(in, 8);
  EXPECT_EQ(req.bits, 3);
  EXPECT_THAT(req.levels, ElementsAre(6, -1, 0, 3));
}

TEST(BitPlanesTest, CarryIsCappedAtMaxBitsAndSaturates) {
  const BitPlanes at_cap = PropagateCarries({8, 1.0f, {510, -300, 7}}, 8);
  EXPECT_EQ(at_cap.bits, 8);
  EXPECT_FLOAT_EQ(at_cap.scale, 1.0f);
  EXPECT_THAT(at_cap.levels, ElementsAre(255, -255, 7));

  // 7 bits may grow to 8, then 400 > 255 still saturates.
  const BitPlanes grown = PropagateCarries({7, 127.0f, {400, 3}}, 8);
  EXPECT_EQ(grown.bits, 8);
  EXPECT_FLOAT_EQ(grown.scale, 255.0f);
  EXPECT_THAT(grown.levels, ElementsAre(255, 3));

  // A lower cap holds the layer at its current precision.
  const BitPlanes held = PropagateCarries({3, 7.0f, {9, -8, 1}}, 3);
  EXPECT_EQ(held.bits, 3);
  EXPECT_THAT(held.levels, ElementsAre(7, -7, 1));
}

TEST(BitPlanesTest, AllZeroLayerGoesToZeroBits) {
  const BitPlanes out = Requantize({8, 0.7f, {0, 0, 0}}, 8);
  EXPECT_EQ(out.bits, 0);
  EXPECT_FLOAT_EQ(out.scale, 0.f);
  EXPECT_THAT(out.levels, ElementsAre(0, 0, 0));
  for (float v : Values(out)) EXPECT_EQ(v, 0.f);
}

TEST(BitPlanesTest, LsbDropHalvesLevels) {
  const BitPlanes in{3, 7.0f, {6, -2, 4, 0}};
  const BitPlanes out = DropZeroPlanes(in);
  EXPECT_EQ(out.bits, 2);
  EXPECT_FLOAT_EQ(out.scale, 6.0f);  // 2 · 7 · 3/7
  EXPECT_THAT(out.levels, ElementsAre(3, -1, 2, 0));
  ExpectSameValues(in, out);
}

TEST(BitPlanesTest, RepeatedLsbDrops) {
  const BitPlanes in{4, 15.0f, {4, -8}};
  const BitPlanes out = DropZeroPlanes(in);
  EXPECT_EQ(out.bits, 2);
  EXPECT_FLOAT_EQ(out.scale, 12.0f);  // 15 → 2·15·7/15 = 14 → 2·14·3/7 = 12
  EXPECT_THAT(out.levels, ElementsAre(1, -2));
  ExpectSameValues(in, out);
}

TEST(BitPlanesTest, MsbDropKeepsLevelsAndValues) {
  const BitPlanes in{8, 0.5f, {3, -17, 100, 0}};
  const BitPlanes out = DropZeroPlanes(in);
  EXPECT_EQ(out.bits, 7);  // 100 needs bit 6; 3 and -17 are odd
  EXPECT_FLOAT_EQ(out.scale, 0.5f * 127.f / 255.f);
  EXPECT_THAT(out.levels, ElementsAre(3, -17, 100, 0));
  ExpectSameValues(in, out);
}

TEST(BitPlanesTest, SingleSurvivingPlaneBecomesOneBit) {
  // Only bit 5 is ever set: five LSBs and two MSBs drop, one bit remains.
  const BitPlanes in{8, 2.0f, {32, -32, 0}};
  const BitPlanes out = DropZeroPlanes(in);
  EXPECT_EQ(out.bits, 1);
  EXPECT_THAT(out.levels, ElementsAre(1, -1, 0));
  ExpectSameValues(in, out);
}

// Property: on random inputs the result is canonical (top plane used, some
// odd level), fits its bits, and dequantizes to the same values.
TEST(BitPlanesTest, RandomRequantizationIsCanonicalAndValuePreserving) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    const int bits = 1 + static_cast<int>(rng() % 8);
    const int shift = static_cast<int>(rng() % bits);
    const int32_t max_level = 2 * MaxLevel(bits) >> shift;  // carries, and zero LSBs
    std::uniform_int_distribution<int32_t> level(-max_level, max_level);
    BitPlanes in{bits, std::uniform_real_distribution<float>(0.01f, 2.f)(rng), {}};
    for (int i = 0; i < 20; ++i) in.levels.push_back(level(rng) * (int32_t{1} << shift));
    const BitPlanes out = Requantize(in, 8);
    const BitPlanes carried = PropagateCarries(in, 8);
    ExpectSameValues(carried, out);
    if (out.bits == 0) continue;
    int32_t m = 0;
    bool any_odd = false;
    for (int32_t l : out.levels) {
      m = std::max(m, std::abs(l));
      any_odd |= (l % 2 != 0);
    }
    EXPECT_LE(m, MaxLevel(out.bits));
    EXPECT_GT(m, MaxLevel(out.bits - 1));
    EXPECT_TRUE(any_odd);
  }
}

}  // namespace
}  // namespace lfl
