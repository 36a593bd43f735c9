// Throughput of the wire codec on one 1M-element tensor, in bytes of fp32 input/output per
// second (Google Benchmark's bytes_per_second):
//   Encode       = QuantizeUniform (dense fp32 -> levels) + Encode
//   EncodeRecord = Encode alone (levels already computed, as BSQ hands them over)
//   Decode       = Decode + ExpandToDense (bytes -> dense fp32)
// Cases: a sparse ticket (density 0.1, 4 bits, mask sent with the record or referenced) and a
// dense 8-bit tensor. Counter `wire_bits_per_weight` is the payload size per element.
//   build-codec/bin/bench_codec --benchmark_min_time=1
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "quant/codec/codec.h"

namespace lfl::codec {
namespace {

constexpr int64_t kNumel = 1 << 20;

struct Case {
  double density;
  int bits;
  bool reference_mask;
};

constexpr Case kSparse4{0.1, 4, false};
constexpr Case kSparse4Referenced{0.1, 4, true};
constexpr Case kDense8{1.0, 8, false};

struct Fixture {
  std::vector<float> dense;
  BitWords mask;  // empty for density 1
  Payload payload;
  std::string bytes;
};

Fixture MakeFixture(const Case& c) {
  std::mt19937_64 rng(42);
  std::normal_distribution<float> value(0.f, 0.05f);
  std::bernoulli_distribution keep(c.density);
  Fixture f;
  f.dense.resize(kNumel);
  for (float& v : f.dense) v = value(rng);
  if (c.density < 1.0) {
    f.mask.assign(kNumel / 64, 0);
    for (int64_t i = 0; i < kNumel; ++i) {
      if (keep(rng)) f.mask[i / 64] |= uint64_t{1} << (i % 64);
    }
  }
  const BitWords* mask = f.mask.empty() ? nullptr : &f.mask;
  f.payload.tensors.push_back(QuantizeUniform(0, {kNumel}, f.dense.data(), mask, c.bits));
  if (c.reference_mask) {
    f.payload.tensors[0].mask_kind = MaskKind::kReference;
    f.payload.tensors[0].mask.clear();
  }
  f.bytes = Encode(f.payload).value();
  return f;
}

void Report(benchmark::State& state, const Fixture& f) {
  state.SetBytesProcessed(state.iterations() * kNumel * static_cast<int64_t>(sizeof(float)));
  state.counters["wire_bits_per_weight"] = 8.0 * f.bytes.size() / kNumel;
}

void BM_Encode(benchmark::State& state, Case c) {
  const Fixture f = MakeFixture(c);
  const BitWords* mask = f.mask.empty() ? nullptr : &f.mask;
  for (auto _ : state) {
    Payload payload;
    payload.tensors.push_back(QuantizeUniform(0, {kNumel}, f.dense.data(), mask, c.bits));
    if (c.reference_mask) {
      payload.tensors[0].mask_kind = MaskKind::kReference;
      payload.tensors[0].mask.clear();
    }
    benchmark::DoNotOptimize(Encode(payload));
  }
  Report(state, f);
}

void BM_EncodeRecord(benchmark::State& state, Case c) {
  const Fixture f = MakeFixture(c);
  for (auto _ : state) benchmark::DoNotOptimize(Encode(f.payload));
  Report(state, f);
}

void BM_Decode(benchmark::State& state, Case c) {
  const Fixture f = MakeFixture(c);
  const BitWords* reference = c.reference_mask ? &f.mask : nullptr;
  std::vector<float> dense;
  for (auto _ : state) {
    absl::StatusOr<Payload> payload = Decode(f.bytes);
    if (!payload.ok() || !ExpandToDense(payload->tensors[0], reference, &dense).ok()) {
      state.SkipWithError("decode failed");
      return;
    }
    benchmark::DoNotOptimize(dense.data());
  }
  Report(state, f);
}

BENCHMARK_CAPTURE(BM_Encode, sparse10pct_4bit, kSparse4)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, sparse10pct_4bit_refmask, kSparse4Referenced)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, dense_8bit, kDense8)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeRecord, sparse10pct_4bit, kSparse4)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_EncodeRecord, dense_8bit, kDense8)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, sparse10pct_4bit, kSparse4)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, sparse10pct_4bit_refmask, kSparse4Referenced)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Decode, dense_8bit, kDense8)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lfl::codec

BENCHMARK_MAIN();
