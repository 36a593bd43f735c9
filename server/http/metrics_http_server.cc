#include "server/http/metrics_http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <openssl/crypto.h>

#include <atomic>
#include <list>
#include <optional>
#include <type_traits>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace lfl {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";

bool IsParseError(const beast::error_code& ec) {
  return ec.category() == http::make_error_code(http::error::bad_target).category() &&
         ec != http::error::end_of_stream && ec != http::error::partial_message;
}

// Builds the reply to one well-formed request.
bool HasBearerToken(const http::request<http::string_body>& request, const std::string& token);

http::response<http::string_body> Respond(const http::request<http::string_body>& request,
                                          const MetricsHttpServer::RenderFn& render, const std::string& token) {
  http::response<http::string_body> response;
  response.version(request.version());
  response.keep_alive(request.keep_alive());
  const beast::string_view target = request.target();
  const beast::string_view path = target.substr(0, target.find('?'));
  const bool known = path == "/metrics" || path == "/healthz";
  if (!known) {
    response.result(http::status::not_found);
    response.body() = "not found\n";
  } else if (request.method() != http::verb::get) {
    response.result(http::status::method_not_allowed);
    response.set(http::field::allow, "GET");
    response.body() = "method not allowed\n";
  } else if (path == "/metrics" && !token.empty() && !HasBearerToken(request, token)) {
    response.result(http::status::unauthorized);
    response.set(http::field::www_authenticate, "Bearer realm=\"lotteryfl\"");
    response.body() = "a bearer token is required\n";
  } else if (path == "/healthz") {
    response.result(http::status::ok);
    response.body() = "ok";
  } else {
    try {
      response.body() = render();
      response.result(http::status::ok);
      response.set(http::field::content_type, kPrometheusContentType);
    } catch (...) {
      response.result(http::status::internal_server_error);
      response.body() = "metrics unavailable\n";
    }
  }
  if (response.find(http::field::content_type) == response.end()) {
    response.set(http::field::content_type, "text/plain; charset=utf-8");
  }
  response.prepare_payload();
  return response;
}

// What every connection shares: the server's options, and the connections held, oldest
// first. Touched only on the server's one thread.
class SessionBase;
struct Registry {
  Registry(MetricsHttpServer::RenderFn r, MetricsHttpOptions o) : render(std::move(r)), options(std::move(o)) {}
  const MetricsHttpServer::RenderFn render;
  const MetricsHttpOptions options;
  std::list<SessionBase*> sessions;  // in accept order
  int held = 0;                      // sessions not evicted
  std::atomic<uint64_t> evicted{0};
};

// One connection, whatever its stream (plain TCP or TLS over TCP).
class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  explicit SessionBase(Registry& registry) : registry_(registry) {
    at_ = registry_.sessions.insert(registry_.sessions.end(), this);
    ++registry_.held;
  }
  virtual ~SessionBase() {
    registry_.sessions.erase(at_);
    if (!evicted_) --registry_.held;
  }
  virtual void Start() = 0;
  // True while the connection waits for (or reads) a request or its TLS handshake: dropping
  // it then loses no reply.
  bool waiting() const { return waiting_ && !evicted_; }
  // Closes the connection now to make room; its pending operation ends with an error.
  void Evict() {
    evicted_ = true;
    --registry_.held;
    registry_.evicted.fetch_add(1, std::memory_order_relaxed);
    CloseSocket();
  }

 protected:
  virtual void CloseSocket() = 0;
  Registry& registry_;
  bool waiting_ = true;
  bool evicted_ = false;

 private:
  std::list<SessionBase*>::iterator at_;
};

bool HasBearerToken(const http::request<http::string_body>& request, const std::string& token) {
  auto it = request.find(http::field::authorization);
  if (it == request.end()) return false;
  const beast::string_view value = it->value();
  constexpr beast::string_view kScheme = "Bearer ";
  if (value.size() != kScheme.size() + token.size() || !beast::iequals(value.substr(0, kScheme.size()), kScheme)) {
    return false;
  }
  return CRYPTO_memcmp(value.data() + kScheme.size(), token.data(), token.size()) == 0;
}

// One connection: (TLS handshake,) read a request (bounded in size and time), answer, repeat
// while the client keeps the connection alive. Lives as long as an asynchronous operation
// holds it.
template <class Stream>
class Session : public SessionBase {
 public:
  Session(Stream stream, Registry& registry)
      : SessionBase(registry), stream_(std::move(stream)), buffer_(registry.options.max_request_bytes) {}

  void Start() override {
    if constexpr (std::is_same_v<Stream, beast::tcp_stream>) {
      ReadRequest();
    } else {
      beast::get_lowest_layer(stream_).expires_after(registry_.options.io_timeout);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = shared_from_this(), this](beast::error_code ec) {
                                if (ec) return Close();
                                ReadRequest();
                              });
    }
  }

 private:
  void ReadRequest() {
    waiting_ = true;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(registry_.options.max_request_bytes));
    parser_->body_limit(registry_.options.max_request_bytes);
    // One deadline for the whole request: a client dripping bytes gets io_timeout, not more.
    beast::get_lowest_layer(stream_).expires_after(registry_.options.io_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this(), this](beast::error_code ec, size_t) { OnRead(ec); });
  }

  void OnRead(const beast::error_code& ec) {
    waiting_ = false;
    if (evicted_) return Close();
    if (IsParseError(ec)) {
      http::response<http::string_body> bad{http::status::bad_request, 11};
      bad.set(http::field::content_type, "text/plain; charset=utf-8");
      bad.keep_alive(false);
      bad.body() = "bad request\n";
      bad.prepare_payload();
      return Write(std::move(bad));
    }
    if (ec) return Close();  // timeout, reset, or the client closed
    Write(Respond(parser_->get(), registry_.render, registry_.options.bearer_token));
  }

  void Write(http::response<http::string_body> response) {
    response_ = std::move(response);
    beast::get_lowest_layer(stream_).expires_after(registry_.options.io_timeout);
    http::async_write(stream_, response_, [self = shared_from_this(), this](beast::error_code ec, size_t) {
      if (ec || !response_.keep_alive() || evicted_) return Close();
      ReadRequest();
    });
  }

  void Close() { CloseSocket(); }
  void CloseSocket() override {
    beast::error_code ignored;
    auto& socket = beast::get_lowest_layer(stream_).socket();
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
};

absl::StatusOr<tcp::endpoint> ResolveEndpoint(asio::io_context& io, const std::string& address,
                                              uint16_t port) {
  if (address.empty()) return absl::InvalidArgumentError("metrics listen address is empty");
  beast::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(address, ec);
  if (!ec) return tcp::endpoint(ip, port);
  tcp::resolver resolver(io);
  const auto results = resolver.resolve(
      address, std::to_string(port), tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot resolve metrics listen address '", address, "': ", ec.message()));
  }
  return results.begin()->endpoint();
}

}  // namespace

class MetricsHttpServer::Impl {
 public:
  Impl(RenderFn render, const MetricsHttpOptions& options) : registry_(std::move(render), options) {}

  absl::Status LoadTls() {
    const MetricsHttpOptions& o = registry_.options;
    if (o.tls_cert_file.empty() && o.tls_key_file.empty()) return absl::OkStatus();
    if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
      return absl::InvalidArgumentError("metrics TLS needs both a certificate and a key file");
    }
    tls_.emplace(asio::ssl::context::tls_server);
    beast::error_code ec;
    tls_->set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                          asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                          asio::ssl::context::no_tlsv1_1,
                      ec);
    if (!ec) tls_->use_certificate_chain_file(o.tls_cert_file, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("metrics TLS certificate ", o.tls_cert_file, ": ", ec.message()));
    tls_->use_private_key_file(o.tls_key_file, asio::ssl::context::pem, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("metrics TLS key ", o.tls_key_file, ": ", ec.message()));
    return absl::OkStatus();
  }

  absl::Status Bind(const std::string& address, uint16_t port) {
    absl::StatusOr<tcp::endpoint> endpoint = ResolveEndpoint(*io_, address, port);
    if (!endpoint.ok()) return endpoint.status();
    beast::error_code ec;
    acceptor_.emplace(*io_);
    acceptor_->open(endpoint->protocol(), ec);
    if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_->bind(*endpoint, ec);
    if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen for metrics on ", address, ":", port, ": ", ec.message()));
    }
    port_ = acceptor_->local_endpoint().port();
    return absl::OkStatus();
  }

  void Run() {
    Accept();
    thread_ = std::thread([this] { io_->run(); });
  }

  uint16_t port() const { return port_; }
  uint64_t evicted() const { return registry_.evicted.load(std::memory_order_relaxed); }

  void Stop() {
    absl::MutexLock lock(&stop_mutex_);
    if (stopped_) return;
    stopped_ = true;
    io_->stop();
    if (thread_.joinable()) thread_.join();
    // With the thread gone nothing else touches these. Destroying the
    // io_context destroys the pending handlers, which own the sessions, so
    // every connection is closed here.
    acceptor_.reset();
    retry_timer_.reset();
    io_.reset();
  }

 private:
  void Accept() {
    acceptor_->async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (ec) return RetryAcceptLater();  // e.g. out of descriptors: do not spin
      if (MakeRoom()) {
        std::shared_ptr<SessionBase> session;
        if (tls_) {
          session = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
              beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), *tls_), registry_);
        } else {
          session = std::make_shared<Session<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)), registry_);
        }
        session->Start();
      } else {
        registry_.evicted.fetch_add(1, std::memory_order_relaxed);
      }
      Accept();
    });
  }

  // True when a new connection may be held: below the cap, or after evicting the oldest
  // connection that is waiting for a request.
  bool MakeRoom() {
    if (registry_.held < registry_.options.max_connections) return true;
    for (SessionBase* s : registry_.sessions) {
      if (s->waiting()) {
        s->Evict();
        return true;
      }
    }
    return false;
  }

  void RetryAcceptLater() {
    retry_timer_.emplace(*io_, std::chrono::milliseconds(100));
    retry_timer_->async_wait([this](beast::error_code ec) {
      if (!ec) Accept();
    });
  }

  // Declared before io_ so that sessions destroyed with the io_context can still
  // leave it.
  Registry registry_;
  std::optional<asio::ssl::context> tls_;
  uint16_t port_ = 0;
  std::unique_ptr<asio::io_context> io_ = std::make_unique<asio::io_context>(1);
  std::optional<tcp::acceptor> acceptor_;
  std::optional<asio::steady_timer> retry_timer_;
  std::thread thread_;
  absl::Mutex stop_mutex_;
  bool stopped_ ABSL_GUARDED_BY(stop_mutex_) = false;
};

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(
    const std::string& address, uint16_t port, RenderFn render, const MetricsHttpOptions& options) {
  if (!render) return absl::InvalidArgumentError("metrics render function is empty");
  if (options.max_connections < 1 || options.max_request_bytes == 0) {
    return absl::InvalidArgumentError("metrics server options must allow a request");
  }
  auto impl = std::make_unique<Impl>(std::move(render), options);
  if (absl::Status status = impl->LoadTls(); !status.ok()) return status;
  if (absl::Status status = impl->Bind(address, port); !status.ok()) return status;
  impl->Run();
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Listen(
    const std::string& host_port, RenderFn render, const MetricsHttpOptions& options) {
  const size_t colon = host_port.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos && absl::SimpleAtoi(host_port, &port) && port <= 65535) {
    return Start("127.0.0.1", static_cast<uint16_t>(port), std::move(render), options);
  }
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port) ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address '", host_port, "' is not host:port"));
  }
  std::string host = host_port.substr(0, colon);
  if (host.empty()) host = "127.0.0.1";
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return Start(host, static_cast<uint16_t>(port), std::move(render), options);
}

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

uint16_t MetricsHttpServer::port() const { return impl_->port(); }

uint64_t MetricsHttpServer::evicted_connections() const { return impl_->evicted(); }

void MetricsHttpServer::Stop() { impl_->Stop(); }

}  // namespace lfl
