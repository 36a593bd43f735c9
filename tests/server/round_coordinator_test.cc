#include "server/round_coordinator.h"

#include <cmath>
#include <filesystem>
#include <limits>

#include <gtest/gtest.h>

#include "fl/strategy.h"
#include "server/checkpoint.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

// A two-tensor model: a prunable 4x4 weight and a bias of 4.
TensorSet SmallModel(float weight, float bias) {
  TensorSet s;
  s.tensors.push_back({"fc.weight", {4, 4}, std::vector<float>(16, weight), true});
  s.tensors.push_back({"fc.bias", {4}, std::vector<float>(4, bias), false});
  return s;
}

RunConfig SmallConfig(const std::string& algorithm) {
  RunConfig c;
  c.clients = 4;
  c.fraction = 0.5;
  c.min_clients = 1;
  c.rounds = 3;
  c.round_timeout = 10;
  c.join_timeout = 5;
  c.algorithm = algorithm;
  c.seed = 11;
  return c;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void Make(const std::string& algorithm, std::map<int64_t, std::string> tokens = {}) {
    CoordinatorOptions o;
    o.config = SmallConfig(algorithm);
    o.tokens = std::move(tokens);
    std::unique_ptr<Strategy> strategy =
        algorithm == "lotteryfl" ? MakeLotteryFl(false) : std::unique_ptr<Strategy>(MakeFedAvg());
    coordinator_ = std::make_unique<RoundCoordinator>(o, SmallModel(0.f, 0.f), std::move(strategy), nullptr,
                                                      checkpoint_, now_);
  }
  void JoinAll() {
    for (int64_t id = 0; id < 4; ++id) ASSERT_TRUE(coordinator_->Join({id, token(id)}, now_).ok());
  }
  std::string token(int64_t id) const { return tokens_ ? "t" + std::to_string(id) : ""; }
  std::vector<Task> OpenTasks() {
    std::vector<Credential> all;
    for (int64_t id = 0; id < 4; ++id) all.push_back({id, token(id)});
    absl::StatusOr<PollResult> r = coordinator_->Poll(all, now_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->tasks : std::vector<Task>{};
  }
  // Encodes an fp32 update of constant values (with an optional pruned first row).
  std::string Update(float weight, float bias, const Mask* mask = nullptr, bool send_mask = false) {
    EncodeSpec spec;
    spec.mask = mask;
    spec.send_mask = send_mask;
    TensorSet values = SmallModel(weight, bias);
    if (mask) mask->ApplyTo(&values);
    absl::StatusOr<std::string> bytes = EncodeModel(values, spec);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return *bytes;
  }
  UpdateReport Report(const Task& t, int64_t samples = 10) {
    UpdateReport r;
    r.client_id = t.client_id;
    r.token = token(t.client_id);
    r.round = t.round;
    r.attempt = t.attempt;
    r.num_samples = samples;
    r.local_accuracy = 0.5;
    return r;
  }

  double now_ = 100;
  bool tokens_ = false;
  std::string checkpoint_ =
      (std::filesystem::temp_directory_path() / ("lfl_coord_" + std::to_string(::getpid()) + ".bin")).string();
  std::unique_ptr<RoundCoordinator> coordinator_;
};

TEST_F(CoordinatorTest, WaitsForAllClientsThenSamplesHalf) {
  Make("fedavg");
  coordinator_->Join({0, ""}, now_);
  coordinator_->Tick(now_);
  absl::StatusOr<PollResult> early = coordinator_->Poll({{0, ""}}, now_);
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->tasks.empty()) << "a round must not start before all clients joined";
  EXPECT_TRUE(absl::IsFailedPrecondition(coordinator_->Poll({{1, ""}}, now_).status()));
  JoinAll();
  coordinator_->Tick(now_);
  std::vector<Task> tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 2u);  // max(1, floor(0.5 * 4))
  EXPECT_EQ(tasks[0].round, 1u);
}

TEST_F(CoordinatorTest, SamplingDependsOnlyOnSeedAndRound) {
  Make("fedavg");
  JoinAll();
  coordinator_->Tick(now_);
  std::vector<Task> first = OpenTasks();
  Make("fedavg");
  JoinAll();
  coordinator_->Tick(now_ + 1);
  std::vector<Task> second = OpenTasks();
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) EXPECT_EQ(first[i].client_id, second[i].client_id);
}

TEST_F(CoordinatorTest, FedAvgWeightsBySamplesAndFinishes) {
  Make("fedavg");
  JoinAll();
  for (uint64_t round = 1; round <= 3; ++round) {
    coordinator_->Tick(now_);
    std::vector<Task> tasks = OpenTasks();
    ASSERT_EQ(tasks.size(), 2u);
    ASSERT_TRUE(coordinator_->Submit(Report(tasks[0], 30), Update(1.f, 1.f), now_).ok());
    ASSERT_TRUE(coordinator_->Submit(Report(tasks[1], 10), Update(5.f, 5.f), now_).ok());
    std::vector<RoundEvent> events = coordinator_->Tick(now_);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_FALSE(events[0].retried);
    EXPECT_EQ(events[0].metrics.completed, 2);
    EXPECT_GT(events[0].metrics.uplink_bytes, 0u);
  }
  EXPECT_TRUE(coordinator_->finished());
  // (30*1 + 10*5) / 40 = 2
  EXPECT_FLOAT_EQ(coordinator_->global_model().tensors[0].values[0], 2.f);
}

TEST_F(CoordinatorTest, DuplicateIsIdempotentAndLateIsRefused) {
  Make("fedavg");
  JoinAll();
  coordinator_->Tick(now_);
  std::vector<Task> tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 2u);
  const std::string update = Update(1.f, 1.f);
  absl::StatusOr<bool> first = coordinator_->Submit(Report(tasks[0]), update, now_);
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(*first);
  absl::StatusOr<bool> again = coordinator_->Submit(Report(tasks[0]), update, now_);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(*again) << "a retried submission is acknowledged as a duplicate";
  // The deadline passes: the straggler is dropped and its late update refused.
  std::vector<RoundEvent> events = coordinator_->Tick(now_ + 11);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metrics.dropped, 1);
  absl::StatusOr<bool> late = coordinator_->Submit(Report(tasks[1]), update, now_ + 11);
  EXPECT_TRUE(absl::IsFailedPrecondition(late.status())) << late.status();
}

TEST_F(CoordinatorTest, QuorumNotMetRetriesTheRound) {
  Make("fedavg");
  JoinAll();
  coordinator_->Tick(now_);
  ASSERT_EQ(OpenTasks().size(), 2u);
  std::vector<RoundEvent> events = coordinator_->Tick(now_ + 11);  // nobody submitted
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].retried);
  coordinator_->Tick(now_ + 11);
  std::vector<Task> retry = OpenTasks();
  ASSERT_FALSE(retry.empty());
  EXPECT_EQ(retry[0].round, 1u);
  EXPECT_EQ(retry[0].attempt, 1u);
}

TEST_F(CoordinatorTest, BadUpdatesAreRefusedAndHarmNothing) {
  Make("fedavg");
  JoinAll();
  coordinator_->Tick(now_);
  std::vector<Task> tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 2u);
  std::string update = Update(1.f, 1.f);
  // Corrupt payload.
  std::string corrupt = update;
  corrupt[corrupt.size() / 2] ^= 0x5a;
  EXPECT_TRUE(absl::IsInvalidArgument(coordinator_->Submit(Report(tasks[0]), corrupt, now_).status()));
  // Truncated payload.
  EXPECT_FALSE(coordinator_->Submit(Report(tasks[0]), update.substr(0, update.size() - 3), now_).ok());
  // NaN values.
  TensorSet nan = SmallModel(1.f, 1.f);
  nan.tensors[0].values[3] = std::numeric_limits<float>::quiet_NaN();
  // The codec refuses to encode non-finite values; should a payload carry them anyway, Submit refuses it.
  if (absl::StatusOr<std::string> nan_bytes = EncodeModel(nan, EncodeSpec{}); nan_bytes.ok()) {
    EXPECT_FALSE(coordinator_->Submit(Report(tasks[0]), *nan_bytes, now_).ok());
  }
  // Wrong shape.
  TensorSet wrong = SmallModel(1.f, 1.f);
  wrong.tensors[0].shape = {2, 8};
  absl::StatusOr<std::string> wrong_bytes = EncodeModel(wrong, EncodeSpec{});
  ASSERT_TRUE(wrong_bytes.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(coordinator_->Submit(Report(tasks[0]), *wrong_bytes, now_).status()));
  // Unknown client, foreign round.
  UpdateReport unknown = Report(tasks[0]);
  unknown.client_id = 99;
  EXPECT_TRUE(absl::IsNotFound(coordinator_->Submit(unknown, update, now_).status()));
  UpdateReport foreign = Report(tasks[0]);
  foreign.round = 7;
  EXPECT_TRUE(absl::IsFailedPrecondition(coordinator_->Submit(foreign, update, now_).status()));
  // None of that touched the round: one good update decides the aggregate.
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[0]), Update(3.f, 3.f), now_).ok());
  coordinator_->Tick(now_ + 11);
  EXPECT_FLOAT_EQ(coordinator_->global_model().tensors[0].values[0], 3.f);
}

TEST_F(CoordinatorTest, TokensAreCheckedOnEveryCall) {
  tokens_ = true;
  Make("fedavg", {{0, "t0"}, {1, "t1"}, {2, "t2"}, {3, "t3"}});
  EXPECT_TRUE(absl::IsUnauthenticated(coordinator_->Join({0, "wrong"}, now_).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(coordinator_->Join({0, ""}, now_).status()));
  JoinAll();
  EXPECT_TRUE(absl::IsUnauthenticated(coordinator_->Poll({{1, "t0"}}, now_).status()));
}

TEST_F(CoordinatorTest, LotteryMasksTravelByVersionAndSurviveRestore) {
  Make("lotteryfl");
  JoinAll();
  coordinator_->Tick(now_);
  std::vector<Task> tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 2u);
  const int64_t pruned_client = tasks[0].client_id;
  Mask mask = Mask::Full(SmallModel(0, 0));
  for (int64_t i = 0; i < 4; ++i) mask.Set(0, i, false);  // prune the first row
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[0]), Update(2.f, 2.f, &mask, true), now_).ok());
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[1]), Update(4.f, 4.f), now_).ok());
  coordinator_->Tick(now_);
  // Elements kept by both: mean 3; first row kept only by the dense client: 4; biases averaged: 3.
  TensorSet global = coordinator_->global_model();
  EXPECT_FLOAT_EQ(global.tensors[0].values[0], 4.f);
  EXPECT_FLOAT_EQ(global.tensors[0].values[5], 3.f);
  EXPECT_FLOAT_EQ(global.tensors[1].values[0], 3.f);
  std::vector<ClientState> clients = coordinator_->clients();
  EXPECT_EQ(clients[pruned_client].mask_version, 1u);
  EXPECT_EQ(clients[pruned_client].mask, mask);

  // Restore into a fresh coordinator: same round, same tickets.
  const uint64_t round = coordinator_->current_round();
  Make("lotteryfl");
  ASSERT_TRUE(coordinator_->Restore(checkpoint_, now_).ok());
  EXPECT_EQ(coordinator_->current_round(), round);
  EXPECT_EQ(coordinator_->clients()[pruned_client].mask, mask);
  EXPECT_EQ(SerializeTensorSet(coordinator_->global_model()), SerializeTensorSet(global));

  // A client holding the current mask gets a smaller downlink (mask by reference).
  JoinAll();
  coordinator_->Tick(now_);
  for (const Task& t : OpenTasks()) {
    const ClientState c = coordinator_->clients()[t.client_id];
    auto with_ref = coordinator_->Downlink({t.client_id, ""}, t.round, t.attempt, c.mask_version, MaskHash(c.mask), now_);
    auto without = coordinator_->Downlink({t.client_id, ""}, t.round, t.attempt, 77, 0, now_);
    ASSERT_TRUE(with_ref.ok() && without.ok());
    if (c.mask.Density() < 1.0) EXPECT_LT(with_ref->bytes.size(), without->bytes.size());
    absl::StatusOr<DecodedModel> down = DecodeModel(with_ref->bytes, global, &c.mask, c.mask_version);
    ASSERT_TRUE(down.ok()) << down.status();
    EXPECT_EQ(down->mask, c.mask);
  }
  std::filesystem::remove(checkpoint_);
}

TEST_F(CoordinatorTest, CorruptCheckpointIsRefused) {
  Make("fedavg");
  ASSERT_TRUE(WriteFileAtomically(checkpoint_, "not a checkpoint").ok());
  absl::Status s = coordinator_->Restore(checkpoint_, now_);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(checkpoint_), std::string::npos) << s;
  std::filesystem::remove(checkpoint_);
}

}  // namespace
}  // namespace lfl
