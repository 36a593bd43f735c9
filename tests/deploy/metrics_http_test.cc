#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http/metrics_http_server.h"

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

// Sends raw bytes on a fresh connection and returns everything the server
// sends back before it closes.
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

std::unique_ptr<MetricsHttpServer> StartOrDie(MetricsHttpServer::RenderFn render,
                                              const MetricsHttpOptions& options = {}) {
  auto server = MetricsHttpServer::Start("127.0.0.1", 0, std::move(render), options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

TEST(MetricsHttpServerTest, MetricsServesAFreshRenderPerRequest) {
  std::atomic<int> renders{0};
  auto server = StartOrDie([&] { return "lfl_round " + std::to_string(++renders) + "\n"; });
  ASSERT_NE(server, nullptr);
  ASSERT_NE(server->port(), 0);

  const std::string first = Exchange(server->port(), Get("/metrics"));
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200"));
  EXPECT_THAT(first, HasSubstr("Content-Type: text/plain; version=0.0.4"));
  EXPECT_EQ(Body(first), "lfl_round 1\n");
  EXPECT_EQ(Body(Exchange(server->port(), Get("/metrics?name[]=x"))), "lfl_round 2\n");
}

TEST(MetricsHttpServerTest, HealthzAnswersOkWithoutRendering) {
  std::atomic<int> renders{0};
  auto server = StartOrDie([&] { return std::to_string(++renders); });
  ASSERT_NE(server, nullptr);
  const std::string response = Exchange(server->port(), Get("/healthz"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Body(response), "ok");
  EXPECT_EQ(renders.load(), 0);
}

TEST(MetricsHttpServerTest, UnknownPathIs404AndWrongMethodIs405) {
  auto server = StartOrDie([] { return std::string("x 1\n"); });
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(Exchange(server->port(), Get("/nope")), StartsWith("HTTP/1.1 404"));
  EXPECT_THAT(Exchange(server->port(), Get("/metricsx")), StartsWith("HTTP/1.1 404"));
  const std::string post =
      "POST /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi";
  EXPECT_THAT(Exchange(server->port(), post), StartsWith("HTTP/1.1 405"));
}

TEST(MetricsHttpServerTest, GarbageIs400AndTheServerKeepsServing) {
  auto server = StartOrDie([] { return std::string("up 1\n"); });
  ASSERT_NE(server, nullptr);
  EXPECT_THAT(Exchange(server->port(), "\x01\x02 garbage \xff\r\n\r\n"),
              StartsWith("HTTP/1.1 400"));
  EXPECT_THAT(Exchange(server->port(), "GET /metrics HTTP/9\r\n\r\n"), StartsWith("HTTP/1.1 400"));
  const std::string after = Exchange(server->port(), Get("/metrics"));
  EXPECT_THAT(after, StartsWith("HTTP/1.1 200"));
  EXPECT_EQ(Body(after), "up 1\n");
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
  auto server = StartOrDie([] { return std::string("up 1\n"); });
  ASSERT_NE(server, nullptr);
  const std::string response =
      Exchange(server->port(), "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n" + Get("/metrics"));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 200"));
  const size_t second = response.find("HTTP/1.1 200", 1);
  ASSERT_NE(second, std::string::npos) << response;
  EXPECT_EQ(Body(response.substr(second)), "up 1\n");
}

TEST(MetricsHttpServerTest, StalledClientIsDroppedAndDoesNotBlockOthers) {
  MetricsHttpOptions options;
  options.io_timeout = std::chrono::milliseconds(300);
  auto server = StartOrDie([] { return std::string("up 1\n"); }, options);
  ASSERT_NE(server, nullptr);

  asio::io_context io;
  tcp::socket stalled = Connect(io, server->port());
  asio::write(stalled, asio::buffer(std::string("GET /metrics HTTP/1.1\r\nHo")));
  EXPECT_EQ(Body(Exchange(server->port(), Get("/metrics"))), "up 1\n");

  const auto start = std::chrono::steady_clock::now();
  const std::string leftover = ReadAll(stalled);  // returns when the server closes
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  EXPECT_THAT(leftover, ::testing::Not(HasSubstr("up 1")));
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
  EXPECT_EQ(MetricsHttpServer::Start("", 0, render).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("no such host.invalid", 0, render).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", 0, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto first = StartOrDie(render);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(MetricsHttpServer::Start("127.0.0.1", first->port(), render).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(MetricsHttpServerTest, ListenParsesHostPort) {
  auto render = [] { return std::string("up 1\n"); };
  auto server = MetricsHttpServer::Listen("127.0.0.1:0", render);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ(Body(Exchange((*server)->port(), Get("/metrics"))), "up 1\n");
  EXPECT_EQ(MetricsHttpServer::Listen("127.0.0.1", render).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MetricsHttpServer::Listen("127.0.0.1:99999", render).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lfl
