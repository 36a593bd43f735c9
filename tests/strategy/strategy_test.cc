#include "strategy/strategy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>
#include <utility>

namespace lfl {
namespace {

RunConfig Config(Algorithm algorithm) {
  RunConfig c;
  c.algorithm = algorithm;
  c.clients = 10;
  c.fraction = 0.5;
  c.rounds = 5;
  c.eval_clients = 4;
  c.target_density = 0.5;
  c.prune_rate = 0.5;
  c.seed = 3;
  return c;
}

TensorSet Layout() {
  TensorSet s;
  s.tensors.push_back({"w", {4}, {0.1f, -0.4f, 0.3f, 0.9f}, true});
  s.tensors.push_back({"b", {1}, {0.f}, false});
  return s;
}

TEST(StrategyTest, RegisteredByAlgorithm) {
  EXPECT_EQ(MakeStrategy(Config(Algorithm::kFedAvg)).value()->name(), "fedavg");
  EXPECT_FALSE(MakeStrategy(Config(Algorithm::kFedAvg)).value()->uses_masks());
  EXPECT_EQ(MakeStrategy(Config(Algorithm::kLotteryFl)).value()->name(), "lotteryfl");
  EXPECT_TRUE(MakeStrategy(Config(Algorithm::kLotteryFl)).value()->uses_masks());
  absl::StatusOr<std::unique_ptr<Strategy>> local = MakeStrategy(Config(Algorithm::kLocal));
  EXPECT_EQ(local.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(local.status().message(), ::testing::HasSubstr("local"));
}

TEST(StrategyTest, WeightsFollowWeighted) {
  RunConfig c = Config(Algorithm::kLotteryFl);
  EXPECT_EQ(MakeStrategy(c).value()->UpdateWeight(600), 600);
  c.weighted = false;
  EXPECT_EQ(MakeStrategy(c).value()->UpdateWeight(600), 1);
}

TEST(StrategyTest, SamplesAFractionOfTheLiveClientsDeterministically) {
  std::unique_ptr<Strategy> s = *MakeStrategy(Config(Algorithm::kLotteryFl));
  std::vector<int64_t> live = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<int64_t> a = s->SampleClients(live, 1, 0);
  EXPECT_EQ(a.size(), 5u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 5u);
  EXPECT_EQ(s->SampleClients(live, 1, 0), a) << "same seed, round and attempt";
  bool differs = false;
  for (uint64_t round = 2; round < 10; ++round) differs |= s->SampleClients(live, round, 0) != a;
  EXPECT_TRUE(differs);
  // Fewer live clients than wanted: all of them.
  EXPECT_EQ(s->SampleClients({2, 7}, 1, 0), (std::vector<int64_t>{2, 7}));
}

TEST(StrategyTest, EvaluatesEveryNthAndTheLastRoundOnEveryClient) {
  RunConfig c = Config(Algorithm::kLotteryFl);
  c.eval_every = 2;
  std::unique_ptr<Strategy> s = *MakeStrategy(c);
  EXPECT_FALSE(s->Evaluates(1));
  EXPECT_TRUE(s->Evaluates(2));
  EXPECT_TRUE(s->Evaluates(5));
  EXPECT_EQ(s->EvalSample(2).size(), 4u);
  EXPECT_EQ(s->EvalSample(5).size(), 10u);
}

TEST(StrategyTest, LotteryFlDerivesThePrunedMaskFedAvgNone) {
  const TensorSet seen = Layout();
  const Mask full = Mask::Full(seen);
  std::unique_ptr<Strategy> lfl = *MakeStrategy(Config(Algorithm::kLotteryFl));
  ASSERT_TRUE(lfl->DerivesMask(full));
  absl::StatusOr<std::optional<Mask>> derived = lfl->DeriveMask(seen.tensors.empty() ? seen : seen, full);
  ASSERT_TRUE(derived.ok()) << derived.status();
  ASSERT_TRUE(derived->has_value());
  // Rate 0.5 of 4 kept: the two smallest magnitudes (0.1 and 0.3) go.
  EXPECT_FALSE((*derived)->Get(0, 0));
  EXPECT_TRUE((*derived)->Get(0, 1));
  EXPECT_FALSE((*derived)->Get(0, 2));
  EXPECT_TRUE((*derived)->Get(0, 3));
  EXPECT_FALSE(lfl->DerivesMask(**derived)) << "at the target density the ticket stays";
  std::unique_ptr<Strategy> fedavg = *MakeStrategy(Config(Algorithm::kFedAvg));
  EXPECT_FALSE(fedavg->DerivesMask(full));
}

// FedProx is LotteryFL's server side with the proximal term in every client's instructions.
TEST(StrategyTest, FedProxIsLotteryFlWithTheProximalMu) {
  RunConfig c = Config(Algorithm::kFedProx);
  c.proximal_mu = 0.25;
  std::unique_ptr<Strategy> prox = *MakeStrategy(c);
  EXPECT_EQ(prox->name(), "fedprox");
  EXPECT_TRUE(prox->uses_masks());
  const FitInstructions fit = prox->ConfigureFit();
  EXPECT_TRUE(fit.train_ticket);
  EXPECT_EQ(fit.proximal_mu, 0.25);
  EXPECT_EQ(fit.prune.rate, 0.5);
  EXPECT_EQ(fit.prune.target_density, 0.5);

  c.algorithm = Algorithm::kLotteryFl;
  std::unique_ptr<Strategy> lottery = *MakeStrategy(c);
  EXPECT_EQ(lottery->ConfigureFit().proximal_mu, 0) << "--proximal-mu is fedprox's alone";
  c.algorithm = Algorithm::kFedAvg;
  EXPECT_EQ(MakeStrategy(c).value()->ConfigureFit().proximal_mu, 0);

  // The server derives the same masks as under LotteryFL.
  const TensorSet seen = Layout();
  const Mask full = Mask::Full(seen);
  ASSERT_TRUE(prox->DerivesMask(full));
  absl::StatusOr<std::optional<Mask>> derived = prox->DeriveMask(seen, full);
  absl::StatusOr<std::optional<Mask>> expected = lottery->DeriveMask(seen, full);
  ASSERT_TRUE(derived.ok() && expected.ok());
  ASSERT_TRUE(derived->has_value() && expected->has_value());
  EXPECT_TRUE(**derived == **expected);
  EXPECT_LT((*derived)->Density(), 1.0);
}

// Every algorithm but local (lotteryfl-sim's, no server) has a strategy: the client side
// builds one for its local step (runtime/local_update.cc).
TEST(StrategyTest, EveryFederatedAlgorithmIsRegistered) {
  for (const auto& [name, algorithm] : ModeNames<Algorithm>()) {
    absl::StatusOr<std::unique_ptr<Strategy>> s = MakeStrategy(Config(algorithm));
    if (algorithm == Algorithm::kLocal) {
      EXPECT_FALSE(s.ok());
      continue;
    }
    ASSERT_TRUE(s.ok()) << name << ": " << s.status();
    EXPECT_EQ((*s)->name(), name);
    EXPECT_EQ((*s)->uses_masks(), TrainsTickets(algorithm)) << name;
    EXPECT_EQ((*s)->ConfigureFit().train_ticket, TrainsTickets(algorithm)) << name;
  }
}

TEST(StrategyTest, NewAggregatorIsTheRunsAggregatorClipped) {
  std::unique_ptr<Strategy> s = *MakeStrategy(Config(Algorithm::kFedAvg));
  const TensorSet layout = Layout();
  absl::StatusOr<std::unique_ptr<ClippedAggregator>> agg = s->NewAggregator(layout, 1.0);
  ASSERT_TRUE(agg.ok()) << agg.status();
  EXPECT_EQ((*agg)->name(), "masked-mean");
  EXPECT_EQ((*agg)->bound(), 1.0);
}

TEST(StrategyTest, NewAggregatorTakesTheRunsAggregatorOptions) {
  // One element kept by two clients, 1.0 weighing 1 and 5.0 weighing 3: below min-keepers it
  // takes their weighted mean 4, at or above it their (unweighted) median 3.
  const TensorSet layout = Layout();
  TensorSet low = layout, high = layout;
  low.tensors[0].values[0] = 1.0f;
  high.tensors[0].values[0] = 5.0f;
  for (const auto& [min_keepers, expected] : {std::pair<int64_t, float>{3, 4.0f}, {2, 3.0f}}) {
    RunConfig c = Config(Algorithm::kFedAvg);
    c.aggregator = AggregatorKind::kKeeperMedian;
    c.aggregator_min_keepers = min_keepers;
    std::unique_ptr<Strategy> s = *MakeStrategy(c);
    std::unique_ptr<ClippedAggregator> agg = *s->NewAggregator(layout, 100.0);
    EXPECT_EQ(agg->name(), "keeper-median");
    ASSERT_TRUE(agg->Add({0, &low, nullptr, 1, &layout}).ok());
    ASSERT_TRUE(agg->Add({1, &high, nullptr, 3, &layout}).ok());
    EXPECT_EQ(agg->Finish(layout).value().tensors[0].values[0], expected) << min_keepers;
  }
}

TEST(StrategyTest, NewAggregatorTakesTheRunsTrim) {
  // Five clients keep every element; element 0 has values 1, 2, 3, 4, 100. Trim 0.2 cuts 1 and
  // 100 (mean 3), trim 0 cuts nothing (mean 22).
  const TensorSet layout = Layout();
  std::vector<TensorSet> values(5, layout);
  for (int k = 0; k < 5; ++k) values[k].tensors[0].values[0] = k == 4 ? 100.0f : static_cast<float>(k + 1);
  for (const auto& [trim, expected] : {std::pair<double, float>{0.2, 3.0f}, {0.0, 22.0f}}) {
    RunConfig c = Config(Algorithm::kFedAvg);
    c.aggregator = AggregatorKind::kKeeperTrimmedMean;
    c.aggregator_trim = trim;
    std::unique_ptr<Strategy> s = *MakeStrategy(c);
    std::unique_ptr<ClippedAggregator> agg = *s->NewAggregator(layout, 1000.0);
    EXPECT_EQ(agg->name(), "keeper-trimmed-mean");
    for (int k = 0; k < 5; ++k) ASSERT_TRUE(agg->Add({k, &values[k], nullptr, 1, &layout}).ok());
    EXPECT_EQ(agg->Finish(layout).value().tensors[0].values[0], expected) << trim;
  }
}

}  // namespace
}  // namespace lfl
