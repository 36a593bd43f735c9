#include "server/federation_service.h"

#include <algorithm>

#include <atomic>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/coordinator/upload_assembler.h"

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

namespace {

// A client's free text, made safe to keep and print: at most `max_bytes`, printable ASCII only.
std::string Sanitized(const std::string& text, size_t max_bytes) {
  std::string out = text.substr(0, max_bytes);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) c = '?';
  }
  return out;
}

}  // namespace

std::vector<Credential> ToCredentials(const google::protobuf::RepeatedPtrField<v1::Credential>& in,
                                      const std::string& peer_identity) {
  std::vector<Credential> out;
  out.reserve(in.size());
  for (const v1::Credential& c : in) out.push_back({c.client_id(), c.token(), peer_identity});
  return out;
}

FederationService::FederationService(RoundCoordinator* coordinator, std::function<double()> clock,
                                     ServiceLimits limits, std::function<void()> on_submit,
                                     std::shared_ptr<RefusalCounters> refusals, RefusalLogFn log)
    : coordinator_(coordinator),
      clock_(std::move(clock)),
      limits_(limits),
      on_submit_(std::move(on_submit)),
      refusals_(refusals ? std::move(refusals) : std::make_shared<RefusalCounters>()),
      log_(std::move(log)) {}

UpdateReport UpdateReportFromHeader(const v1::UpdateHeader& h, const std::string& peer_identity,
                                    uint64_t header_bytes) {
  UpdateReport r;
  r.client_id = h.client().client_id();
  r.token = h.client().token();
  r.peer_identity = peer_identity;
  r.round = h.round();
  r.attempt = h.attempt();
  r.num_samples = h.num_samples();
  r.local_accuracy = h.local_accuracy();
  r.test_count = h.test_count();
  r.validation_accuracy = h.validation_accuracy();
  r.global_masked_accuracy = h.global_masked_accuracy();
  r.pruned = h.pruned();
  r.train_seconds = h.train_seconds();
  r.encode_seconds = h.encode_seconds();
  r.network_seconds = h.network_seconds();
  r.header_bytes = header_bytes;
  return r;
}

void FederationService::Refused(std::string_view cause, const std::string& detail) {
  refusals_->Count(cause);
  LogRefusal(cause, detail);
}

void FederationService::LogRefusal(std::string_view cause, const std::string& detail) {
  uint64_t suppressed = 0;
  if (!log_ || !log_limiter_.Admit(cause, clock_(), &suppressed)) return;
  log_(cause, suppressed == 0 ? detail
                              : absl::StrCat(detail, " (", suppressed, " more ", std::string(cause),
                                             " refusals not logged since the last line)"));
}

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
  absl::StatusOr<HostJoin> joined =
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

void FederationService::OpenStream(UploadStream* stream, const std::string& peer) {
  UploadStream* evicted = nullptr;
  std::string evicted_peer;
  {
    absl::MutexLock lock(&uploads_mu_);
    stream->opened_ = clock_();
    if (static_cast<int>(pending_.size()) >= limits_.max_pending_uploads && !pending_.empty()) {
      evicted = pending_.front();
      pending_.pop_front();
      evicted->pending_ = false;
      evicted_peer = evicted->peer();
      // Refused under the lock: a stream leaves the sets (CloseStream) before it is deleted.
      if (!evicted->Refuse(grpc::Status(
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat(kRefusalPreHeaderEvicted, ": ", limits_.max_pending_uploads,
                       " upload streams without a header are open; the oldest was dropped")),
              kRefusalPreHeaderEvicted)) {
        evicted = nullptr;  // it had finished on its own: nothing was refused
      }
    }
    stream->pending_at_ = pending_.insert(pending_.end(), stream);
    stream->pending_ = true;
  }
  if (evicted != nullptr) {
    LogRefusal(kRefusalPreHeaderEvicted,
               absl::StrCat("upload stream from ", evicted_peer, " dropped before its header to make room (",
                         limits_.max_pending_uploads, " held; newest from ", peer, ")"));
  }
}

bool FederationService::AdmitStream(UploadStream* stream) {
  absl::MutexLock lock(&uploads_mu_);
  if (stream->pending_) {
    pending_.erase(stream->pending_at_);
    stream->pending_ = false;
  }
  if (static_cast<int>(uploads_.size()) >= limits_.max_concurrent_uploads) return false;
  uploads_.insert(stream);
  stream->admitted_ = true;
  return true;
}

void FederationService::CloseStream(UploadStream* stream) {
  absl::MutexLock lock(&uploads_mu_);
  if (stream->pending_) pending_.erase(stream->pending_at_);
  if (stream->admitted_) uploads_.erase(stream);
  stream->pending_ = stream->admitted_ = false;
}

int FederationService::open_uploads() {
  absl::MutexLock lock(&uploads_mu_);
  return static_cast<int>(uploads_.size());
}

int FederationService::pending_uploads() {
  absl::MutexLock lock(&uploads_mu_);
  return static_cast<int>(pending_.size());
}

void FederationService::Pump() {
  const double now = clock_();
  std::vector<std::pair<const char*, std::string>> refused;  // logged outside the lock
  {
    // A stream leaves the sets (CloseStream, in OnDone) before it is deleted, under this lock.
    absl::MutexLock lock(&uploads_mu_);
    // Oldest first: stop at the first stream still inside its budget.
    while (!pending_.empty() && now - pending_.front()->opened_ > limits_.pre_header_seconds) {
      UploadStream* u = pending_.front();
      pending_.pop_front();
      u->pending_ = false;
      if (!u->Refuse(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                  absl::StrCat(kRefusalPreHeaderTimeout, ": no update header within ",
                                               limits_.pre_header_seconds, " s of opening the upload stream")),
                     kRefusalPreHeaderTimeout)) {
        continue;
      }
      refused.emplace_back(kRefusalPreHeaderTimeout, absl::StrCat("upload stream from ", u->peer(), " sent no header within ",
                                                                  limits_.pre_header_seconds, " s"));
    }
    for (auto it = uploads_.begin(); it != uploads_.end();) {
      UploadStream* u = *it;
      if (now - u->last_activity() <= limits_.upload_stall_seconds) {
        ++it;
        continue;
      }
      it = uploads_.erase(it);
      u->admitted_ = false;
      if (!u->Refuse(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                  absl::StrCat(kRefusalUploadStalled, ": the upload delivered nothing for ",
                                               limits_.upload_stall_seconds, " s")),
                     kRefusalUploadStalled)) {
        continue;
      }
      refused.emplace_back(kRefusalUploadStalled, absl::StrCat("admitted upload from ", u->peer(), " delivered nothing for ",
                                                               limits_.upload_stall_seconds, " s"));
    }
  }
  for (const auto& [cause, detail] : refused) LogRefusal(cause, detail);
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

void FederationService::ReleaseAll(bool finished) {
  absl::MutexLock lock(&mu_);
  for (Waiter& w : waiters_) {
    w.reply->set_state(finished ? v1::PollReply::FINISHED : v1::PollReply::WAIT);
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
    absl::StatusOr<DownlinkPayload> payload = service->coordinator()->Downlink(
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

// Receives an update: a header, admitted by the coordinator before any payload is read and
// only then given an upload slot, then payload chunks (UploadAssembler's rules); hands the whole
// payload to the coordinator. Until its header arrives the stream is pending: it holds no slot
// and is refused after limits().pre_header_seconds (FederationService::Pump).
//
// Refuse (from the service's tick or another stream's OpenStream) and the reactor's own
// callbacks may run at once: mu_ makes the stream finish exactly once and hands the client's
// coordinator slot (admitted_) back exactly once.
class SubmitReactor : public grpc::ServerReadReactor<v1::UpdateChunk>, public FederationService::UploadStream {
 public:
  SubmitReactor(FederationService* service, grpc::CallbackServerContext* ctx, v1::SubmitReply* reply)
      : service_(service),
        reply_(reply),
        identity_(PeerIdentity(*ctx)),
        peer_(ctx->peer()),
        assembler_(service->limits().max_chunk_bytes),
        last_activity_(service->now()) {
    service_->OpenStream(this, peer_);
    ReadNext();
  }
  void OnReadDone(bool ok) override {
    last_activity_.store(service_->now());
    if (finished()) return;
    if (!ok) {
      Complete();
      return;
    }
    if (grpc::Status s = Absorb(); !s.ok()) {
      End(s);
      return;
    }
    ReadNext();
  }
  void OnDone() override {
    service_->CloseStream(this);
    ReleaseSlot();
    delete this;
  }
  double last_activity() const override { return last_activity_.load(); }
  const std::string& peer() const override { return peer_; }
  // Called by the service with its lock held, after it took the stream out of its sets.
  bool Refuse(const grpc::Status& status, std::string_view cause) override {
    return End(status, /*leave_sets=*/false, cause);
  }

 private:
  bool finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }
  // Under mu_: a Refuse from another thread either comes first (and no read starts after the
  // stream finished) or finds this read pending (and it completes with ok = false).
  void ReadNext() {
    absl::MutexLock lock(&mu_);
    if (!finished_) StartRead(&chunk_);
  }
  // The client's upload slot is released before the status goes out, so a client that retries
  // as soon as it sees the answer is never told that its own finished upload is still in flight.
  void ReleaseSlot() {
    bool admitted;
    {
      absl::MutexLock lock(&mu_);
      admitted = admitted_;
      admitted_ = false;
    }
    if (admitted) service_->coordinator()->EndUpload(report_.client_id);
  }
  // cause: counted (before the status goes out, so a client that sees it finds it counted).
  bool End(const grpc::Status& status, bool leave_sets = true, std::string_view cause = {}) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return false;
      finished_ = true;
    }
    if (!cause.empty()) service_->refusals().Count(cause);
    // Out of the service's sets and the client's slot handed back before the status goes out,
    // so that a client's next upload, sent as soon as it sees the answer, finds both free.
    if (leave_sets) service_->CloseStream(this);
    ReleaseSlot();
    Finish(status);
    return true;
  }
  // The header check: the coordinator's (credential, open task, size), then an upload slot.
  absl::Status Admit(uint64_t declared) {
    absl::Status s = service_->coordinator()->BeginUpload(report_, declared, service_->now());
    if (!s.ok()) {
      service_->CloseStream(this);  // refused by the coordinator, which counts it
      return s;
    }
    if (!service_->AdmitStream(this)) {
      service_->coordinator()->EndUpload(report_.client_id);
      service_->Refused(kRefusalNoUploadSlot, absl::StrCat("client ", report_.client_id, " (", peer_, "): all ",
                                                           service_->limits().max_concurrent_uploads,
                                                           " upload slots taken"));
      return absl::ResourceExhaustedError(absl::StrCat(kRefusalNoUploadSlot, ": the server has ",
                                                       service_->limits().max_concurrent_uploads,
                                                       " uploads in progress; retry later"));
    }
    absl::MutexLock lock(&mu_);
    admitted_ = true;  // OnDone or End hands it back, even when Refuse came in meanwhile
    return absl::OkStatus();
  }
  grpc::Status Absorb() {
    if (!chunk_.has_header()) return Malformed(assembler_.OnData(chunk_.data()));
    if (assembler_.has_header()) return Malformed(assembler_.OnHeader(0, nullptr));
    const v1::UpdateHeader& h = chunk_.header();
    report_ = UpdateReportFromHeader(h, identity_, chunk_.ByteSizeLong());
    bool admit_called = false;
    absl::Status s = assembler_.OnHeader(h.payload_bytes(), [this, &admit_called](uint64_t declared) {
      admit_called = true;
      return Admit(declared);
    });
    if (absl::IsAlreadyExists(s)) {
      // A retry of an accepted update: acknowledge it without reading the payload again.
      reply_->set_duplicate(true);
      End(grpc::Status::OK);
      return grpc::Status::OK;
    }
    if (!admit_called) {
      service_->CloseStream(this);
      return Malformed(s);
    }
    return ToGrpcStatus(s);
  }
  // A refusal by the stream's own rules (UploadAssembler): counted and logged here.
  grpc::Status Malformed(const absl::Status& s) {
    if (s.ok()) return grpc::Status::OK;
    service_->Refused(kRefusalMalformedUpload, absl::StrCat("upload from ", peer_, ": ", s.message()));
    return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                        absl::StrCat(kRefusalMalformedUpload, ": ", s.message()));
  }

  void Complete() {
    absl::StatusOr<std::string> payload = assembler_.Finish();
    if (!payload.ok()) {
      service_->CloseStream(this);
      End(Malformed(payload.status()));
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
  v1::SubmitReply* reply_;
  const std::string identity_;  // the mutual-TLS common name, or empty
  const std::string peer_;      // the transport address, for log lines
  UploadAssembler assembler_;
  std::atomic<double> last_activity_;
  v1::UpdateChunk chunk_;
  UpdateReport report_;
  absl::Mutex mu_;
  bool admitted_ ABSL_GUARDED_BY(mu_) = false;  // holds the client's coordinator slot
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
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

grpc::ServerUnaryReactor* FederationService::AbandonTask(grpc::CallbackServerContext* ctx,
                                                         const v1::AbandonRequest* request, v1::AbandonReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const v1::Credential& c = request->client();
  reactor->Finish(ToGrpcStatus(coordinator_->Abandon({c.client_id(), c.token(), PeerIdentity(*ctx)}, request->round(),
                                                     request->attempt(), Sanitized(request->reason(), 256),
                                                     clock_())));
  return reactor;
}

}  // namespace lfl
