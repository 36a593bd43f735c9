// FederationServer's /metrics, scraped over HTTP while clients join and train through the
// real gRPC service (in-process channel): the values follow the run's state, and the round
// histogram counts every completed round by the time a scrape says so.

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
#include "wire/model_payload.h"

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
  const grpc::Status joined = stub->Join(&context, join, &reply);
  ASSERT_TRUE(joined.ok()) << joined.error_code() << " " << joined.error_message();

  // Both of K=2 clients are live: the server opens round 1 on its next tick.
  std::string after;
  for (int i = 0; i < 100 && Sample(after, "lotteryfl_round") != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    after = Scrape((*server)->metrics_port());
  }
  EXPECT_EQ(Sample(after, "lotteryfl_clients_joined"), 2) << after;
  EXPECT_EQ(Sample(after, "lotteryfl_round"), 1) << after;
  EXPECT_EQ(Sample(after, "lotteryfl_auth_failures_total"), 0);
  // The in-process text is what a scrape serves.
  EXPECT_THAT((*server)->RenderMetrics(), HasSubstr("\nlotteryfl_clients_joined 2\n"));
  (*server)->Stop();
}

// Trains every task the server hands to clients 0 and 1 (a FedAvg update equal to the model)
// until the run is over.
void TrainUntilFinished(lotteryfl::v1::Federation::Stub& stub) {
  namespace v1 = lotteryfl::v1;
  absl::StatusOr<std::string> payload = EncodeModel(TinyModel(), EncodeSpec{});
  ASSERT_TRUE(payload.ok()) << payload.status();
  for (int polls = 0; polls < 200; ++polls) {
    v1::PollRequest poll;
    for (int64_t id : {0, 1}) poll.add_clients()->set_client_id(id);
    poll.set_wait_ms(200);
    v1::PollReply tasks;
    grpc::ClientContext poll_context;
    ASSERT_TRUE(stub.Poll(&poll_context, poll, &tasks).ok());
    if (tasks.state() == v1::PollReply::FINISHED) return;
    for (const v1::Task& task : tasks.tasks()) {
      v1::UpdateChunk header;
      v1::UpdateHeader* h = header.mutable_header();
      h->mutable_client()->set_client_id(task.client_id());
      h->set_round(task.round());
      h->set_attempt(task.attempt());
      h->set_payload_bytes(payload->size());
      h->set_num_samples(10);
      h->set_local_accuracy(0.5);
      v1::UpdateChunk data;
      data.set_data(*payload);
      v1::SubmitReply reply;
      grpc::ClientContext submit_context;
      auto writer = stub.SubmitUpdate(&submit_context, &reply);
      ASSERT_TRUE(writer->Write(header) && writer->Write(data));
      writer->WritesDone();
      const grpc::Status status = writer->Finish();
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
  }
  FAIL() << "the run did not finish within 200 polls";
}

TEST_F(ServerMetricsTest, RoundHistogramCountsEveryCompletedRound) {
  ServerOptions options;
  options.config.clients = 2;
  options.config.rounds = 3;
  options.config.algorithm = Algorithm::kFedAvg;
  options.config.out = out_.string();
  options.listen.clear();
  options.metrics_listen = "127.0.0.1:0";
  options.handle_signals = false;
  options.train_counts = {10, 10};
  options.test_counts = {0, 0};
  // Slow bookkeeping after each round (as a server's evaluation is): a scrape taken meanwhile
  // must already count the round in the histogram.
  auto slow_round_callback = [](const RoundEvent&) { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  auto server = FederationServer::Start(options, TinyModel(), nullptr, slow_round_callback);
  ASSERT_TRUE(server.ok()) << server.status();

  auto stub = lotteryfl::v1::Federation::NewStub((*server)->InProcessChannel());
  lotteryfl::v1::JoinRequest join;
  join.set_protocol_version(1);
  join.set_host("metrics-test");
  for (int64_t id : {0, 1}) join.add_clients()->set_client_id(id);
  lotteryfl::v1::JoinReply reply;
  grpc::ClientContext context;
  const grpc::Status joined = stub->Join(&context, join, &reply);
  ASSERT_TRUE(joined.ok()) << joined.error_code() << " " << joined.error_message();
  TrainUntilFinished(*stub);

  // The scrape that first says the run is finished counts all its rounds.
  std::string finished;
  for (int i = 0; i < 200 && Sample(finished, "lotteryfl_finished") != 1; ++i) {
    finished = Scrape((*server)->metrics_port());
    if (Sample(finished, "lotteryfl_finished") != 1) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(Sample(finished, "lotteryfl_finished"), 1) << finished;
  EXPECT_EQ(Sample(finished, "lotteryfl_rounds_completed_total"), 3) << finished;
  EXPECT_EQ(Sample(finished, "lotteryfl_round_duration_seconds_count"), 3) << finished;

  ASSERT_TRUE((*server)->Wait().ok());
  const std::string after = (*server)->RenderMetrics();
  EXPECT_EQ(Sample(after, "lotteryfl_round_duration_seconds_count"),
            Sample(after, "lotteryfl_rounds_completed_total"));
  EXPECT_EQ(Sample(after, "lotteryfl_round_duration_seconds_count"), 3) << after;
  EXPECT_GE(Sample(after, "lotteryfl_round_duration_seconds_sum"), 0);
}

}  // namespace
}  // namespace lfl
