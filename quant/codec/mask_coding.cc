#include "quant/codec/mask_coding.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "absl/strings/str_cat.h"

namespace lfl::codec::internal {
namespace {

// A Rice parameter k codes a gap g as (g >> k) zero bits, a one bit, then the low k bits of g.
constexpr int kMaxRiceParameter = 56;

uint64_t WordCount(uint64_t numel) { return (numel + 63) / 64; }

// Bits of word w that lie below numel.
uint64_t ValidBits(uint64_t w, uint64_t numel) {
  const uint64_t rest = numel - w * 64;
  return rest >= 64 ? ~uint64_t{0} : (uint64_t{1} << rest) - 1;
}

// Word w of the set whose positions are coded: the mask itself or its complement below numel.
uint64_t CodedWord(const BitWords& mask, uint64_t w, uint64_t numel, bool code_dropped) {
  return code_dropped ? ~mask[w] & ValidBits(w, numel) : mask[w];
}

// Calls fn(gap) for each coded position, gap = distance from the previous position minus one.
template <typename Fn>
void ForEachGap(const BitWords& mask, uint64_t numel, bool code_dropped, Fn fn) {
  uint64_t next = 0;  // previous position + 1
  for (uint64_t w = 0; w < WordCount(numel); ++w) {
    for (uint64_t bits = CodedWord(mask, w, numel, code_dropped); bits != 0; bits &= bits - 1) {
      const uint64_t pos = w * 64 + __builtin_ctzll(bits);
      fn(pos - next);
      next = pos + 1;
    }
  }
}

struct GapPlan {
  uint64_t count = 0;  // coded positions
  int k = 0;           // Rice parameter
  uint64_t stream_bytes = 0;
};

// The Rice parameter that minimizes the expected code length when gaps are geometric with
// mean `mean`: k + 1 + E[g >> k], where E[g >> k] = r / (1 - r) with r = P(g >= 2^k).
int ModelRiceParameter(double mean) {
  const double p = mean / (mean + 1);  // P(g >= 1)
  int best_k = 0;
  double best = std::numeric_limits<double>::infinity();
  for (int k = 0; k <= kMaxRiceParameter; ++k) {
    const double r = std::pow(p, std::ldexp(1.0, k));
    const double expected = k + 1 + (r < 1 ? r / (1 - r) : best);
    if (expected < best) {
      best = expected;
      best_k = k;
    }
  }
  return best_k;
}

// Chooses the Rice parameter with the smallest exact stream among the geometric model's choice
// and its two neighbours (a mask from magnitude pruning need not be geometric). A stream costs
// count * (k + 1) + sum(g >> k) bits; one branch-free pass sums g >> k for the three.
GapPlan PlanGaps(const BitWords& mask, uint64_t numel, bool code_dropped) {
  GapPlan plan;
  uint64_t gap_sum = 0;
  ForEachGap(mask, numel, code_dropped, [&](uint64_t gap) {
    ++plan.count;
    gap_sum += gap;
  });
  if (plan.count == 0) return plan;
  const int model_k =
      ModelRiceParameter(static_cast<double>(gap_sum) / static_cast<double>(plan.count));
  const int first_k = std::max(0, model_k - 1);
  const int last_k = std::min(kMaxRiceParameter, model_k + 1);
  uint64_t quotient_sums[3] = {};
  ForEachGap(mask, numel, code_dropped, [&](uint64_t gap) {
    for (int i = 0; i < 3; ++i) quotient_sums[i] += gap >> std::min(first_k + i, last_k);
  });
  uint64_t best_bits = ~uint64_t{0};
  for (int k = first_k; k <= last_k; ++k) {
    const uint64_t bits = plan.count * (k + 1) + quotient_sums[k - first_k];
    if (bits < best_bits) {
      best_bits = bits;
      plan.k = k;
    }
  }
  plan.stream_bytes = (best_bits + 7) / 8;
  return plan;
}

uint64_t VarintSize(uint64_t v) {
  uint64_t n = 1;
  for (; v >= 0x80; v >>= 7) ++n;
  return n;
}

uint64_t GapCodingSize(const GapPlan& plan) {
  return VarintSize(plan.count) + 1 + VarintSize(plan.stream_bytes) + plan.stream_bytes;
}

void AppendBitmap(const BitWords& mask, uint64_t numel, ByteWriter* out) {
  uint8_t* bytes = out->AppendUninitialized(static_cast<size_t>((numel + 7) / 8));
  const uint64_t full_words = numel / 64;
  for (uint64_t w = 0; w < full_words; ++w) StoreLittleEndian64(mask[w], bytes + 8 * w);
  for (uint64_t b = full_words * 8; b < (numel + 7) / 8; ++b) {
    bytes[b] = static_cast<uint8_t>(mask[b / 8] >> (8 * (b % 8)));
  }
}

void AppendGaps(const BitWords& mask, uint64_t numel, bool code_dropped, const GapPlan& plan,
                ByteWriter* out) {
  BitWriter bits(plan.stream_bytes * 8);
  ForEachGap(mask, numel, code_dropped, [&](uint64_t gap) { bits.PutRice(gap, plan.k); });
  const std::string_view stream = bits.bytes();
  out->PutVarint(plan.count);
  out->PutU8(static_cast<uint8_t>(plan.k));
  out->PutVarint(stream.size());
  out->PutBytes(stream.data(), stream.size());
}

absl::Status ReadBitmap(uint64_t numel, ByteReader* in, BitWords* mask) {
  const uint8_t* bytes;
  const uint64_t size = (numel + 7) / 8;
  if (!in->ReadBytes(size, &bytes)) return absl::DataLossError("truncated mask bitmap");
  if (numel % 8 != 0 && (bytes[size - 1] >> (numel % 8)) != 0) {
    return absl::InvalidArgumentError("mask bitmap has bits set past numel");
  }
  mask->assign(WordCount(numel), 0);
  const uint64_t full_words = numel / 64;
  for (uint64_t w = 0; w < full_words; ++w) (*mask)[w] = LoadLittleEndian64(bytes + 8 * w);
  for (uint64_t b = full_words * 8; b < size; ++b) {
    (*mask)[b / 8] |= uint64_t{bytes[b]} << (8 * (b % 8));
  }
  return absl::OkStatus();
}

// Decodes `count` gaps, toggling each coded position in `mask`.
absl::Status ReadGapStream(uint64_t numel, uint64_t count, int k, BitReader* bits, BitWords* mask) {
  uint64_t next = 0;  // previous position + 1
  for (uint64_t i = 0; i < count; ++i) {
    uint64_t gap;
    if (!bits->ReadRice(k, numel >> k, &gap)) {
      return absl::InvalidArgumentError("mask gap stream is malformed or too short");
    }
    if (gap >= numel - next) return absl::InvalidArgumentError("mask gap points past numel");
    const uint64_t pos = next + gap;
    (*mask)[pos / 64] ^= uint64_t{1} << (pos % 64);
    next = pos + 1;
  }
  return absl::OkStatus();
}

absl::Status ReadGaps(uint64_t numel, bool code_dropped, ByteReader* in, BitWords* mask) {
  uint64_t count, stream_bytes;
  uint8_t k;
  const uint8_t* stream;
  if (!in->ReadVarint(&count) || !in->ReadU8(&k) || !in->ReadVarint(&stream_bytes) ||
      !in->ReadBytes(stream_bytes, &stream)) {
    return absl::DataLossError("truncated mask gap header or stream");
  }
  if (count > numel) {
    return absl::InvalidArgumentError(absl::StrCat("mask gap count ", count, " exceeds numel"));
  }
  if (k > kMaxRiceParameter) {
    return absl::InvalidArgumentError(absl::StrCat("mask Rice parameter ", k, " exceeds 56"));
  }
  mask->assign(WordCount(numel), 0);
  if (code_dropped) {
    for (uint64_t w = 0; w < mask->size(); ++w) (*mask)[w] = ValidBits(w, numel);
  }
  BitReader bits(stream, static_cast<size_t>(stream_bytes));
  absl::Status status = ReadGapStream(numel, count, k, &bits, mask);
  if (!status.ok()) return status;
  // The stream must end within its last byte, padded with zero bits.
  const uint64_t padding = stream_bytes * 8 - bits.bits_consumed();
  uint64_t pad_bits;
  if (padding >= 8 || !bits.ReadBits(static_cast<int>(padding), &pad_bits) || pad_bits != 0) {
    return absl::InvalidArgumentError("mask gap stream has trailing data");
  }
  return absl::OkStatus();
}

}  // namespace

WireMask AppendExplicitMask(const BitWords& mask, uint64_t numel, ByteWriter* out) {
  uint64_t kept = 0;
  for (uint64_t word : mask) kept += PopCount64(word);
  const bool code_dropped = kept > numel / 2;
  const GapPlan plan = PlanGaps(mask, numel, code_dropped);
  if (GapCodingSize(plan) < (numel + 7) / 8) {
    const WireMask kind = code_dropped ? WireMask::kDroppedGaps : WireMask::kKeptGaps;
    out->PutU8(static_cast<uint8_t>(kind));
    AppendGaps(mask, numel, code_dropped, plan, out);
    return kind;
  }
  out->PutU8(static_cast<uint8_t>(WireMask::kBitmap));
  AppendBitmap(mask, numel, out);
  return WireMask::kBitmap;
}

absl::Status ReadExplicitMask(WireMask kind, uint64_t numel, ByteReader* in, BitWords* mask) {
  switch (kind) {
    case WireMask::kBitmap:
      return ReadBitmap(numel, in, mask);
    case WireMask::kKeptGaps:
      return ReadGaps(numel, /*code_dropped=*/false, in, mask);
    case WireMask::kDroppedGaps:
      return ReadGaps(numel, /*code_dropped=*/true, in, mask);
    default:
      return absl::InvalidArgumentError("not an explicit mask kind");
  }
}

}  // namespace lfl::codec::internal
