#ifndef LOTTERYFL_CLIENT_CLIENT_HOST_H_
#define LOTTERYFL_CLIENT_CLIENT_HOST_H_

// ClientHost: one process carrying a range of virtual clients.
//
// It joins them, receives the run configuration from the server, loads the
// dataset once (clients share it and hold only index lists), then long-polls
// for tasks and trains at most `parallel` clients at once on a thread pool,
// one torch thread each. Transient refusals (UNAVAILABLE, RESOURCE_EXHAUSTED,
// ...) are logged with their cause and retried with exponential backoff and
// jitter: a busy server's RESOURCE_EXHAUSTED at upload resends the same update,
// other transient failures redo the task (a restarted server must serve the
// downlink again; training is seeded). An update the server refused (the
// status names the cause) ends its task: it is never trained again. After a
// server restart the clients re-join by themselves. A FINISHED poll ends Run() cleanly; Stop() (SIGTERM) lets the
// tasks in flight finish, leaves, and returns.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "client/bench_attack.h"
#include "fl/mask.h"
#include "proto/lotteryfl.grpc.pb.h"
#include "runtime/run_data.h"
#include "wire/model_payload.h"

namespace lfl {

struct LocalResult;

struct ClientOptions {
  std::string server = "127.0.0.1:50051";
  std::vector<int64_t> client_ids = {0};
  int parallel = 1;                      // clients trained at once
  std::map<int64_t, std::string> tokens;  // per-client tokens (empty: none)
  std::string tls_ca, tls_cert, tls_key;  // PEM files; tls_ca set = TLS (cert+key = mutual TLS)
  std::string host_name = "client-host";
  double max_backoff_seconds = 5;
  double give_up_seconds = 600;          // stop retrying after this long without reaching the server
  uint32_t poll_wait_ms = 1500;
  // Builds this host's run data from the joined configuration; null = LoadRunData (the
  // partition the server's config describes). lotteryfl-client --local-data sets it.
  std::function<absl::StatusOr<std::shared_ptr<const RunData>>(const RunConfig&)> load_data;
  BenchAttack bench_attack;  // benchmarks only
};

class ClientHost {
 public:
  // channel: use this channel instead of dialing options.server (the simulator's in-process one).
  // data: preloaded run data to share (the simulator); otherwise loaded from the joined config.
  ClientHost(ClientOptions options, std::shared_ptr<grpc::Channel> channel = nullptr,
             std::shared_ptr<const RunData> data = nullptr);
  ~ClientHost();

  // Runs until the server says finished (OK), Stop() (OK), or an unrecoverable error.
  absl::Status Run();
  void Stop();

  int64_t tasks_completed() const { return tasks_completed_.load(); }
  // Updates the server acknowledged, per round (duplicates of an accepted update included once).
  std::map<uint64_t, int64_t> sent_per_round() const;

 private:
  struct CachedMask {
    Mask mask;
    uint32_t version = 0;
  };
  absl::Status Connect();
  absl::Status JoinAll();
  void RunTask(int64_t client_id, uint64_t round, uint32_t attempt);
  // One task: download, train, upload (resent while the server answers RESOURCE_EXHAUSTED).
  absl::Status DoTask(int64_t client_id, uint64_t round, uint32_t attempt);
  struct Downlink {
    DecodedModel model;
    uint32_t version = 0;
    std::vector<int> layer_bits;
    double network_seconds = 0;
  };
  absl::Status FetchTask(int64_t client_id, uint64_t round, uint32_t attempt, Downlink* out);
  absl::Status Upload(const lotteryfl::v1::UpdateChunk& header, const std::string& payload);
  // A task this client cannot finish (its training or encoding failed, `why`, not transient):
  // tells the server (AbandonTask), so the round does not wait for it until the deadline.
  // Returns `why` for RunTask.
  absl::Status Abandon(int64_t client_id, uint64_t round, uint32_t attempt, const absl::Status& why);
  // Logs a transient refusal of `what` with its cause and backs off; false when the step should
  // give up (not transient, too many retries, or Stop()).
  bool RetryTransient(const char* what, int64_t client_id, uint64_t round, const absl::Status& s, int* failures);
  lotteryfl::v1::Credential CredentialFor(int64_t id) const;
  bool Backoff(int* failures);

  const ClientOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<lotteryfl::v1::Federation::Stub> stub_;
  std::shared_ptr<const RunData> data_;
  std::string session_;  // from the last Join (Run's thread only)
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> tasks_completed_{0};

  mutable absl::Mutex mu_;
  std::set<std::tuple<int64_t, uint64_t, uint32_t>> in_flight_ ABSL_GUARDED_BY(mu_);
  // Tasks that ended with a refusal, (round, attempt, client): never trained again.
  std::set<std::tuple<uint64_t, uint32_t, int64_t>> ended_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, CachedMask> masks_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
  std::map<uint64_t, int64_t> sent_per_round_ ABSL_GUARDED_BY(mu_);
};

// Builds channel credentials from the options (insecure when no TLS files are given).
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const ClientOptions& options);
// gRPC health check of a server (grpc.health.v1.Health/Check): OK when SERVING.
absl::Status ProbeServer(const ClientOptions& options, double timeout_seconds);

}  // namespace lfl

#endif  // LOTTERYFL_CLIENT_CLIENT_HOST_H_
