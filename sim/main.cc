// lotteryfl-sim: the server and N virtual clients in one process, over an
// in-process gRPC channel — the same code paths as separate processes.
//   lotteryfl-sim --config configs/lotteryfl-fmnist.toml --out runs/a

#include <algorithm>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "client/client_host.h"
#include "models/trainer.h"
#include "runtime/run_data.h"
#include "runtime/torch_evaluator.h"
#include "server/federation_server.h"
#include "server/coordinator/run_recorder.h"
#include "sim/local_run.h"

int main(int argc, char** argv) {
  lfl::ServerOptions server_options;
  lfl::RunConfig& config = server_options.config;
  // One more training client than cores keeps every core busy when the sampled count is not a
  // multiple of the core count (5 clients on 2 cores: 1.23 s/round at 3 against 1.34 s at 2).
  int parallel = static_cast<int>(std::max(2u, std::thread::hardware_concurrency() + 1));
  CLI::App app{"lotteryfl-sim: a federated run (server + virtual clients) in one process"};
  lfl::AddRunConfigFlags(app, config);
  app.add_option("--parallel", parallel, "clients trained at once (one torch thread each)")->capture_default_str();
  app.add_flag("--resume", server_options.resume, "continue from <out>/checkpoint.bin");
  std::string bench_attack = "none", bench_attack_clients;
  app.add_option("--bench-attack", bench_attack,
                 "BENCHMARKS OF THE SERVER'S DEFENSES ONLY: the --bench-attack-clients behave as attackers "
                 "(return-served | bias:DELTA | refetch:N | scale:F | signflip | noise:SIGMA; "
                 "bench/security/poison.sh, bench/robust/run.sh)")
      ->capture_default_str();
  app.add_option("--bench-attack-clients", bench_attack_clients, "ids that run --bench-attack, e.g. 3");
  if (std::optional<int> exit_code = lfl::ParseCommandLine(app, argc, argv)) return *exit_code;
  if (absl::Status s = lfl::ValidateRunConfig(config); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return 2;
  }
  if (parallel < 1) {
    spdlog::error("--parallel must be >= 1");
    return 2;
  }
  lfl::SetMathThreads(1);
  auto data = lfl::LoadRunData(config);
  if (!data.ok()) {
    spdlog::error("{}", std::string(data.status().message()));
    return 1;
  }
  spdlog::info("lotteryfl-sim: {} on {} ({} partition, {} clients, fraction {}), {} rounds x {} local epochs, quant {}",
               lfl::ModeName(config.algorithm), lfl::ModeName(config.dataset), lfl::ModeName(config.partition),
               config.clients, config.fraction, config.rounds, config.local_epochs, lfl::ModeName(config.quant));
  if (config.algorithm == lfl::Algorithm::kLocal) {
    absl::Status s = lfl::RunLocalOnly(*data, parallel, [&config](const lfl::RoundMetrics& m) {
      spdlog::info("{}", lfl::FormatProgress(m, config.rounds));
    });
    if (!s.ok()) {
      spdlog::error("{}", std::string(s.message()));
      return 1;
    }
    spdlog::info("summary: {} rounds of local training (no aggregation, no bytes), written to {}/summary.json",
                 config.rounds, config.out);
    return 0;
  }
  server_options.listen.clear();
  for (const lfl::ClientSplit& split : (*data)->partition.clients) {
    server_options.train_counts.push_back(static_cast<int64_t>(split.train.size()));
    server_options.test_counts.push_back(static_cast<int64_t>(split.test.size()));
  }
  const int64_t rounds = config.rounds;
  auto server = lfl::FederationServer::Start(
      server_options, (*data)->theta0, std::make_unique<lfl::TorchEvaluator>(*data),
      [rounds](const lfl::RoundEvent& e) {
        if (e.retried) {
          spdlog::warn("round {}: quorum not met ({}/{}); retrying", e.metrics.round, e.metrics.completed,
                       e.metrics.sampled);
        } else {
          spdlog::info("{}", lfl::FormatProgress(e.metrics, rounds));
        }
        for (const std::string& error : e.metrics.errors) spdlog::error("round {}: {}", e.metrics.round, error);
      });
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 1;
  }
  lfl::ClientOptions client_options;
  client_options.client_ids.clear();
  for (int64_t id = 0; id < config.clients; ++id) client_options.client_ids.push_back(id);
  client_options.parallel = parallel;
  client_options.host_name = "sim";
  {
    absl::StatusOr<lfl::BenchAttack> attack = lfl::ParseBenchAttack(bench_attack, bench_attack_clients);
    if (!attack.ok()) {
      spdlog::error("--bench-attack: {}", std::string(attack.status().message()));
      return 2;
    }
    if (attack->kind != lfl::BenchAttack::kNone) {
      spdlog::warn("--bench-attack {}: clients {} ATTACK the server (a benchmark of its defenses)", bench_attack,
                   bench_attack_clients);
    }
    client_options.bench_attack = *std::move(attack);
  }

  lfl::ClientHost host(client_options, (*server)->InProcessChannel(), *data);
  absl::Status host_status;
  std::thread clients([&] { host_status = host.Run(); });
  absl::Status s = (*server)->Wait();
  host.Stop();
  clients.join();
  if (!host_status.ok()) spdlog::error("clients: {}", std::string(host_status.message()));
  if (!s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return absl::IsCancelled(s) ? 0 : 1;
  }
  const auto totals = (*server)->coordinator().totals();
  spdlog::info("summary: {} rounds, uplink {:.1f} KB ({:.1f}x smaller than dense fp32), downlink {:.1f} KB "
               "({:.1f}x), written to {}/summary.json",
               totals.rounds_completed, totals.uplink_bytes / 1e3,
               totals.uplink_bytes ? double(totals.dense_fp32_bytes) / totals.uplink_bytes : 0.0,
               totals.downlink_bytes / 1e3,
               totals.downlink_bytes ? double(totals.dense_fp32_bytes) / totals.downlink_bytes : 0.0, config.out);
  return 0;
}
