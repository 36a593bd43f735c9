// The /metrics endpoint as Prometheus sees it: real HTTP scrapes of a
// MetricsEndpoint on 127.0.0.1, asserting the values served.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <chrono>
#include <ctime>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <prometheus/histogram.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/families.h"
#include "server/http/metrics_endpoint.h"
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

std::unique_ptr<MetricsEndpoint> ListenOrDie(std::vector<std::shared_ptr<prometheus::Collectable>> collectables,
                                             const MetricsEndpointOptions& options = {}) {
  auto endpoint = MetricsEndpoint::Listen("127.0.0.1:0", std::move(collectables), options);
  EXPECT_TRUE(endpoint.ok()) << endpoint.status();
  return endpoint.ok() ? std::move(*endpoint) : nullptr;
}

std::shared_ptr<prometheus::Collectable> CountingScrapes(std::atomic<int>* scrapes) {
  return std::make_shared<CallbackCollectable>([scrapes] {
    return std::vector<prometheus::MetricFamily>{
        GaugeFamily("lotteryfl_round", "round being run", ++*scrapes),
        CounterFamily("lotteryfl_uplink_bytes_total", "bytes received", 1234567)};
  });
}

TEST(MetricsEndpointTest, ScrapeServesFreshValuesInTheTextFormat) {
  std::atomic<int> scrapes{0};
  auto endpoint = ListenOrDie({CountingScrapes(&scrapes)});
  ASSERT_NE(endpoint, nullptr);
  ASSERT_NE(endpoint->port(), 0);

  const std::string first = Exchange(endpoint->port(), Get("/metrics"));
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(first, HasSubstr("Content-Type: text/plain"));
  EXPECT_THAT(Body(first), HasSubstr("# TYPE lotteryfl_round gauge\nlotteryfl_round 1\n"));
  EXPECT_THAT(Body(first), HasSubstr("# TYPE lotteryfl_uplink_bytes_total counter\n"));
  EXPECT_EQ(Sample(Body(first), "lotteryfl_uplink_bytes_total"), 1234567);
  const std::string second = Body(Exchange(endpoint->port(), Get("/metrics?name[]=x")));
  EXPECT_EQ(Sample(second, "lotteryfl_round"), 2);
}

TEST(MetricsEndpointTest, ServesEveryCollectableAndAHistogram) {
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
  auto endpoint = ListenOrDie({rounds, std::make_shared<ProcessCollector>()});
  ASSERT_NE(endpoint, nullptr);
  const std::string scrape = Body(Exchange(endpoint->port(), Get("/metrics")));
  EXPECT_THAT(scrape, HasSubstr("lotteryfl_round_duration_seconds_bucket{le=\"1\"} 1\n"));
  EXPECT_THAT(scrape, HasSubstr("lotteryfl_round_duration_seconds_bucket{le=\"10\"} 2\n"));
  EXPECT_THAT(scrape, HasSubstr("lotteryfl_round_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
  EXPECT_EQ(Sample(scrape, "lotteryfl_round_duration_seconds_count"), 2);
  EXPECT_EQ(Sample(scrape, "lotteryfl_round_duration_seconds_sum"), 4.5);
  EXPECT_GT(Sample(scrape, "process_resident_memory_bytes"), 1 << 20);
}

TEST(MetricsEndpointTest, ProcessMetricsDescribeThisProcess) {
  auto endpoint = ListenOrDie({std::make_shared<ProcessCollector>()});
  ASSERT_NE(endpoint, nullptr);
  // Burn 0.2 s of CPU so the counter has something to show; it must match this process's clock.
  auto cpu_seconds = [] { return static_cast<double>(std::clock()) / CLOCKS_PER_SEC; };
  volatile double sink = 0;
  for (const double until = cpu_seconds() + 0.2; cpu_seconds() < until;) sink = sink + 1;
  const double cpu_before = cpu_seconds();
  const std::string scrape = Body(Exchange(endpoint->port(), Get("/metrics")));
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

TEST(MetricsEndpointTest, HealthzAnswersWithoutCollecting) {
  std::atomic<int> scrapes{0};
  auto endpoint = ListenOrDie({CountingScrapes(&scrapes)});
  ASSERT_NE(endpoint, nullptr);
  const std::string response = Exchange(endpoint->port(), Get("/healthz"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Body(response), "ok");
  EXPECT_EQ(scrapes.load(), 0);
}

TEST(MetricsEndpointTest, UnknownPathIs404WrongMethodIs405AndTheServerKeepsServing) {
  std::atomic<int> scrapes{0};
  auto endpoint = ListenOrDie({CountingScrapes(&scrapes)});
  ASSERT_NE(endpoint, nullptr);
  EXPECT_THAT(Exchange(endpoint->port(), Get("/nope")), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Exchange(endpoint->port(), Get("/metricsx")), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Exchange(endpoint->port(), Get("/metrics/x")), StartsWith("HTTP/1.1 404"));
  const std::string post =
      "POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
  EXPECT_THAT(Exchange(endpoint->port(), post), StartsWith("HTTP/1.1 405"));
  EXPECT_EQ(scrapes.load(), 0);
  EXPECT_THAT(Exchange(endpoint->port(), "\x01\x02 garbage \xff\r\n\r\n"), ::testing::Not(StartsWith("HTTP/1.1 200")));
  EXPECT_THAT(Exchange(endpoint->port(), Get("/metrics")), StartsWith("HTTP/1.1 200"));
}

TEST(MetricsEndpointTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::atomic<int> scrapes{0};
  auto endpoint = ListenOrDie({CountingScrapes(&scrapes)});
  ASSERT_NE(endpoint, nullptr);
  const std::string response =
      Exchange(endpoint->port(), "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/metrics"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  const size_t second = response.find("HTTP/1.1 200", 1);
  ASSERT_NE(second, std::string::npos) << response;
  EXPECT_EQ(Sample(Body(response.substr(second)), "lotteryfl_round"), 1);
}

TEST(MetricsEndpointTest, StalledClientIsDroppedAndDoesNotBlockOthers) {
  MetricsEndpointOptions options;
  options.io_timeout = std::chrono::milliseconds(300);
  options.threads = 2;
  std::atomic<int> scrapes{0};
  auto endpoint = ListenOrDie({CountingScrapes(&scrapes)}, options);
  ASSERT_NE(endpoint, nullptr);

  asio::io_context io;
  tcp::socket stalled = Connect(io, endpoint->port());
  asio::write(stalled, asio::buffer(std::string("GET /metrics HTTP/1.1\r\nHo")));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Sample(Body(Exchange(endpoint->port(), Get("/metrics"))), "lotteryfl_round"), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(250));
  const std::string leftover = ReadAll(stalled);  // returns when the server closes
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(leftover, ::testing::Not(HasSubstr("lotteryfl_round")));
}

TEST(MetricsEndpointTest, StopIsIdempotentAndReleasesThePort) {
  std::atomic<int> scrapes{0};
  auto endpoint = ListenOrDie({CountingScrapes(&scrapes)});
  ASSERT_NE(endpoint, nullptr);
  const uint16_t port = endpoint->port();
  endpoint->Stop();
  endpoint->Stop();
  auto again = MetricsEndpoint::Listen("127.0.0.1:" + std::to_string(port), {});
  EXPECT_TRUE(again.ok()) << again.status();
}

TEST(MetricsEndpointTest, RejectsBadAddressesAndBusyPorts) {
  EXPECT_EQ(MetricsEndpoint::Listen("", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsEndpoint::Listen("127.0.0.1", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsEndpoint::Listen("127.0.0.1:99999", {}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsEndpoint::Listen("no such host.invalid:0", {}).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = ListenOrDie({});
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(MetricsEndpoint::Listen("127.0.0.1:" + std::to_string(first->port()), {}).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(MetricsEndpointTest, ListensOnHostNamesButNotIpv6) {
  std::atomic<int> scrapes{0};
  auto named = MetricsEndpoint::Listen("localhost:0", {CountingScrapes(&scrapes)});
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(Sample(Body(Exchange((*named)->port(), Get("/metrics"))), "lotteryfl_round"), 1);
  // Debian's civetweb has no IPv6: refused up front with the reason, not a bind failure.
  absl::StatusOr<std::unique_ptr<MetricsEndpoint>> v6 = MetricsEndpoint::Listen("[::1]:0", {});
  EXPECT_EQ(v6.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(v6.status().message()), HasSubstr("IPv6"));
}

}  // namespace
}  // namespace lfl
