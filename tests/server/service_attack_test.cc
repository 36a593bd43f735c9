// The gRPC service attacked over a real loopback socket by a hostile client speaking the
// protocol directly: every attack is refused with the right status, an honest federation in
// the same server still finishes every round, and the server buffers nothing it was not
// asked for by an admitted upload.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "proto/lotteryfl.grpc.pb.h"
#include "server/federation_server.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

namespace v1 = lotteryfl::v1;

TensorSet Model(float w, float b) {
  TensorSet s;
  s.tensors.push_back({"fc.weight", {8, 8}, std::vector<float>(64, w), true});
  s.tensors.push_back({"fc.bias", {8}, std::vector<float>(8, b), false});
  return s;
}

class ServiceAttackTest : public ::testing::Test {
 protected:
  // Lets a fixture change the server's options before it starts.
  virtual void Tune(ServerOptions*) {}
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("lfl_svc_attack_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    std::ofstream(dir_ / "tokens.txt") << "0 t0\n1 t1\n2 t2\n3 t3\n";
    ServerOptions o;
    o.config.clients = 4;
    o.config.fraction = 0.5;
    o.config.rounds = 3;
    o.config.round_timeout = 20;
    o.config.join_timeout = 20;
    o.config.algorithm = Algorithm::kFedAvg;
    o.config.out = (dir_ / "run").string();
    o.listen = "127.0.0.1:0";
    o.insecure = true;  // tokens without TLS: the transport is tested elsewhere
    o.tokens_file = (dir_ / "tokens.txt").string();
    o.handle_signals = false;
    o.train_counts = {10, 10, 10, 10};
    o.test_counts = {0, 0, 0, 0};
    o.service_limits.max_concurrent_uploads = 6;
    o.service_limits.upload_stall_seconds = 1.0;
    o.service_limits.pre_header_seconds = 1.0;
    Tune(&o);
    absl::StatusOr<std::unique_ptr<FederationServer>> server =
        FederationServer::Start(o, Model(0.f, 0.f), nullptr, nullptr);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel("127.0.0.1:" + std::to_string(server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Federation::NewStub(channel_);
  }
  void TearDown() override {
    server_.reset();
    std::filesystem::remove_all(dir_);
  }
  static v1::Credential Cred(int64_t id, const std::string& token) {
    v1::Credential c;
    c.set_client_id(id);
    c.set_token(token);
    return c;
  }
  static std::string Token(int64_t id) { return "t" + std::to_string(id); }
  static std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
    return ctx;
  }
  void JoinAll() {
    v1::JoinRequest req;
    req.set_protocol_version(1);
    for (int64_t id = 0; id < 4; ++id) *req.add_clients() = Cred(id, Token(id));
    v1::JoinReply reply;
    ASSERT_TRUE(stub_->Join(Ctx().get(), req, &reply).ok());
  }
  std::vector<v1::Task> PollTasks() {
    for (int i = 0; i < 100; ++i) {
      v1::PollRequest req;
      for (int64_t id = 0; id < 4; ++id) *req.add_clients() = Cred(id, Token(id));
      req.set_wait_ms(200);
      v1::PollReply reply;
      grpc::Status s = stub_->Poll(Ctx().get(), req, &reply);
      EXPECT_TRUE(s.ok()) << s.error_message();
      if (reply.state() == v1::PollReply::FINISHED) return {};
      if (reply.tasks_size() > 0) return {reply.tasks().begin(), reply.tasks().end()};
    }
    ADD_FAILURE() << "no task within 100 polls";
    return {};
  }
  static v1::UpdateChunk Header(int64_t id, const std::string& token, uint64_t round, uint64_t bytes) {
    v1::UpdateChunk chunk;
    v1::UpdateHeader* h = chunk.mutable_header();
    *h->mutable_client() = Cred(id, token);
    h->set_round(round);
    h->set_attempt(0);
    h->set_payload_bytes(bytes);
    h->set_num_samples(10);
    h->set_local_accuracy(0.5);
    return chunk;
  }
  static v1::UpdateChunk Data(std::string bytes) {
    v1::UpdateChunk chunk;
    chunk.set_data(std::move(bytes));
    return chunk;
  }
  // Sends the messages, half-closes and returns the final status.
  grpc::Status Submit(const std::vector<v1::UpdateChunk>& messages, v1::SubmitReply* reply = nullptr) {
    v1::SubmitReply local;
    auto ctx = Ctx();
    auto writer = stub_->SubmitUpdate(ctx.get(), reply ? reply : &local);
    for (const v1::UpdateChunk& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }
  static std::string Honest(float v) {
    absl::StatusOr<std::string> bytes = EncodeModel(Model(v, v), EncodeSpec{});
    EXPECT_TRUE(bytes.ok());
    return *bytes;
  }
  // Completes the open round honestly.
  void RunHonestRound(const std::vector<v1::Task>& tasks) {
    for (const v1::Task& t : tasks) {
      const std::string p = Honest(1.f);
      grpc::Status s = Submit({Header(t.client_id(), Token(t.client_id()), t.round(), p.size()), Data(p)});
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }

  std::filesystem::path dir_;
  std::unique_ptr<FederationServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Federation::Stub> stub_;
};

TEST_F(ServiceAttackTest, EveryAttackIsRefusedAndTheRunStillFinishes) {
  // Unauthenticated Leave for every id, before and after joining.
  for (const std::string& token : {std::string(""), std::string("guess")}) {
    v1::LeaveRequest leave;
    for (int64_t id = 0; id < 4; ++id) *leave.add_clients() = Cred(id, token);
    v1::LeaveReply lr;
    EXPECT_EQ(stub_->Leave(Ctx().get(), leave, &lr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  JoinAll();
  std::vector<v1::Task> tasks = PollTasks();
  ASSERT_EQ(tasks.size(), 2u);
  const v1::Task& t = tasks[0];
  int64_t unsampled = 0;
  while (unsampled == tasks[0].client_id() || unsampled == tasks[1].client_id()) ++unsampled;

  // Wrong-token Poll and Fetch.
  v1::PollRequest poll;
  *poll.add_clients() = Cred(t.client_id(), "wrong");
  v1::PollReply pr;
  EXPECT_EQ(stub_->Poll(Ctx().get(), poll, &pr).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::FetchRequest fetch;
  *fetch.mutable_client() = Cred(t.client_id(), "wrong");
  fetch.set_round(t.round());
  auto fctx = Ctx();
  auto reader = stub_->FetchModel(fctx.get(), fetch);
  v1::Chunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  const std::string p = Honest(1.f);
  const std::string mib(1 << 20, 'x');
  // Wrong token declaring 200 MiB: refused at the header, the chunks are never buffered.
  EXPECT_EQ(Submit({Header(t.client_id(), "wrong", t.round(), 200ull << 20), Data(mib), Data(mib)}).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  // Right token, size lies both ways, and a size beyond the model's largest encoding.
  EXPECT_EQ(Submit({Header(t.client_id(), Token(t.client_id()), t.round(), 200ull << 20), Data(mib)}).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(Submit({Header(t.client_id(), Token(t.client_id()), t.round(), p.size() - 5), Data(p)}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Submit({Header(t.client_id(), Token(t.client_id()), t.round(), p.size() + 5), Data(p)}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Order: data before the header, a second header, an empty stream, a chunk above 1 MiB.
  EXPECT_EQ(Submit({Data(p)}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Submit({Header(t.client_id(), Token(t.client_id()), t.round(), p.size()),
                    Header(t.client_id(), Token(t.client_id()), t.round(), p.size())})
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Submit({}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A foreign round, and an unsampled client.
  EXPECT_EQ(Submit({Header(t.client_id(), Token(t.client_id()), t.round() + 1, p.size()), Data(p)}).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(Submit({Header(unsampled, Token(unsampled), t.round(), p.size()), Data(p)}).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A corrupt payload of the declared size.
  std::string corrupt = p;
  corrupt[corrupt.size() / 2] ^= 0x40;
  EXPECT_EQ(Submit({Header(t.client_id(), Token(t.client_id()), t.round(), corrupt.size()), Data(corrupt)})
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  const CoordinatorCounters counters = server_->coordinator().counters();
  EXPECT_GE(counters.uploads_refused, 4u);
  EXPECT_GE(counters.auth_failures, 5u);
  EXPECT_EQ(counters.updates_accepted, 0u);
  EXPECT_EQ(server_->coordinator().current_round(), 1u);

  // The corrupt payload ended t's task for this round (it is refused, not retrained); the round
  // closes with the other client. The honest federation is unharmed: three rounds complete and
  // the run finishes.
  const std::string honest = Honest(1.f);
  EXPECT_EQ(Submit({Header(t.client_id(), Token(t.client_id()), t.round(), honest.size()), Data(honest)})
                .error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  RunHonestRound({tasks[1]});
  for (int r = 2; r <= 3; ++r) RunHonestRound(PollTasks());
  ASSERT_TRUE(server_->Wait().ok());
  EXPECT_TRUE(server_->coordinator().finished());
  EXPECT_EQ(server_->coordinator().totals().rounds_completed, 3u);
  EXPECT_FLOAT_EQ(server_->coordinator().global_model().tensors[0].values[0], 1.f);
}

// A stream opened and left silent, as a hostile peer holds one.
struct SilentStream {
  std::unique_ptr<grpc::ClientContext> ctx;
  v1::SubmitReply reply;
  std::unique_ptr<grpc::ClientWriter<v1::UpdateChunk>> writer;
};

std::unique_ptr<SilentStream> OpenSilent(v1::Federation::Stub* stub) {
  auto o = std::make_unique<SilentStream>();
  o->ctx = std::make_unique<grpc::ClientContext>();
  o->ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  o->writer = stub->SubmitUpdate(o->ctx.get(), &o->reply);
  return o;
}

template <typename Pred>
bool WaitFor(Pred pred) {
  for (int i = 0; i < 250; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

uint64_t Refusals(const FederationServer& server, const std::string& cause) {
  const auto snapshot = server.refusals()->Snapshot();
  auto it = snapshot.find(cause);
  return it == snapshot.end() ? 0 : it->second;
}

TEST_F(ServiceAttackTest, HeaderlessStreamsHoldNoSlotAndAreRefusedAfterTheBudget) {
  JoinAll();
  std::vector<v1::Task> tasks = PollTasks();
  ASSERT_EQ(tasks.size(), 2u);
  // More silent streams than there are upload slots (6): none of them takes one.
  std::vector<std::unique_ptr<SilentStream>> silent;
  for (int i = 0; i < 10; ++i) silent.push_back(OpenSilent(stub_.get()));
  ASSERT_TRUE(WaitFor([&] { return server_->pending_uploads() == 10; })) << server_->pending_uploads();
  EXPECT_EQ(server_->open_uploads(), 0);
  // While they are held, the honest clients upload and the round closes.
  const auto t0 = std::chrono::steady_clock::now();
  RunHonestRound(tasks);
  EXPECT_TRUE(WaitFor([&] { return server_->coordinator().totals().rounds_completed == 1; }));
  // Each silent stream is refused after pre_header_seconds (1 s), with the cause in its status.
  for (auto& o : silent) {
    grpc::Status s = o->writer->Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
    EXPECT_EQ(s.error_message().rfind("pre_header_timeout:", 0), 0u) << s.error_message();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  EXPECT_TRUE(WaitFor([&] { return server_->pending_uploads() == 0; }));
  EXPECT_EQ(Refusals(*server_, kRefusalPreHeaderTimeout), 10u);
  EXPECT_THAT(server_->RenderMetrics(),
              ::testing::HasSubstr("lotteryfl_refusals_total{cause=\"pre_header_timeout\"} 10"));
  // The run goes on.
  for (int r = 2; r <= 3; ++r) RunHonestRound(PollTasks());
  ASSERT_TRUE(server_->Wait().ok());
  EXPECT_EQ(server_->coordinator().totals().rounds_completed, 3u);
}

TEST_F(ServiceAttackTest, AnAdmittedUploadThatStallsIsRefusedAndItsSlotFreed) {
  JoinAll();
  std::vector<v1::Task> tasks = PollTasks();
  ASSERT_EQ(tasks.size(), 2u);
  const v1::Task& t = tasks[0];
  const std::string p = Honest(1.f);
  auto stalled = OpenSilent(stub_.get());
  ASSERT_TRUE(stalled->writer->Write(Header(t.client_id(), Token(t.client_id()), t.round(), p.size())));
  ASSERT_TRUE(WaitFor([&] { return server_->open_uploads() == 1; }));
  EXPECT_EQ(server_->pending_uploads(), 0);
  grpc::Status s = stalled->writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << s.error_message();
  EXPECT_EQ(s.error_message().rfind("upload_stalled:", 0), 0u) << s.error_message();
  EXPECT_TRUE(WaitFor([&] { return server_->open_uploads() == 0; }));
  EXPECT_EQ(Refusals(*server_, kRefusalUploadStalled), 1u);
  // Both the service slot and the client's own slot were handed back: the same client uploads.
  RunHonestRound(tasks);
  EXPECT_TRUE(WaitFor([&] { return server_->coordinator().totals().rounds_completed == 1; }));
}

TEST_F(ServiceAttackTest, MalformedStreamsAreCountedWithTheirCause) {
  JoinAll();
  std::vector<v1::Task> tasks = PollTasks();
  ASSERT_EQ(tasks.size(), 2u);
  grpc::Status s = Submit({Data("x")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message().rfind("malformed_upload:", 0), 0u) << s.error_message();
  EXPECT_EQ(Submit({}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(Refusals(*server_, kRefusalMalformedUpload), 2u);
  EXPECT_EQ(server_->pending_uploads(), 0);
  RunHonestRound(tasks);
}

// One upload slot and room for two header-less streams: a second admitted header finds no
// slot, and silent streams beyond the room make way for newcomers.
class ServiceSlotTest : public ServiceAttackTest {
 protected:
  void Tune(ServerOptions* o) override {
    o->service_limits.max_concurrent_uploads = 1;
    o->service_limits.max_pending_uploads = 2;
    o->service_limits.pre_header_seconds = 20;  // nothing times out here: only eviction acts
    o->service_limits.upload_stall_seconds = 20;
  }
};

TEST_F(ServiceSlotTest, AHeaderFindingNoSlotIsRefusedAndTheHolderFinishes) {
  JoinAll();
  std::vector<v1::Task> tasks = PollTasks();
  ASSERT_EQ(tasks.size(), 2u);
  const std::string p = Honest(1.f);
  const v1::Task& a = tasks[0];
  const v1::Task& b = tasks[1];
  auto holder = OpenSilent(stub_.get());
  ASSERT_TRUE(holder->writer->Write(Header(a.client_id(), Token(a.client_id()), a.round(), p.size())));
  ASSERT_TRUE(WaitFor([&] { return server_->open_uploads() == 1; }));
  grpc::Status refused = Submit({Header(b.client_id(), Token(b.client_id()), b.round(), p.size()), Data(p)});
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_EQ(refused.error_message().rfind("no_upload_slot:", 0), 0u) << refused.error_message();
  EXPECT_EQ(Refusals(*server_, kRefusalNoUploadSlot), 1u);
  // The holder completes; then b, whose coordinator slot the refusal handed back, gets in.
  ASSERT_TRUE(holder->writer->Write(Data(p)));
  holder->writer->WritesDone();
  EXPECT_TRUE(holder->writer->Finish().ok());
  grpc::Status later = Submit({Header(b.client_id(), Token(b.client_id()), b.round(), p.size()), Data(p)});
  EXPECT_TRUE(later.ok()) << later.error_message();
  EXPECT_TRUE(WaitFor([&] { return server_->coordinator().totals().rounds_completed == 1; }));
}

TEST_F(ServiceSlotTest, SilentStreamsMakeWayForAnHonestUpload) {
  JoinAll();
  std::vector<v1::Task> tasks = PollTasks();
  ASSERT_EQ(tasks.size(), 2u);
  // One at a time, so that the server sees them in this order.
  std::vector<std::unique_ptr<SilentStream>> silent;
  for (int i = 0; i < 2; ++i) {
    silent.push_back(OpenSilent(stub_.get()));
    ASSERT_TRUE(WaitFor([&] { return server_->pending_uploads() == i + 1; }));
  }
  // The first honest upload opens a stream while two silent ones hold the room: the oldest
  // goes, and the round completes.
  RunHonestRound(tasks);
  EXPECT_TRUE(WaitFor([&] { return server_->coordinator().totals().rounds_completed == 1; }));
  grpc::Status s = silent[0]->writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_EQ(s.error_message().rfind("pre_header_evicted:", 0), 0u) << s.error_message();
  EXPECT_EQ(Refusals(*server_, kRefusalPreHeaderEvicted), 1u);
  EXPECT_EQ(server_->pending_uploads(), 1);  // the younger silent stream is still held
  silent[1]->ctx->TryCancel();
  EXPECT_EQ(silent[1]->writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(WaitFor([&] { return server_->pending_uploads() == 0; }));
}

}  // namespace
}  // namespace lfl
