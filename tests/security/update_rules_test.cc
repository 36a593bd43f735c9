// Issue 18 through RoundCoordinator, as a client holding a valid token would attack it: ticket
// bypass with "every element kept" records, unquantized uploads in quantized runs, refusal
// loops, re-fetch floods, lying timings, and joins with one stolen token. Each test asserts
// what the honest clients still get.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>

#include "strategy/strategy.h"
#include "server/coordinator/round_coordinator.h"
#include "tests/fl/fl_testing.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

TensorSet Model(float weight, float bias) { return testing::FcModel(weight, bias); }

class UpdateRules : public ::testing::Test {
 protected:
  void Make(const std::string& algorithm, const std::string& quant = "none") {
    CoordinatorOptions o;
    o.config.clients = 4;
    o.config.fraction = 1.0;
    o.config.rounds = 3;
    o.config.round_timeout = 10;
    o.config.algorithm = *ParseMode<Algorithm>(algorithm);
    o.config.quant = *ParseQuantMode(quant);
    o.config.target_density = 0.5;
    o.config.max_refetches = 3;
    o.config.clip_multiplier = 0;  // the toy updates move far; clipping is poison_clip_test's
    o.train_counts = {10, 10, 10, 10};
    o.test_counts = {5, 5, 5, 5};
    o.refusals = refusals_;
    std::unique_ptr<Strategy> strategy = *MakeStrategy(o.config);
    c_ = std::make_unique<RoundCoordinator>(o, Model(0.f, 0.f), std::move(strategy), nullptr, "",
                                            now_);
    for (int64_t id = 0; id < 4; ++id) ASSERT_TRUE(c_->Join({id, ""}, now_).ok());
    c_->Tick(now_);
  }
  UpdateReport Report(int64_t id, uint64_t round = 1) const {
    UpdateReport r;
    r.client_id = id;
    r.round = round;
    r.test_count = 5;
    return r;
  }
  static std::string Encode(const TensorSet& values, const Mask* mask = nullptr,
                            bool send_mask = true, int weight_bits = 32, int other_bits = 32) {
    EncodeSpec spec;
    spec.mask = mask;
    spec.send_mask = send_mask;
    spec.weight_bits = weight_bits;
    spec.other_bits = other_bits;
    absl::StatusOr<std::string> bytes = EncodeModel(values, spec);
    EXPECT_TRUE(bytes.ok()) << bytes.status();
    return bytes.ok() ? *bytes : "";
  }
  // Closes the open round and returns its row.
  RoundMetrics Close(double at) {
    RoundMetrics row;
    std::vector<RoundEvent> events = c_->Tick(at, [&row](const RoundEvent& e) { row = e.metrics; });
    EXPECT_EQ(events.size(), 1u);
    return row;
  }
  std::vector<int64_t> TaskIds() {
    std::vector<Credential> all;
    for (int64_t id = 0; id < 4; ++id) all.push_back({id, ""});
    absl::StatusOr<PollResult> poll = c_->Poll(all, now_);
    EXPECT_TRUE(poll.ok());
    std::vector<int64_t> ids;
    for (const Task& t : poll->tasks) ids.push_back(t.client_id);
    return ids;
  }
  // Round 1 of a lotteryfl run in which client 0 prunes half of fc.weight (explicit mask).
  Mask PruneClient0() {
    Mask half = Mask::Full(Model(0, 0));
    for (int64_t i = 0; i < 16; i += 2) half.Set(0, i, false);
    TensorSet w = Model(1.f, 1.f);
    half.ApplyTo(&w);
    EXPECT_TRUE(c_->Submit(Report(0), Encode(w, &half, true), now_).ok());
    for (int64_t id = 1; id < 4; ++id)
      EXPECT_TRUE(c_->Submit(Report(id), Encode(Model(1.f, 1.f)), now_).ok());
    Close(now_);
    EXPECT_EQ(c_->tickets()[0].mask, half);
    c_->Tick(now_);
    return half;
  }

  double now_ = 20;
  std::shared_ptr<RefusalCounters> refusals_ = std::make_shared<RefusalCounters>();
  std::unique_ptr<RoundCoordinator> c_;
};

TEST_F(UpdateRules, KindZeroRecordsCannotLeaveTheTicket) {
  Make("lotteryfl");
  const Mask half = PruneClient0();
  const TensorSet before = c_->global_model();
  // Round 2: client 0 sends every fc.weight element as "kept" (mask kind 0) with value 50.
  const absl::Status s = c_->Submit(Report(0, 2), Encode(Model(50.f, 1.f)), now_).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("refused (mask_outside_ticket)"), std::string::npos) << s;
  // Honest clients are folded as usual; the pruned elements are theirs alone.
  for (int64_t id = 1; id < 4; ++id)
    ASSERT_TRUE(c_->Submit(Report(id, 2), Encode(Model(2.f, 2.f)), now_).ok());
  const RoundMetrics row = Close(now_);
  EXPECT_EQ(row.completed, 3);
  EXPECT_EQ(row.refused, 1);
  EXPECT_EQ(row.refusals.at("mask_outside_ticket"), 1u);
  const TensorSet after = c_->global_model();
  for (int i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(after.tensors[0].values[i], 2.f) << i;
  EXPECT_EQ(c_->tickets()[0].mask, half) << "the ticket is unchanged";
  EXPECT_NE(SerializeTensorSet(before), SerializeTensorSet(after));
}

TEST_F(UpdateRules, KindZeroIsFineWhereTheTicketIsFull) {
  Make("lotteryfl");
  PruneClient0();
  // Client 1's ticket is still full: its records may omit the mask.
  EXPECT_TRUE(c_->Submit(Report(1, 2), Encode(Model(2.f, 2.f)), now_).ok());
}

TEST_F(UpdateRules, EveryQuantModeIsEnforced) {
  struct Case {
    std::string quant;
    int weight_bits, other_bits;
    bool accepted;
  };
  const std::vector<Case> cases = {
      {"uniform8", 32, 32, false}, {"uniform8", 8, 32, false}, {"uniform8", 8, 8, true},
      {"uniform4", 8, 8, false},   {"uniform4", 4, 8, true},   {"uniform2", 4, 8, false},
      {"uniform2", 2, 8, true},    {"none", 8, 8, false},      {"none", 32, 32, true},
      {"bsq", 32, 8, false},       {"bsq", 5, 8, true},        {"bsq", 8, 32, false},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.quant + " " + std::to_string(k.weight_bits) + "/" +
                 std::to_string(k.other_bits));
    Make("lotteryfl", k.quant);
    const absl::StatusOr<bool> r = c_->Submit(
        Report(0), Encode(Model(0.5f, 0.5f), nullptr, true, k.weight_bits, k.other_bits), now_);
    EXPECT_EQ(r.ok(), k.accepted) << r.status();
    if (!k.accepted)
      EXPECT_NE(r.status().message().find("(quant_mode)"), std::string::npos) << r.status();
    // An honest client of the same run is taken either way.
    const QuantMode mode = *ParseQuantMode(k.quant);
    const int honest_weights = mode == QuantMode::kNone  ? 32
                               : mode == QuantMode::kBsq ? 6
                                                         : UniformBits(mode);
    const int honest_others = mode == QuantMode::kNone ? 32 : 8;
    EXPECT_TRUE(c_->Submit(Report(1),
                           Encode(Model(0.5f, 0.5f), nullptr, true, honest_weights, honest_others),
                           now_)
                    .ok());
  }
}

TEST_F(UpdateRules, ARefusedUpdateEndsTheTaskAndTheRoundGoesOn) {
  Make("fedavg");
  TensorSet nan = Model(1.f, 1.f);
  UpdateReport liar = Report(2);
  liar.local_accuracy = 7;  // out of [0, 1]
  const absl::Status s = c_->Submit(liar, Encode(nan), now_).status();
  ASSERT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find("refused (report)"), std::string::npos) << s;
  // The task is over: not handed out again, not served, not uploaded again; the cause is told.
  EXPECT_EQ(TaskIds(), (std::vector<int64_t>{0, 1, 3}));
  const absl::Status fetch = c_->Downlink({2, ""}, 1, 0, 0, 0, now_).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(fetch)) << fetch;
  EXPECT_NE(fetch.message().find("refused (report)"), std::string::npos) << fetch;
  EXPECT_TRUE(absl::IsFailedPrecondition(c_->BeginUpload(Report(2), 100, now_)));
  // The honest three complete the round at once: it does not wait for the deadline.
  for (int64_t id : {0, 1, 3})
    ASSERT_TRUE(c_->Submit(Report(id), Encode(Model(2.f, 2.f)), now_).ok());
  const RoundMetrics row = Close(now_ + 0.5);
  EXPECT_EQ(row.completed, 3);
  EXPECT_LT(row.wall_seconds, 1.0);
  EXPECT_EQ(row.refusals.at("report"), 1u);
  EXPECT_GE(row.refusals.at("task_ended"), 2u);
  EXPECT_FLOAT_EQ(c_->global_model().tensors[0].values[0], 2.f);
  // Next round, the client has a task again.
  c_->Tick(now_ + 1);
  EXPECT_EQ(TaskIds(), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST_F(UpdateRules, RefetchesAreCountedApartAndBounded) {
  Make("fedavg");
  absl::StatusOr<DownlinkPayload> first = c_->Downlink({0, ""}, 1, 0, 0, 0, now_);
  ASSERT_TRUE(first.ok());
  int refused = 0;
  for (int i = 0; i < 300; ++i) {
    absl::Status s = c_->Downlink({1, ""}, 1, 0, 0, 0, now_).status();
    if (!s.ok()) {
      EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
      ++refused;
    }
  }
  EXPECT_EQ(refused, 300 - 4) << "one download and 3 re-fetches are served";
  for (int64_t id : {2, 3}) ASSERT_TRUE(c_->Downlink({id, ""}, 1, 0, 0, 0, now_).ok());
  for (int64_t id = 0; id < 4; ++id)
    ASSERT_TRUE(c_->Submit(Report(id), Encode(Model(1.f, 1.f)), now_).ok());
  const RoundMetrics row = Close(now_);
  // downlink_bytes is what the undisturbed round costs: one download per task.
  EXPECT_EQ(row.downlink_bytes, 4 * first->bytes.size());
  EXPECT_EQ(row.refetches, 3);
  EXPECT_EQ(row.refetch_bytes, 3 * first->bytes.size());
  EXPECT_EQ(row.refusals.at("refetch_limit"), 296u);
}

TEST_F(UpdateRules, ClientTimingsAreRangeCheckedAndTheServerMeasuresTheUpload) {
  Make("fedavg");
  UpdateReport r = Report(0);
  r.train_seconds = std::numeric_limits<double>::quiet_NaN();
  r.network_seconds = -2.5e307;
  r.encode_seconds = 0.25;
  ASSERT_TRUE(c_->BeginUpload(r, 100, now_).ok());
  ASSERT_TRUE(c_->Submit(r, Encode(Model(1.f, 1.f)), now_ + 3).ok());
  c_->EndUpload(0);
  UpdateReport slow = Report(1);
  slow.train_seconds = 1e9;  // beyond the 10 s round timeout
  ASSERT_TRUE(c_->BeginUpload(slow, 100, now_).ok());
  ASSERT_TRUE(c_->Submit(slow, Encode(Model(1.f, 1.f)), now_ + 1).ok());
  c_->EndUpload(1);
  const RoundMetrics row = Close(now_ + 11);
  EXPECT_EQ(row.completed, 2);
  EXPECT_EQ(row.timings_zeroed, 3);
  EXPECT_EQ(row.refusals.at("timing"), 3u);
  EXPECT_DOUBLE_EQ(row.train_seconds, 0);
  EXPECT_DOUBLE_EQ(row.network_seconds, 0);
  EXPECT_DOUBLE_EQ(row.encode_seconds, 0.125);
  EXPECT_DOUBLE_EQ(row.server_network_seconds, 2.0)
      << "(3 + 1) / 2, from the header to the last chunk";
}

TEST_F(UpdateRules, AJoinWithOneStolenTokenDoesNotCutOffTheHost) {
  Make("fedavg");
  absl::StatusOr<HostJoin> host = c_->JoinHost({{0, ""}, {1, ""}, {2, ""}}, now_);
  ASSERT_TRUE(host.ok());
  absl::StatusOr<HostJoin> thief = c_->JoinHost({{2, ""}}, now_);
  ASSERT_TRUE(thief.ok());
  absl::StatusOr<PollResult> poll = c_->PollSession(host->session, "", now_);
  ASSERT_TRUE(poll.ok()) << poll.status();
  std::vector<int64_t> ids;
  for (const Task& t : poll->tasks) ids.push_back(t.client_id);
  EXPECT_EQ(ids, (std::vector<int64_t>{0, 1})) << "the host keeps its other clients";
}

TEST_F(UpdateRules, UnderMutualTlsASessionAnswersOnlyItsCertificate) {
  Make("fedavg");
  absl::StatusOr<HostJoin> host =
      c_->JoinHost({{0, "", "host-a"}, {1, "", "host-a"}}, now_);
  ASSERT_TRUE(host.ok());
  const absl::Status stolen = c_->PollSession(host->session, "host-b", now_).status();
  EXPECT_TRUE(absl::IsUnauthenticated(stolen)) << stolen;
  EXPECT_TRUE(absl::IsUnauthenticated(c_->HeartbeatSession(host->session, "", now_)));
  EXPECT_GE(refusals_->Snapshot().at("bad_session"), 2u);
  EXPECT_TRUE(c_->PollSession(host->session, "host-a", now_).ok());
}

}  // namespace
}  // namespace lfl
