#include "client/client_cli.h"

#include <atomic>
#include <csignal>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "common/file_io.h"
#include "config/run_config.h"
#include "models/trainer.h"
#include "nlohmann/json.hpp"
#include "runtime/local_data.h"
#include "runtime/run_data.h"

namespace lfl {
namespace {

// The host SIGINT / SIGTERM stop (RunClientHost's, while it runs).
std::atomic<ClientHost*> g_host{nullptr};
void OnSignal(int) {
  if (ClientHost* h = g_host.load()) h->Stop();
}

// The flags as given, before their checks.
struct ClientFlags {
  std::string ids = "0";
  std::string tokens_file, probe, local_data;
  bool insecure = false;
  std::string bench_attack = "none", bench_attack_clients;
};

void AddClientFlags(CLI::App& app, ClientFlags& f, ClientLaunch& launch) {
  ClientOptions& options = launch.options;
  app.add_option("--server", options.server, "server address host:port")->capture_default_str();
  app.add_option("--client-ids", f.ids, "client ids this process hosts, e.g. 0-49 or 0-4,10-14")
      ->capture_default_str();
  app.add_option("--parallel", options.parallel, "clients trained at once (one torch thread each)")
      ->capture_default_str();
  app.add_option("--tokens", f.tokens_file, "file of '<client-id> <token>' lines (this host uses its ids' tokens)");
  app.add_option("--tls-ca", options.tls_ca, "CA certificate (PEM) that signed the server's; enables TLS");
  app.add_option("--tls-cert", options.tls_cert, "client certificate (PEM) for mutual TLS");
  app.add_option("--tls-key", options.tls_key, "client private key (PEM) for mutual TLS");
  app.add_option("--host-name", options.host_name, "name of this host in the server's logs");
  app.add_option("--give-up", options.give_up_seconds, "seconds to keep retrying an unreachable server")
      ->capture_default_str();
  app.add_flag("--insecure", f.insecure,
               "allow a plaintext channel (no --tls-ca): tokens and models travel in clear text; only on a "
               "network you trust");
  app.add_option("--local-data", f.local_data,
                 "the clients' own data, for a server run with --client-data local: client k reads "
                 "DIR/client-<k>/ (or DIR itself when this host has one client), the dataset's standard "
                 "files (IDX: {train,t10k}-{images-idx3,labels-idx1}-ubyte; cifar10: data_batch_1.bin, "
                 "test_batch.bin) as lotteryfl-partition --export writes them; the validation slice is "
                 "carved from the training files, seeded (docs/local-data.md). Refused for a run with "
                 "client-data partition, and a local run refuses a client without it")
      ->type_name("DIR");
  app.add_option("--report", launch.report_file,
                 "at exit, write JSON here: tasks trained and the updates the server acknowledged per round");
  app.add_option("--bench-attack", f.bench_attack,
                 "BENCHMARKS OF THE SERVER'S DEFENSES ONLY: the --bench-attack-clients behave as attackers "
                 "(return-served | bias:DELTA | refetch:N | scale:F | signflip | noise:SIGMA; "
                 "bench/security/poison.sh, bench/robust/run.sh)")
      ->capture_default_str();
  app.add_option("--bench-attack-clients", f.bench_attack_clients, "ids that run --bench-attack, e.g. 3");
  app.add_option("--probe", f.probe, "only check the server's gRPC health at this address: exit 0 when SERVING");
}

// The run data for the joined configuration: the clients' own files (--local-data) for a
// client-data = local run, the server's partition otherwise; a mismatch is refused, not guessed.
absl::StatusOr<std::shared_ptr<const RunData>> LoadData(const RunConfig& config, const std::string& local_dir,
                                                        const std::vector<int64_t>& ids) {
  if (config.client_data == ClientDataSource::kLocal) {
    if (local_dir.empty()) {
      return absl::FailedPreconditionError(
          "the server's run has client-data local: every client brings its own files; pass "
          "--local-data DIR (see lotteryfl-client --help)");
    }
    return LoadLocalRunData(config, local_dir, ids);
  }
  if (!local_dir.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--local-data ", local_dir, " given, but the server's run has client-data ",
        std::string(ModeName(config.client_data)), ": its clients train on the server's partition; drop --local-data or run the server with "
        "--client-data local"));
  }
  return LoadRunData(config);
}

// The checks of a run's flags (not a probe's), in order; fills `launch`.
absl::Status CheckRunFlags(const ClientFlags& f, ClientLaunch& launch) {
  ClientOptions& options = launch.options;
  absl::StatusOr<std::vector<int64_t>> ids = ParseIdRanges(f.ids);
  if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("--client-ids: ", ids.status().message()));
  options.client_ids = *ids;
  launch.client_ids_text = f.ids;
  options.load_data = [local_data = f.local_data, ids = *ids](const RunConfig& config) {
    return LoadData(config, local_data, ids);
  };
  if (options.parallel < 1) return absl::InvalidArgumentError("--parallel must be >= 1");
  absl::StatusOr<BenchAttack> attack = ParseBenchAttack(f.bench_attack, f.bench_attack_clients);
  if (!attack.ok()) return absl::InvalidArgumentError(absl::StrCat("--bench-attack: ", attack.status().message()));
  if (attack->kind != BenchAttack::kNone) {
    launch.warnings.push_back(absl::StrCat("--bench-attack ", f.bench_attack, ": clients ", f.bench_attack_clients,
                                           " ATTACK the server (a benchmark of its defenses)"));
  }
  options.bench_attack = *std::move(attack);
  if (!f.tokens_file.empty()) {
    absl::StatusOr<std::map<int64_t, std::string>> tokens = ReadTokensFile(f.tokens_file);
    if (!tokens.ok()) return tokens.status();
    options.tokens = *std::move(tokens);
  }
  if (options.tls_ca.empty() && !f.insecure) {
    return absl::FailedPreconditionError(absl::StrCat(
        "refusing a plaintext channel to ", options.server,
        ": pass --tls-ca (the CA of the server's certificate, from scripts/gen-certs.sh), or --insecure on a "
        "network you trust"));
  }
  if (options.tls_ca.empty()) {
    launch.warnings.push_back("--insecure: TLS is OFF; tokens and models travel in CLEAR TEXT");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ClientLaunch> ParseClientCommandLine(int argc, char** argv) {
  ClientLaunch launch;
  ClientFlags flags;
  RunConfig ignored;  // the run configuration comes from the server when the clients join
  CLI::App app{"lotteryfl-client: hosts virtual clients that train LotteryFL tickets for a lotteryfl-server"};
  AddRunConfigFlags(app, ignored);
  AddClientFlags(app, flags, launch);
  launch.exit_code = ParseCommandLine(app, argc, argv);
  if (launch.exit_code) return launch;
  for (const RunConfigField& field : RunConfigFields()) {
    if (app.get_option(std::string("--") + field.name)->count() > 0) {
      launch.warnings.push_back(
          absl::StrCat("--", field.name, " is ignored here: the run configuration comes from the server"));
    }
  }
  if (!flags.probe.empty()) {
    launch.probe = true;
    launch.options.server = flags.probe;
    return launch;
  }
  if (absl::Status s = CheckRunFlags(flags, launch); !s.ok()) return s;
  return launch;
}

absl::Status RunClientHost(const ClientLaunch& launch) {
  const ClientOptions& options = launch.options;
  SetMathThreads(1);
  ClientHost host(options);
  g_host = &host;
  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  spdlog::info("lotteryfl-client: {} clients ({}) → {}, {} at a time", options.client_ids.size(),
               launch.client_ids_text, options.server, options.parallel);
  absl::Status s = host.Run();
  g_host = nullptr;
  if (!launch.report_file.empty()) {
    if (absl::Status w = WriteClientReport(launch.report_file, options.host_name, host); !w.ok()) {
      if (s.ok()) return absl::Status(w.code(), absl::StrCat("--report: ", w.message()));
      spdlog::error("--report: {}", std::string(w.message()));  // the run's own error is returned
    }
  }
  if (s.ok()) spdlog::info("done: {} tasks trained", host.tasks_completed());
  return s;
}

absl::Status WriteClientReport(const std::string& path, const std::string& host_name, const ClientHost& host) {
  nlohmann::ordered_json j;
  j["host"] = host_name;  // escaped by the library: --host-name is free text
  j["tasks"] = host.tasks_completed();
  j["sent_per_round"] = nlohmann::ordered_json::object();
  for (const auto& [round, n] : host.sent_per_round()) j["sent_per_round"][std::to_string(round)] = n;
  return WriteFileAtomically(path, j.dump() + "\n");
}

}  // namespace lfl
