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
  // Connections held at once. A connection accepted when all are held takes the
  // place of the oldest one that is waiting for (or reading) a request, so slow or
  // idle connections cannot keep a scrape out: it sends its request at once and is
  // answered before the flood can cycle through the slots again. When every held
  // connection is writing a reply, the newcomer is closed.
  int max_connections = 64;
  // HTTPS: PEM files of the certificate chain and its private key (both or neither).
  // The TLS handshake shares io_timeout.
  std::string tls_cert_file, tls_key_file;
  // When set, GET /metrics needs "Authorization: Bearer <bearer_token>" (compared in
  // constant time) and is answered 401 otherwise; /healthz stays open (it says "ok" only,
  // for liveness probes).
  std::string bearer_token;
};

// A tiny HTTP/1.1 server on its own thread for Prometheus scrapes:
//   GET /metrics  -> 200, "text/plain; version=0.0.4", body = render()
//   GET /healthz  -> 200, body "ok"
//   without the bearer token (when one is set) -> 401 on /metrics;
//   other methods on those paths -> 405; any other path -> 404;
//   a malformed or oversized request -> 400 and the connection is closed.
// A query string ("/metrics?x=y") is ignored. Keep-alive is honoured.
//
// `render` is called on the server's thread, once per /metrics request, so it
// must be safe to call concurrently with the caller's own threads (take a lock
// or read atomics). If it throws, the request is answered 500.
//
// All connections are handled asynchronously on the one server thread, each one on
// its own, every request and every reply bounded by `io_timeout`, and a newcomer may
// take the place of the oldest waiting connection (see max_connections), so slow
// clients cannot starve a scrape.
class MetricsHttpServer {
 public:
  using RenderFn = std::function<std::string()>;

  // Binds `address` (an IP literal or a resolvable host name, e.g. "0.0.0.0",
  // "::", "localhost") on `port` (0 picks an ephemeral port, see port()) and
  // starts serving. InvalidArgument for a bad address, an empty `render` or TLS
  // files that cannot be loaded, Unavailable when the socket cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(
      const std::string& address, uint16_t port, RenderFn render,
      const MetricsHttpOptions& options = {});

  // As Start, from one "host:port" string such as "0.0.0.0:9090" or
  // "[::1]:9090" (the form of the server's --metrics-listen flag); "9090" or ":9090"
  // (no host) binds 127.0.0.1.
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Listen(
      const std::string& host_port, RenderFn render, const MetricsHttpOptions& options = {});

  MetricsHttpServer(const MetricsHttpServer&) = delete;
  MetricsHttpServer& operator=(const MetricsHttpServer&) = delete;
  ~MetricsHttpServer();  // calls Stop()

  // The port actually bound (useful after binding port 0).
  uint16_t port() const;
  // Connections accepted and dropped to make room for a newer one, or closed at once
  // because every held one was busy (since Start).
  uint64_t evicted_connections() const;

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
