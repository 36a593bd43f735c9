#include "server/coordinator/round_coordinator.h"

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <thread>

#include <gtest/gtest.h>

#include "strategy/strategy.h"
#include "lottery/prune.h"
#include "common/file_io.h"
#include "server/coordinator/checkpoint.h"
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
  c.algorithm = *ParseMode<Algorithm>(algorithm);
  c.weighted = c.algorithm != Algorithm::kLotteryFl;  // lotteryfl's tests here expect the unweighted mean
  c.seed = 11;
  return c;
}

class CoordinatorTest : public ::testing::Test {
 protected:
  void Make(const std::string& algorithm, std::map<int64_t, std::string> tokens = {}) {
    CoordinatorOptions o;
    o.config = SmallConfig(algorithm);
    // The toy updates here move the model far more than training would; clipping has its own
    // tests (tests/security/poison_clip_test.cc), these test everything else unclipped.
    o.config.clip_multiplier = 0;
    o.defer_round_work = defer_;
    if (tweak_) tweak_(&o.config);
    o.tokens = std::move(tokens);
    std::unique_ptr<Strategy> strategy = *MakeStrategy(o.config);
    coordinator_ = std::make_unique<RoundCoordinator>(o, theta0_ ? *theta0_ : SmallModel(0.f, 0.f),
                                                      std::move(strategy), nullptr, checkpoint_, now_);
  }
  void JoinAll() {
    for (int64_t id = 0; id < 4; ++id) ASSERT_TRUE(coordinator_->Join({id, token(id)}, now_).ok());
  }
  std::string token(int64_t id) const { return tokens_ ? "t" + std::to_string(id) : ""; }
  // Every client joins and the first round opens: its tasks.
  std::vector<Task> OpenFirstRound() {
    JoinAll();
    coordinator_->Tick(now_);
    return OpenTasks();
  }
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
  bool defer_ = false;  // CoordinatorOptions::defer_round_work
  // Optional for Make: the round-0 model (default SmallModel(0, 0)) and config changes.
  std::optional<TensorSet> theta0_;
  std::function<void(RunConfig*)> tweak_;
  std::string checkpoint_ =
      (std::filesystem::temp_directory_path() / ("lfl_coord_" + std::to_string(::getpid()) + ".bin")).string();
  std::unique_ptr<RoundCoordinator> coordinator_;
};

TEST_F(CoordinatorTest, WaitsForAllClientsThenSamplesHalf) {
  Make("fedavg");
  ASSERT_TRUE(coordinator_->Join({0, ""}, now_).ok());
  coordinator_->Tick(now_);
  absl::StatusOr<PollResult> early = coordinator_->Poll({{0, ""}}, now_);
  ASSERT_TRUE(early.ok());
  EXPECT_TRUE(early->tasks.empty()) << "a round must not start before all clients joined";
  EXPECT_TRUE(absl::IsFailedPrecondition(coordinator_->Poll({{1, ""}}, now_).status()));
  std::vector<Task> tasks = OpenFirstRound();
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

// With deferred round work (the server), a client host told FINISHED exits; so the run is not
// over until the last round's row and checkpoint exist. Otherwise a server killed between the
// last aggregation and its checkpoint resumes into a round that no client is left to train.
TEST_F(CoordinatorTest, FinishedOnlyOnceTheLastRoundIsRecorded) {
  defer_ = true;
  Make("fedavg");
  JoinAll();
  std::vector<RoundEvent> last;
  for (uint64_t round = 1; round <= 3; ++round) {
    coordinator_->Tick(now_);
    for (const Task& t : OpenTasks()) ASSERT_TRUE(coordinator_->Submit(Report(t), Update(1.f, 1.f), now_).ok());
    last = coordinator_->Tick(now_);
    ASSERT_EQ(last.size(), 1u);
    ASSERT_NE(last[0].work, nullptr);
    if (round < 3) coordinator_->FinishRound(&last[0], nullptr);
  }
  std::vector<Credential> all;
  for (int64_t id = 0; id < 4; ++id) all.push_back({id, token(id)});
  EXPECT_FALSE(coordinator_->finished()) << "round 3 is aggregated but not yet checkpointed";
  absl::StatusOr<PollResult> poll = coordinator_->Poll(all, now_);
  ASSERT_TRUE(poll.ok());
  EXPECT_EQ(poll->state, PollResult::kWait);
  const uint64_t version = coordinator_->state_version();
  int rows = 0;
  coordinator_->FinishRound(&last[0], [&](const RoundEvent&) { ++rows; });
  EXPECT_EQ(rows, 1);
  EXPECT_NE(coordinator_->state_version(), version) << "parked polls must be woken";
  EXPECT_TRUE(coordinator_->finished());
  poll = coordinator_->Poll(all, now_);
  ASSERT_TRUE(poll.ok());
  EXPECT_EQ(poll->state, PollResult::kFinished);
}

// Updates are decoded and folded in outside the coordinator's lock, concurrently, into
// accumulator shards merged at the close: the model must be bit-identical to folding them in
// one at a time, and every update must count once.
TEST_F(CoordinatorTest, ConcurrentSubmissionsAggregateExactlyLikeSequentialOnes) {
  tweak_ = [](RunConfig* c) { c->fraction = 1.0; };
  auto run = [&](bool concurrent) {
    Make("fedavg");
    JoinAll();
    coordinator_->Tick(now_);
    std::vector<Task> tasks = OpenTasks();
    EXPECT_EQ(tasks.size(), 4u);
    std::vector<std::string> payloads;
    for (size_t i = 0; i < tasks.size(); ++i) {
      payloads.push_back(Update(0.1f * static_cast<float>(i + 1) + 1e-7f, -0.3f * static_cast<float>(i)));
    }
    std::vector<absl::StatusOr<bool>> results(tasks.size(), absl::UnknownError("not run"));
    if (concurrent) {
      std::vector<std::thread> threads;
      for (size_t i = 0; i < tasks.size(); ++i) {
        threads.emplace_back([&, i] {
          for (int tries = 0; tries < 100; ++tries) {  // Unavailable only for a client folding twice
            results[i] = coordinator_->Submit(Report(tasks[i], 10 + 7 * static_cast<int64_t>(i)), payloads[i], now_);
            if (!absl::IsUnavailable(results[i].status())) break;
          }
        });
      }
      for (std::thread& t : threads) t.join();
    } else {
      for (size_t i = tasks.size(); i-- > 0;) {
        results[i] = coordinator_->Submit(Report(tasks[i], 10 + 7 * static_cast<int64_t>(i)), payloads[i], now_);
      }
    }
    for (const absl::StatusOr<bool>& r : results) EXPECT_TRUE(r.ok() && !*r) << r.status();
    std::vector<RoundEvent> events = coordinator_->Tick(now_);
    EXPECT_EQ(events.size(), 1u);
    if (!events.empty()) EXPECT_EQ(events[0].metrics.completed, 4);
    return SerializeTensorSet(coordinator_->global_model());
  };
  const std::string sequential = run(false);
  for (int trial = 0; trial < 5; ++trial) EXPECT_EQ(run(true), sequential) << "trial " << trial;
}

TEST_F(CoordinatorTest, DuplicateIsIdempotentAndLateIsRefused) {
  Make("fedavg");
  std::vector<Task> tasks = OpenFirstRound();
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

TEST_F(CoordinatorTest, AnAbandonedTaskEndsAtOnceAndTheRoundClosesBeforeItsDeadline) {
  tokens_ = true;
  Make("fedavg", {{0, "t0"}, {1, "t1"}, {2, "t2"}, {3, "t3"}});
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 2u);
  const Task& a = tasks[0];
  const Task& b = tasks[1];
  ASSERT_TRUE(coordinator_->Submit(Report(a), Update(2.f, 2.f), now_).ok());
  // Only the client itself may give its task up, only the task it was handed, and not once its
  // update is in.
  EXPECT_TRUE(absl::IsUnauthenticated(coordinator_->Abandon({b.client_id, "wrong"}, b.round, b.attempt, "x", now_)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      coordinator_->Abandon({b.client_id, token(b.client_id)}, b.round + 1, b.attempt, "x", now_)));
  EXPECT_TRUE(absl::IsFailedPrecondition(
      coordinator_->Abandon({a.client_id, token(a.client_id)}, a.round, a.attempt, "x", now_)));
  int64_t unsampled = 0;
  while (unsampled == a.client_id || unsampled == b.client_id) ++unsampled;
  EXPECT_TRUE(absl::IsPermissionDenied(coordinator_->Abandon({unsampled, token(unsampled)}, a.round, a.attempt, "x", now_)));
  EXPECT_TRUE(coordinator_->Tick(now_ + 1).empty()) << "the round still waits for b";

  ASSERT_TRUE(coordinator_->Abandon({b.client_id, token(b.client_id)}, b.round, b.attempt, "not finite", now_ + 1).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      coordinator_->Abandon({b.client_id, token(b.client_id)}, b.round, b.attempt, "again", now_ + 1)));
  // The task is over: not handed out again, its late update refused before any payload.
  for (const Task& t : OpenTasks()) EXPECT_NE(t.client_id, b.client_id);
  EXPECT_TRUE(absl::IsFailedPrecondition(coordinator_->BeginUpload(Report(b), 100, now_ + 1)));
  // The round closes on the next tick, long before its deadline (now_ + 10), with a's update.
  std::vector<RoundEvent> events = coordinator_->Tick(now_ + 1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].retried);
  EXPECT_EQ(events[0].metrics.completed, 1);
  EXPECT_EQ(events[0].metrics.dropped, 1);
  EXPECT_EQ(events[0].metrics.abandoned, 1);
  EXPECT_FLOAT_EQ(coordinator_->global_model().tensors[0].values[0], 2.f);
}

TEST_F(CoordinatorTest, AnUploadThatBeganCannotBeAbandoned) {
  Make("fedavg");
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 2u);
  const std::string update = Update(1.f, 1.f);
  ASSERT_TRUE(coordinator_->BeginUpload(Report(tasks[0]), update.size(), now_).ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(
      coordinator_->Abandon({tasks[0].client_id, ""}, tasks[0].round, tasks[0].attempt, "x", now_)));
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[0]), update, now_).ok());
  coordinator_->EndUpload(tasks[0].client_id);
  std::vector<RoundEvent> events = coordinator_->Tick(now_ + 11);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metrics.completed, 1);
  EXPECT_EQ(events[0].metrics.abandoned, 0);
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
  std::vector<Task> tasks = OpenFirstRound();
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
  std::vector<Task> tasks = OpenFirstRound();
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
  std::vector<Ticket> clients = coordinator_->tickets();
  EXPECT_EQ(clients[pruned_client].mask_version, 1u);
  EXPECT_EQ(clients[pruned_client].mask, mask);

  // Restore into a fresh coordinator: same round, same tickets.
  const uint64_t round = coordinator_->current_round();
  Make("lotteryfl");
  ASSERT_TRUE(coordinator_->Restore(checkpoint_, now_).ok());
  EXPECT_EQ(coordinator_->current_round(), round);
  EXPECT_EQ(coordinator_->tickets()[pruned_client].mask, mask);
  EXPECT_EQ(SerializeTensorSet(coordinator_->global_model()), SerializeTensorSet(global));

  // A client holding the current mask gets a smaller downlink (mask by reference).
  JoinAll();
  coordinator_->Tick(now_);
  for (const Task& t : OpenTasks()) {
    const Ticket c = coordinator_->tickets()[t.client_id];
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

// θ0 for the derived-mask tests: the weight magnitudes are all distinct and not ordered by index.
TensorSet VariedModel() {
  TensorSet s = SmallModel(0.f, 0.1f);
  s.tensors[0].values = {0.9f, -0.05f, 0.6f, 0.3f,  -0.02f, 0.7f,  0.8f, -0.4f,
                         0.5f, 0.01f,  -0.65f, 0.35f, 0.45f, -0.55f, 0.75f, 0.85f};
  return s;
}

// An update of constant values on `mask` that references mask `version` instead of sending it
// (fp32, or uniformly quantized at `bits` <= 8 as a bsq run requires).
std::string ReferencingUpdate(float weight, float bias, const Mask& mask, uint32_t version, int bits = 32) {
  EncodeSpec spec;
  spec.weight_bits = bits;
  spec.other_bits = bits == 32 ? 32 : 8;  // as a quantized run encodes biases
  spec.mask = &mask;
  spec.send_mask = false;
  spec.mask_version = version;
  TensorSet values = SmallModel(weight, bias);
  mask.ApplyTo(&values);
  absl::StatusOr<std::string> bytes = EncodeModel(values, spec);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

// What the client does with a downlink: decode it against the mask it holds, prune by magnitude.
Mask ClientPrunes(const std::string& downlink, const TensorSet& layout, const Mask& held, uint32_t version,
                  const RunConfig& cfg) {
  absl::StatusOr<DecodedModel> seen = DecodeModel(downlink, layout, &held, version);
  EXPECT_TRUE(seen.ok()) << seen.status();
  if (!seen.ok()) return held;
  Mask pruned = seen->mask;
  absl::StatusOr<bool> changed =
      PruneByMagnitude(seen->values, PruneOptions{cfg.prune_rate, cfg.EffectiveTargetDensity()}, &pruned);
  EXPECT_TRUE(changed.ok() && *changed);
  return pruned;
}

// A BSQ-style update: fc.weight sent as exact levels at `bits`, the bias uniformly at 8 bits.
std::string ExactUpdate(int bits, float scale) {
  TensorSet values = SmallModel(0.f, 1.f);
  std::vector<std::optional<ExactLevels>> exact(values.size());
  ExactLevels e{bits, scale, std::vector<int32_t>(16)};
  const int top = (1 << bits) - 1;
  for (int i = 0; i < 16; ++i) {
    e.levels[i] = (i % (2 * top + 1)) - top;
    values.tensors[0].values[i] = codec::Dequantize(e.levels[i], bits, scale);
  }
  exact[0] = e;
  EncodeSpec spec;
  spec.exact = &exact;
  spec.weight_bits = 8;
  spec.other_bits = 8;
  std::vector<int> sent;
  absl::StatusOr<std::string> bytes = EncodeModel(values, spec, &sent);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(sent, std::vector<int>({bits}));
  return bytes.ok() ? *bytes : std::string();
}

TEST_F(CoordinatorTest, DerivedMaskIsThePrunedDownlinkAndTakesEffectWhenTheRoundCloses) {
  theta0_ = VariedModel();
  tweak_ = [](RunConfig* c) { c->fraction = 1.0; };  // every client in every round
  Make("lotteryfl");
  const RunConfig& cfg = coordinator_->config();
  ASSERT_DOUBLE_EQ(cfg.prune_rate, 0.2);
  ASSERT_DOUBLE_EQ(cfg.EffectiveTargetDensity(), 0.1);
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 4u);
  const Task a = tasks[1];
  const Mask full = Mask::Full(*theta0_);

  absl::StatusOr<DownlinkPayload> down =
      coordinator_->Downlink({a.client_id, ""}, a.round, a.attempt, 0, MaskHash(full), now_);
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(down->mask_version, 0u);
  const Mask expected = ClientPrunes(down->bytes, *theta0_, full, 0, cfg);
  // By hand: 16 kept, round(0.2 * 16) = 3 dropped, the smallest |w|: 0.01 (9), 0.02 (4), 0.05 (1).
  Mask by_hand = full;
  for (int64_t i : {1, 4, 9}) by_hand.Set(0, i, false);
  ASSERT_EQ(expected, by_hand);

  // Only v0 (held) and v1 (derived) are known; v2 is not.
  EXPECT_TRUE(absl::IsInvalidArgument(
      coordinator_->Submit(Report(a), ReferencingUpdate(2.f, 2.f, expected, 2), now_).status()));
  absl::StatusOr<bool> accepted = coordinator_->Submit(Report(a), ReferencingUpdate(2.f, 2.f, expected, 1), now_);
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  EXPECT_FALSE(*accepted) << "a new submission, not a duplicate";
  // Not in effect before the round closes.
  EXPECT_EQ(coordinator_->tickets()[a.client_id].mask_version, 0u);
  EXPECT_EQ(coordinator_->tickets()[a.client_id].mask, full);
  for (const Task& t : tasks) {
    if (t.client_id != a.client_id) ASSERT_TRUE(coordinator_->Submit(Report(t), Update(4.f, 4.f), now_).ok());
  }
  std::vector<RoundEvent> events = coordinator_->Tick(now_);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].retried);
  std::vector<Ticket> clients = coordinator_->tickets();
  EXPECT_EQ(clients[a.client_id].mask, expected);
  EXPECT_EQ(clients[a.client_id].mask_version, 1u);
  for (const Task& t : tasks) {
    if (t.client_id == a.client_id) continue;
    EXPECT_EQ(clients[t.client_id].mask_version, 0u);
    EXPECT_EQ(clients[t.client_id].mask, full);
  }
  // The update was aggregated under the derived mask: where it was pruned only the others count.
  TensorSet global = coordinator_->global_model();
  EXPECT_FLOAT_EQ(global.tensors[0].values[9], 4.f);
  EXPECT_FLOAT_EQ(global.tensors[0].values[0], 3.5f);  // (2 + 4 + 4 + 4) / 4

  // Round 2: the next derived mask starts from the client's current ticket (v1 -> v2); a client
  // that was served a derived mask but did not prune (dense update) keeps its ticket; an explicit
  // mask is still accepted.
  coordinator_->Tick(now_);
  tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 4u);
  ASSERT_EQ(tasks[0].round, 2u);
  down = coordinator_->Downlink({a.client_id, ""}, 2, 0, 1, MaskHash(expected), now_);
  ASSERT_TRUE(down.ok()) << down.status();
  EXPECT_EQ(down->mask_version, 1u);
  const Mask expected2 = ClientPrunes(down->bytes, global, expected, 1, cfg);
  EXPECT_EQ(expected2.Kept(0), 10);  // 13 - round(0.2 * 13)
  for (int64_t i : {1, 4, 9}) EXPECT_FALSE(expected2.Get(0, i));
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[1]), ReferencingUpdate(1.f, 1.f, expected2, 2), now_).ok());

  const Task keeps = tasks[0];
  ASSERT_TRUE(coordinator_->Downlink({keeps.client_id, ""}, 2, 0, 0, MaskHash(full), now_).ok());
  ASSERT_TRUE(coordinator_->Submit(Report(keeps), ReferencingUpdate(1.f, 1.f, full, 0), now_).ok());

  const Task explicit_sender = tasks[2];
  ASSERT_TRUE(coordinator_->Downlink({explicit_sender.client_id, ""}, 2, 0, 0, MaskHash(full), now_).ok());
  Mask row_pruned = full;
  for (int64_t i = 0; i < 4; ++i) row_pruned.Set(0, i, false);
  ASSERT_TRUE(coordinator_->Submit(Report(explicit_sender), Update(1.f, 1.f, &row_pruned, true), now_).ok());

  events = coordinator_->Tick(now_ + 11);  // client tasks[3] never answers
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metrics.completed, 3);
  clients = coordinator_->tickets();
  EXPECT_EQ(clients[a.client_id].mask, expected2);
  EXPECT_EQ(clients[a.client_id].mask_version, 2u);
  EXPECT_EQ(clients[keeps.client_id].mask, full);
  EXPECT_EQ(clients[keeps.client_id].mask_version, 0u);
  EXPECT_EQ(clients[explicit_sender.client_id].mask, row_pruned);
  EXPECT_EQ(clients[explicit_sender.client_id].mask_version, 1u);
  std::filesystem::remove(checkpoint_);
}

TEST_F(CoordinatorTest, DerivedMaskPrunesTheQuantizedDownlinkNotTheFp32Model) {
  // With --quant bsq the downlink is quantized (8 bits here): |w| 0.2001 (index 3) and 0.2
  // (index 9) fall on the same level, so the client, which only sees levels, breaks the tie by
  // index and drops 3, while pruning the fp32 model would drop 9.
  TensorSet theta0 = SmallModel(0.f, 0.1f);
  theta0.tensors[0].values = {1.0f, 0.9f, -0.8f, 0.2001f, 0.7f, 0.01f, -0.6f, 0.5f,
                              0.45f, -0.2f, 0.4f, 0.35f, 0.02f, 0.3f, -0.95f, 0.85f};
  theta0_ = theta0;
  tweak_ = [](RunConfig* c) {
    c->quant = QuantMode::kBsq;
    c->downlink_bits = 8;
  };
  Make("lotteryfl");
  const RunConfig& cfg = coordinator_->config();
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_FALSE(tasks.empty());
  const Task a = tasks[0];
  const Mask full = Mask::Full(theta0);
  absl::StatusOr<DownlinkPayload> down =
      coordinator_->Downlink({a.client_id, ""}, a.round, a.attempt, 0, MaskHash(full), now_);
  ASSERT_TRUE(down.ok()) << down.status();
  const Mask expected = ClientPrunes(down->bytes, theta0, full, 0, cfg);
  Mask from_fp32 = full;
  ASSERT_TRUE(*PruneByMagnitude(theta0, PruneOptions{cfg.prune_rate, cfg.EffectiveTargetDensity()}, &from_fp32));
  ASSERT_NE(expected, from_fp32) << "the test needs the quantized tie";
  EXPECT_FALSE(expected.Get(0, 3));
  EXPECT_TRUE(expected.Get(0, 9));

  ASSERT_TRUE(coordinator_->Submit(Report(a), ReferencingUpdate(2.f, 2.f, expected, 1, 8), now_).ok());
  coordinator_->Tick(now_ + 11);
  EXPECT_EQ(coordinator_->tickets()[a.client_id].mask, expected);
  EXPECT_EQ(coordinator_->tickets()[a.client_id].mask_version, 1u);
  std::filesystem::remove(checkpoint_);
}

TEST_F(CoordinatorTest, DerivedMaskExistsOnlyAfterADownlinkOfThisRoundAndAttempt) {
  theta0_ = VariedModel();
  tweak_ = [](RunConfig* c) { c->fraction = 1.0; };
  Make("lotteryfl");
  const RunConfig& cfg = coordinator_->config();
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 4u);
  const Task a = tasks[0], b = tasks[1];
  const Mask full = Mask::Full(*theta0_);
  // Round 1 serves θ0 in fp32, so the client's pruned mask is the one of θ0.
  Mask pruned = full;
  ASSERT_TRUE(*PruneByMagnitude(*theta0_, PruneOptions{cfg.prune_rate, cfg.EffectiveTargetDensity()}, &pruned));
  const std::string update = ReferencingUpdate(2.f, 2.f, pruned, 1);

  auto expect_untouched = [&](const Task& who, uint32_t attempt) {
    std::vector<Ticket> clients = coordinator_->tickets();
    EXPECT_EQ(clients[who.client_id].mask, full);
    EXPECT_EQ(clients[who.client_id].mask_version, 0u);
    // The refusal ended the task of this attempt: it is not handed out again, and an upload is
    // refused at its header with the cause.
    absl::StatusOr<PollResult> poll = coordinator_->Poll({{who.client_id, ""}}, now_);
    ASSERT_TRUE(poll.ok());
    EXPECT_EQ(poll->tasks.size(), 0u);
    UpdateReport header = Report(who);
    header.attempt = attempt;
    absl::Status begin = coordinator_->BeginUpload(header, 100, now_);
    EXPECT_TRUE(absl::IsFailedPrecondition(begin)) << begin;
    EXPECT_NE(begin.message().find("refused (decode)"), std::string::npos) << begin;
  };

  // No downlink served: v1 is unknown.
  absl::Status s = coordinator_->Submit(Report(a), update, now_).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  expect_untouched(a, 0);
  // A downlink served to another client does not help.
  ASSERT_TRUE(coordinator_->Downlink({b.client_id, ""}, b.round, b.attempt, 0, MaskHash(full), now_).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(coordinator_->Submit(Report(a), update, now_).status()));
  expect_untouched(a, 0);
  // The ended task is not served either.
  EXPECT_TRUE(absl::IsFailedPrecondition(
      coordinator_->Downlink({a.client_id, ""}, a.round, a.attempt, 0, MaskHash(full), now_).status()));

  // b's downlink of attempt 0 does not carry over to the retried attempt 1.
  std::vector<RoundEvent> events = coordinator_->Tick(now_ + 11);
  ASSERT_EQ(events.size(), 1u);
  ASSERT_TRUE(events[0].retried);
  now_ += 11;
  coordinator_->Tick(now_);
  tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 4u);
  ASSERT_EQ(tasks[0].attempt, 1u);
  UpdateReport b_retry = Report(b);
  b_retry.attempt = 1;
  s = coordinator_->Submit(b_retry, update, now_).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  expect_untouched(b, 1);
  UpdateReport retry = Report(a);
  retry.attempt = 1;

  // Served in attempt 1, the same update is accepted and the ticket becomes v1 at the close.
  ASSERT_TRUE(coordinator_->Downlink({a.client_id, ""}, 1, 1, 0, MaskHash(full), now_).ok());
  absl::StatusOr<bool> ok = coordinator_->Submit(retry, update, now_);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_FALSE(*ok);
  events = coordinator_->Tick(now_ + 11);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_FALSE(events[0].retried);
  EXPECT_EQ(events[0].metrics.completed, 1);
  EXPECT_EQ(coordinator_->tickets()[a.client_id].mask, pruned);
  EXPECT_EQ(coordinator_->tickets()[a.client_id].mask_version, 1u);
  std::filesystem::remove(checkpoint_);
}

TEST_F(CoordinatorTest, NoDerivedMaskWhenPruningWouldChangeNothing) {
  theta0_ = VariedModel();
  tweak_ = [](RunConfig* c) {
    c->fraction = 1.0;
    c->target_density = 1.0;  // every ticket is already at the target
  };
  Make("lotteryfl");
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 4u);
  const Mask full = Mask::Full(*theta0_);
  ASSERT_TRUE(coordinator_->Downlink({tasks[0].client_id, ""}, 1, 0, 0, MaskHash(full), now_).ok());
  Mask pruned = full;
  pruned.Set(0, 9, false);
  EXPECT_TRUE(absl::IsInvalidArgument(
      coordinator_->Submit(Report(tasks[0]), ReferencingUpdate(2.f, 2.f, pruned, 1), now_).status()));
  EXPECT_EQ(coordinator_->tickets()[tasks[0].client_id].mask_version, 0u);
}

TEST_F(CoordinatorTest, BsqLayerBitsComeFromTheAcceptedUpdateAndGoBackWithTheDownlink) {
  tweak_ = [](RunConfig* c) {
    c->fraction = 1.0;
    c->quant = QuantMode::kBsq;
  };
  Make("lotteryfl");
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 4u);
  const Mask full = Mask::Full(SmallModel(0, 0));
  for (const Task& t : tasks) {
    absl::StatusOr<DownlinkPayload> down =
        coordinator_->Downlink({t.client_id, ""}, t.round, t.attempt, 0, MaskHash(full), now_);
    ASSERT_TRUE(down.ok()) << down.status();
    EXPECT_TRUE(down->layer_bits.empty()) << "no precision before the first BSQ update";
    // Client k sends fc.weight at 2 + k bits.
    ASSERT_TRUE(coordinator_->Submit(Report(t), ExactUpdate(2 + static_cast<int>(t.client_id), 0.5f), now_).ok());
    EXPECT_TRUE(coordinator_->tickets()[t.client_id].layer_bits.empty()) << "bits take effect at the close";
  }
  std::vector<RoundEvent> events = coordinator_->Tick(now_);
  ASSERT_EQ(events.size(), 1u);
  std::vector<Ticket> clients = coordinator_->tickets();
  for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(clients[k].layer_bits, std::vector<int>({2 + static_cast<int>(k)})) << k;

  // Round 2: the downlink carries each client's bits. Client 0 answers at 8 bits (uniform),
  // client 1 at 1 bit; clients 2 and 3 do not answer and keep their bits.
  coordinator_->Tick(now_);
  tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 4u);
  ASSERT_EQ(tasks[0].round, 2u);
  for (const Task& t : tasks) {
    absl::StatusOr<DownlinkPayload> down =
        coordinator_->Downlink({t.client_id, ""}, t.round, t.attempt, 0, MaskHash(full), now_);
    ASSERT_TRUE(down.ok()) << down.status();
    EXPECT_EQ(down->layer_bits, std::vector<int>({2 + static_cast<int>(t.client_id)})) << t.client_id;
  }
  EncodeSpec uniform8;
  uniform8.weight_bits = 8;
  uniform8.other_bits = 8;
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[0]), *EncodeModel(SmallModel(1.f, 1.f), uniform8), now_).ok());
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[1]), ExactUpdate(1, 0.25f), now_).ok());
  events = coordinator_->Tick(now_ + 11);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].metrics.completed, 2);
  clients = coordinator_->tickets();
  EXPECT_EQ(clients[0].layer_bits, std::vector<int>({8}));
  EXPECT_EQ(clients[1].layer_bits, std::vector<int>({1}));
  EXPECT_EQ(clients[2].layer_bits, std::vector<int>({4}));
  EXPECT_EQ(clients[3].layer_bits, std::vector<int>({5}));

  // The checkpoint written at the close carries the bits into a restarted server.
  now_ += 11;
  Make("lotteryfl");
  for (const Ticket& c : coordinator_->tickets()) EXPECT_TRUE(c.layer_bits.empty());
  ASSERT_TRUE(coordinator_->Restore(checkpoint_, now_).ok());
  std::vector<Ticket> restored = coordinator_->tickets();
  for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(restored[k].layer_bits, clients[k].layer_bits) << k;
  JoinAll();
  coordinator_->Tick(now_);
  tasks = OpenTasks();
  ASSERT_EQ(tasks.size(), 4u);
  EXPECT_EQ(tasks[0].round, 3u);
  for (const Task& t : tasks) {
    absl::StatusOr<DownlinkPayload> down =
        coordinator_->Downlink({t.client_id, ""}, t.round, t.attempt, 0, MaskHash(full), now_);
    ASSERT_TRUE(down.ok()) << down.status();
    EXPECT_EQ(down->layer_bits, clients[t.client_id].layer_bits) << t.client_id;
  }
  std::filesystem::remove(checkpoint_);
}

TEST_F(CoordinatorTest, BsqRunRefusesAnUnquantizedUpdateAndKeepsItsState) {
  tweak_ = [](RunConfig* c) {
    c->fraction = 1.0;
    c->quant = QuantMode::kBsq;
  };
  Make("lotteryfl");
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 4u);
  const absl::StatusOr<bool> fp32 = coordinator_->Submit(Report(tasks[0]), Update(1.f, 1.f), now_);
  ASSERT_FALSE(fp32.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(fp32.status())) << fp32.status();
  EXPECT_NE(fp32.status().message().find("refused (quant_mode)"), std::string::npos) << fp32.status();
  // The refusal ended the client's task: its next upload is refused at the header.
  EXPECT_TRUE(absl::IsFailedPrecondition(coordinator_->BeginUpload(Report(tasks[0]), 100, now_)));
  // (Submit itself, which only follows an admitted header, still takes a proper update; only
  // that one counts.)
  ASSERT_TRUE(coordinator_->Submit(Report(tasks[0]), ExactUpdate(3, 0.5f), now_).ok());
  for (size_t i = 1; i < tasks.size(); ++i) {
    ASSERT_TRUE(coordinator_->Submit(Report(tasks[i]), ExactUpdate(3, 0.5f), now_).ok());
  }
  ASSERT_EQ(coordinator_->Tick(now_).size(), 1u);
  EXPECT_EQ(coordinator_->tickets()[tasks[0].client_id].layer_bits, (std::vector<int>{3}));
  ASSERT_TRUE(coordinator_->CheckpointNow().ok());
}

TEST_F(CoordinatorTest, LayerBitsStayEmptyWithoutBsq) {
  for (const std::string quant : {"none", "uniform4"}) {
    SCOPED_TRACE(quant);
    tweak_ = [quant](RunConfig* c) {
      c->fraction = 1.0;
      c->quant = *ParseQuantMode(quant);
    };
    Make("lotteryfl");
    JoinAll();
    coordinator_->Tick(now_);
    std::vector<Task> tasks = OpenTasks();
    ASSERT_EQ(tasks.size(), 4u);
    // Encoded as this run's clients encode (weights fp32 or at 4 bits, biases fp32 or at 8).
    EncodeSpec spec;
    if (*ParseQuantMode(quant) == QuantMode::kUniform4) {
      spec.weight_bits = 4;
      spec.other_bits = 8;
    }
    absl::StatusOr<std::string> update = EncodeModel(SmallModel(0.5f, 1.f), spec);
    ASSERT_TRUE(update.ok());
    for (const Task& t : tasks) ASSERT_TRUE(coordinator_->Submit(Report(t), *update, now_).ok());
    ASSERT_EQ(coordinator_->Tick(now_).size(), 1u);
    for (const Ticket& c : coordinator_->tickets()) EXPECT_TRUE(c.layer_bits.empty());
    coordinator_->Tick(now_);
    tasks = OpenTasks();
    ASSERT_EQ(tasks.size(), 4u);
    const Mask full = Mask::Full(SmallModel(0, 0));
    for (const Task& t : tasks) {
      absl::StatusOr<DownlinkPayload> down =
          coordinator_->Downlink({t.client_id, ""}, t.round, t.attempt, 0, MaskHash(full), now_);
      ASSERT_TRUE(down.ok()) << down.status();
      EXPECT_TRUE(down->layer_bits.empty());
    }
    // Nor does the checkpoint invent any.
    absl::StatusOr<Checkpoint> cp = ReadCheckpointFile(checkpoint_);
    ASSERT_TRUE(cp.ok()) << cp.status();
    for (const Ticket& c : cp->clients) EXPECT_TRUE(c.layer_bits.empty());
    std::filesystem::remove(checkpoint_);
  }
}

TEST_F(CoordinatorTest, RestoreTakesLayerBitsFromTheCheckpoint) {
  tweak_ = [](RunConfig* c) {
    c->fraction = 1.0;
    c->quant = QuantMode::kBsq;
  };
  Make("lotteryfl");
  Checkpoint cp;
  cp.next_round = 2;
  cp.seed = coordinator_->config().seed;
  cp.global = SmallModel(0.5f, 0.25f);
  const std::vector<std::vector<int>> bits = {{3}, {}, {8}, {0}};
  for (int64_t k = 0; k < 4; ++k) {
    Ticket c;
    c.mask = Mask::Full(cp.global);
    c.layer_bits = bits[k];
    cp.clients.push_back(c);
  }
  ASSERT_TRUE(WriteCheckpointFile(cp, checkpoint_).ok());
  ASSERT_TRUE(coordinator_->Restore(checkpoint_, now_).ok());
  std::vector<Ticket> clients = coordinator_->tickets();
  for (int64_t k = 0; k < 4; ++k) EXPECT_EQ(clients[k].layer_bits, bits[k]) << k;
  std::vector<Task> tasks = OpenFirstRound();
  ASSERT_EQ(tasks.size(), 4u);
  EXPECT_EQ(tasks[0].round, 2u);
  for (const Task& t : tasks) {
    absl::StatusOr<DownlinkPayload> down =
        coordinator_->Downlink({t.client_id, ""}, t.round, t.attempt, 0, MaskHash(cp.clients[0].mask), now_);
    ASSERT_TRUE(down.ok()) << down.status();
    EXPECT_EQ(down->layer_bits, bits[t.client_id]) << t.client_id;
  }
  std::filesystem::remove(checkpoint_);
}

}  // namespace
}  // namespace lfl
