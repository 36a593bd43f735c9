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
#include "server/round_coordinator.h"
#include "server/run_recorder.h"

namespace lfl {

struct ServerOptions {
  RunConfig config;
  std::string listen = "0.0.0.0:50051";  // empty: in-process only (the simulator)
  std::string metrics_listen;            // "host:port" for /metrics; empty: off
  bool resume = false;                   // continue from <out>/checkpoint.bin
  std::string tls_cert, tls_key;         // PEM files; both empty = plaintext
  std::string tls_client_ca;             // PEM; set = mutual TLS (clients must present a certificate)
                                         // and host bindings in the tokens file are enforced
  std::string tokens_file;               // server/authenticator.h format; empty = no tokens
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
  int max_concurrent_streams = 100;
  ServiceLimits service_limits;
  bool handle_signals = true;            // SIGINT/SIGTERM → checkpoint and stop
  double tick_seconds = 0.02;
};

// Called for every aggregated (or retried) round, from the server's timer thread.
using RoundCallback = std::function<void(const RoundEvent&)>;

class FederationServer {
 public:
  // Builds θ0 from the config's seed, restores the checkpoint on resume, binds and starts.
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
  // The Prometheus text of the current state: what a scrape of /metrics returns, without
  // prometheus-cpp's own exposer_* families.
  std::string RenderMetrics() const;
  // The port /metrics is served on (ServerOptions::metrics_listen); 0 when off.
  int metrics_port() const;

 private:
  FederationServer() = default;
  void TickLoop();
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<RoundCoordinator> coordinator_;
  std::unique_ptr<RunRecorder> recorder_;
  int port_ = 0;
};

// OK when `options` may start: listening on a network needs TLS (cert and key) and a tokens
// file unless options.insecure; FailedPrecondition says what is missing and how to fix it.
absl::Status CheckTransportSecurity(const ServerOptions& options);

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_FEDERATION_SERVER_H_
