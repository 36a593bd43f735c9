#include "server/cli/server_cli.h"

#include <sys/resource.h>

#include <cerrno>
#include <cstring>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "models/trainer.h"
#include "runtime/run_data.h"
#include "runtime/torch_evaluator.h"

namespace lfl {
namespace {

void AddServerFlags(CLI::App& app, ServerOptions& options) {
  AddRunConfigFlags(app, options.config);
  app.add_option("--listen", options.listen, "gRPC address to listen on")->capture_default_str();
  app.add_option("--metrics-listen", options.metrics_listen,
                 "Prometheus /metrics (and /healthz) endpoint: host:port, or a bare port for 127.0.0.1:port "
                 "(empty: off). Bind a non-loopback address only on an internal network");
  app.add_flag("--metrics-tls", options.metrics.tls,
               "serve /metrics over HTTPS with the server's --tls-cert / --tls-key");
  app.add_option("--metrics-token-file", options.metrics.token_file,
                 "file holding a bearer token that GET /metrics must present (Authorization: Bearer ...); "
                 "/healthz stays open");
  app.add_option("--metrics-max-connections", options.metrics.max_connections,
                 "connections /metrics holds at once; a newcomer replaces the oldest one still waiting for a request")
      ->capture_default_str();
  app.add_option("--metrics-request-timeout-ms", options.metrics.request_timeout_ms,
                 "time a /metrics connection gets to deliver each whole request (and to take the reply)")
      ->capture_default_str();
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
}

// What one upload, one connection and the whole server may hold (FederationService's limits,
// ConnectionLimits, the gRPC memory quota).
void AddTransportLimitFlags(CLI::App& app, ServerOptions& options) {
  app.add_option("--max-concurrent-uploads", options.service_limits.max_concurrent_uploads,
                 "uploads in progress at once, counted from an admitted header (a valid credential for an open "
                 "task); more are refused with RESOURCE_EXHAUSTED (no_upload_slot)")
      ->capture_default_str();
  app.add_option("--pre-header-seconds", options.service_limits.pre_header_seconds,
                 "an upload stream that has not sent its header this long after opening is refused "
                 "(pre_header_timeout); it holds no upload slot meanwhile")
      ->capture_default_str();
  app.add_option("--max-pending-uploads", options.service_limits.max_pending_uploads,
                 "upload streams without a header held at once; a newer one replaces the oldest (pre_header_evicted)")
      ->capture_default_str();
  app.add_option("--upload-stall-seconds", options.service_limits.upload_stall_seconds,
                 "refuse an admitted upload that delivers nothing for this long (upload_stalled)")
      ->capture_default_str();
  app.add_option("--max-concurrent-streams", options.max_concurrent_streams,
                 "HTTP/2 streams one connection may have open; a client host needs --parallel + 2 (beyond it, "
                 "its calls queue)")
      ->capture_default_str();
  ConnectionLimits& conn = options.connection_limits;
  app.add_option("--handshake-timeout-ms", conn.handshake_timeout_ms,
                 "a connection must finish its TLS / HTTP/2 handshake within this")
      ->capture_default_str();
  app.add_option("--connection-idle-ms", conn.idle_ms,
                 "close a connection with no call in flight for this long (0: never)")
      ->capture_default_str();
  app.add_option("--connection-age-ms", conn.age_ms,
                 "ask a connection older than this to reconnect (GOAWAY; 0: never)")
      ->capture_default_str();
  app.add_option("--connection-age-grace-ms", conn.age_grace_ms,
                 "calls in flight on an aged connection get this long to finish before it is closed")
      ->capture_default_str();
  app.add_option("--keepalive-time-ms", conn.keepalive_time_ms,
                 "ping a quiet connection this often to find dead peers")
      ->capture_default_str();
  app.add_option("--keepalive-timeout-ms", conn.keepalive_timeout_ms,
                 "close a connection whose ping is not answered within this")
      ->capture_default_str();
  app.add_option("--min-ping-interval-ms", conn.min_recv_ping_interval_ms,
                 "a client pinging more often than this without data earns a strike")
      ->capture_default_str();
  app.add_option("--max-ping-strikes", conn.max_ping_strikes,
                 "strikes after which a pinging client's connection is closed (GOAWAY ENHANCE_YOUR_CALM)")
      ->capture_default_str();
  app.add_option("--memory-quota-bytes", options.memory_quota_bytes,
                 "gRPC memory quota of the server in bytes (all connections together)")
      ->capture_default_str();
}

// Every connection costs a descriptor and gRPC 1.51 has no connection cap, so the open-files
// limit is what bounds them: raise the soft limit to the hard one, and say so when it stays low.
void RaiseOpenFilesLimit() {
  constexpr rlim_t kLow = 4096;
  struct rlimit limit {};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    spdlog::warn("cannot read the open-files limit: {}", std::strerror(errno));
    return;
  }
  if (limit.rlim_cur < limit.rlim_max) {
    const rlim_t before = limit.rlim_cur;
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) {
      spdlog::warn("cannot raise the open-files limit from {} to {}: {}", before, limit.rlim_max, std::strerror(errno));
      getrlimit(RLIMIT_NOFILE, &limit);
    }
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < kLow) {
    spdlog::warn("open-files limit is {} (hard limit {}): every connection takes one, and idle or hostile peers "
                 "holding them can keep newcomers out; raise it (ulimit -Hn, LimitNOFILE=, --ulimit nofile=)",
                 limit.rlim_cur, limit.rlim_max);
  }
}

bool IsLoopbackListen(const std::string& host_port) {
  if (host_port.find(':') == std::string::npos || host_port.front() == ':') return true;  // "9090", ":9090"
  return host_port.rfind("127.", 0) == 0 || host_port.rfind("[::1]:", 0) == 0 || host_port.rfind("localhost:", 0) == 0;
}

// Logs each aggregated round's progress, a retry and the round's errors.
void LogRound(const RoundEvent& e, int64_t rounds) {
  if (e.retried) {
    spdlog::warn("round {}: only {}/{} updates (quorum not met); retrying", e.metrics.round, e.metrics.completed,
                 e.metrics.sampled);
  } else {
    spdlog::info("{}", FormatProgress(e.metrics, rounds));
  }
  for (const std::string& error : e.metrics.errors) spdlog::error("round {}: {}", e.metrics.round, error);
}

}  // namespace

absl::StatusOr<ServerLaunch> ParseServerCommandLine(int argc, char** argv) {
  ServerLaunch launch;
  CLI::App app{"lotteryfl-server: coordinates LotteryFL / FedAvg rounds over gRPC"};
  AddServerFlags(app, launch.options);
  AddTransportLimitFlags(app, launch.options);
  launch.exit_code = ParseCommandLine(app, argc, argv);
  if (launch.exit_code) return launch;
  if (absl::Status s = CheckServerOptions(launch.options); !s.ok()) return s;
  launch.warnings = ServerWarnings(launch.options);
  return launch;
}

std::vector<std::string> ServerWarnings(const ServerOptions& options) {
  std::vector<std::string> warnings;
  const bool no_tls = options.tls_cert.empty(), no_tokens = options.tokens_file.empty();
  if (options.insecure && (no_tls || no_tokens)) {
    warnings.push_back(absl::StrCat("--insecure: ", no_tls ? "TLS is OFF (traffic in CLEAR TEXT)" : "",
                                    no_tokens ? (no_tls ? "; no tokens (any peer may act as any client)"
                                                        : "no tokens (any peer may act as any client)")
                                              : "",
                                    " on ", options.listen));
  }
  if (!options.metrics_listen.empty() && !IsLoopbackListen(options.metrics_listen) &&
      options.metrics.token_file.empty()) {
    warnings.push_back(absl::StrCat("/metrics on ", options.metrics_listen,
                                    " without --metrics-token-file: whoever reaches it reads the run's counters; "
                                    "keep it on an internal network"));
  }
  return warnings;
}

absl::StatusOr<std::unique_ptr<FederationServer>> LaunchServer(const ServerLaunch& launch) {
  for (const std::string& warning : launch.warnings) spdlog::warn("{}", warning);
  RaiseOpenFilesLimit();
  ServerOptions options = launch.options;
  options.refusal_log = [](std::string_view cause, const std::string& detail) {
    spdlog::warn("refused ({}): {}", cause, detail);
  };
  SetMathThreads(2);
  absl::StatusOr<std::shared_ptr<const RunData>> data = LoadRunData(options.config);
  if (!data.ok()) return data.status();
  // Where the server assigned the data, aggregation weights and the test_count a client must
  // report come from its own partition; with client-data local it knows neither, and reported
  // counts are clamped to --max-client-samples.
  if (options.config.client_data == ClientDataSource::kPartition) {
    for (const ClientSplit& split : (*data)->partition.clients) {
      options.train_counts.push_back(static_cast<int64_t>(split.train.size()));
      options.test_counts.push_back(static_cast<int64_t>(split.test.size()));
    }
  }
  const int64_t rounds = options.config.rounds;
  absl::StatusOr<std::unique_ptr<FederationServer>> server =
      FederationServer::Start(options, (*data)->theta0, std::make_unique<TorchEvaluator>(*data),
                              [rounds](const RoundEvent& e) { LogRound(e, rounds); });
  if (!server.ok()) return server.status();
  spdlog::info("lotteryfl-server: {} clients, {} rounds, algorithm {}, quant {}, listening on port {}{}",
               options.config.clients, rounds, ModeName(options.config.algorithm), ModeName(options.config.quant),
               (*server)->port(), options.resume ? " (resumed)" : "");
  return server;
}

}  // namespace lfl
