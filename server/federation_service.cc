#include "server/federation_service.h"

#include <algorithm>

#include <atomic>

#include "absl/strings/str_cat.h"
#include "server/upload_assembler.h"

namespace lfl {

namespace v1 = lotteryfl::v1;

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::string PeerIdentity(const grpc::ServerContextBase& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  std::vector<grpc::string_ref> cn = auth->FindPropertyValues("x509_common_name");
  if (cn.empty()) return "";
  return std::string(cn.front().data(), cn.front().size());
}

std::vector<Credential> ToCredentials(const google::protobuf::RepeatedPtrField<v1::Credential>& in,
                                      const std::string& peer_identity) {
  std::vector<Credential> out;
  out.reserve(in.size());
  for (const v1::Credential& c : in) out.push_back({c.client_id(), c.token(), peer_identity});
  return out;
}

FederationService::FederationService(RoundCoordinator* coordinator, std::function<double()> clock,
                                     ServiceLimits limits, std::function<void()> on_submit)
    : coordinator_(coordinator), clock_(std::move(clock)), limits_(limits), on_submit_(std::move(on_submit)) {}

FederationService::~FederationService() { ReleaseAll(); }

grpc::ServerUnaryReactor* FederationService::Join(grpc::CallbackServerContext* ctx, const v1::JoinRequest* request,
                                                  v1::JoinReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (request->protocol_version() != 1) {
    reactor->Finish(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                 absl::StrCat("protocol version ", request->protocol_version(),
                                              " is not supported (server speaks 1)")));
    return reactor;
  }
  if (request->clients().empty()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "join without clients"));
    return reactor;
  }
  absl::StatusOr<RoundCoordinator::HostJoin> joined =
      coordinator_->JoinHost(ToCredentials(request->clients(), PeerIdentity(*ctx)), clock_());
  if (!joined.ok()) {
    reactor->Finish(ToGrpcStatus(joined.status()));
    return reactor;
  }
  reply->set_config_toml(std::move(joined->config_toml));
  reply->set_session(std::move(joined->session));
  reply->set_run_id(absl::StrCat("seed-", coordinator_->config().seed));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

bool FederationService::AnswerPoll(const v1::PollRequest& request, const std::string& peer, v1::PollReply* reply,
                                   bool expired, grpc::Status* status) {
  absl::StatusOr<PollResult> result = request.session().empty()
                                          ? coordinator_->Poll(ToCredentials(request.clients(), peer), clock_())
                                          : coordinator_->PollSession(request.session(), peer, clock_());
  if (!result.ok()) {
    *status = ToGrpcStatus(result.status());
    return true;
  }
  *status = grpc::Status::OK;
  reply->Clear();
  reply->set_round(result->round);
  switch (result->state) {
    case PollResult::kFinished:
      reply->set_state(v1::PollReply::FINISHED);
      return true;
    case PollResult::kTrain:
      for (const Task& t : result->tasks) {
        if (std::find(request.busy_client_ids().begin(), request.busy_client_ids().end(), t.client_id) !=
            request.busy_client_ids().end()) {
          continue;
        }
        v1::Task* task = reply->add_tasks();
        task->set_client_id(t.client_id);
        task->set_round(t.round);
        task->set_attempt(t.attempt);
      }
      if (reply->tasks_size() == 0) {
        reply->set_state(v1::PollReply::WAIT);
        return expired;
      }
      reply->set_state(v1::PollReply::TRAIN);
      return true;
    case PollResult::kWait:
      reply->set_state(v1::PollReply::WAIT);
      return expired;
  }
  return true;
}

grpc::ServerUnaryReactor* FederationService::Poll(grpc::CallbackServerContext* ctx, const v1::PollRequest* request,
                                                  v1::PollReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  grpc::Status status;
  const double wait = std::min(request->wait_ms(), limits_.max_poll_wait_ms) / 1000.0;
  std::string peer = PeerIdentity(*ctx);
  const uint64_t version = coordinator_->state_version();
  if (AnswerPoll(*request, peer, reply, wait <= 0, &status)) {
    reactor->Finish(status);
    return reactor;
  }
  absl::MutexLock lock(&mu_);
  waiters_.push_back({reactor, request, reply, clock_() + wait, std::move(peer), version});
  return reactor;
}

bool FederationService::RegisterUpload(UploadStream* stream) {
  absl::MutexLock lock(&uploads_mu_);
  if (static_cast<int>(uploads_.size()) >= limits_.max_concurrent_uploads) return false;
  uploads_.insert(stream);
  return true;
}

void FederationService::UnregisterUpload(UploadStream* stream) {
  absl::MutexLock lock(&uploads_mu_);
  uploads_.erase(stream);
}

int FederationService::open_uploads() {
  absl::MutexLock lock(&uploads_mu_);
  return static_cast<int>(uploads_.size());
}

void FederationService::Pump() {
  const double now = clock_();
  {
    // A stream leaves the set (in OnDone) before it is deleted, under this lock.
    absl::MutexLock lock(&uploads_mu_);
    for (UploadStream* u : uploads_) {
      if (now - u->last_activity() > limits_.upload_stall_seconds) u->Cancel();
    }
  }
  const uint64_t version = coordinator_->state_version();
  absl::MutexLock lock(&mu_);
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    grpc::Status status;
    const bool expired = now >= it->deadline;
    if (it->version == version && !expired) {
      ++it;  // nothing it waits for changed
      continue;
    }
    if (it->version == version) {
      // Expired with nothing new: the answer computed last time (wait) stands.
      it->reply->set_state(v1::PollReply::WAIT);
      it->reactor->Finish(grpc::Status::OK);
      it = waiters_.erase(it);
      continue;
    }
    it->version = version;
    if (AnswerPoll(*it->request, it->peer, it->reply, expired, &status)) {
      it->reactor->Finish(status);
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void FederationService::ReleaseAll() {
  absl::MutexLock lock(&mu_);
  for (Waiter& w : waiters_) {
    w.reply->set_state(v1::PollReply::WAIT);
    w.reactor->Finish(grpc::Status::OK);
  }
  waiters_.clear();
}

namespace {

// Streams one downlink payload in chunks of at most max_chunk_bytes.
class FetchReactor : public grpc::ServerWriteReactor<v1::Chunk> {
 public:
  FetchReactor(FederationService* service, const v1::FetchRequest& request, std::string peer) {
    const double start = service->now();
    absl::StatusOr<RoundCoordinator::DownlinkPayload> payload = service->coordinator()->Downlink(
        {request.client().client_id(), request.client().token(), std::move(peer)}, request.round(), request.attempt(),
        request.held_mask_version(), request.held_mask_hash(), start);
    if (!payload.ok()) {
      Finish(ToGrpcStatus(payload.status()));
      return;
    }
    payload_ = std::move(payload->bytes);
    mask_version_ = payload->mask_version;
    layer_bits_ = std::move(payload->layer_bits);
    chunk_ = service->limits().max_chunk_bytes;
    WriteNext();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "client went away during the download"));
      return;
    }
    WriteNext();
  }
  void OnDone() override { delete this; }

 private:
  void WriteNext() {
    if (sent_any_ && offset_ >= payload_.size()) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = std::min<size_t>(chunk_, payload_.size() - offset_);
    message_.Clear();
    if (!sent_any_) {
      message_.set_total_bytes(payload_.size());
      message_.set_mask_version(mask_version_);
      for (int b : layer_bits_) message_.add_layer_bits(static_cast<uint32_t>(b));
    }
    message_.set_data(payload_.data() + offset_, n);
    offset_ += n;
    sent_any_ = true;
    StartWrite(&message_);
  }
  std::string payload_;
  std::vector<int> layer_bits_;
  size_t offset_ = 0;
  bool sent_any_ = false;
  uint32_t mask_version_ = 0;
  size_t chunk_ = 1 << 20;
  v1::Chunk message_;
};

// Receives an update: a header, admitted by the coordinator before any payload is read, then
// payload chunks (UploadAssembler's rules); hands the whole payload to the coordinator.
class SubmitReactor : public grpc::ServerReadReactor<v1::UpdateChunk>, public FederationService::UploadStream {
 public:
  SubmitReactor(FederationService* service, grpc::CallbackServerContext* ctx, v1::SubmitReply* reply)
      : service_(service),
        ctx_(ctx),
        reply_(reply),
        peer_(PeerIdentity(*ctx)),
        assembler_(service->limits().max_chunk_bytes),
        last_activity_(service->now()) {
    if (!service_->RegisterUpload(this)) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          absl::StrCat("the server has ", service_->limits().max_concurrent_uploads,
                                       " uploads open; retry later")));
      return;
    }
    registered_ = true;
    StartRead(&chunk_);
  }
  void OnReadDone(bool ok) override {
    last_activity_.store(service_->now());
    if (!ok) {
      Complete();
      return;
    }
    if (grpc::Status s = Absorb(); !s.ok() || finished_) {
      if (!finished_) End(s);
      return;
    }
    StartRead(&chunk_);
  }
  void OnDone() override {
    if (registered_) service_->UnregisterUpload(this);
    ReleaseSlot();
    delete this;
  }
  double last_activity() const override { return last_activity_.load(); }
  void Cancel() override { ctx_->TryCancel(); }

 private:
  // The client's upload slot is released before the status goes out, so a client that retries
  // as soon as it sees the answer is never told that its own finished upload is still in flight.
  void ReleaseSlot() {
    if (admitted_) service_->coordinator()->EndUpload(report_.client_id);
    admitted_ = false;
  }
  void End(const grpc::Status& status) {
    ReleaseSlot();
    Finish(status);
  }
  grpc::Status Absorb() {
    if (!chunk_.has_header()) return ToGrpcStatus(assembler_.OnData(chunk_.data()));
    if (assembler_.has_header()) return ToGrpcStatus(assembler_.OnHeader(0, nullptr));
    const v1::UpdateHeader& h = chunk_.header();
    report_.client_id = h.client().client_id();
    report_.token = h.client().token();
    report_.peer_identity = peer_;
    report_.round = h.round();
    report_.attempt = h.attempt();
    report_.num_samples = h.num_samples();
    report_.local_accuracy = h.local_accuracy();
    report_.test_count = h.test_count();
    report_.validation_accuracy = h.validation_accuracy();
    report_.global_masked_accuracy = h.global_masked_accuracy();
    report_.pruned = h.pruned();
    report_.train_seconds = h.train_seconds();
    report_.encode_seconds = h.encode_seconds();
    report_.network_seconds = h.network_seconds();
    report_.header_bytes = chunk_.ByteSizeLong();
    absl::Status s = assembler_.OnHeader(h.payload_bytes(), [this](uint64_t declared) {
      return service_->coordinator()->BeginUpload(report_, declared, service_->now());
    });
    if (absl::IsAlreadyExists(s)) {
      // A retry of an accepted update: acknowledge it without reading the payload again.
      reply_->set_duplicate(true);
      finished_ = true;
      Finish(grpc::Status::OK);
      return grpc::Status::OK;
    }
    admitted_ = s.ok();
    return ToGrpcStatus(s);
  }

  void Complete() {
    absl::StatusOr<std::string> payload = assembler_.Finish();
    if (!payload.ok()) {
      End(ToGrpcStatus(payload.status()));
      return;
    }
    absl::StatusOr<bool> duplicate = service_->coordinator()->Submit(report_, *payload, service_->now());
    if (!duplicate.ok()) {
      End(ToGrpcStatus(duplicate.status()));
      return;
    }
    reply_->set_duplicate(*duplicate);
    service_->NotifySubmitted();
    End(grpc::Status::OK);
  }

  FederationService* service_;
  grpc::CallbackServerContext* ctx_;
  v1::SubmitReply* reply_;
  const std::string peer_;
  UploadAssembler assembler_;
  std::atomic<double> last_activity_;
  v1::UpdateChunk chunk_;
  UpdateReport report_;
  bool registered_ = false;
  bool admitted_ = false;
  bool finished_ = false;
};

}  // namespace

grpc::ServerWriteReactor<v1::Chunk>* FederationService::FetchModel(grpc::CallbackServerContext* ctx,
                                                                   const v1::FetchRequest* request) {
  return new FetchReactor(this, *request, PeerIdentity(*ctx));
}

grpc::ServerReadReactor<v1::UpdateChunk>* FederationService::SubmitUpdate(grpc::CallbackServerContext* ctx,
                                                                          v1::SubmitReply* reply) {
  return new SubmitReactor(this, ctx, reply);
}

grpc::ServerUnaryReactor* FederationService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const std::string peer = PeerIdentity(*ctx);
  reactor->Finish(ToGrpcStatus(request->session().empty()
                                   ? coordinator_->Heartbeat(ToCredentials(request->clients(), peer), clock_())
                                   : coordinator_->HeartbeatSession(request->session(), peer, clock_())));
  return reactor;
}

grpc::ServerUnaryReactor* FederationService::Leave(grpc::CallbackServerContext* ctx,
                                                   const v1::LeaveRequest* request, v1::LeaveReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(coordinator_->Leave(ToCredentials(request->clients(), PeerIdentity(*ctx)), clock_())));
  return reactor;
}

}  // namespace lfl
