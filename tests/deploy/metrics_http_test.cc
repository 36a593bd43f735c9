// The /metrics endpoint as Prometheus sees it: real HTTP scrapes of the Boost.Beast
// MetricsHttpServer on 127.0.0.1, serving prometheus-cpp families (a histogram, the process
// metrics) and asserting the values served; and the server's HTTP edges (404/405/400/500,
// keep-alive, a stalled client, bad addresses).

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <prometheus/histogram.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/families.h"
#include "server/http/metrics_http_server.h"
#include "server/http/process_collector.h"

namespace lfl {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string Get(const std::string& path) {
  return "GET " + path + " HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";
}

tcp::socket Connect(asio::io_context& io, uint16_t port) {
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  return socket;
}

// Reads until the peer closes the connection.
std::string ReadAll(tcp::socket& socket) {
  std::string data;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(data), ec);
  return data;
}

// Sends raw bytes on a fresh connection and returns everything the server sends back.
std::string Exchange(uint16_t port, const std::string& raw) {
  asio::io_context io;
  tcp::socket socket = Connect(io, port);
  asio::write(socket, asio::buffer(raw));
  return ReadAll(socket);
}

std::string Body(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

// The value of the first sample line "name value" or "name{...} value" in a scrape; NaN if absent.
double Sample(const std::string& scrape, const std::string& name) {
  size_t at = 0;
  while ((at = scrape.find(name, at)) != std::string::npos) {
    const bool line_start = at == 0 || scrape[at - 1] == '\n';
    const size_t after = at + name.size();
    if (line_start && after < scrape.size() && (scrape[after] == ' ' || scrape[after] == '{')) {
      const size_t space = scrape.find(' ', scrape[after] == '{' ? scrape.find('}', after) : after);
      return std::strtod(scrape.c_str() + space + 1, nullptr);
    }
    at = after;
  }
  return std::nan("");
}

std::unique_ptr<MetricsHttpServer> StartOrDie(MetricsHttpServer::RenderFn render,
                                              const MetricsHttpOptions& options = {}) {
  auto server = MetricsHttpServer::Start("127.0.0.1", 0, std::move(render), options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

// Renders the collectables the way FederationServer does: prometheus-cpp's text serializer.
MetricsHttpServer::RenderFn Serve(std::vector<std::shared_ptr<prometheus::Collectable>> collectables) {
  return [collectables] {
    std::vector<const prometheus::Collectable*> raw;
    for (const auto& c : collectables) raw.push_back(c.get());
    return RenderText(raw);
  };
}

// A gauge that counts the scrapes (so each one is visibly fresh) and a fixed counter.
std::shared_ptr<prometheus::Collectable> CountingScrapes(std::atomic<int>* scrapes) {
  return std::make_shared<CallbackCollectable>([scrapes] {
    return std::vector<prometheus::MetricFamily>{
        GaugeFamily("lotteryfl_round", "round being run", ++*scrapes),
        CounterFamily("lotteryfl_uplink_bytes_total", "bytes received", 1234567)};
  });
}

TEST(MetricsHttpServerTest, ScrapeServesFreshFamiliesInTheTextFormat) {
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}));
  ASSERT_NE(server, nullptr);
  ASSERT_NE(server->port(), 0);

  const std::string first = Exchange(server->port(), Get("/metrics"));
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(first, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_THAT(Body(first), HasSubstr("# TYPE lotteryfl_round gauge\nlotteryfl_round 1\n"));
  EXPECT_THAT(Body(first), HasSubstr("# TYPE lotteryfl_uplink_bytes_total counter\n"));
  EXPECT_EQ(Sample(Body(first), "lotteryfl_uplink_bytes_total"), 1234567);
  EXPECT_EQ(Sample(Body(Exchange(server->port(), Get("/metrics?name[]=x"))), "lotteryfl_round"), 2);
}

TEST(MetricsHttpServerTest, ServesAHistogramAndTheProcessMetrics) {
  auto histogram = std::make_shared<prometheus::Histogram>(prometheus::Histogram::BucketBoundaries{1, 10});
  histogram->Observe(0.5);
  histogram->Observe(4);
  auto rounds = std::make_shared<CallbackCollectable>([histogram] {
    prometheus::MetricFamily family;
    family.name = "lotteryfl_round_duration_seconds";
    family.help = "h";
    family.type = prometheus::MetricType::Histogram;
    family.metric.push_back(histogram->Collect());
    return std::vector<prometheus::MetricFamily>{family};
  });
  auto server = StartOrDie(Serve({rounds, std::make_shared<ProcessCollector>()}));
  ASSERT_NE(server, nullptr);
  const std::string scrape = Body(Exchange(server->port(), Get("/metrics")));
  EXPECT_THAT(scrape, HasSubstr("# TYPE lotteryfl_round_duration_seconds histogram\n"));
  EXPECT_THAT(scrape, HasSubstr("lotteryfl_round_duration_seconds_bucket{le=\"1\"} 1\n"));
  EXPECT_THAT(scrape, HasSubstr("lotteryfl_round_duration_seconds_bucket{le=\"10\"} 2\n"));
  EXPECT_THAT(scrape, HasSubstr("lotteryfl_round_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
  EXPECT_EQ(Sample(scrape, "lotteryfl_round_duration_seconds_count"), 2);
  EXPECT_EQ(Sample(scrape, "lotteryfl_round_duration_seconds_sum"), 4.5);
  EXPECT_GT(Sample(scrape, "process_resident_memory_bytes"), 1 << 20);

  histogram->Observe(20);
  const std::string later = Body(Exchange(server->port(), Get("/metrics")));
  EXPECT_EQ(Sample(later, "lotteryfl_round_duration_seconds_count"), 3);
  EXPECT_THAT(later, HasSubstr("lotteryfl_round_duration_seconds_bucket{le=\"10\"} 2\n"));
}

TEST(MetricsHttpServerTest, ProcessMetricsDescribeThisProcess) {
  auto server = StartOrDie(Serve({std::make_shared<ProcessCollector>()}));
  ASSERT_NE(server, nullptr);
  // Burn 0.2 s of CPU so the counter has something to show; it must match this process's clock.
  auto cpu_seconds = [] { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; };
  volatile double sink = 0;
  for (const double until = cpu_seconds() + 0.2; cpu_seconds() < until;) sink = sink + 1;
  const double cpu_before = cpu_seconds();
  const std::string scrape = Body(Exchange(server->port(), Get("/metrics")));
  const double cpu_after = cpu_seconds();

  // /proc counts whole clock ticks (10 ms) and splits the precise runtime into user and
  // system time by sampled ratios, so it may trail the process clock by a few ticks.
  const double tick = 0.05;
  EXPECT_GE(Sample(scrape, "process_cpu_seconds_total"), cpu_before - tick) << scrape;
  EXPECT_LE(Sample(scrape, "process_cpu_seconds_total"), cpu_after + tick) << scrape;
  const double rss = Sample(scrape, "process_resident_memory_bytes");
  EXPECT_GT(rss, 1 << 20);
  EXPECT_GE(Sample(scrape, "process_virtual_memory_bytes"), rss);
  // The scrape's own socket is open while collecting; the test process holds at least stdio.
  const auto fds = std::distance(std::filesystem::directory_iterator("/proc/self/fd"),
                                 std::filesystem::directory_iterator{});
  EXPECT_GE(Sample(scrape, "process_open_fds"), 3);
  EXPECT_LE(Sample(scrape, "process_open_fds"), fds + 8);
  EXPECT_GE(Sample(scrape, "process_max_fds"), Sample(scrape, "process_open_fds"));
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  const double start = Sample(scrape, "process_start_time_seconds");
  EXPECT_LE(start, now + 1);
  EXPECT_GT(start, now - 3600) << "the test process started within the hour";
}

TEST(MetricsHttpServerTest, HealthzAnswersOkWithoutCollecting) {
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}));
  ASSERT_NE(server, nullptr);
  const std::string response = Exchange(server->port(), Get("/healthz"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Body(response), "ok");
  EXPECT_EQ(scrapes.load(), 0);
}

TEST(MetricsHttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}));
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(Exchange(server->port(), Get("/nope")), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Exchange(server->port(), Get("/metricsx")), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Exchange(server->port(), Get("/metrics/x")), StartsWith("HTTP/1.1 404"));
  const std::string post =
      "POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
  EXPECT_THAT(Exchange(server->port(), post), StartsWith("HTTP/1.1 405"));
  EXPECT_EQ(scrapes.load(), 0);
}

TEST(MetricsHttpServerTest, GarbageIs400AndTheServerKeepsServing) {
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}));
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(Exchange(server->port(), "\x01\x02 garbage \xff\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(Exchange(server->port(), "GET /metrics HTTP/9\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  const std::string after = Exchange(server->port(), Get("/metrics"));
  EXPECT_THAT(after, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Sample(Body(after), "lotteryfl_round"), 1);
}

TEST(MetricsHttpServerTest, OversizedRequestIs400) {
  MetricsHttpOptions options;
  options.max_request_bytes = 1024;
  auto server = StartOrDie([] { return std::string("up 1\n"); }, options);
  ASSERT_NE(server, nullptr);
  const std::string huge = "GET /metrics HTTP/1.1\r\nHost: t\r\nX-Pad: " + std::string(4096, 'a') +
                           "\r\nConnection: close\r\n\r\n";
  EXPECT_THAT(Exchange(server->port(), huge), StartsWith("HTTP/1.1 400"));
}

TEST(MetricsHttpServerTest, RenderThatThrowsIs500) {
  auto server = StartOrDie([]() -> std::string { throw std::runtime_error("boom"); });
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(Exchange(server->port(), Get("/metrics")), StartsWith("HTTP/1.1 500"));
}

TEST(MetricsHttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}));
  ASSERT_NE(server, nullptr);
  const std::string response =
      Exchange(server->port(), "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/metrics"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  const size_t second = response.find("HTTP/1.1 200", 1);
  ASSERT_NE(second, std::string::npos) << response;
  EXPECT_EQ(Sample(Body(response.substr(second)), "lotteryfl_round"), 1);
}

TEST(MetricsHttpServerTest, StalledClientIsDroppedAndDoesNotBlockOthers) {
  MetricsHttpOptions options;
  options.io_timeout = std::chrono::milliseconds(300);
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}), options);
  ASSERT_NE(server, nullptr);

  asio::io_context io;
  tcp::socket stalled = Connect(io, server->port());
  asio::write(stalled, asio::buffer(std::string("GET /metrics HTTP/1.1\r\nHo")));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Sample(Body(Exchange(server->port(), Get("/metrics"))), "lotteryfl_round"), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
  const std::string leftover = ReadAll(stalled);  // returns when the server closes
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(leftover, ::testing::Not(HasSubstr("lotteryfl_round")));
}

TEST(MetricsHttpServerTest, StopIsIdempotentAndReleasesThePort) {
  auto server = StartOrDie([] { return std::string("up 1\n"); });
  ASSERT_NE(server, nullptr);
  const uint16_t port = server->port();
  asio::io_context io;
  tcp::socket idle = Connect(io, port);  // an open connection must not hang Stop
  server->Stop();
  server->Stop();
  EXPECT_TRUE(ReadAll(idle).empty());
  auto again = MetricsHttpServer::Start("127.0.0.1", port, [] { return std::string(); });
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(MetricsHttpServerTest, RejectsBadAddressesAndBusyPorts) {
  auto render = [] { return std::string(); };
  EXPECT_EQ(MetricsHttpServer::Start("", 0, render).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("no such host.invalid", 0, render).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", 0, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Listen("", render).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Listen("127.0.0.1", render).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Listen("127.0.0.1:99999", render).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = StartOrDie(render);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", first->port(), render).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(MetricsHttpServer::Listen("127.0.0.1:" + std::to_string(first->port()), render).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(MetricsHttpServerTest, ListenTakesHostPort) {
  std::atomic<int> scrapes{0};
  auto server = MetricsHttpServer::Listen("127.0.0.1:0", Serve({CountingScrapes(&scrapes)}));
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(Sample(Body(Exchange((*server)->port(), Get("/metrics"))), "lotteryfl_round"), 1);
}

// Slow connections (slowloris: a request dripped a byte at a time, or nothing at all), more
// of them than the server holds: every scrape in between still gets its answer, at once.
TEST(MetricsHttpServerTest, SlowConnectionsBeyondTheCapDoNotStarveScrapes) {
  MetricsHttpOptions options;
  options.max_connections = 16;
  options.io_timeout = std::chrono::milliseconds(2000);
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}), options);
  ASSERT_NE(server, nullptr);
  asio::io_context io;
  std::vector<tcp::socket> slow;
  for (int i = 0; i < 40; ++i) {
    slow.push_back(Connect(io, server->port()));
    asio::write(slow.back(), asio::buffer(std::string("GET /metrics HTTP/1.1\r\nX")));
  }
  int ok = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 40; ++i) {
    // The flood keeps coming back: a new slow connection before every scrape.
    slow.push_back(Connect(io, server->port()));
    const std::string response = Exchange(server->port(), Get("/metrics"));
    if (response.rfind("HTTP/1.1 200", 0) == 0 && !std::isnan(Sample(Body(response), "lotteryfl_round"))) ++ok;
  }
  EXPECT_EQ(ok, 40);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_GT(server->evicted_connections(), 0u);
}

TEST(MetricsHttpServerTest, BearerTokenGuardsMetricsNotHealthz) {
  MetricsHttpOptions options;
  options.bearer_token = "s3cret-token";
  std::atomic<int> scrapes{0};
  auto server = StartOrDie(Serve({CountingScrapes(&scrapes)}), options);
  ASSERT_NE(server, nullptr);
  auto get = [](const std::string& path, const std::string& auth) {
    return "GET " + path + " HTTP/1.1\r\nHost: test\r\n" + auth + "Connection: close\r\n\r\n";
  };
  EXPECT_THAT(Exchange(server->port(), get("/metrics", "")), StartsWith("HTTP/1.1 401"));
  EXPECT_THAT(Exchange(server->port(), get("/metrics", "Authorization: Bearer wrong\r\n")),
              StartsWith("HTTP/1.1 401"));
  EXPECT_THAT(Exchange(server->port(), get("/metrics", "Authorization: Bearer s3cret-tokex\r\n")),
              StartsWith("HTTP/1.1 401"));
  EXPECT_EQ(scrapes.load(), 0);  // nothing was collected for a refused scrape
  const std::string ok = Exchange(server->port(), get("/metrics", "Authorization: Bearer s3cret-token\r\n"));
  EXPECT_THAT(ok, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Sample(Body(ok), "lotteryfl_round"), 1);
  EXPECT_THAT(Exchange(server->port(), get("/healthz", "")), StartsWith("HTTP/1.1 200"));
}

TEST(MetricsHttpServerTest, ABarePortListensOnLoopbackOnly) {
  auto render = [] { return std::string("up 1\n"); };
  for (const std::string& listen : {std::string("0"), std::string(":0")}) {
    auto server = MetricsHttpServer::Listen(listen, render);
    ASSERT_TRUE(server.ok()) << server.status();
    EXPECT_THAT(Exchange((*server)->port(), Get("/healthz")), StartsWith("HTTP/1.1 200"));
    // Bound to 127.0.0.1 alone: another loopback address (which a 0.0.0.0 bind would accept)
    // is refused.
    asio::io_context io;
    tcp::socket other(io);
    boost::system::error_code ec;
    other.connect(tcp::endpoint(asio::ip::make_address("127.0.0.2"), (*server)->port()), ec);
    EXPECT_TRUE(ec) << listen << " accepted a connection on 127.0.0.2";
  }
}

TEST(MetricsHttpServerTest, TlsNeedsLoadableFiles) {
  auto render = [] { return std::string(); };
  MetricsHttpOptions options;
  options.tls_cert_file = "/nonexistent/server.crt";
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", 0, render, options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.tls_key_file = "/nonexistent/server.key";
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", 0, render, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lfl
