#ifndef LFL_SERVER_HTTP_METRICS_ENDPOINT_H_
#define LFL_SERVER_HTTP_METRICS_ENDPOINT_H_

// MetricsEndpoint: the Prometheus scrape endpoint, served by prometheus-cpp's
// Exposer (Debian's prometheus-cpp-dev, over civetweb):
//   GET /metrics  -> 200, "text/plain; version=0.0.4", the families of every
//                    collectable, collected afresh for each request
//   GET /healthz  -> 200, body "ok" (liveness: the process answers HTTP)
//   other methods on those paths -> 405; any other path -> 404
// A query string ("/metrics?x=y") is ignored; keep-alive is honoured. The
// scrape also carries prometheus-cpp's own exposer_* families (scrapes served,
// bytes, latency). Content-Type is "text/plain; charset=utf-8", which
// Prometheus reads as the text format 0.0.4. IPv4 only: Debian's civetweb is
// built without IPv6.
//
// Connections are served by `threads` worker threads; each request must arrive
// within `io_timeout`, so a stalled client holds one worker for at most that
// long and the others keep answering. Connections beyond the workers wait in
// civetweb's accept queue.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/collectable.h>

#include "absl/status/statusor.h"

namespace prometheus {
class Exposer;
}

namespace lfl {

struct MetricsEndpointOptions {
  // Time a connection gets to deliver one complete request before it is closed.
  std::chrono::milliseconds io_timeout{5000};
  // Connections served at once. A scrape takes a few milliseconds.
  int threads = 4;
};

class MetricsEndpoint {
 public:
  // Binds "host:port" ("0.0.0.0:9090", "localhost:0"; port 0 picks an
  // ephemeral port, see port()) and serves the collectables, which it keeps alive.
  // Their Collect() runs on the endpoint's threads, concurrently with the caller's.
  // InvalidArgument for a malformed address, Unavailable when it cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsEndpoint>> Listen(
      const std::string& host_port, std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
      const MetricsEndpointOptions& options = {});

  MetricsEndpoint(const MetricsEndpoint&) = delete;
  MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;
  ~MetricsEndpoint();  // calls Stop()

  // The port actually bound (useful after binding port 0).
  uint16_t port() const { return port_; }

  // Stops serving, joins the worker threads and releases the port. Idempotent;
  // not thread-safe against itself.
  void Stop();

 private:
  MetricsEndpoint() = default;

  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  uint16_t port_ = 0;
};

}  // namespace lfl

#endif  // LFL_SERVER_HTTP_METRICS_ENDPOINT_H_
