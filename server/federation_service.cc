#include "server/federation_service.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace lfl {

namespace v1 = lotteryfl::v1;

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

std::vector<Credential> ToCredentials(const google::protobuf::RepeatedPtrField<v1::Credential>& in) {
  std::vector<Credential> out;
  out.reserve(in.size());
  for (const v1::Credential& c : in) out.push_back({c.client_id(), c.token()});
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
  for (const Credential& c : ToCredentials(request->clients())) {
    absl::StatusOr<std::string> config = coordinator_->Join(c, clock_());
    if (!config.ok()) {
      reactor->Finish(ToGrpcStatus(config.status()));
      return reactor;
    }
    reply->set_config_toml(*config);
  }
  reply->set_run_id(absl::StrCat("seed-", coordinator_->config().seed));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

bool FederationService::AnswerPoll(const v1::PollRequest& request, v1::PollReply* reply, bool expired,
                                   grpc::Status* status) {
  absl::StatusOr<PollResult> result = coordinator_->Poll(ToCredentials(request.clients()), clock_());
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
  if (AnswerPoll(*request, reply, wait <= 0, &status)) {
    reactor->Finish(status);
    return reactor;
  }
  absl::MutexLock lock(&mu_);
  waiters_.push_back({reactor, request, reply, clock_() + wait});
  return reactor;
}

void FederationService::Pump() {
  absl::MutexLock lock(&mu_);
  const double now = clock_();
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    grpc::Status status;
    if (AnswerPoll(*it->request, it->reply, now >= it->deadline, &status)) {
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
  FetchReactor(FederationService* service, const v1::FetchRequest& request) {
    const double start = service->now();
    absl::StatusOr<RoundCoordinator::DownlinkPayload> payload = service->coordinator()->Downlink(
        {request.client().client_id(), request.client().token()}, request.round(), request.attempt(),
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

// Receives an update: a header, then payload chunks; hands it to the coordinator whole.
class SubmitReactor : public grpc::ServerReadReactor<v1::UpdateChunk> {
 public:
  SubmitReactor(FederationService* service, v1::SubmitReply* reply) : service_(service), reply_(reply) {
    StartRead(&chunk_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      Complete();
      return;
    }
    if (grpc::Status s = Absorb(); !s.ok()) {
      Finish(s);
      return;
    }
    StartRead(&chunk_);
  }
  void OnDone() override { delete this; }

 private:
  grpc::Status Absorb() {
    const ServiceLimits& limits = service_->limits();
    if (chunk_.has_header()) {
      if (have_header_) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "second update header");
      header_ = chunk_.header();
      have_header_ = true;
      if (header_.payload_bytes() == 0 || header_.payload_bytes() > limits.max_update_bytes) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            absl::StrCat("declared update size ", header_.payload_bytes(), " bytes is outside (0, ",
                                         limits.max_update_bytes, "]"));
      }
      header_bytes_ = chunk_.ByteSizeLong();
      payload_.reserve(header_.payload_bytes());
      return grpc::Status::OK;
    }
    if (!have_header_) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "update data before its header");
    if (chunk_.data().size() > limits.max_chunk_bytes) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "update chunk larger than 1 MiB");
    }
    if (payload_.size() + chunk_.data().size() > header_.payload_bytes()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "update longer than its declared size");
    }
    payload_.append(chunk_.data());
    return grpc::Status::OK;
  }

  void Complete() {
    if (!have_header_) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "empty update stream"));
      return;
    }
    if (payload_.size() != header_.payload_bytes()) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrCat("truncated update: ", payload_.size(), " of ", header_.payload_bytes(),
                                       " bytes")));
      return;
    }
    UpdateReport r;
    r.client_id = header_.client().client_id();
    r.token = header_.client().token();
    r.round = header_.round();
    r.attempt = header_.attempt();
    r.num_samples = header_.num_samples();
    r.local_accuracy = header_.local_accuracy();
    r.test_count = header_.test_count();
    r.validation_accuracy = header_.validation_accuracy();
    r.pruned = header_.pruned();
    r.train_seconds = header_.train_seconds();
    r.encode_seconds = header_.encode_seconds();
    r.network_seconds = header_.network_seconds();
    r.header_bytes = header_bytes_;
    absl::StatusOr<bool> duplicate = service_->coordinator()->Submit(r, payload_, service_->now());
    if (!duplicate.ok()) {
      Finish(ToGrpcStatus(duplicate.status()));
      return;
    }
    reply_->set_duplicate(*duplicate);
    service_->NotifySubmitted();
    Finish(grpc::Status::OK);
  }

  FederationService* service_;
  v1::SubmitReply* reply_;
  v1::UpdateChunk chunk_;
  v1::UpdateHeader header_;
  bool have_header_ = false;
  uint64_t header_bytes_ = 0;
  std::string payload_;
};

}  // namespace

grpc::ServerWriteReactor<v1::Chunk>* FederationService::FetchModel(grpc::CallbackServerContext* ctx,
                                                                   const v1::FetchRequest* request) {
  return new FetchReactor(this, *request);
}

grpc::ServerReadReactor<v1::UpdateChunk>* FederationService::SubmitUpdate(grpc::CallbackServerContext* ctx,
                                                                          v1::SubmitReply* reply) {
  return new SubmitReactor(this, reply);
}

grpc::ServerUnaryReactor* FederationService::Heartbeat(grpc::CallbackServerContext* ctx,
                                                       const v1::HeartbeatRequest* request,
                                                       v1::HeartbeatReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(coordinator_->Heartbeat(ToCredentials(request->clients()), clock_())));
  return reactor;
}

grpc::ServerUnaryReactor* FederationService::Leave(grpc::CallbackServerContext* ctx,
                                                   const v1::LeaveRequest* request, v1::LeaveReply* reply) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(coordinator_->Leave(ToCredentials(request->clients()), clock_())));
  return reactor;
}

}  // namespace lfl
