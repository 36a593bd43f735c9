// The pieces of one client host's long-poll against the number K of clients the host carries
// (the host sends every credential in each PollRequest: architecture.md, "Batched long-poll
// per host"). A poll is asked again on every state change (each accepted update), so a round
// of 100 updates pays the server's part about 100 times. Measures, for K = 1,000 / 10,000 /
// 100,000, with round 1 open and 100 clients sampled:
//   BM_BuildPollRequest  the host builds and serializes the request (ClientHost::Run)
//   BM_ParsePollRequest  the service parses it (gRPC, once per poll RPC)
//   BM_ToCredentials     FederationService::AnswerPoll converts the credentials (every re-answer)
//   BM_CoordinatorPoll   RoundCoordinator::Poll with all K credentials (Heartbeat + task scan)
//   bench_scale_poll --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>

#include <memory>

#include "strategy/strategy.h"
#include "server/federation_service.h"
#include "server/coordinator/round_coordinator.h"

namespace lfl {
namespace {

namespace v1 = lotteryfl::v1;

constexpr int64_t kSampled = 100;

// A coordinator with K joined clients and round 1 open (a one-tensor model: the poll path
// does not touch the model).
std::unique_ptr<RoundCoordinator> OpenRound(int64_t k, double now) {
  CoordinatorOptions o;
  o.config.clients = k;
  o.config.fraction = static_cast<double>(kSampled) / static_cast<double>(k);
  o.config.rounds = 10;
  o.config.algorithm = Algorithm::kLotteryFl;
  o.config.weighted = false;
  o.liveness_seconds = 1e12;
  TensorSet model;
  model.tensors.push_back({"fc.weight", {16, 16}, std::vector<float>(256, 0.f), true});
  auto c = std::make_unique<RoundCoordinator>(o, std::move(model), *MakeStrategy(o.config), nullptr, "", now);
  for (int64_t id = 0; id < k; ++id) (void)c->Join({id, ""}, now);
  c->Tick(now);
  return c;
}

v1::PollRequest HostRequest(int64_t k) {
  v1::PollRequest request;
  request.set_host("bench");
  request.set_wait_ms(1500);
  for (int64_t id = 0; id < k; ++id) request.add_clients()->set_client_id(id);
  return request;
}

void BM_BuildPollRequest(benchmark::State& state) {
  const int64_t k = state.range(0);
  for (auto _ : state) benchmark::DoNotOptimize(HostRequest(k).SerializeAsString());
  state.counters["K"] = static_cast<double>(k);
  state.counters["bytes"] = static_cast<double>(HostRequest(k).ByteSizeLong());
}
BENCHMARK(BM_BuildPollRequest)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

void BM_ParsePollRequest(benchmark::State& state) {
  const int64_t k = state.range(0);
  const std::string bytes = HostRequest(k).SerializeAsString();
  for (auto _ : state) {
    v1::PollRequest request;
    benchmark::DoNotOptimize(request.ParseFromString(bytes));
  }
  state.counters["K"] = static_cast<double>(k);
}
BENCHMARK(BM_ParsePollRequest)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

void BM_ToCredentials(benchmark::State& state) {
  const int64_t k = state.range(0);
  const v1::PollRequest request = HostRequest(k);
  for (auto _ : state) benchmark::DoNotOptimize(ToCredentials(request.clients(), ""));
  state.counters["K"] = static_cast<double>(k);
}
BENCHMARK(BM_ToCredentials)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

void BM_CoordinatorPoll(benchmark::State& state) {
  const int64_t k = state.range(0);
  const double now = 1;
  auto c = OpenRound(k, now);
  v1::PollRequest request = HostRequest(k);
  const std::vector<Credential> all = ToCredentials(request.clients(), "");
  size_t tasks = 0;
  for (auto _ : state) {
    absl::StatusOr<PollResult> r = c->Poll(all, now);
    tasks = r->tasks.size();
    benchmark::DoNotOptimize(r);
  }
  state.counters["K"] = static_cast<double>(k);
  state.counters["tasks"] = static_cast<double>(tasks);
}
BENCHMARK(BM_CoordinatorPoll)->Arg(1000)->Arg(10000)->Arg(100000)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace lfl

BENCHMARK_MAIN();
