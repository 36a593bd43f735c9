// RoundCoordinator alone (no network, no torch) against the number of registered clients K:
// the cost of a Tick while a round waits for its updates (nothing changing), of one client
// host's Poll, and of a whole round (100 sampled clients submit, the round closes). Per-client
// state is a copy-on-write ticket, so K = 1,000,000 fits in memory.
//   bench_coordinator --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <map>
#include <memory>

#include "strategy/strategy.h"
#include "server/coordinator/round_coordinator.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

constexpr int64_t kSampled = 100;

TensorSet Model(float w) {
  TensorSet s;
  s.tensors.push_back({"fc.weight", {16, 16}, std::vector<float>(256, w), true});
  s.tensors.push_back({"fc.bias", {16}, std::vector<float>(16, w), false});
  return s;
}

// A coordinator with K joined clients and round 1 open.
std::unique_ptr<RoundCoordinator> Make(int64_t k, double now) {
  CoordinatorOptions o;
  o.config.clients = k;
  o.config.fraction = static_cast<double>(kSampled) / static_cast<double>(k);
  o.config.rounds = 1000000;
  o.config.round_timeout = 1e9;
  o.config.algorithm = Algorithm::kLotteryFl;
  o.config.weighted = false;
  o.config.eval_every = 1000000;
  o.liveness_seconds = 1e12;
  auto c = std::make_unique<RoundCoordinator>(o, Model(0.f), *MakeStrategy(o.config), nullptr, "", now);
  for (int64_t id = 0; id < k; ++id) (void)c->Join({id, ""}, now);
  c->Tick(now);
  return c;
}

std::vector<Task> Tasks(RoundCoordinator& c, int64_t k, double now) {
  std::vector<Credential> all;
  // The sampled ids are unknown; ask for all (once per round, not per tick).
  all.reserve(static_cast<size_t>(k));
  for (int64_t id = 0; id < k; ++id) all.push_back({id, ""});
  return c.Poll(all, now)->tasks;
}

void BM_TickWhileWaiting(benchmark::State& state) {
  const int64_t k = state.range(0);
  double now = 1;
  auto c = Make(k, now);
  for (auto _ : state) {
    now += 1e-6;
    benchmark::DoNotOptimize(c->Tick(now));
  }
  state.counters["K"] = static_cast<double>(k);
}
BENCHMARK(BM_TickWhileWaiting)->Arg(1000)->Arg(1000000)->Unit(benchmark::kMicrosecond);

void BM_PollOneClient(benchmark::State& state) {
  const int64_t k = state.range(0);
  double now = 1;
  auto c = Make(k, now);
  const std::vector<Credential> one{{k / 2, ""}};
  for (auto _ : state) benchmark::DoNotOptimize(c->Poll(one, now));
  state.counters["K"] = static_cast<double>(k);
}
BENCHMARK(BM_PollOneClient)->Arg(1000)->Arg(1000000)->Unit(benchmark::kMicrosecond);

void BM_RoundOf100Updates(benchmark::State& state) {
  const int64_t k = state.range(0);
  double now = 1;
  auto c = Make(k, now);
  EncodeSpec spec;
  const std::string update = *EncodeModel(Model(0.5f), spec);
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<Task> tasks = Tasks(*c, k, now);
    state.ResumeTiming();
    for (const Task& t : tasks) {
      UpdateReport r;
      r.client_id = t.client_id;
      r.round = t.round;
      r.attempt = t.attempt;
      (void)c->Submit(r, update, now);
    }
    c->Tick(now);  // closes the round
    c->Tick(now);  // opens the next
  }
  state.counters["K"] = static_cast<double>(k);
}
BENCHMARK(BM_RoundOf100Updates)->Arg(1000)->Arg(1000000)->Unit(benchmark::kMillisecond)->Iterations(5);

}  // namespace
}  // namespace lfl

BENCHMARK_MAIN();
