#include "server/http/metrics_http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>
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
http::response<http::string_body> Respond(const http::request<http::string_body>& request,
                                          const MetricsHttpServer::RenderFn& render) {
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

// One connection: read a request (bounded in size and time), answer, repeat
// while the client keeps the connection alive. Lives as long as an
// asynchronous operation holds it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const MetricsHttpServer::RenderFn& render,
          const MetricsHttpOptions& options, int& active)
      : stream_(std::move(socket)),
        buffer_(options.max_request_bytes),
        render_(render),
        options_(options),
        active_(active) {
    ++active_;
  }
  ~Session() { --active_; }

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(options_.max_request_bytes));
    parser_->body_limit(options_.max_request_bytes);
    stream_.expires_after(options_.io_timeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(const beast::error_code& ec) {
    if (IsParseError(ec)) {
      http::response<http::string_body> bad{http::status::bad_request, 11};
      bad.set(http::field::content_type, "text/plain; charset=utf-8");
      bad.keep_alive(false);
      bad.body() = "bad request\n";
      bad.prepare_payload();
      return Write(std::move(bad));
    }
    if (ec) return Close();  // timeout, reset, or the client closed
    Write(Respond(parser_->get(), render_));
  }

  void Write(http::response<http::string_body> response) {
    response_ = std::move(response);
    stream_.expires_after(options_.io_timeout);
    http::async_write(stream_, response_,
                      [self = shared_from_this()](beast::error_code ec, size_t) {
                        if (ec || !self->response_.keep_alive()) return self->Close();
                        self->ReadRequest();
                      });
  }

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  const MetricsHttpServer::RenderFn& render_;
  const MetricsHttpOptions& options_;
  int& active_;
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
  Impl(RenderFn render, const MetricsHttpOptions& options)
      : render_(std::move(render)), options_(options) {}

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
      if (active_ < options_.max_connections) {
        std::make_shared<Session>(std::move(socket), render_, options_, active_)->ReadRequest();
      }
      Accept();
    });
  }

  void RetryAcceptLater() {
    retry_timer_.emplace(*io_, std::chrono::milliseconds(100));
    retry_timer_->async_wait([this](beast::error_code ec) {
      if (!ec) Accept();
    });
  }

  const RenderFn render_;
  const MetricsHttpOptions options_;
  // Declared before io_ so that sessions destroyed with the io_context can
  // still decrement it.
  int active_ = 0;
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
  if (absl::Status status = impl->Bind(address, port); !status.ok()) return status;
  impl->Run();
  return std::unique_ptr<MetricsHttpServer>(new MetricsHttpServer(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Listen(
    const std::string& host_port, RenderFn render, const MetricsHttpOptions& options) {
  const size_t colon = host_port.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(host_port.substr(colon + 1), &port) ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics listen address '", host_port, "' is not host:port"));
  }
  std::string host = host_port.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return Start(host, static_cast<uint16_t>(port), std::move(render), options);
}

MetricsHttpServer::MetricsHttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MetricsHttpServer::~MetricsHttpServer() { Stop(); }

uint16_t MetricsHttpServer::port() const { return impl_->port(); }

void MetricsHttpServer::Stop() { impl_->Stop(); }

}  // namespace lfl
