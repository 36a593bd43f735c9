// lotteryfl-client: hosts a range of virtual clients and trains their tickets.
//   lotteryfl-client --server 10.0.0.1:50051 --client-ids 0-49 --parallel 2
//   lotteryfl-client --server 10.0.0.1:50051 --client-ids 3 --local-data /data/mine   (client-data local)

#include <csignal>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "nlohmann/json.hpp"

#include "client/client_host.h"
#include "common/file_io.h"
#include "config/run_config.h"
#include "models/trainer.h"
#include "runtime/local_data.h"
#include "runtime/run_data.h"

namespace {
std::atomic<lfl::ClientHost*> g_host{nullptr};
void OnSignal(int) {
  if (lfl::ClientHost* h = g_host.load()) h->Stop();
}

// The run data for the joined configuration: the clients' own files (--local-data) for a
// client-data = local run, the server's partition otherwise; a mismatch is refused, not guessed.
absl::StatusOr<std::shared_ptr<const lfl::RunData>> LoadData(const lfl::RunConfig& config,
                                                             const std::string& local_dir,
                                                             const std::vector<int64_t>& ids) {
  if (config.client_data == lfl::ClientDataSource::kLocal) {
    if (local_dir.empty()) {
      return absl::FailedPreconditionError(
          "the server's run has client-data local: every client brings its own files; pass "
          "--local-data DIR (see lotteryfl-client --help)");
    }
    return lfl::LoadLocalRunData(config, local_dir, ids);
  }
  if (!local_dir.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--local-data ", local_dir, " given, but the server's run has client-data ", std::string(lfl::ModeName(config.client_data)),
        ": its clients train on the server's partition; drop --local-data or run the server with "
        "--client-data local"));
  }
  return lfl::LoadRunData(config);
}
}  // namespace

int main(int argc, char** argv) {
  lfl::ClientOptions options;
  std::string ids = "0";
  std::string tokens_file, probe, report_file, local_data;
  lfl::RunConfig ignored;  // the run configuration comes from the server when the clients join
  CLI::App app{"lotteryfl-client: hosts virtual clients that train LotteryFL tickets for a lotteryfl-server"};
  lfl::AddRunConfigFlags(app, ignored);
  app.add_option("--server", options.server, "server address host:port")->capture_default_str();
  app.add_option("--client-ids", ids, "client ids this process hosts, e.g. 0-49 or 0-4,10-14")->capture_default_str();
  app.add_option("--parallel", options.parallel, "clients trained at once (one torch thread each)")
      ->capture_default_str();
  app.add_option("--tokens", tokens_file, "file of '<client-id> <token>' lines (this host uses its ids' tokens)");
  app.add_option("--tls-ca", options.tls_ca, "CA certificate (PEM) that signed the server's; enables TLS");
  app.add_option("--tls-cert", options.tls_cert, "client certificate (PEM) for mutual TLS");
  app.add_option("--tls-key", options.tls_key, "client private key (PEM) for mutual TLS");
  app.add_option("--host-name", options.host_name, "name of this host in the server's logs");
  app.add_option("--give-up", options.give_up_seconds, "seconds to keep retrying an unreachable server")
      ->capture_default_str();
  bool insecure = false;
  app.add_flag("--insecure", insecure,
               "allow a plaintext channel (no --tls-ca): tokens and models travel in clear text; only on a "
               "network you trust");
  app.add_option("--local-data", local_data,
                 "the clients' own data, for a server run with --client-data local: client k reads "
                 "DIR/client-<k>/ (or DIR itself when this host has one client), the dataset's standard "
                 "files (IDX: {train,t10k}-{images-idx3,labels-idx1}-ubyte; cifar10: data_batch_1.bin, "
                 "test_batch.bin) as lotteryfl-partition --export writes them; the validation slice is "
                 "carved from the training files, seeded (docs/local-data.md). Refused for a run with "
                 "client-data partition, and a local run refuses a client without it")
      ->type_name("DIR");
  app.add_option("--report", report_file,
                 "at exit, write JSON here: tasks trained and the updates the server acknowledged per round");
  std::string bench_attack = "none", bench_attack_clients;
  app.add_option("--bench-attack", bench_attack,
                 "BENCHMARKS OF THE SERVER'S DEFENSES ONLY: the --bench-attack-clients behave as attackers "
                 "(return-served | bias:DELTA | refetch:N | scale:F | signflip | noise:SIGMA; "
                 "bench/security/poison.sh, bench/robust/run.sh)")
      ->capture_default_str();
  app.add_option("--bench-attack-clients", bench_attack_clients, "ids that run --bench-attack, e.g. 3");
  app.add_option("--probe", probe, "only check the server's gRPC health at this address: exit 0 when SERVING");
  if (std::optional<int> exit_code = lfl::ParseCommandLine(app, argc, argv)) return *exit_code;

  for (const lfl::RunConfigField& field : lfl::RunConfigFields()) {
    if (app.get_option(std::string("--") + field.name)->count() > 0) {
      spdlog::warn("--{} is ignored here: the run configuration comes from the server", field.name);
    }
  }
  if (!probe.empty()) {
    options.server = probe;
    absl::Status s = lfl::ProbeServer(options, 5);
    if (!s.ok()) spdlog::error("probe {}: {}", probe, std::string(s.message()));
    return s.ok() ? 0 : 1;
  }
  auto parsed = lfl::ParseIdRanges(ids);
  if (!parsed.ok()) {
    spdlog::error("--client-ids: {}", std::string(parsed.status().message()));
    return 2;
  }
  options.client_ids = *parsed;
  options.load_data = [local_data, ids = *parsed](const lfl::RunConfig& config) {
    return LoadData(config, local_data, ids);
  };
  if (options.parallel < 1) {
    spdlog::error("--parallel must be >= 1");
    return 2;
  }
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
    options.bench_attack = *std::move(attack);
  }

  if (!tokens_file.empty()) {
    auto tokens = lfl::ReadTokensFile(tokens_file);
    if (!tokens.ok()) {
      spdlog::error("{}", std::string(tokens.status().message()));
      return 2;
    }
    options.tokens = *tokens;
  }
  if (options.tls_ca.empty() && !insecure) {
    spdlog::error("refusing a plaintext channel to {}: pass --tls-ca (the CA of the server's certificate, "
                  "from scripts/gen-certs.sh), or --insecure on a network you trust",
                  options.server);
    return 2;
  }
  if (options.tls_ca.empty()) spdlog::warn("--insecure: TLS is OFF; tokens and models travel in CLEAR TEXT");
  lfl::SetMathThreads(1);
  lfl::ClientHost host(options);
  g_host = &host;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  spdlog::info("lotteryfl-client: {} clients ({}) → {}, {} at a time", options.client_ids.size(), ids,
               options.server, options.parallel);
  absl::Status s = host.Run();
  g_host = nullptr;
  if (!report_file.empty()) {
    nlohmann::ordered_json j;
    j["host"] = options.host_name;  // escaped by the library: --host-name is free text
    j["tasks"] = host.tasks_completed();
    j["sent_per_round"] = nlohmann::ordered_json::object();
    for (const auto& [round, n] : host.sent_per_round()) j["sent_per_round"][std::to_string(round)] = n;
    if (absl::Status w = lfl::WriteFileAtomically(report_file, j.dump() + "\n"); !w.ok()) {
      spdlog::error("--report: {}", std::string(w.message()));
      if (s.ok()) return 1;
    }
  }
  if (!s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return 1;
  }
  spdlog::info("done: {} tasks trained", host.tasks_completed());
  return 0;
}
