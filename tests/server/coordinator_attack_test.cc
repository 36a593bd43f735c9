// Attacks on RoundCoordinator as a hostile client would make them, one per test: each asserts
// the refusal and that the global model, the tickets and the run's progress are unharmed.
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

#include "strategy/strategy.h"
#include "quant/codec/codec.h"
#include "quant/codec/crc32c.h"
#include "server/coordinator/checkpoint.h"
#include "server/coordinator/round_coordinator.h"
#include "tests/fl/fl_testing.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

TensorSet Model(float weight, float bias) { return testing::FcModel(weight, bias); }

class AttackTest : public ::testing::Test {
 protected:
  void Make(const std::string& algorithm, const std::string& checkpoint = "") {
    CoordinatorOptions o;
    o.config.clients = 4;
    o.config.fraction = 0.5;
    o.config.rounds = 3;
    o.config.round_timeout = 10;
    o.config.algorithm = *ParseMode<Algorithm>(algorithm);
    o.config.seed = 5;
    o.config.target_density = 0.5;
    o.tokens = {{0, "t0"}, {1, "t1"}, {2, "t2"}, {3, "t3"}};
    if (!clients_bring_data_) {
      o.train_counts = {10, 20, 30, 40};
      o.test_counts = {5, 5, 5, 5};
    }
    o.max_reported_samples = 100;
    o.max_update_norm = 50;
    std::unique_ptr<Strategy> strategy = *MakeStrategy(o.config);
    c_ = std::make_unique<RoundCoordinator>(o, Model(0.f, 0.f), std::move(strategy), nullptr, checkpoint, now_);
    for (int64_t id = 0; id < 4; ++id) ASSERT_TRUE(c_->Join({id, Token(id)}, now_).ok());
    c_->Tick(now_);
    std::vector<Credential> all;
    for (int64_t id = 0; id < 4; ++id) all.push_back({id, Token(id)});
    absl::StatusOr<PollResult> poll = c_->Poll(all, now_);
    ASSERT_TRUE(poll.ok());
    tasks_ = poll->tasks;
    ASSERT_EQ(tasks_.size(), 2u);
    for (int64_t id = 0; id < 4; ++id) {
      if (id != tasks_[0].client_id && id != tasks_[1].client_id) unsampled_ = id;
    }
  }
  static std::string Token(int64_t id) { return "t" + std::to_string(id); }
  bool clients_bring_data_ = false;  // no train/test counts: the server does not know the data
  UpdateReport Report(const Task& t) const {
    UpdateReport r;
    r.client_id = t.client_id;
    r.token = Token(t.client_id);
    r.round = t.round;
    r.attempt = t.attempt;
    r.num_samples = 10;
    r.local_accuracy = 0.9;
    r.test_count = 5;
    return r;
  }
  static std::string Encode(const TensorSet& values, const Mask* mask = nullptr, bool send_mask = true) {
    EncodeSpec spec;
    spec.mask = mask;
    spec.send_mask = send_mask;
    absl::StatusOr<std::string> bytes = EncodeModel(values, spec);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : "";
  }
  // The model is still θ0 and the round still open with nothing accepted.
  void ExpectUnharmed() {
    EXPECT_EQ(SerializeTensorSet(c_->global_model()), SerializeTensorSet(Model(0.f, 0.f)));
    EXPECT_EQ(c_->current_round(), 1u);
    for (const Ticket& s : c_->tickets()) EXPECT_EQ(s.mask_version, 0u);
    // An honest update is still taken.
    EXPECT_TRUE(c_->Submit(Report(tasks_[0]), Encode(Model(1.f, 1.f)), now_).ok());
  }

  double now_ = 50;
  std::unique_ptr<RoundCoordinator> c_;
  std::vector<Task> tasks_;
  int64_t unsampled_ = -1;
};

TEST_F(AttackTest, UnauthenticatedAndWrongTokenCallsAreRefused) {
  Make("fedavg");
  const Task& t = tasks_[0];
  EXPECT_TRUE(absl::IsUnauthenticated(c_->Leave({{t.client_id, "wrong"}}, now_)));
  EXPECT_TRUE(absl::IsUnauthenticated(c_->Leave({{t.client_id, ""}}, now_)));
  EXPECT_TRUE(absl::IsUnauthenticated(c_->Poll({{t.client_id, "t9"}}, now_).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(c_->Heartbeat({{t.client_id, ""}}, now_)));
  EXPECT_TRUE(absl::IsUnauthenticated(c_->Downlink({t.client_id, "nope"}, t.round, t.attempt, 0, 0, now_).status()));
  UpdateReport r = Report(t);
  r.token = "stolen?";
  EXPECT_TRUE(absl::IsUnauthenticated(c_->BeginUpload(r, 100, now_)));
  EXPECT_TRUE(absl::IsUnauthenticated(c_->Submit(r, Encode(Model(9.f, 9.f)), now_).status()));
  EXPECT_TRUE(absl::IsNotFound(c_->Join({77, "t0"}, now_).status()));
  EXPECT_GE(c_->counters().auth_failures, 7u);
  // The Leave was refused, so the sampled client is still expected and the round goes on.
  EXPECT_FALSE(c_->has_left(t.client_id));
  ExpectUnharmed();
}

TEST_F(AttackTest, HeaderChecksRefuseBeforeAnyPayload) {
  Make("fedavg");
  UpdateReport r = Report(tasks_[0]);
  // Declared-size lies: beyond the model's largest encoding, or zero.
  EXPECT_TRUE(absl::IsResourceExhausted(c_->BeginUpload(r, 200ull << 20, now_)));
  EXPECT_TRUE(absl::IsResourceExhausted(c_->BeginUpload(r, c_->max_update_bytes() + 1, now_)));
  EXPECT_TRUE(absl::IsResourceExhausted(c_->BeginUpload(r, 0, now_)));
  // Foreign round, wrong attempt, unsampled client.
  UpdateReport foreign = r;
  foreign.round = 2;
  EXPECT_TRUE(absl::IsFailedPrecondition(c_->BeginUpload(foreign, 100, now_)));
  foreign = r;
  foreign.attempt = 1;
  EXPECT_TRUE(absl::IsFailedPrecondition(c_->BeginUpload(foreign, 100, now_)));
  UpdateReport unsampled = r;
  unsampled.client_id = unsampled_;
  unsampled.token = Token(unsampled_);
  EXPECT_TRUE(absl::IsPermissionDenied(c_->BeginUpload(unsampled, 100, now_)));
  // One upload in flight per client.
  ASSERT_TRUE(c_->BeginUpload(r, 100, now_).ok());
  EXPECT_TRUE(absl::IsResourceExhausted(c_->BeginUpload(r, 100, now_)));
  c_->EndUpload(r.client_id);
  ASSERT_TRUE(c_->BeginUpload(r, 100, now_).ok());
  c_->EndUpload(r.client_id);
  EXPECT_EQ(c_->counters().uploads_refused, 7u);
  // An accepted update's retry is told so at the header.
  ASSERT_TRUE(c_->Submit(r, Encode(Model(1.f, 1.f)), now_).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(c_->BeginUpload(r, 100, now_)));
}

TEST_F(AttackTest, MaxUpdateBytesBoundsEveryHonestEncoding) {
  Make("lotteryfl");
  TensorSet values = Model(0.123f, -4.5f);
  for (size_t i = 0; i < 16; ++i) values.tensors[0].values[i] = 1.f / static_cast<float>(i + 1);
  Mask half = Mask::Full(values);
  for (int64_t i = 0; i < 16; i += 2) half.Set(0, i, false);
  for (const Mask* m : std::vector<const Mask*>{nullptr, &half}) {
    for (int bits : {32, 8, 4, 2}) {
      EncodeSpec spec;
      spec.mask = m;
      spec.weight_bits = bits;
      spec.other_bits = bits;
      absl::StatusOr<std::string> bytes = EncodeModel(values, spec);
      ASSERT_TRUE(bytes.ok());
      EXPECT_LE(bytes->size(), c_->max_update_bytes()) << bits;
    }
  }
}

// Rewrites a codec payload's body length and CRC-32C after a byte edit (as an attacker would).
void Reseal(std::string* bytes) {
  const uint64_t body = bytes->size() - 20;
  bytes->replace(8, 8, std::string(reinterpret_cast<const char*>(&body), 8));
  const uint32_t crc = codec::Crc32c(std::string_view(*bytes).substr(20));
  bytes->replace(16, 4, std::string(reinterpret_cast<const char*>(&crc), 4));
}

TEST_F(AttackTest, AFewBytesCannotAskForAHugeTensor) {
  Make("fedavg");
  // A 0-bit record of fc.weight costs no data bytes per element; rewrite its shape from
  // {4, 4} to {2^27}: a few dozen bytes that, with the codec's default limits, would make the
  // decoder zero-fill 512 MiB.
  codec::Payload p;
  p.tensors.resize(2);
  p.tensors[0].id = 0;
  p.tensors[0].shape = {4, 4};
  p.tensors[0].bits = 0;
  p.tensors[0].levels.assign(16, 0);
  p.tensors[1].id = 1;
  p.tensors[1].shape = {4};
  p.tensors[1].bits = 0;
  p.tensors[1].levels.assign(4, 0);
  absl::StatusOr<std::string> encoded = codec::Encode(p);
  ASSERT_TRUE(encoded.ok()) << encoded.status();
  std::string bytes = *encoded;
  const std::string shape("\x00\x02\x04\x04", 4);  // id 0, rank 2, dims 4 4
  const size_t at = bytes.find(shape, 20);
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 4, std::string("\x00\x01\x80\x80\x80\x40", 6));  // id 0, rank 1, dim 2^27
  Reseal(&bytes);
  EXPECT_LT(bytes.size(), 100u);
  absl::StatusOr<codec::Payload> loose = codec::Decode(bytes);
  EXPECT_TRUE(loose.ok()) << "with default limits the record is valid: " << loose.status();
  if (loose.ok()) EXPECT_EQ(loose->tensors[0].levels.size(), size_t{1} << 27);
  loose = absl::UnknownError("");  // release the 512 MiB
  absl::StatusOr<DecodedModel> decoded = DecodeModel(bytes, Model(0, 0), nullptr, 0);
  EXPECT_TRUE(absl::IsResourceExhausted(decoded.status())) << decoded.status();
  absl::StatusOr<bool> s = c_->Submit(Report(tasks_[0]), bytes, now_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("refused"), std::string::npos) << s.status();
  ExpectUnharmed();
}

TEST_F(AttackTest, OversizedShapesAndNonFiniteValuesAreRefused) {
  Make("fedavg");
  TensorSet big = Model(1.f, 1.f);
  big.tensors[0].shape = {8, 8};
  big.tensors[0].values.assign(64, 1.f);
  EXPECT_TRUE(absl::IsInvalidArgument(c_->Submit(Report(tasks_[0]), Encode(big), now_).status()));
  // Non-finite values: the codec will not encode them, so flip a raw float in a valid payload
  // and fix its CRC, as an attacker would.
  std::string bytes = Encode(Model(1.f, 1.f));
  const float one = 1.f;
  const float inf = std::numeric_limits<float>::infinity();
  size_t at = bytes.rfind(std::string(reinterpret_cast<const char*>(&one), 4));
  ASSERT_NE(at, std::string::npos);
  bytes.replace(at, 4, std::string(reinterpret_cast<const char*>(&inf), 4));
  Reseal(&bytes);
  absl::StatusOr<bool> s = c_->Submit(Report(tasks_[0]), bytes, now_);
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  ExpectUnharmed();
  EXPECT_EQ(c_->counters().updates_refused, 2u);
}

TEST_F(AttackTest, LyingAboutSamplesChangesNothing) {
  // Two runs, the same updates; in one, a client reports 2^31 samples and the other 1. The
  // server weighs by the partition it assigned, so the models are bit-identical.
  std::string honest_model, lying_model;
  for (bool lie : {false, true}) {
    Make("fedavg");
    for (uint64_t round = 1; round <= 3; ++round) {
      if (round > 1) {
        c_->Tick(now_);
        std::vector<Credential> all;
        for (int64_t id = 0; id < 4; ++id) all.push_back({id, Token(id)});
        tasks_ = c_->Poll(all, now_)->tasks;
      }
      ASSERT_EQ(tasks_.size(), 2u);
      for (size_t i = 0; i < 2; ++i) {
        UpdateReport r = Report(tasks_[i]);
        r.num_samples = lie ? (i == 0 ? (int64_t{1} << 31) : 1) : 10 * (tasks_[i].client_id + 1);
        const float v = 0.25f * static_cast<float>(tasks_[i].client_id + 1) + 0.1f * static_cast<float>(round);
        ASSERT_TRUE(c_->Submit(r, Encode(Model(v, -v)), now_).ok());
      }
      ASSERT_EQ(c_->Tick(now_).size(), 1u);
    }
    ASSERT_TRUE(c_->finished());
    (lie ? lying_model : honest_model) = SerializeTensorSet(c_->global_model());
  }
  EXPECT_EQ(honest_model, lying_model);
}

// Where the server does not know a client's data (client-data local), a reported count is
// clamped to --max-client-samples (100 here), and the row says how many were.
TEST_F(AttackTest, UnknownDataCountsAreClampedAndTheRowSaysSo) {
  clients_bring_data_ = true;
  Make("fedavg");
  UpdateReport a = Report(tasks_[0]), b = Report(tasks_[1]);
  a.num_samples = int64_t{1} << 31;  // weighs 100, not 2^31
  b.num_samples = 50;
  a.test_count = 123456;  // informational without a partition: not checked against anything
  ASSERT_TRUE(c_->Submit(a, Encode(Model(3.f, 3.f)), now_).ok());
  ASSERT_TRUE(c_->Submit(b, Encode(Model(0.f, 0.f)), now_).ok());
  std::vector<RoundEvent> events = c_->Tick(now_);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metrics.clamped_samples, 1);
  EXPECT_EQ(events[0].metrics.weights_source, "clients");
  // (100 · 3 + 50 · 0) / 150 = 2
  EXPECT_FLOAT_EQ(c_->global_model().tensors[0].values[0], 2.f);
}

TEST_F(AttackTest, ReportedFiguresAreValidated) {
  Make("fedavg");
  UpdateReport r = Report(tasks_[0]);
  r.local_accuracy = 7;
  EXPECT_TRUE(absl::IsInvalidArgument(c_->Submit(r, Encode(Model(1.f, 1.f)), now_).status()));
  r = Report(tasks_[0]);
  r.local_accuracy = std::numeric_limits<double>::quiet_NaN();
  EXPECT_TRUE(absl::IsInvalidArgument(c_->Submit(r, Encode(Model(1.f, 1.f)), now_).status()));
  r = Report(tasks_[0]);
  r.test_count = 1000000;  // the server assigned 5
  EXPECT_TRUE(absl::IsInvalidArgument(c_->Submit(r, Encode(Model(1.f, 1.f)), now_).status()));
  ExpectUnharmed();
}

TEST_F(AttackTest, SupersetOrTooSparseMasksAreRefused) {
  Make("lotteryfl");
  const Task& t = tasks_[0];
  // First, an honest pruning step: drop the first row (density 0.75 >= target 0.5).
  Mask pruned = Mask::Full(Model(0, 0));
  for (int64_t i = 0; i < 4; ++i) pruned.Set(0, i, false);
  TensorSet values = Model(1.f, 1.f);
  pruned.ApplyTo(&values);
  ASSERT_TRUE(c_->Submit(Report(t), Encode(values, &pruned), now_).ok());
  ASSERT_TRUE(c_->Submit(Report(tasks_[1]), Encode(Model(1.f, 1.f)), now_).ok());
  ASSERT_EQ(c_->Tick(now_).size(), 1u);
  ASSERT_EQ(c_->tickets()[t.client_id].mask, pruned);
  // Next round, if sampled again: a mask that revives the pruned row, and one below the target.
  for (int r = 0; r < 3 && c_->current_round() <= 3; ++r) {
    c_->Tick(now_);
    std::vector<Credential> all;
    for (int64_t id = 0; id < 4; ++id) all.push_back({id, Token(id)});
    std::vector<Task> tasks = c_->Poll(all, now_)->tasks;
    auto it = std::find_if(tasks.begin(), tasks.end(), [&](const Task& x) { return x.client_id == t.client_id; });
    if (it == tasks.end()) {
      for (const Task& x : tasks) ASSERT_TRUE(c_->Submit(Report(x), Encode(Model(1.f, 1.f)), now_).ok());
      c_->Tick(now_);
      continue;
    }
    Mask revived = pruned;
    revived.Set(0, 0, true);
    TensorSet v1 = Model(1.f, 1.f);
    revived.ApplyTo(&v1);
    absl::StatusOr<bool> s = c_->Submit(Report(*it), Encode(v1, &revived), now_);
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
    Mask sparse = pruned;
    for (int64_t i = 4; i < 14; ++i) sparse.Set(0, i, false);  // density 2/16 < 0.5
    TensorSet v2 = Model(1.f, 1.f);
    sparse.ApplyTo(&v2);
    s = c_->Submit(Report(*it), Encode(v2, &sparse), now_);
    EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
    EXPECT_NE(s.status().message().find("target"), std::string::npos);
    EXPECT_EQ(c_->tickets()[t.client_id].mask, pruned) << "the ticket is unchanged";
    return;
  }
  GTEST_SKIP() << "the client was not sampled again within the run";
}

TEST_F(AttackTest, NormOutliersAreRefused) {
  Make("fedavg");
  // 16 weights at 20 are 80 away from θ0 = 0 in L2; the bound is 50.
  absl::StatusOr<bool> s = c_->Submit(Report(tasks_[0]), Encode(Model(20.f, 0.f)), now_);
  EXPECT_TRUE(absl::IsInvalidArgument(s.status())) << s.status();
  EXPECT_NE(s.status().message().find("norm"), std::string::npos);
  ExpectUnharmed();
}

TEST_F(AttackTest, ARoundDoesNotWaitForClientsThatLeft) {
  Make("fedavg");
  ASSERT_TRUE(c_->Submit(Report(tasks_[0]), Encode(Model(1.f, 1.f)), now_).ok());
  EXPECT_TRUE(c_->Tick(now_ + 1).empty()) << "one sampled client has not answered yet";
  const Task& gone = tasks_[1];
  ASSERT_TRUE(c_->Leave({{gone.client_id, Token(gone.client_id)}}, now_ + 1).ok());
  std::vector<RoundEvent> events = c_->Tick(now_ + 1);  // well before the 10 s deadline
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metrics.completed, 1);
  EXPECT_EQ(events[0].metrics.dropped, 1);
  // It may come back: Join again and it is sampled like anyone else.
  ASSERT_TRUE(c_->Join({gone.client_id, Token(gone.client_id)}, now_ + 2).ok());
  EXPECT_FALSE(c_->has_left(gone.client_id));
}

TEST_F(AttackTest, AFailingCheckpointStopsTheRunWithAClearError) {
  const std::string dir = (std::filesystem::temp_directory_path() / ("lfl_attack_" + std::to_string(::getpid())))
                              .string();
  // A checkpoint path inside a directory that does not exist: every write fails.
  Make("fedavg", dir + "/missing/checkpoint.bin");
  for (const Task& t : tasks_) ASSERT_TRUE(c_->Submit(Report(t), Encode(Model(1.f, 1.f)), now_).ok());
  ASSERT_EQ(c_->Tick(now_).size(), 1u);
  EXPECT_EQ(c_->counters().checkpoint_failures, static_cast<uint64_t>(RoundCoordinator::kCheckpointAttempts));
  EXPECT_TRUE(absl::IsDataLoss(c_->fatal_error())) << c_->fatal_error();
  EXPECT_NE(c_->fatal_error().message().find("checkpoint"), std::string::npos);
  EXPECT_TRUE(c_->finished()) << "no round runs that could not be checkpointed";
}

TEST(CheckpointChecksumTest, AnyFlippedByteIsRefused) {
  Checkpoint cp;
  cp.next_round = 3;
  cp.seed = 9;
  cp.global = Model(0.5f, 0.25f);
  Ticket ticket;
  ticket.mask = Mask::Full(cp.global);
  ticket.mask_version = 2;
  ticket.personalized_accuracy = 0.75;
  ticket.test_count = 10;
  ticket.num_samples = 4;
  cp.clients.push_back(ticket);
  const std::string bytes = SerializeCheckpoint(cp);
  ASSERT_TRUE(ParseCheckpoint(bytes).ok());
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string bad = bytes;
    bad[i] ^= 0x01;
    EXPECT_FALSE(ParseCheckpoint(bad).ok()) << "flipped byte " << i;
  }
}

}  // namespace
}  // namespace lfl
