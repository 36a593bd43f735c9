#include "client/client_host.h"

#include <chrono>
#include <cmath>
#include <future>
#include <optional>
#include <random>
#include <thread>

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <grpcpp/generic/generic_stub.h>
#include <spdlog/spdlog.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "runtime/local_update.h"
#include "common/file_io.h"
#include "common/seed.h"
#include "config/run_config.h"
#include "wire/model_payload.h"

namespace lfl {

namespace v1 = lotteryfl::v1;

namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
}

bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsAborted(s) || absl::IsCancelled(s) ||
         absl::IsInternal(s) || absl::IsUnknown(s) || absl::IsResourceExhausted(s);
}

std::chrono::system_clock::time_point After(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(seconds));
}

constexpr size_t kChunkBytes = 1 << 20;
constexpr int kTaskRetries = 8;  // transient refusals of one step of a task before it gives up

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> MakeChannelCredentials(const ClientOptions& o) {
  if (o.tls_ca.empty()) {
    if (!o.tls_cert.empty() || !o.tls_key.empty()) {
      return absl::InvalidArgumentError("--tls-cert/--tls-key need --tls-ca");
    }
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions ssl;
  absl::StatusOr<std::string> ca = ReadTextFile(o.tls_ca);
  if (!ca.ok()) return ca.status();
  ssl.pem_root_certs = *ca;
  if (!o.tls_cert.empty() || !o.tls_key.empty()) {
    absl::StatusOr<std::string> cert = ReadTextFile(o.tls_cert);
    absl::StatusOr<std::string> key = ReadTextFile(o.tls_key);
    if (!cert.ok()) return cert.status();
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *cert;
    ssl.pem_private_key = *key;
  }
  return grpc::SslCredentials(ssl);
}

namespace {

absl::StatusOr<std::shared_ptr<grpc::Channel>> Dial(const ClientOptions& o) {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> creds = MakeChannelCredentials(o);
  if (!creds.ok()) return creds.status();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, static_cast<int>(o.max_backoff_seconds * 1000));
  return grpc::CreateCustomChannel(o.server, *creds, args);
}

}  // namespace

absl::Status ProbeServer(const ClientOptions& options, double timeout_seconds) {
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Dial(options);
  if (!channel.ok()) return channel.status();
  grpc::GenericStub stub(*channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(After(timeout_seconds));
  // An empty HealthCheckRequest (one empty slice: a buffer with no slices is invalid) asks about the server.
  grpc::Slice empty;
  grpc::ByteBuffer request(&empty, 1), response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = done.get_future().get();
  if (!s.ok()) return FromGrpc(s);
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("unreadable health response");
  std::string bytes;
  for (const grpc::Slice& slice : slices) bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  // HealthCheckResponse{status = SERVING (1)} is the two bytes 08 01.
  if (bytes == std::string("\x08\x01", 2)) return absl::OkStatus();
  return absl::UnavailableError("server is not SERVING");
}

ClientHost::ClientHost(ClientOptions options, std::shared_ptr<grpc::Channel> channel,
                       std::shared_ptr<const RunData> data)
    : options_(std::move(options)), channel_(std::move(channel)), data_(std::move(data)) {}

ClientHost::~ClientHost() { Stop(); }

void ClientHost::Stop() { stop_ = true; }

v1::Credential ClientHost::CredentialFor(int64_t id) const {
  v1::Credential c;
  c.set_client_id(id);
  if (auto it = options_.tokens.find(id); it != options_.tokens.end()) c.set_token(it->second);
  return c;
}

bool ClientHost::Backoff(int* failures) {
  ++*failures;
  static thread_local std::mt19937_64 rng(std::random_device{}());
  const double base = std::min(options_.max_backoff_seconds, 0.1 * std::pow(2.0, std::min(*failures, 16)));
  const double jitter = std::uniform_real_distribution<double>(0.5, 1.5)(rng);
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(base * jitter);
  while (!stop_ && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !stop_;
}

absl::Status ClientHost::Connect() {
  if (!channel_) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = Dial(options_);
    if (!channel.ok()) return channel.status();
    channel_ = *channel;
  }
  stub_ = v1::Federation::NewStub(channel_);
  return absl::OkStatus();
}

absl::Status ClientHost::JoinAll() {
  v1::JoinRequest request;
  request.set_protocol_version(1);
  request.set_host(options_.host_name);
  for (int64_t id : options_.client_ids) *request.add_clients() = CredentialFor(id);
  v1::JoinReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(After(30));
  if (absl::Status s = FromGrpc(stub_->Join(&ctx, request, &reply)); !s.ok()) return s;
  session_ = reply.session();  // empty from a server without sessions: poll with credentials
  if (data_) return absl::OkStatus();
  absl::StatusOr<RunConfig> config = RunConfigFromToml(reply.config_toml());
  if (!config.ok()) return config.status();
  spdlog::info("{}: joined {} clients; loading {} ({})", options_.host_name, options_.client_ids.size(),
               ModeName(config->dataset),
               config->client_data == ClientDataSource::kLocal
                   ? std::string("their own files")
                   : absl::StrCat(std::string(ModeName(config->partition)), " partition"));
  absl::StatusOr<std::shared_ptr<const RunData>> data =
      options_.load_data ? options_.load_data(*config) : LoadRunData(*config);
  if (!data.ok()) return data.status();
  data_ = *data;
  return absl::OkStatus();
}

absl::Status ClientHost::Run() {
  if (absl::Status s = Connect(); !s.ok()) return s;
  const auto started = std::chrono::steady_clock::now();
  int failures = 0;
  absl::StatusCode last_refusal = absl::StatusCode::kOk;
  auto retry_or_fail = [&](const absl::Status& s) -> bool {
    const double away = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!Transient(s) || (failures > 0 && away > options_.give_up_seconds)) return false;
    if (failures == 0 || s.code() != last_refusal) {
      spdlog::warn("{}: the server refused or is unreachable ({}: {}); retrying with backoff", options_.host_name,
                   absl::StatusCodeToString(s.code()), std::string(s.message()));
    }
    last_refusal = s.code();
    return Backoff(&failures);
  };
  for (;;) {
    if (stop_) return absl::OkStatus();
    absl::Status s = JoinAll();
    if (s.ok()) break;
    if (!retry_or_fail(s)) return s;
  }
  failures = 0;
  boost::asio::thread_pool pool(static_cast<size_t>(std::max(1, options_.parallel)));
  absl::Status result;
  while (!stop_) {
    v1::PollRequest request;
    request.set_host(options_.host_name);
    request.set_wait_ms(options_.poll_wait_ms);
    if (!session_.empty()) {
      request.set_session(session_);
    } else {
      for (int64_t id : options_.client_ids) *request.add_clients() = CredentialFor(id);
    }
    {
      absl::MutexLock lock(&mu_);
      for (const auto& [id, round, attempt] : in_flight_) request.add_busy_client_ids(id);
      if (!fatal_.ok()) {
        result = fatal_;
        break;
      }
    }
    v1::PollReply reply;
    grpc::ClientContext ctx;
    ctx.set_deadline(After(options_.poll_wait_ms / 1000.0 + 10));
    absl::Status s = FromGrpc(stub_->Poll(&ctx, request, &reply));
    if (absl::IsFailedPrecondition(s)) {  // the server restarted and forgot us (or our session): join again
      s = JoinAll();
      if (s.ok()) continue;
    }
    if (!s.ok()) {
      if (retry_or_fail(s)) continue;
      result = s;
      break;
    }
    if (failures > 0) spdlog::info("{}: reconnected", options_.host_name);
    failures = 0;
    if (reply.state() == v1::PollReply::FINISHED) break;
    absl::MutexLock lock(&mu_);
    // Ended tasks of past rounds can no longer be handed out.
    ended_.erase(ended_.begin(), ended_.lower_bound(std::make_tuple(reply.round(), uint32_t{0}, int64_t{-1})));
    for (const v1::Task& task : reply.tasks()) {
      auto key = std::make_tuple(task.client_id(), task.round(), task.attempt());
      if (ended_.count(std::make_tuple(task.round(), task.attempt(), task.client_id())) ||
          !in_flight_.insert(key).second) {
        continue;
      }
      boost::asio::post(pool, [this, task] { RunTask(task.client_id(), task.round(), task.attempt()); });
    }
  }
  pool.join();
  if (stop_) {
    v1::LeaveRequest leave;
    for (int64_t id : options_.client_ids) *leave.add_clients() = CredentialFor(id);
    v1::LeaveReply reply;
    grpc::ClientContext ctx;
    ctx.set_deadline(After(2));
    stub_->Leave(&ctx, leave, &reply);  // best effort: the server also drops silent clients
  }
  return result;
}

void ClientHost::RunTask(int64_t client_id, uint64_t round, uint32_t attempt) {
  // A transient failure (server away or restarted, link down) redoes the whole task: a
  // restarted server must serve the downlink again (it derives the pruned mask the update
  // references when it serves it), and training is seeded, so the update is the same.
  int failures = 0;
  absl::Status s;
  while (!stop_) {
    s = DoTask(client_id, round, attempt);
    if (!RetryTransient("task", client_id, round, s, &failures)) break;
  }
  // The server refused this update's content: the same seeded training would send it again.
  const bool over = absl::IsInvalidArgument(s) && !stop_;
  if (!s.ok() && !stop_) {
    if (Transient(s)) {
      spdlog::warn("client {} round {} attempt {}: giving up on the task after {} retries: {}: {}", client_id, round,
                   attempt, kTaskRetries, absl::StatusCodeToString(s.code()), std::string(s.message()));
    } else if (absl::IsFailedPrecondition(s)) {
      // The round moved on, or the server ended this task (a refused update): nothing to redo.
      spdlog::warn("client {} round {} attempt {}: {}; not retrained", client_id, round, attempt,
                   std::string(s.message()));
    } else {
      spdlog::error("client {} round {} attempt {}: {}: {}; the task is over, not retrained", client_id, round,
                    attempt, absl::StatusCodeToString(s.code()), std::string(s.message()));
    }
  }
  absl::MutexLock lock(&mu_);
  if (!s.ok() && (absl::IsUnauthenticated(s) || absl::IsPermissionDenied(s) || absl::IsNotFound(s))) fatal_ = s;
  const auto key = std::make_tuple(client_id, round, attempt);
  in_flight_.erase(key);
  // A task that ended is never trained again, even if a server hands it out once more.
  if (over) ended_.insert(std::make_tuple(round, attempt, client_id));
}

bool ClientHost::RetryTransient(const char* what, int64_t client_id, uint64_t round, const absl::Status& s,
                                int* failures) {
  if (!Transient(s) || *failures >= kTaskRetries) return false;
  spdlog::warn("client {} round {}: {} refused ({}: {}); retry {} of {} with backoff", client_id, round, what,
               absl::StatusCodeToString(s.code()), std::string(s.message()), *failures + 1, kTaskRetries);
  return Backoff(failures);
}

absl::Status ClientHost::FetchTask(int64_t client_id, uint64_t round, uint32_t attempt, Downlink* out) {
  CachedMask held;
  bool have_held = false;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = masks_.find(client_id); it != masks_.end()) {
      held = it->second;
      have_held = true;
    }
  }
  v1::FetchRequest fetch;
  *fetch.mutable_client() = CredentialFor(client_id);
  fetch.set_round(round);
  fetch.set_attempt(attempt);
  if (have_held) {
    fetch.set_held_mask_version(held.version);
    fetch.set_held_mask_hash(MaskHash(held.mask));
  }
  const auto t_fetch = std::chrono::steady_clock::now();
  std::string payload;
  out->version = 0;
  out->layer_bits.clear();
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(After(120));
    std::unique_ptr<grpc::ClientReader<v1::Chunk>> reader = stub_->FetchModel(&ctx, fetch);
    v1::Chunk chunk;
    bool first = true;
    while (reader->Read(&chunk)) {
      if (first) {
        out->version = chunk.mask_version();
        if (chunk.layer_bits_size() > 64) return absl::InvalidArgumentError("too many layer bits from server");
        for (uint32_t b : chunk.layer_bits()) {
          if (b > static_cast<uint32_t>(codec::kMaxQuantBits)) {
            return absl::InvalidArgumentError(
                absl::StrCat("layer bits ", b, " from server (at most ", codec::kMaxQuantBits, ")"));
          }
          out->layer_bits.push_back(static_cast<int>(b));
        }
        if (chunk.total_bytes() > (1ull << 30)) return absl::InvalidArgumentError("model larger than 1 GiB");
        payload.reserve(chunk.total_bytes());
        first = false;
      }
      payload.append(chunk.data());
    }
    if (absl::Status s = FromGrpc(reader->Finish()); !s.ok()) return s;
  }
  out->network_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_fetch).count();
  absl::StatusOr<DecodedModel> down =
      DecodeModel(payload, data_->theta0, have_held ? &held.mask : nullptr, held.version);
  if (!down.ok()) return absl::InternalError(absl::StrCat("bad model from server: ", down.status().message()));
  out->model = *std::move(down);
  return absl::OkStatus();
}

absl::Status ClientHost::Upload(const v1::UpdateChunk& header, const std::string& payload) {
  v1::SubmitReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(After(120));
  std::unique_ptr<grpc::ClientWriter<v1::UpdateChunk>> writer = stub_->SubmitUpdate(&ctx, &reply);
  bool ok = writer->Write(header);
  for (size_t off = 0; ok && off < payload.size(); off += kChunkBytes) {
    v1::UpdateChunk data;
    data.set_data(payload.substr(off, kChunkBytes));
    ok = writer->Write(data);
  }
  writer->WritesDone();
  return FromGrpc(writer->Finish());
}

absl::Status ClientHost::DoTask(int64_t client_id, uint64_t round, uint32_t attempt) {
  Downlink down;
  if (absl::Status s = FetchTask(client_id, round, attempt, &down); !s.ok()) return s;
  const BenchAttack& attack = options_.bench_attack;
  if (attack.kind == BenchAttack::kRefetch && attack.clients.count(client_id)) {
    for (int i = 0; i < attack.refetches && !stop_; ++i) {
      Downlink again;
      FetchTask(client_id, round, attempt, &again).IgnoreError();  // a flood: the answers do not matter
    }
  }
  absl::StatusOr<LocalResult> result =
      RunLocalUpdate(*data_, client_id, round, attempt, down.model, down.version, down.layer_bits);
  absl::Status trained = result.status();
  if (trained.ok()) trained = ApplyBenchAttack(attack, *data_, client_id, round, attempt, down.model, down.version, &*result);
  if (!trained.ok()) return Abandon(client_id, round, attempt, trained);

  v1::UpdateChunk chunk;
  v1::UpdateHeader* h = chunk.mutable_header();
  *h->mutable_client() = CredentialFor(client_id);
  h->set_round(round);
  h->set_attempt(attempt);
  h->set_payload_bytes(result->step.update.payload.size());
  h->set_num_samples(result->num_samples);
  h->set_local_accuracy(result->step.local_accuracy);
  h->set_test_count(result->test_count);
  h->set_validation_accuracy(result->step.gate.validation_accuracy);
  h->set_global_masked_accuracy(result->step.global_masked_accuracy);
  h->set_pruned(result->step.mask_changed);
  h->set_train_seconds(result->step.train_seconds);
  h->set_encode_seconds(result->step.encode_seconds);
  h->set_network_seconds(down.network_seconds);
  // A busy server (no upload slot, an upload of this client still in flight) is asked again
  // with the same update; anything else goes back to RunTask.
  int failures = 0;
  for (;;) {
    absl::Status s = Upload(chunk, result->step.update.payload);
    if (s.ok()) break;
    if (!absl::IsResourceExhausted(s) || !RetryTransient("update upload", client_id, round, s, &failures)) return s;
  }
  absl::MutexLock lock(&mu_);
  masks_[client_id] = result->step.mask_changed ? CachedMask{result->step.mask, down.version + 1}
                                                : CachedMask{down.model.mask, down.version};
  tasks_completed_++;
  sent_per_round_[round]++;
  return absl::OkStatus();
}

absl::Status ClientHost::Abandon(int64_t client_id, uint64_t round, uint32_t attempt, const absl::Status& why) {
  if (Transient(why) || stop_) return why;  // RunTask retries the task, or the host is stopping
  v1::AbandonRequest request;
  *request.mutable_client() = CredentialFor(client_id);
  request.set_round(round);
  request.set_attempt(attempt);
  request.set_reason(std::string(why.message().substr(0, 256)));
  v1::AbandonReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(After(10));
  if (absl::Status s = FromGrpc(stub_->AbandonTask(&ctx, request, &reply)); !s.ok()) {
    spdlog::warn("client {} round {} attempt {}: the server was not told the task is abandoned ({}: {}); the round "
                 "waits for its deadline",
                 client_id, round, attempt, absl::StatusCodeToString(s.code()), std::string(s.message()));
  }
  return why;
}

std::map<uint64_t, int64_t> ClientHost::sent_per_round() const {
  absl::MutexLock lock(&mu_);
  return sent_per_round_;
}

}  // namespace lfl
