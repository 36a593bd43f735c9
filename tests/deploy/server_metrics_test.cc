// FederationServer's /metrics, scraped over HTTP while clients join through the
// real gRPC service (in-process channel): the values follow the run's state.

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "proto/lotteryfl.grpc.pb.h"
#include "server/federation_server.h"

namespace lfl {
namespace {

namespace asio = boost::asio;
using ::testing::HasSubstr;

std::string Scrape(int port) {
  asio::io_context io;
  asio::ip::tcp::socket socket(io);
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(port)});
  asio::write(socket, asio::buffer(std::string("GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")));
  std::string response;
  boost::system::error_code ec;
  asio::read(socket, asio::dynamic_buffer(response), ec);
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}

// The value of sample `name` (no labels), NaN when absent.
double Sample(const std::string& scrape, const std::string& name) {
  const size_t at = scrape.find("\n" + name + " ");
  return at == std::string::npos ? std::nan("") : std::strtod(scrape.c_str() + at + name.size() + 2, nullptr);
}

TensorSet TinyModel() {
  TensorSet model;
  model.tensors.push_back({"fc.weight", {2, 3}, std::vector<float>(6, 0.5f), true});
  model.tensors.push_back({"fc.bias", {2}, std::vector<float>(2, 0.f), false});
  return model;
}

class ServerMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = std::filesystem::temp_directory_path() /
           ("lfl-server-metrics-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(out_);
  }
  void TearDown() override { std::filesystem::remove_all(out_); }
  std::filesystem::path out_;
};

TEST_F(ServerMetricsTest, ScrapeFollowsJoinsAndRoundStart) {
  ServerOptions options;
  options.config.clients = 2;
  options.config.rounds = 3;
  options.config.out = out_.string();
  options.listen.clear();
  options.metrics_listen = "127.0.0.1:0";
  options.handle_signals = false;
  auto server = FederationServer::Start(options, TinyModel(), nullptr, nullptr);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->metrics_port(), 0);

  const std::string before = Scrape((*server)->metrics_port());
  EXPECT_EQ(Sample(before, "lotteryfl_clients_joined"), 0) << before;
  EXPECT_EQ(Sample(before, "lotteryfl_rounds_completed_total"), 0);
  EXPECT_EQ(Sample(before, "lotteryfl_finished"), 0);
  EXPECT_EQ(Sample(before, "lotteryfl_round_duration_seconds_count"), 0);
  EXPECT_THAT(before, HasSubstr("# TYPE lotteryfl_round_duration_seconds histogram\n"));
  EXPECT_EQ(Sample(before, "lotteryfl_updates_refused_total"), 0);
  EXPECT_EQ(Sample(before, "lotteryfl_checkpoint_failures_total"), 0);
  EXPECT_GT(Sample(before, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Sample(before, "process_open_fds"), 3);

  auto stub = lotteryfl::v1::Federation::NewStub((*server)->InProcessChannel());
  lotteryfl::v1::JoinRequest join;
  join.set_protocol_version(1);
  join.set_host("metrics-test");
  for (int64_t id : {0, 1}) join.add_clients()->set_client_id(id);
  lotteryfl::v1::JoinReply reply;
  grpc::ClientContext context;
  ASSERT_TRUE(stub->Join(&context, join, &reply).ok());

  // Both of K=2 clients are live: the server opens round 1 on its next tick.
  std::string after;
  for (int i = 0; i < 100 && Sample(after, "lotteryfl_round") != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    after = Scrape((*server)->metrics_port());
  }
  EXPECT_EQ(Sample(after, "lotteryfl_clients_joined"), 2) << after;
  EXPECT_EQ(Sample(after, "lotteryfl_round"), 1) << after;
  EXPECT_EQ(Sample(after, "lotteryfl_auth_failures_total"), 0);
  // The in-process text is the scrape without prometheus-cpp's exposer_* families.
  EXPECT_THAT((*server)->RenderMetrics(), HasSubstr("\nlotteryfl_clients_joined 2\n"));
  EXPECT_THAT((*server)->RenderMetrics(), ::testing::Not(HasSubstr("exposer_")));
  (*server)->Stop();
}

}  // namespace
}  // namespace lfl
