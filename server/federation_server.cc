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
#include <prometheus/histogram.h>

#include "absl/strings/numbers.h"
#include "common/file_io.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/ascii.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "strategy/strategy.h"
#include "server/coordinator/checkpoint.h"
#include "server/federation_service.h"
#include "server/serial_worker.h"
#include "server/http/families.h"
#include "server/http/metrics_http_server.h"
#include "server/http/process_collector.h"

namespace lfl {

absl::Status CheckTransportSecurity(const ServerOptions& options) {
  if (options.listen.empty() || options.insecure) return absl::OkStatus();
  std::vector<std::string> missing;
  if (options.tls_cert.empty() || options.tls_key.empty()) missing.push_back("TLS (--tls-cert and --tls-key)");
  if (options.tokens_file.empty()) missing.push_back("client tokens (--tokens)");
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "refusing to listen on ", options.listen, " without ", absl::StrJoin(missing, " and "),
      ": anyone who reaches the port could read the models and act as any client. Generate them with "
      "scripts/gen-certs.sh and scripts/gen-tokens.sh, or pass --insecure on a network you trust"));
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
  // /metrics: the coordinator's state read at each scrape, the round latencies, the process.
  prometheus::Histogram round_seconds{{0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600}};
  // Held by a scrape of the lotteryfl_* families and by the tick while it closes rounds and
  // observes their durations.
  absl::Mutex scrape_mu;
  std::shared_ptr<prometheus::Collectable> federation_metrics, process_metrics;
  // Served by the Boost.Beast MetricsHttpServer, not prometheus-cpp's Exposer: civetweb starts
  // its workers with a fixed 100 KiB stack, smaller than the static TLS that LibTorch, OpenBLAS
  // and glog bring into this process, so pthread_create fails and the Exposer cannot start.
  std::unique_ptr<MetricsHttpServer> http;
  RoundCallback on_round;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  absl::Notification done;
  absl::Mutex mu;
  absl::Status result ABSL_GUARDED_BY(mu) = absl::OkStatus();
  double tick_seconds = 0.02;
  // Each aggregated round's evaluation, row and checkpoint, in round order, off the tick thread.
  // Declared last: destroyed (drained and joined) first.
  std::unique_ptr<SerialWorker> bookkeeping = std::make_unique<SerialWorker>();

  double Now() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

namespace {

// The lotteryfl_* families of /metrics, read from the coordinator at each scrape.
// lotteryfl_refusals_total{cause="..."}: one sample per cause seen so far.
prometheus::MetricFamily RefusalFamily(const RefusalCounters& refusals) {
  prometheus::MetricFamily family;
  family.name = "lotteryfl_refusals_total";
  family.help = "requests the server turned away, by cause (transport, header and update refusals)";
  family.type = prometheus::MetricType::Counter;
  for (const auto& [cause, n] : refusals.Snapshot()) {
    prometheus::ClientMetric& sample = family.metric.emplace_back();
    sample.label.push_back({"cause", cause});
    sample.counter.value = static_cast<double>(n);
  }
  return family;
}

std::vector<prometheus::MetricFamily> FederationFamilies(const RoundCoordinator& coordinator,
                                                         const prometheus::Histogram& round_seconds,
                                                         const RefusalCounters& refusals) {
  const RunTotals t = coordinator.totals();
  const CoordinatorCounters c = coordinator.counters();
  const int64_t joined = coordinator.joined_clients();
  auto count = [](uint64_t n) { return static_cast<double>(n); };
  prometheus::MetricFamily latency;
  latency.name = "lotteryfl_round_duration_seconds";
  latency.help = "wall time of each aggregated round, opened to aggregated (this process)";
  latency.type = prometheus::MetricType::Histogram;
  latency.metric.push_back(round_seconds.Collect());
  return {
      GaugeFamily("lotteryfl_round", "round being run (1-based)", count(coordinator.current_round())),
      CounterFamily("lotteryfl_rounds_completed_total", "rounds aggregated", count(t.rounds_completed)),
      CounterFamily("lotteryfl_uplink_bytes_total", "serialized update bytes received", count(t.uplink_bytes)),
      CounterFamily("lotteryfl_downlink_bytes_total", "serialized model bytes sent", count(t.downlink_bytes)),
      CounterFamily("lotteryfl_dense_fp32_bytes_total", "what dense fp32 updates would have cost",
                    count(t.dense_fp32_bytes)),
      GaugeFamily("lotteryfl_clients_joined", "clients joined and not left", static_cast<double>(joined)),
      GaugeFamily("lotteryfl_finished", "1 when the run is over", coordinator.finished() ? 1 : 0),
      std::move(latency),
      CounterFamily("lotteryfl_updates_accepted_total", "updates folded into a round", count(c.updates_accepted)),
      CounterFamily("lotteryfl_updates_refused_total", "updates refused after decoding (layout, mask, norm, reports)",
                    count(c.updates_refused)),
      CounterFamily("lotteryfl_uploads_refused_total", "uploads refused at the header, before any payload was read",
                    count(c.uploads_refused)),
      CounterFamily("lotteryfl_auth_failures_total", "refused credentials, on any call", count(c.auth_failures)),
      CounterFamily("lotteryfl_checkpoint_failures_total", "failed checkpoint writes", count(c.checkpoint_failures)),
      CounterFamily("lotteryfl_evaluation_failures_total", "failed evaluations", count(c.evaluation_failures)),
      CounterFamily("lotteryfl_aggregation_failures_total", "failed aggregations", count(c.aggregation_failures)),
      RefusalFamily(refusals),
  };
}

}  // namespace

absl::Status CheckServerOptions(const ServerOptions& options) {
  if (absl::Status s = ValidateRunConfig(options.config); !s.ok()) return s;
  if (options.config.algorithm == Algorithm::kLocal) {
    return absl::InvalidArgumentError(
        "--algorithm local trains every client alone, with no server: run it with lotteryfl-sim");
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  return CheckTransportSecurity(options);
}

namespace {

// The coordinator's part of `options`; reads the tokens file.
absl::StatusOr<CoordinatorOptions> CoordinatorOptionsFor(const ServerOptions& options,
                                                         std::shared_ptr<RefusalCounters> refusals) {
  CoordinatorOptions copts;
  copts.config = options.config;
  copts.defer_round_work = true;
  if (!options.tokens_file.empty()) {
    absl::StatusOr<Authenticator> auth = Authenticator::FromFile(options.tokens_file, options.config.clients);
    if (!auth.ok()) return auth.status();
    auth->set_enforce_host_binding(!options.tls_client_ca.empty());
    copts.authenticator = std::make_shared<Authenticator>(*std::move(auth));
  }
  copts.train_counts = options.train_counts;
  copts.test_counts = options.test_counts;
  copts.max_reported_samples = options.max_reported_samples;
  copts.max_update_norm = options.max_update_norm;
  copts.refusals = std::move(refusals);
  return copts;
}

// What a connection may cost in time and memory (ServerOptions, ConnectionLimits).
void ApplyConnectionLimits(const ServerOptions& options, grpc::ServerBuilder* builder) {
  // Bounds what hostile peers can make gRPC itself buffer (all connections together), and how
  // many streams one connection may open.
  grpc::ResourceQuota quota("lotteryfl-server");
  quota.Resize(static_cast<size_t>(options.memory_quota_bytes));
  builder->SetResourceQuota(quota);
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, options.max_concurrent_streams);
  // gRPC 1.51 has no connection-count cap; 0 leaves gRPC's default.
  const ConnectionLimits& conn = options.connection_limits;
  auto arg = [builder](const char* name, int value) {
    if (value > 0) builder->AddChannelArgument(name, value);
  };
  arg(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, conn.handshake_timeout_ms);
  arg(GRPC_ARG_MAX_CONNECTION_IDLE_MS, conn.idle_ms);
  arg(GRPC_ARG_MAX_CONNECTION_AGE_MS, conn.age_ms);
  arg(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS, conn.age_grace_ms);
  arg(GRPC_ARG_KEEPALIVE_TIME_MS, conn.keepalive_time_ms);
  arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, conn.keepalive_timeout_ms);
  arg(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, conn.min_recv_ping_interval_ms);
  arg(GRPC_ARG_HTTP2_MAX_PING_STRIKES, conn.max_ping_strikes);
}

// TLS credentials from the PEM files (mutual TLS with a client CA), or plaintext when no
// certificate is set (CheckServerOptions allowed it).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ListenCredentials(const ServerOptions& options) {
  if (options.tls_cert.empty() && options.tls_key.empty()) return grpc::InsecureServerCredentials();
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
  return grpc::SslServerCredentials(ssl);
}

// How /metrics is served: the server's certificate for TLS, the bearer token from its file.
absl::StatusOr<MetricsHttpOptions> MetricsHttpOptionsFor(const ServerOptions& options) {
  MetricsHttpOptions mo;
  mo.max_connections = options.metrics.max_connections;
  mo.io_timeout = std::chrono::milliseconds(options.metrics.request_timeout_ms);
  if (options.metrics.tls) {
    if (options.tls_cert.empty() || options.tls_key.empty()) {
      return absl::InvalidArgumentError("TLS for /metrics uses the server's certificate: set --tls-cert and --tls-key");
    }
    mo.tls_cert_file = options.tls_cert;
    mo.tls_key_file = options.tls_key;
  }
  if (!options.metrics.token_file.empty()) {
    absl::StatusOr<std::string> token = ReadTextFile(options.metrics.token_file);
    if (!token.ok()) return token.status();
    mo.bearer_token = std::string(absl::StripAsciiWhitespace(*token));
    if (mo.bearer_token.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("the metrics token file ", options.metrics.token_file, " is empty"));
    }
  }
  return mo;
}

}  // namespace

absl::StatusOr<std::unique_ptr<FederationServer>> FederationServer::Start(ServerOptions options, TensorSet theta0,
                                                                          std::unique_ptr<Evaluator> evaluator,
                                                                          RoundCallback on_round) {
  if (absl::Status s = CheckServerOptions(options); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<Strategy>> strategy = MakeStrategy(options.config);
  if (!strategy.ok()) return strategy.status();
  // One RefusalCounters for the service, the coordinator (its metrics.jsonl rows) and /metrics.
  auto refusals = std::make_shared<RefusalCounters>();
  absl::StatusOr<CoordinatorOptions> copts = CoordinatorOptionsFor(options, refusals);
  if (!copts.ok()) return copts.status();

  auto self = std::unique_ptr<FederationServer>(new FederationServer());
  self->refusals_ = refusals;
  self->impl_ = std::make_unique<Impl>();
  self->impl_->evaluator = std::move(evaluator);
  self->impl_->on_round = std::move(on_round);
  self->impl_->tick_seconds = options.tick_seconds;
  self->InitMetrics();
  if (absl::Status s = self->OpenCoordinator(options, *copts, std::move(theta0), *std::move(strategy)); !s.ok()) {
    return s;
  }
  if (absl::Status s = self->StartGrpc(options); !s.ok()) return s;
  if (absl::Status s = self->StartMetricsHttp(options); !s.ok()) return s;
  self->StartTicking(options.handle_signals);
  return self;
}

// The lotteryfl_* families and the process's, rendered at each scrape of /metrics.
void FederationServer::InitMetrics() {
  impl_->federation_metrics = std::make_shared<CallbackCollectable>([raw = this] {
    absl::MutexLock lock(&raw->impl_->scrape_mu);
    std::vector<prometheus::MetricFamily> families =
        FederationFamilies(*raw->coordinator_, raw->impl_->round_seconds, *raw->refusals_);
    if (FederationService* service = raw->impl_->service.get()) {
      families.push_back(GaugeFamily("lotteryfl_upload_streams_pending",
                                     "upload streams open that have not sent a header (they hold no slot)",
                                     service->pending_uploads()));
      families.push_back(GaugeFamily("lotteryfl_upload_streams_admitted",
                                     "upload streams holding an upload slot", service->open_uploads()));
    }
    return families;
  });
  impl_->process_metrics = std::make_shared<ProcessCollector>();
}

// The coordinator (restored from <out>/checkpoint.bin on resume) and the run's recorder, which
// keeps the rows of the rounds the checkpoint holds.
absl::Status FederationServer::OpenCoordinator(const ServerOptions& options, const CoordinatorOptions& copts,
                                               TensorSet theta0, std::unique_ptr<Strategy> strategy) {
  const std::string checkpoint = options.config.out + "/checkpoint.bin";
  coordinator_ = std::make_unique<RoundCoordinator>(copts, std::move(theta0), std::move(strategy),
                                                    impl_->evaluator.get(), checkpoint, impl_->Now());
  uint64_t keep_before = 0;
  if (options.resume) {
    if (absl::Status s = coordinator_->Restore(checkpoint, impl_->Now()); !s.ok()) return s;
    keep_before = coordinator_->current_round();
  }
  absl::StatusOr<std::unique_ptr<RunRecorder>> recorder = RunRecorder::Open(options.config.out, keep_before);
  if (!recorder.ok()) return recorder.status();
  recorder_ = *std::move(recorder);
  return absl::OkStatus();
}

// The federation and health services on options.listen (and in-process), serving.
absl::Status FederationServer::StartGrpc(const ServerOptions& options) {
  Impl& impl = *impl_;
  FederationServer* raw = this;
  impl.service = std::make_unique<FederationService>(
      coordinator_.get(), [raw] { return raw->impl_->Now(); }, options.service_limits,
      [raw] { boost::asio::post(raw->impl_->io, [raw] { raw->impl_->timer.cancel(); }); }, refusals_,
      options.refusal_log);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.RegisterService(impl.service.get());
  ApplyConnectionLimits(options, &builder);
  if (!options.listen.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = ListenCredentials(options);
    if (!creds.ok()) return creds.status();
    builder.AddListeningPort(options.listen, *creds, &port_);
  }
  impl.server = builder.BuildAndStart();
  if (!impl.server || (!options.listen.empty() && port_ == 0)) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen));
  }
  impl.server->GetHealthCheckService()->SetServingStatus(true);
  return absl::OkStatus();
}

// Prometheus /metrics and /healthz on options.metrics_listen; nothing when it is empty.
absl::Status FederationServer::StartMetricsHttp(const ServerOptions& options) {
  if (options.metrics_listen.empty()) return absl::OkStatus();
  absl::StatusOr<MetricsHttpOptions> mo = MetricsHttpOptionsFor(options);
  if (!mo.ok()) return mo.status();
  absl::StatusOr<std::unique_ptr<MetricsHttpServer>> http =
      MetricsHttpServer::Listen(options.metrics_listen, [raw = this] { return raw->RenderMetrics(); }, *mo);
  if (!http.ok()) return http.status();
  impl_->http = *std::move(http);
  return absl::OkStatus();
}

// The io thread: the tick loop and, with handle_signals, SIGINT/SIGTERM → Stop().
void FederationServer::StartTicking(bool handle_signals) {
  Impl& impl = *impl_;
  FederationServer* raw = this;
  if (handle_signals) {
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
}

// The tick loop: advance the coordinator, record rounds, answer parked polls, re-arm the timer.
void FederationServer::TickLoop() {
  Impl& im = *impl_;
  if (im.done.HasBeenNotified()) return;
  auto record = [this, &im](const RoundEvent& event) {
    if (!event.retried) {
      if (absl::Status s = recorder_->WriteRound(event.metrics); !s.ok()) {
        absl::MutexLock lock(&im.mu);
        im.result = s;
      }
    }
    if (im.on_round) im.on_round(event);
  };
  // The coordinator defers each round's work (defer_round_work): evaluation, the row and the
  // checkpoint run on the bookkeeping worker, in round order, while the next round trains.
  std::vector<RoundEvent> events;
  {
    // A round counts in the histogram as soon as it counts in rounds_completed, not when its
    // bookkeeping is done; under the scrape's lock, so one scrape never sees one without the other.
    absl::MutexLock lock(&im.scrape_mu);
    events = coordinator_->Tick(im.Now());
    for (const RoundEvent& event : events) {
      if (!event.retried) im.round_seconds.Observe(event.metrics.wall_seconds);
    }
  }
  for (RoundEvent& event : events) {
    auto shared = std::make_shared<RoundEvent>(std::move(event));
    im.bookkeeping->Post([this, shared, record] {
      if (shared->work) {
        coordinator_->FinishRound(shared.get(), record);
      } else {
        record(*shared);
      }
    });
  }
  im.service->Pump();
  if (absl::Status fatal = coordinator_->fatal_error(); !fatal.ok()) {
    absl::MutexLock lock(&im.mu);
    im.result = fatal;
  }
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
  // Rows and checkpoints of rounds already aggregated first, so the last checkpoint never runs
  // ahead of the last recorded row.
  impl_->bookkeeping->Drain();
  absl::Status s = coordinator_->CheckpointNow();
  {
    absl::MutexLock lock(&impl_->mu);
    impl_->result = s.ok() ? absl::CancelledError("stopped before the last round") : s;
  }
  impl_->done.Notify();
}

absl::Status FederationServer::Wait() {
  impl_->done.WaitForNotification();
  // Let parked polls learn that the run is over, finish the rounds' bookkeeping, then shut down.
  impl_->service->Pump();
  impl_->bookkeeping->Drain();
  if (absl::Status fatal = coordinator_->fatal_error(); !fatal.ok()) {
    absl::MutexLock lock(&impl_->mu);
    impl_->result = fatal;
  }
  std::vector<std::string> layer_names;
  for (const NamedTensor& t : coordinator_->global_model().tensors) {
    if (t.prunable) layer_names.push_back(t.name);
  }
  absl::Status summary =
      recorder_->WriteSummary(coordinator_->config(), coordinator_->totals(), impl_->Now(), layer_names);
  if (summary.ok() && coordinator_->finished() && coordinator_->fatal_error().ok()) {
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
  const bool finished = coordinator_ && coordinator_->finished();
  if (impl_->service) impl_->service->ReleaseAll(finished);
  if (impl_->server) impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (impl_->service) impl_->service->ReleaseAll(finished);
  if (impl_->http) impl_->http->Stop();
  impl_->io.stop();
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
  // No tick posts work any more; finish what is queued while the coordinator and the recorder
  // (members destroyed before impl_) still exist.
  impl_->bookkeeping.reset();
  if (impl_->server) impl_->server->Wait();
}

int FederationServer::open_uploads() const { return impl_->service->open_uploads(); }

int FederationServer::pending_uploads() const { return impl_->service->pending_uploads(); }

std::shared_ptr<grpc::Channel> FederationServer::InProcessChannel() {
  return impl_->server->InProcessChannel(grpc::ChannelArguments());
}

std::string FederationServer::RenderMetrics() const {
  return RenderText({impl_->federation_metrics.get(), impl_->process_metrics.get()});
}

int FederationServer::metrics_port() const { return impl_->http ? impl_->http->port() : 0; }

}  // namespace lfl
