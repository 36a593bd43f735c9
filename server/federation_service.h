#ifndef LOTTERYFL_SERVER_FEDERATION_SERVICE_H_
#define LOTTERYFL_SERVER_FEDERATION_SERVICE_H_

// The gRPC callback service: translates RPCs into calls on RoundCoordinator
// and never swallows a status. Long polls park their reactor in a waiter list
// that Pump() (driven by the server's Asio timer) completes when a task
// appears, the run finishes, or the poll's wait runs out.

#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/lotteryfl.grpc.pb.h"
#include "server/round_coordinator.h"

namespace lfl {

// absl::Status → grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

struct ServiceLimits {
  uint32_t max_chunk_bytes = 1u << 20;  // chunks are at most 1 MiB both ways
  uint32_t max_poll_wait_ms = 2000;
  // Upload streams open at once (headers not yet seen included); more are refused at once.
  // (The declared size of each is capped by RoundCoordinator::max_update_bytes().)
  int max_concurrent_uploads = 64;
  // An upload stream that delivers nothing for this long is cancelled.
  double upload_stall_seconds = 30;
};

class FederationService final : public lotteryfl::v1::Federation::CallbackService {
 public:
  // clock: monotonic seconds. on_submit runs after each accepted update (the server ticks).
  FederationService(RoundCoordinator* coordinator, std::function<double()> clock, ServiceLimits limits,
                    std::function<void()> on_submit);
  ~FederationService() override;

  grpc::ServerUnaryReactor* Join(grpc::CallbackServerContext* ctx, const lotteryfl::v1::JoinRequest* request,
                                 lotteryfl::v1::JoinReply* reply) override;
  grpc::ServerUnaryReactor* Poll(grpc::CallbackServerContext* ctx, const lotteryfl::v1::PollRequest* request,
                                 lotteryfl::v1::PollReply* reply) override;
  grpc::ServerWriteReactor<lotteryfl::v1::Chunk>* FetchModel(grpc::CallbackServerContext* ctx,
                                                             const lotteryfl::v1::FetchRequest* request) override;
  grpc::ServerReadReactor<lotteryfl::v1::UpdateChunk>* SubmitUpdate(grpc::CallbackServerContext* ctx,
                                                                    lotteryfl::v1::SubmitReply* reply) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const lotteryfl::v1::HeartbeatRequest* request,
                                      lotteryfl::v1::HeartbeatReply* reply) override;
  grpc::ServerUnaryReactor* Leave(grpc::CallbackServerContext* ctx, const lotteryfl::v1::LeaveRequest* request,
                                  lotteryfl::v1::LeaveReply* reply) override;

  // Completes parked polls that have work, a finished run, or an expired wait, and cancels
  // upload streams stalled past limits().upload_stall_seconds. A parked poll is asked again
  // only when the coordinator's state changed since it was last answered (state_version());
  // otherwise only its deadline is checked, so a tick costs O(parked polls), whatever the
  // number of clients they carry.
  void Pump();
  // Completes every parked poll (before the gRPC server shuts down).
  void ReleaseAll();

  RoundCoordinator* coordinator() { return coordinator_; }
  // Upload streams register while they are open (see ServiceLimits). Register returns false
  // when max_concurrent_uploads are already open.
  class UploadStream {
   public:
    virtual ~UploadStream() = default;
    virtual double last_activity() const = 0;
    virtual void Cancel() = 0;
  };
  bool RegisterUpload(UploadStream* stream);
  void UnregisterUpload(UploadStream* stream);
  int open_uploads();
  const ServiceLimits& limits() const { return limits_; }
  double now() const { return clock_(); }
  void NotifySubmitted() { on_submit_(); }

 private:
  struct Waiter {
    grpc::ServerUnaryReactor* reactor;
    const lotteryfl::v1::PollRequest* request;
    lotteryfl::v1::PollReply* reply;
    double deadline;
    std::string peer;
    uint64_t version;  // the coordinator's state_version() when this poll was last answered
  };
  // Fills reply; returns true when the poll should complete now.
  bool AnswerPoll(const lotteryfl::v1::PollRequest& request, const std::string& peer,
                  lotteryfl::v1::PollReply* reply, bool expired, grpc::Status* status);

  RoundCoordinator* const coordinator_;
  const std::function<double()> clock_;
  const ServiceLimits limits_;
  const std::function<void()> on_submit_;

  absl::Mutex mu_;
  std::list<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
  absl::Mutex uploads_mu_;
  std::set<UploadStream*> uploads_ ABSL_GUARDED_BY(uploads_mu_);
};

// The common name of the peer's verified client certificate (mutual TLS); empty otherwise.
std::string PeerIdentity(const grpc::ServerContextBase& ctx);
std::vector<Credential> ToCredentials(const google::protobuf::RepeatedPtrField<lotteryfl::v1::Credential>& in,
                                      const std::string& peer_identity = "");

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_FEDERATION_SERVICE_H_
