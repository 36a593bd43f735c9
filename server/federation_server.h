#ifndef LOTTERYFL_SERVER_FEDERATION_SERVER_H_
#define LOTTERYFL_SERVER_FEDERATION_SERVER_H_

// FederationServer: the gRPC server around RoundCoordinator, shared by
// lotteryfl-server and lotteryfl-sim. It owns a Boost.Asio io_context whose
// steady_timer ticks the coordinator (deadlines, round starts, long polls) and
// whose signal_set turns SIGINT/SIGTERM into "checkpoint and stop". Writes
// metrics.jsonl / summary.json through RunRecorder, serves the gRPC health
// service and, optionally, Prometheus /metrics over HTTP.

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/status/statusor.h"
#include "common/file_io.h"  // ReadTextFile, ReadTokensFile
#include "config/run_config.h"
#include "server/federation_service.h"
#include "server/coordinator/refusals.h"
#include "server/coordinator/round_coordinator.h"
#include "server/coordinator/run_recorder.h"

namespace lfl {

// gRPC server channel arguments that bound what connections cost (gRPC 1.51). gRPC 1.51 has no
// cap on the number of connections: each costs a descriptor, so RLIMIT_NOFILE bounds them (the
// server raises the soft limit to the hard one at start), and the timeouts below close the
// ones that do nothing. 0 leaves gRPC's own default.
struct ConnectionLimits {
  // A connection must finish its handshake (TLS, the HTTP/2 preface and SETTINGS) within this
  // (GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS; gRPC's default is 120 s).
  int handshake_timeout_ms = 10000;
  // A connection with no call in flight for this long is sent GOAWAY and closed
  // (GRPC_ARG_MAX_CONNECTION_IDLE_MS; default: never). A joined client long-polls, so it never
  // is idle; one that is reconnects by itself.
  int idle_ms = 120000;
  // A connection older than age_ms is sent GOAWAY; the calls in flight get age_grace_ms to
  // finish before it is closed (GRPC_ARG_MAX_CONNECTION_AGE_MS / _GRACE_MS; default: never).
  // The grace covers an upload (the client's deadline for one is 120 s).
  int age_ms = 3600000;
  int age_grace_ms = 120000;
  // The server pings a quiet connection every keepalive_time_ms and closes it when the answer
  // takes longer than keepalive_timeout_ms: dead peers do not keep descriptors (default 2 h).
  int keepalive_time_ms = 60000;
  int keepalive_timeout_ms = 20000;
  // Keepalive enforcement: a client that pings more often than this without data gets a
  // strike; after max_ping_strikes the server sends GOAWAY (ENHANCE_YOUR_CALM).
  // (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, GRPC_ARG_HTTP2_MAX_PING_STRIKES.)
  int min_recv_ping_interval_ms = 30000;
  int max_ping_strikes = 2;
};

// How /metrics and /healthz are served (MetricsHttpServer), beyond ServerOptions::metrics_listen.
struct MetricsOptions {
  bool tls = false;         // serve HTTPS with the server's --tls-cert / --tls-key
  std::string token_file;   // a file holding the bearer token /metrics requires (empty: none)
  int max_connections = 64;
  int request_timeout_ms = 2000;  // a connection gets this long to deliver each whole request
};

struct ServerOptions {
  RunConfig config;
  std::string listen = "0.0.0.0:50051";  // empty: in-process only (the simulator)
  // /metrics: "host:port", or "port" / ":port" for 127.0.0.1:port; empty: off. A non-loopback
  // host exposes the run's counters to whoever reaches it: only on an internal network, with
  // metrics.tls and/or metrics.token_file.
  std::string metrics_listen;
  MetricsOptions metrics;
  bool resume = false;                   // continue from <out>/checkpoint.bin
  std::string tls_cert, tls_key;         // PEM files; both empty = plaintext
  std::string tls_client_ca;             // PEM; set = mutual TLS (clients must present a certificate)
                                         // and host bindings in the tokens file are enforced
  std::string tokens_file;               // server/coordinator/authenticator.h format; empty = no tokens
  // Listening on a network requires TLS and a tokens file unless this is set (the in-process
  // simulator, with `listen` empty, needs neither).
  bool insecure = false;
  // Server-computed data sizes per client id (from the partition it assigned; see
  // CoordinatorOptions): aggregation weights and the test_count check. Empty: unknown.
  std::vector<int64_t> train_counts, test_counts;
  int64_t max_reported_samples = 100000;  // clamp for clients whose data the server does not know
  double max_update_norm = 1000;          // L2 bound on an update's distance to the global model; <= 0 off
  // Transport limits: gRPC memory quota for the whole server, concurrent streams per connection.
  int64_t memory_quota_bytes = 512ll << 20;
  // One client host multiplexes everything over one channel: a long poll, a heartbeat and one
  // fetch or upload per task it trains at once (--parallel), so it needs parallel + 2 streams.
  // 32 leaves room for --parallel 30; a host that wants more is slowed, not refused (gRPC
  // clients queue streams beyond the peer's limit). It bounds what one connection can hold.
  int max_concurrent_streams = 32;
  ConnectionLimits connection_limits;
  ServiceLimits service_limits;
  // Receives one line per transport refusal, rate-limited per cause (empty: not logged; the
  // counters count every one). Called from gRPC and timer threads.
  RefusalLogFn refusal_log;
  bool handle_signals = true;            // SIGINT/SIGTERM → checkpoint and stop
  double tick_seconds = 0.02;
};

// Called for every aggregated (or retried) round, from the server's timer thread.
using RoundCallback = std::function<void(const RoundEvent&)>;

class FederationServer {
 public:
  // Checks `options` (CheckServerOptions), restores the checkpoint on resume, binds and starts,
  // serving θ0 (theta0) as the first global model. Errors: CheckServerOptions's; those of the
  // tokens, certificate and metrics token files, the checkpoint and the output directory;
  // Unavailable when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<FederationServer>> Start(ServerOptions options, TensorSet theta0,
                                                                 std::unique_ptr<Evaluator> evaluator,
                                                                 RoundCallback on_round);
  ~FederationServer();

  // Blocks until the run finishes or Stop() / a signal; writes summary.json and, when the run
  // finished, model.bin (the final global model, fl/tensor_set.h serialization).
  // Returns the run's status (OK when all rounds completed, Cancelled when stopped early).
  absl::Status Wait();
  // Checkpoints and stops (thread-safe, idempotent).
  void Stop();

  int port() const { return port_; }
  std::shared_ptr<grpc::Channel> InProcessChannel();
  RoundCoordinator& coordinator() { return *coordinator_; }
  const RunRecorder& recorder() const { return *recorder_; }
  // Upload streams open right now (FederationService's bounded set).
  int open_uploads() const;
  // Upload streams open that have not delivered a header (they hold no slot).
  int pending_uploads() const;
  // The Prometheus text of the current state: what a scrape of /metrics returns, without
  // prometheus-cpp's own exposer_* families.
  std::string RenderMetrics() const;
  // The port /metrics is served on (ServerOptions::metrics_listen); 0 when off.
  int metrics_port() const;
  // Every refusal by cause, shared by the service, the coordinator and /metrics.
  const std::shared_ptr<RefusalCounters>& refusals() const { return refusals_; }

 private:
  FederationServer() = default;
  // The steps of Start, in order.
  void InitMetrics();
  absl::Status OpenCoordinator(const ServerOptions& options, const CoordinatorOptions& copts, TensorSet theta0,
                               std::unique_ptr<Strategy> strategy);
  absl::Status StartGrpc(const ServerOptions& options);
  absl::Status StartMetricsHttp(const ServerOptions& options);
  void StartTicking(bool handle_signals);
  void TickLoop();
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<RoundCoordinator> coordinator_;
  std::unique_ptr<RunRecorder> recorder_;
  std::shared_ptr<RefusalCounters> refusals_ = std::make_shared<RefusalCounters>();
  int port_ = 0;
};

// OK when `options` may start: listening on a network needs TLS (cert and key) and a tokens
// file unless options.insecure; FailedPrecondition says what is missing and how to fix it.
absl::Status CheckTransportSecurity(const ServerOptions& options);

// Every check of `options` that needs no file, in one place: Start makes them, and
// lotteryfl-server makes them before it loads any data (ParseServerCommandLine), so a bad flag
// fails at once. ValidateRunConfig; no --algorithm local (it has no server); --tls-cert and
// --tls-key together; CheckTransportSecurity. The message names the flag.
absl::Status CheckServerOptions(const ServerOptions& options);

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_FEDERATION_SERVER_H_
