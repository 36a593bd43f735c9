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
#include "config/run_config.h"
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
  std::string tokens_file;               // lines "<client-id> <token>"; empty = no tokens
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
  // Prometheus text of the current state.
  std::string RenderMetrics() const;

 private:
  FederationServer() = default;
  void TickLoop();
  class Impl;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<RoundCoordinator> coordinator_;
  std::unique_ptr<RunRecorder> recorder_;
  int port_ = 0;
};

// Reads "<client-id> <token>" lines ('#' comments allowed).
absl::StatusOr<std::map<int64_t, std::string>> ReadTokensFile(const std::string& path);
// Reads a whole file (TLS material).
absl::StatusOr<std::string> ReadTextFile(const std::string& path);

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_FEDERATION_SERVER_H_
