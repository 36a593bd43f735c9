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
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "proto/lotteryfl.grpc.pb.h"
#include "server/coordinator/refusals.h"
#include "server/coordinator/round_coordinator.h"

namespace lfl {

// absl::Status → grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

struct ServiceLimits {
  uint32_t max_chunk_bytes = 1u << 20;  // chunks are at most 1 MiB both ways
  uint32_t max_poll_wait_ms = 2000;
  // Admitted uploads open at once: a stream takes one of these slots only once its header has
  // authenticated and matched an open task (RoundCoordinator::BeginUpload); a header that
  // finds them all taken is refused RESOURCE_EXHAUSTED (cause no_upload_slot).
  // (The declared size of each is capped by RoundCoordinator::max_update_bytes().)
  int max_concurrent_uploads = 64;
  // A stream that has not delivered its header this long after it opened is finished
  // DEADLINE_EXCEEDED (pre_header_timeout). Honest clients send the header first, at once.
  double pre_header_seconds = 2;
  // Header-less streams held at once (they cost a reactor and gRPC's buffers, no slot). When a
  // new stream finds them all held, the oldest is refused (pre_header_evicted): a flood of
  // silent streams cannot keep a newcomer, whose header comes within a round trip, out.
  int max_pending_uploads = 1024;
  // An admitted upload stream that delivers nothing for this long is finished (upload_stalled).
  double upload_stall_seconds = 30;
};

// The transport refusal causes the service counts in RefusalCounters (and names, first, in the
// status message it sends). Refusals of a header or an update by the coordinator are counted
// by the coordinator under its own causes.
inline constexpr char kRefusalNoUploadSlot[] = "no_upload_slot";
inline constexpr char kRefusalPreHeaderTimeout[] = "pre_header_timeout";
inline constexpr char kRefusalPreHeaderEvicted[] = "pre_header_evicted";
inline constexpr char kRefusalUploadStalled[] = "upload_stalled";
inline constexpr char kRefusalMalformedUpload[] = "malformed_upload";

// The one place an upload's proto header becomes the coordinator's UpdateReport
// (`peer_identity`: the mutual-TLS common name; `header_bytes`: the header message's size).
UpdateReport UpdateReportFromHeader(const lotteryfl::v1::UpdateHeader& header, const std::string& peer_identity,
                                    uint64_t header_bytes);

class FederationService final : public lotteryfl::v1::Federation::CallbackService {
 public:
  // clock: monotonic seconds. on_submit runs after each accepted update (the server ticks).
  // refusals (required) counts the transport refusals by cause; log (optional) receives a line
  // for each, rate-limited per cause by a RefusalLogLimiter.
  FederationService(RoundCoordinator* coordinator, std::function<double()> clock, ServiceLimits limits,
                    std::function<void()> on_submit, std::shared_ptr<RefusalCounters> refusals,
                    RefusalLogFn log = nullptr);
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
  grpc::ServerUnaryReactor* AbandonTask(grpc::CallbackServerContext* ctx, const lotteryfl::v1::AbandonRequest* request,
                                        lotteryfl::v1::AbandonReply* reply) override;

  // Completes parked polls that have work, a finished run, or an expired wait; refuses
  // header-less upload streams past limits().pre_header_seconds and admitted ones stalled past
  // limits().upload_stall_seconds. A parked poll is asked again only when the coordinator's
  // state changed since it was last answered (state_version()); otherwise only its deadline is
  // checked, so a tick costs O(parked polls + open streams), whatever the number of clients.
  void Pump();
  // Completes every parked poll (before the gRPC server shuts down): FINISHED when `finished`
  // (the run is over: told WAIT, a host would poll a server that is gone until it gives up and
  // exits with an error), else WAIT.
  void ReleaseAll(bool finished = false);

  RoundCoordinator* coordinator() { return coordinator_; }
  // An upload stream as the service tracks it: pending (opened, no header yet) from Open until
  // Admit or Close; admitted (holding a slot) from a successful Admit until Close.
  class UploadStream {
   public:
    virtual ~UploadStream() = default;
    virtual double last_activity() const = 0;
    virtual const std::string& peer() const = 0;  // the transport address, for log lines
    // Finishes the stream with `status` unless it has finished already (thread-safe); true
    // when this call finished it, and then `cause` was counted before the status went out.
    virtual bool Refuse(const grpc::Status& status, std::string_view cause) = 0;

   private:
    friend class FederationService;
    double opened_ = 0;
    bool pending_ = false, admitted_ = false;
    std::list<UploadStream*>::iterator pending_at_;
  };
  // A new stream (pending). Evicts the oldest pending stream when max_pending_uploads are held.
  void OpenStream(UploadStream* stream, const std::string& peer);
  // Moves a stream whose header the coordinator admitted into an upload slot; false (and the
  // stream stays out of every set) when max_concurrent_uploads are already held.
  bool AdmitStream(UploadStream* stream);
  // The stream is done (before it is deleted).
  void CloseStream(UploadStream* stream);
  int open_uploads();     // admitted streams holding a slot
  int pending_uploads();  // streams that have not delivered a header
  const ServiceLimits& limits() const { return limits_; }
  double now() const { return clock_(); }
  void NotifySubmitted() { on_submit_(); }
  // Counts a transport refusal and logs it (rate-limited). detail: who and why, one line.
  void Refused(std::string_view cause, const std::string& detail);
  // Logs it only (rate-limited), for a refusal counted already.
  void LogRefusal(std::string_view cause, const std::string& detail);
  RefusalCounters& refusals() { return *refusals_; }

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
  const std::shared_ptr<RefusalCounters> refusals_;
  const RefusalLogFn log_;
  RefusalLogLimiter log_limiter_;
  absl::Mutex uploads_mu_;
  std::set<UploadStream*> uploads_ ABSL_GUARDED_BY(uploads_mu_);         // admitted
  std::list<UploadStream*> pending_ ABSL_GUARDED_BY(uploads_mu_);        // oldest first

};

// The common name of the peer's verified client certificate (mutual TLS); empty otherwise.
std::string PeerIdentity(const grpc::ServerContextBase& ctx);
std::vector<Credential> ToCredentials(const google::protobuf::RepeatedPtrField<lotteryfl::v1::Credential>& in,
                                      const std::string& peer_identity = "");

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_FEDERATION_SERVICE_H_
