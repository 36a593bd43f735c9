#include "server/http/metrics_endpoint.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

#include <CivetServer.h>
#include <civetweb.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

// Runs before prometheus-cpp's handlers: civetweb would hand "/metricsx" to the "/metrics"
// handler (prefix match) and any method to it. Answers /healthz itself; 1 = handled here.
int FilterRequest(mg_connection* conn) {
  const mg_request_info* request = mg_get_request_info(conn);
  const char* path = request->local_uri != nullptr ? request->local_uri : "";
  const bool metrics = std::strcmp(path, "/metrics") == 0;
  const bool healthz = std::strcmp(path, "/healthz") == 0;
  if (!metrics && !healthz) {
    mg_send_http_error(conn, 404, "%s", "not found: try /metrics or /healthz");
    return 404;
  }
  if (std::strcmp(request->request_method, "GET") != 0 && std::strcmp(request->request_method, "HEAD") != 0) {
    mg_response_header_start(conn, 405);
    mg_response_header_add(conn, "Allow", "GET, HEAD", -1);
    mg_response_header_add(conn, "Content-Length", "0", -1);
    mg_response_header_send(conn);
    return 405;
  }
  if (healthz) {
    mg_send_http_ok(conn, "text/plain", 2);
    mg_write(conn, "ok", 2);
    return 200;
  }
  return 0;
}

// Libraries do not print: the endpoint reports through its statuses.
int DropLogMessage(const mg_connection*, const char*) { return 1; }

const CivetCallbacks& Callbacks() {
  static const CivetCallbacks callbacks = [] {
    CivetCallbacks c;
    c.begin_request = FilterRequest;
    c.log_message = DropLogMessage;
    return c;
  }();
  return callbacks;
}

// "host:port" or "[v6]:port" → civetweb's "ip:port" / "[ip]:port", resolving a host name
// (civetweb accepts only literal addresses).
absl::StatusOr<std::string> CivetListeningPort(const std::string& host_port) {
  const size_t colon = host_port.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", host_port, "': expected host:port"));
  }
  std::string host = host_port.substr(0, colon);
  int port = 0;
  if (!absl::SimpleAtoi(host_port.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", host_port, "': bad port"));
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;  // an IPv6-only name is refused below, with the reason
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (host.empty() || getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0 || found == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", host_port, "': cannot resolve the host"));
  }
  char ip[NI_MAXHOST];
  const bool v6 = found->ai_family == AF_INET6;
  const int rc = getnameinfo(found->ai_addr, found->ai_addrlen, ip, sizeof ip, nullptr, 0, NI_NUMERICHOST);
  freeaddrinfo(found);
  if (rc != 0) return absl::InvalidArgumentError(absl::StrCat("metrics address '", host_port, "': bad host"));
  if (v6) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", host_port,
                                                   "': IPv6 is not supported (Debian's civetweb is built without it); "
                                                   "use an IPv4 address such as 0.0.0.0"));
  }
  return absl::StrCat(ip, ":", port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::Listen(
    const std::string& host_port, std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
    const MetricsEndpointOptions& options) {
  absl::StatusOr<std::string> listening = CivetListeningPort(host_port);
  if (!listening.ok()) return listening.status();
  if (options.threads < 1) return absl::InvalidArgumentError("metrics endpoint: threads must be >= 1");
  auto self = std::unique_ptr<MetricsEndpoint>(new MetricsEndpoint());
  self->collectables_ = std::move(collectables);
  try {
    self->exposer_ = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", *listening,
        "num_threads", std::to_string(options.threads),
        "request_timeout_ms", std::to_string(options.io_timeout.count()),
        "enable_keep_alive", "yes"}, &Callbacks());
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("metrics endpoint: cannot listen on ", host_port, ": ", e.what()));
  }
  for (const auto& c : self->collectables_) self->exposer_->RegisterCollectable(c, "/metrics");
  const std::vector<int> ports = self->exposer_->GetListeningPorts();
  if (ports.empty()) return absl::UnavailableError(absl::StrCat("metrics endpoint: no port bound for ", host_port));
  self->port_ = static_cast<uint16_t>(ports.front());
  return self;
}

MetricsEndpoint::~MetricsEndpoint() { Stop(); }

void MetricsEndpoint::Stop() { exposer_.reset(); }

}  // namespace lfl
