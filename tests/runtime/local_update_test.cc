// The client's local step obeys the run's strategy: ClientStepOptionsFor takes what to train
// (ticket, pruning, proximal term) from MakeStrategy(config)->ConfigureFit().
#include "runtime/local_update.h"

#include <gtest/gtest.h>

#include "strategy/strategy.h"

namespace lfl {
namespace {

RunConfig Config(Algorithm algorithm) {
  RunConfig c;
  c.algorithm = algorithm;
  c.prune_rate = 0.3;
  c.target_density = 0.25;
  c.proximal_mu = 0.5;
  return c;
}

TEST(LocalUpdateTest, StepOptionsAreTheStrategysFitInstructions) {
  for (Algorithm algorithm : {Algorithm::kFedAvg, Algorithm::kLotteryFl, Algorithm::kFedProx}) {
    const RunConfig c = Config(algorithm);
    const FitInstructions fit = MakeStrategy(c).value()->ConfigureFit();
    absl::StatusOr<ClientStepOptions> o = ClientStepOptionsFor(c, 1, 2, 0);
    ASSERT_TRUE(o.ok()) << o.status();
    EXPECT_EQ(o->lottery, fit.train_ticket) << ModeName(algorithm);
    EXPECT_EQ(o->proximal_mu, fit.proximal_mu) << ModeName(algorithm);
    if (fit.train_ticket) {
      EXPECT_EQ(o->prune.rate, fit.prune.rate);
      EXPECT_EQ(o->prune.target_density, fit.prune.target_density);
    }
  }
  absl::StatusOr<ClientStepOptions> prox =
      ClientStepOptionsFor(Config(Algorithm::kFedProx), 1, 2, 0);
  ASSERT_TRUE(prox.ok());
  EXPECT_TRUE(prox->lottery);
  EXPECT_EQ(prox->proximal_mu, 0.5);
  EXPECT_EQ(prox->prune.rate, 0.3);
  EXPECT_EQ(prox->prune.target_density, 0.25);
  EXPECT_EQ(prox->train.proximal_mu, 0) << "TrainTicket sets the Trainer's term, with its anchor";
  absl::StatusOr<ClientStepOptions> lottery =
      ClientStepOptionsFor(Config(Algorithm::kLotteryFl), 1, 2, 0);
  ASSERT_TRUE(lottery.ok());
  EXPECT_TRUE(lottery->lottery);
  EXPECT_EQ(lottery->proximal_mu, 0) << "--proximal-mu is fedprox's alone";
}

// local has no federated strategy; lotteryfl-sim's local mode still trains each client's dense
// model.
TEST(LocalUpdateTest, LocalTrainsDenseModelsWithoutAStrategy) {
  absl::StatusOr<ClientStepOptions> o = ClientStepOptionsFor(Config(Algorithm::kLocal), 1, 2, 0);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_FALSE(o->lottery);
  EXPECT_EQ(o->proximal_mu, 0);
}

}  // namespace
}  // namespace lfl
