#ifndef LFL_SERVER_HTTP_METRICS_HTTP_SERVER_H_
#define LFL_SERVER_HTTP_METRICS_HTTP_SERVER_H_

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace lfl {

struct MetricsHttpOptions {
  // Time a connection gets to deliver one complete request, and to take our
  // reply, before it is closed: a stalled client costs at most this long.
  std::chrono::milliseconds io_timeout{5000};
  // Largest request head (request line + headers) and body accepted; a larger
  // request is answered 400. A scrape request is a few hundred bytes.
  size_t max_request_bytes = 8192;
  // Connections served at once; connections beyond this are closed as soon as
  // they are accepted, so a flood cannot exhaust memory or descriptors.
  int max_connections = 8;
};

// A tiny HTTP/1.1 server on its own thread for Prometheus scrapes:
//   GET /metrics  -> 200, "text/plain; version=0.0.4", body = render()
//   GET /healthz  -> 200, body "ok"
//   other methods on those paths -> 405; any other path -> 404;
//   a malformed or oversized request -> 400 and the connection is closed.
// A query string ("/metrics?x=y") is ignored. Keep-alive is honoured.
//
// `render` is called on the server's thread, once per /metrics request, so it
// must be safe to call concurrently with the caller's own threads (take a lock
// or read atomics). If it throws, the request is answered 500.
//
// All connections are handled on the one server thread, each read and write
// bounded by `io_timeout`, so a slow client cannot block the others for long.
class MetricsHttpServer {
 public:
  using RenderFn = std::function<std::string()>;

  // Binds `address` (an IP literal or a resolvable host name, e.g. "0.0.0.0",
  // "::", "localhost") on `port` (0 picks an ephemeral port, see port()) and
  // starts serving. InvalidArgument for a bad address or an empty `render`,
  // Unavailable when the socket cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, uint16_t port, RenderFn render,
      const MetricsHttpOptions& options = {});

  // As Start, from one "host:port" string such as "0.0.0.0:9090" or
  // "[::1]:9090" (the form of the server's --metrics-listen flag).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Listen(
      const std::string& host_port, RenderFn render, const MetricsHttpOptions& options = {});

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
  ~MetricsHttpServer();  // calls Stop()

  // The port actually bound (useful after binding port 0).
  uint16_t port() const;

  // Stops accepting, closes every open connection, joins the server thread
  // and releases the port. Idempotent and thread-safe; must not be called
  // from inside `render`.
  void Stop();

 private:
  class Impl;
  explicit MetricsHttpServer(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace lfl

#endif  // LFL_SERVER_HTTP_METRICS_HTTP_SERVER_H_
