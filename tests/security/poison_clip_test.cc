// Poisoning through the coordinator: one of four clients adds 990 to an output bias every
// round (the issue-18 attack, below the fixed --max-update-norm of 1000). Each test runs the
// same federation twice — once with the attacker, once with that client returning the model
// unchanged — and asserts what the honest clients get: their updates are never clipped, the
// run completes, and the global model stays within the attacker's clipped share of the
// undisturbed one.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>

#include "fl/clipping.h"
#include "strategy/strategy.h"
#include "server/coordinator/round_coordinator.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

constexpr int64_t kClients = 4;
constexpr int64_t kAttacker = 3;
constexpr int kRounds = 5;

TensorSet Theta0() {
  TensorSet s;
  s.tensors.push_back({"fc.weight", {4, 4}, std::vector<float>(16, 0.f), true});
  s.tensors.push_back({"fc.bias", {4}, std::vector<float>(4, 0.f), false});
  for (int i = 0; i < 16; ++i) s.tensors[0].values[i] = 0.5f * static_cast<float>(i % 7) - 1.5f;
  for (int i = 0; i < 4; ++i) s.tensors[1].values[i] = 0.01f * static_cast<float>(i);
  return s;
}

enum class Client3 { kUnchanged, kPoison };

struct FederatedRun {
  std::vector<RoundMetrics> rows;
  TensorSet model;
  uint64_t rounds_completed = 0;
};

// The honest "training" step of client k: a fixed small move, different per client and round.
TensorSet HonestUpdate(const TensorSet& served, int64_t k, uint64_t round) {
  TensorSet w = served;
  for (size_t i = 0; i < w.tensors[0].values.size(); ++i) {
    w.tensors[0].values[i] += 0.02f * static_cast<float>((k + 1) * ((i + round) % 3)) - 0.02f;
  }
  w.tensors[1].values[static_cast<size_t>(k)] += 0.03f;
  return w;
}

FederatedRun Federate(Client3 mode, RunConfig tweak = RunConfig()) {
  CoordinatorOptions o;
  o.config = tweak;
  o.config.clients = kClients;
  o.config.fraction = 1.0;
  o.config.rounds = kRounds;
  o.config.round_timeout = 10;
  o.config.algorithm = Algorithm::kFedAvg;
  o.train_counts = {10, 10, 10, 10};
  o.test_counts = {5, 5, 5, 5};
  o.max_update_norm = 1000;  // the fixed bound: 990 passes it
  double now = 10;
  RoundCoordinator c(o, Theta0(), *MakeStrategy(o.config), nullptr, "", now);
  for (int64_t id = 0; id < kClients; ++id) EXPECT_TRUE(c.Join({id, ""}, now).ok());
  FederatedRun run;
  auto record = [&run](const RoundEvent& e) {
    if (!e.retried) run.rows.push_back(e.metrics);
  };
  for (int r = 1; r <= kRounds; ++r) {
    c.Tick(now, record);
    const TensorSet served = c.global_model();
    for (int64_t id = 0; id < kClients; ++id) {
      TensorSet w = HonestUpdate(served, id, static_cast<uint64_t>(r));
      if (id == kAttacker) {
        w = served;
        if (mode == Client3::kPoison) w.tensors[1].values[0] += 990.f;
      }
      UpdateReport report;
      report.client_id = id;
      report.round = static_cast<uint64_t>(r);
      report.test_count = 5;
      absl::StatusOr<std::string> bytes = EncodeModel(w, EncodeSpec{});
      EXPECT_TRUE(bytes.ok());
      absl::StatusOr<bool> accepted = c.Submit(report, *bytes, now);
      EXPECT_TRUE(accepted.ok()) << "round " << r << " client " << id << ": " << accepted.status();
    }
    c.Tick(now, record);
    now += 1;
  }
  run.model = c.global_model();
  run.rounds_completed = c.totals().rounds_completed;
  return run;
}

TEST(PoisonClip, ABiasPlus990IsClippedAndHonestUpdatesAreNot) {
  const FederatedRun clean = Federate(Client3::kUnchanged);
  const FederatedRun poisoned = Federate(Client3::kPoison);
  ASSERT_EQ(clean.rounds_completed, static_cast<uint64_t>(kRounds));
  ASSERT_EQ(poisoned.rounds_completed, static_cast<uint64_t>(kRounds)) << "the run completes";
  ASSERT_EQ(poisoned.rows.size(), static_cast<size_t>(kRounds));
  double shift_bound = 0;
  for (const RoundMetrics& m : poisoned.rows) {
    EXPECT_EQ(m.completed, kClients) << "round " << m.round << ": no honest client was refused";
    EXPECT_EQ(m.clipped, 1) << "round " << m.round << ": only the attacker is clipped";
    ASSERT_TRUE(std::isfinite(m.clip_bound)) << "round 1 too has a bound (a fraction of |θ0|)";
    EXPECT_GT(m.max_start_distance, 900);
    shift_bound += m.clip_bound / kClients;  // the attacker's weight share of its clipped move
  }
  for (const RoundMetrics& m : clean.rows) EXPECT_EQ(m.clipped, 0) << "round " << m.round;
  // Unclipped, the poisoned bias would sit 5 × 990 / 4 ≈ 1238 above the clean run's.
  const double shift = poisoned.model.tensors[1].values[0] - clean.model.tensors[1].values[0];
  EXPECT_GT(shift, 0);
  EXPECT_LE(shift, shift_bound + 1e-4);
  EXPECT_LT(shift, 5.0);
  // The attacker cannot inflate the bound: the median of accepted (clipped) distances barely moves.
  EXPECT_LE(poisoned.rows.back().clip_bound, 2 * clean.rows.back().clip_bound);
}

TEST(PoisonClip, WithClippingOffThePoisonGoesThrough) {
  // The same attack with --clip-multiplier 0: the test above can fail.
  RunConfig off;
  off.clip_multiplier = 0;
  const FederatedRun clean = Federate(Client3::kUnchanged, off);
  const FederatedRun poisoned = Federate(Client3::kPoison, off);
  const double shift = poisoned.model.tensors[1].values[0] - clean.model.tensors[1].values[0];
  EXPECT_GT(shift, 1000);
  for (const RoundMetrics& m : poisoned.rows) EXPECT_EQ(m.clipped, 0);
}

TEST(PoisonClip, HonestRunIsBitIdenticalWithAndWithoutClipping) {
  RunConfig off;
  off.clip_multiplier = 0;
  const FederatedRun with = Federate(Client3::kUnchanged);
  const FederatedRun without = Federate(Client3::kUnchanged, off);
  EXPECT_EQ(SerializeTensorSet(with.model), SerializeTensorSet(without.model));
}

}  // namespace
}  // namespace lfl
