#include "server/federation_server.h"

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "fl/strategy.h"
#include "server/checkpoint.h"
#include "server/federation_service.h"
#include "server/http/metrics_http_server.h"
#include "server/http/prometheus_text.h"

namespace lfl {

absl::StatusOr<std::string> ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

absl::StatusOr<std::map<int64_t, std::string>> ReadTokensFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadTextFile(path);
  if (!text.ok()) return text.status();
  std::map<int64_t, std::string> tokens;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    int64_t id = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &id) || id < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_no, ": expected '<client-id> <token>'"));
    }
    tokens[id] = std::string(parts[1]);
  }
  if (tokens.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no tokens"));
  return tokens;
}

class FederationServer::Impl {
 public:
  boost::asio::io_context io;
  boost::asio::steady_timer timer{io};
  boost::asio::signal_set signals{io};
  std::thread io_thread;
  std::unique_ptr<Evaluator> evaluator;
  std::unique_ptr<FederationService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsHttpServer> http;
  RoundCallback on_round;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  absl::Notification done;
  absl::Mutex mu;
  absl::Status result ABSL_GUARDED_BY(mu) = absl::OkStatus();
  double tick_seconds = 0.02;

  double Now() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

absl::StatusOr<std::unique_ptr<FederationServer>> FederationServer::Start(ServerOptions options, TensorSet theta0,
                                                                          std::unique_ptr<Evaluator> evaluator,
                                                                          RoundCallback on_round) {
  if (absl::Status s = ValidateRunConfig(options.config); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Strategy>> strategy = MakeStrategy(options.config.algorithm);
  if (!strategy.ok()) return strategy.status();
  if (options.config.algorithm == "lotteryfl") *strategy = MakeLotteryFl(options.config.weighted);

  CoordinatorOptions copts;
  copts.config = options.config;
  if (!options.tokens_file.empty()) {
    absl::StatusOr<std::map<int64_t, std::string>> tokens = ReadTokensFile(options.tokens_file);
    if (!tokens.ok()) return tokens.status();
    copts.tokens = *std::move(tokens);
  }

  auto self = std::unique_ptr<FederationServer>(new FederationServer());
  self->impl_ = std::make_unique<Impl>();
  Impl& impl = *self->impl_;
  impl.evaluator = std::move(evaluator);
  impl.on_round = std::move(on_round);
  impl.tick_seconds = options.tick_seconds;
  const std::string checkpoint = options.config.out + "/checkpoint.bin";
  self->coordinator_ = std::make_unique<RoundCoordinator>(copts, std::move(theta0), *std::move(strategy),
                                                          impl.evaluator.get(), checkpoint, impl.Now());
  uint64_t keep_before = 0;
  if (options.resume) {
    if (absl::Status s = self->coordinator_->Restore(checkpoint, impl.Now()); !s.ok()) return s;
    keep_before = self->coordinator_->current_round();
  }
  absl::StatusOr<std::unique_ptr<RunRecorder>> recorder = RunRecorder::Open(options.config.out, keep_before);
  if (!recorder.ok()) return recorder.status();
  self->recorder_ = *std::move(recorder);

  FederationServer* raw = self.get();
  impl.service = std::make_unique<FederationService>(
      self->coordinator_.get(), [raw] { return raw->impl_->Now(); }, ServiceLimits{},
      [raw] { boost::asio::post(raw->impl_->io, [raw] { raw->impl_->timer.cancel(); }); });

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.RegisterService(impl.service.get());
  if (!options.listen.empty()) {
    std::shared_ptr<grpc::ServerCredentials> creds;
    if (!options.tls_cert.empty() || !options.tls_key.empty()) {
      absl::StatusOr<std::string> cert = ReadTextFile(options.tls_cert);
      absl::StatusOr<std::string> key = ReadTextFile(options.tls_key);
      if (!cert.ok()) return cert.status();
      if (!key.ok()) return key.status();
      grpc::SslServerCredentialsOptions ssl(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
      if (!options.tls_client_ca.empty()) {
        absl::StatusOr<std::string> ca = ReadTextFile(options.tls_client_ca);
        if (!ca.ok()) return ca.status();
        ssl.pem_root_certs = *ca;
        ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
      }
      ssl.pem_key_cert_pairs.push_back({*key, *cert});
      creds = grpc::SslServerCredentials(ssl);
    } else {
      creds = grpc::InsecureServerCredentials();
    }
    builder.AddListeningPort(options.listen, creds, &self->port_);
  }
  impl.server = builder.BuildAndStart();
  if (!impl.server || (!options.listen.empty() && self->port_ == 0)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  impl.server->GetHealthCheckService()->SetServingStatus(true);

  if (!options.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http =
        MetricsHttpServer::Listen(options.metrics_listen, [raw] { return raw->RenderMetrics(); });
    if (!http.ok()) return http.status();
    impl.http = *std::move(http);
  }

  if (options.handle_signals) {
    impl.signals.add(SIGINT);
    impl.signals.add(SIGTERM);
    impl.signals.async_wait([raw](const boost::system::error_code& ec, int) {
      if (!ec) raw->Stop();
    });
  }

  boost::asio::post(impl.io, [raw] { raw->TickLoop(); });
  impl.io_thread = std::thread([raw] {
    auto guard = boost::asio::make_work_guard(raw->impl_->io);
    raw->impl_->io.run();
  });
  return self;
}

// The tick loop: advance the coordinator, record rounds, answer parked polls, re-arm the timer.
void FederationServer::TickLoop() {
  Impl& im = *impl_;
  if (im.done.HasBeenNotified()) return;
  coordinator_->Tick(im.Now(), [this, &im](const RoundEvent& event) {
    if (!event.retried) {
      if (absl::Status s = recorder_->WriteRound(event.metrics); !s.ok()) {
        absl::MutexLock lock(&im.mu);
        im.result = s;
      }
    }
    if (im.on_round) im.on_round(event);
  });
  im.service->Pump();
  if (coordinator_->finished()) {
    im.done.Notify();
    return;
  }
  im.timer.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(im.tick_seconds)));
  im.timer.async_wait([this](const boost::system::error_code&) { TickLoop(); });
}

void FederationServer::Stop() {
  if (impl_->done.HasBeenNotified()) return;
  absl::Status s = coordinator_->CheckpointNow();
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->result = s.ok() ? absl::CancelledError("stopped before the last round") : s;
  }
  impl_->done.Notify();
}

absl::Status FederationServer::Wait() {
  impl_->done.WaitForNotification();
  // Let parked polls learn that the run is over, then shut down.
  impl_->service->Pump();
  std::vector<std::string> layer_names;
  for (const NamedTensor& t : coordinator_->global_model().tensors) {
    if (t.prunable) layer_names.push_back(t.name);
  }
  absl::Status summary =
      recorder_->WriteSummary(coordinator_->config(), coordinator_->totals(), impl_->Now(), layer_names);
  if (summary.ok() && coordinator_->finished()) {
    summary = WriteFileAtomically(coordinator_->config().out + "/model.bin",
                                  SerializeTensorSet(coordinator_->global_model()));
  }
  absl::MutexLock lock(&impl_->mu);
  if (impl_->result.ok() && !summary.ok()) impl_->result = summary;
  return impl_->result;
}

FederationServer::~FederationServer() {
  if (!impl_) return;
  if (!impl_->done.HasBeenNotified()) impl_->done.Notify();
  // Start() may have failed before the service or the server existed.
  if (impl_->service) impl_->service->ReleaseAll();
  if (impl_->server) impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (impl_->service) impl_->service->ReleaseAll();
  if (impl_->http) impl_->http->Stop();
  impl_->io.stop();
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
  if (impl_->server) impl_->server->Wait();
}

std::shared_ptr<grpc::Channel> FederationServer::InProcessChannel() {
  return impl_->server->InProcessChannel(grpc::ChannelArguments());
}

std::string FederationServer::RenderMetrics() const {
  PrometheusText text;
  const RoundCoordinator::Totals t = coordinator_->totals();
  text.Gauge("lotteryfl_round", "round being run (1-based)", static_cast<double>(coordinator_->current_round()));
  text.Counter("lotteryfl_rounds_completed_total", "rounds aggregated", static_cast<double>(t.rounds_completed));
  text.Counter("lotteryfl_uplink_bytes_total", "serialized update bytes received", static_cast<double>(t.uplink_bytes));
  text.Counter("lotteryfl_downlink_bytes_total", "serialized model bytes sent", static_cast<double>(t.downlink_bytes));
  text.Counter("lotteryfl_dense_fp32_bytes_total", "what dense fp32 updates would have cost",
               static_cast<double>(t.dense_fp32_bytes));
  int64_t joined = 0;
  for (const ClientState& c : coordinator_->clients()) joined += (c.joined && !c.left) ? 1 : 0;
  text.Gauge("lotteryfl_clients_joined", "clients joined and not left", static_cast<double>(joined));
  text.Gauge("lotteryfl_finished", "1 when the run is over", coordinator_->finished() ? 1 : 0);
  return text.str();
}

}  // namespace lfl
