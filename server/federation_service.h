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
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/lotteryfl.grpc.pb.h"
#include "server/round_coordinator.h"

namespace lfl {

// absl::Status → grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

struct ServiceLimits {
  uint64_t max_update_bytes = 256ull << 20;  // a larger declared or streamed update is refused
  uint32_t max_chunk_bytes = 1u << 20;       // chunks are at most 1 MiB both ways
  uint32_t max_poll_wait_ms = 2000;
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

  // Completes parked polls that have work, a finished run, or an expired wait.
  void Pump();
  // Completes every parked poll (before the gRPC server shuts down).
  void ReleaseAll();

  RoundCoordinator* coordinator() { return coordinator_; }
  const ServiceLimits& limits() const { return limits_; }
  double now() const { return clock_(); }
  void NotifySubmitted() { on_submit_(); }

 private:
  struct Waiter {
    grpc::ServerUnaryReactor* reactor;
    const lotteryfl::v1::PollRequest* request;
    lotteryfl::v1::PollReply* reply;
    double deadline;
  };
  // Fills reply; returns true when the poll should complete now.
  bool AnswerPoll(const lotteryfl::v1::PollRequest& request, lotteryfl::v1::PollReply* reply, bool expired,
                  grpc::Status* status);

  RoundCoordinator* const coordinator_;
  const std::function<double()> clock_;
  const ServiceLimits limits_;
  const std::function<void()> on_submit_;

  absl::Mutex mu_;
  std::list<Waiter> waiters_ ABSL_GUARDED_BY(mu_);
};

std::vector<Credential> ToCredentials(const google::protobuf::RepeatedPtrField<lotteryfl::v1::Credential>& in);

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_FEDERATION_SERVICE_H_
