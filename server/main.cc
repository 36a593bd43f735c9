// lotteryfl-server: coordinates a federated run over gRPC.
//   lotteryfl-server --config configs/lotteryfl-fmnist.toml --listen 0.0.0.0:50051 --out runs/a

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "models/trainer.h"
#include "runtime/run_data.h"
#include "runtime/torch_evaluator.h"
#include "server/federation_server.h"

int main(int argc, char** argv) {
  lfl::ServerOptions options;
  CLI::App app{"lotteryfl-server: coordinates LotteryFL / FedAvg rounds over gRPC"};
  lfl::AddRunConfigFlags(app, options.config);
  app.add_option("--listen", options.listen, "gRPC address to listen on")->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "host:port for the Prometheus /metrics endpoint (empty: off)");
  app.add_flag("--resume", options.resume, "continue from <out>/checkpoint.bin");
  app.add_option("--tls-cert", options.tls_cert, "server certificate (PEM); enables TLS");
  app.add_option("--tls-key", options.tls_key, "server private key (PEM)");
  app.add_option("--tls-client-ca", options.tls_client_ca, "CA (PEM) for mutual TLS: clients must present a cert");
  app.add_option("--tokens", options.tokens_file, "file of '<client-id> <token>' lines; every call is checked");
  app.add_flag("--insecure", options.insecure,
               "allow listening without TLS and/or without a tokens file (then anyone who reaches the port can "
               "read models and act as any client); only on a network you trust");
  app.add_option("--max-update-norm", options.max_update_norm,
                 "refuse an update whose L2 distance to the global model it was trained from exceeds this "
                 "(<= 0: no bound)")
      ->capture_default_str();
  app.add_option("--max-client-samples", options.max_reported_samples,
                 "clamp for the sample count a client reports when the server did not assign its data")
      ->capture_default_str();
  app.add_option("--max-concurrent-uploads", options.service_limits.max_concurrent_uploads,
                 "upload streams open at once; more are refused with RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--upload-stall-seconds", options.service_limits.upload_stall_seconds,
                 "cancel an upload stream that delivers nothing for this long")
      ->capture_default_str();
  app.add_option("--memory-quota-bytes", options.memory_quota_bytes,
                 "gRPC memory quota of the server in bytes (all connections together)")
      ->capture_default_str();
  if (std::optional<int> exit_code = lfl::ParseCommandLine(app, argc, argv)) return *exit_code;

  if (absl::Status s = lfl::ValidateRunConfig(options.config); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return 2;
  }
  if (options.config.algorithm == "local") {
    spdlog::error("--algorithm local trains every client alone, with no server: run it with lotteryfl-sim");
    return 2;
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    spdlog::error("--tls-cert and --tls-key go together");
    return 2;
  }
  if (absl::Status s = lfl::CheckTransportSecurity(options); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return 2;
  }
  if (options.insecure && (options.tls_cert.empty() || options.tokens_file.empty())) {
    spdlog::warn("--insecure: {}{} on {}", options.tls_cert.empty() ? "TLS is OFF (traffic in CLEAR TEXT)" : "",
                 options.tokens_file.empty() ? (options.tls_cert.empty() ? "; no tokens (any peer may act as any client)"
                                                                         : "no tokens (any peer may act as any client)")
                                             : "",
                 options.listen);
  }
  lfl::SetMathThreads(2);
  auto data = lfl::LoadRunData(options.config);
  if (!data.ok()) {
    spdlog::error("{}", std::string(data.status().message()));
    return 1;
  }
  // Where the server assigned the data, aggregation weights and the test_count a client must
  // report come from its own partition; with client-data local it knows neither, and reported
  // counts are clamped to --max-client-samples.
  if (options.config.client_data == "partition") {
    for (const lfl::ClientSplit& split : (*data)->partition.clients) {
      options.train_counts.push_back(static_cast<int64_t>(split.train.size()));
      options.test_counts.push_back(static_cast<int64_t>(split.test.size()));
    }
  }
  const int64_t rounds = options.config.rounds;
  auto server = lfl::FederationServer::Start(
      options, (*data)->theta0, std::make_unique<lfl::TorchEvaluator>(*data), [rounds](const lfl::RoundEvent& e) {
        if (e.retried) {
          spdlog::warn("round {}: only {}/{} updates (quorum not met); retrying", e.metrics.round,
                       e.metrics.completed, e.metrics.sampled);
        } else {
          spdlog::info("{}", lfl::FormatProgress(e.metrics, rounds));
        }
        for (const std::string& error : e.metrics.errors) spdlog::error("round {}: {}", e.metrics.round, error);
      });
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 1;
  }
  spdlog::info("lotteryfl-server: {} clients, {} rounds, algorithm {}, quant {}, listening on port {}{}",
               options.config.clients, rounds, options.config.algorithm, options.config.quant, (*server)->port(),
               options.resume ? " (resumed)" : "");
  absl::Status s = (*server)->Wait();
  if (s.ok()) {
    spdlog::info("run finished: {}/summary.json", options.config.out);
    return 0;
  }
  if (absl::IsCancelled(s)) {
    spdlog::info("stopped; checkpoint in {}/checkpoint.bin (restart with --resume)", options.config.out);
    return 0;
  }
  spdlog::error("{}", std::string(s.message()));
  return 1;
}
