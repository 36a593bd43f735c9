// The client's local step obeys the run's strategy: ClientStepOptionsFor takes what to train
// (ticket, pruning, proximal term) from MakeStrategy(config)->ConfigureFit() and how to encode
// the update from its UplinkEncoding().
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

TEST(LocalUpdateTest, TheUplinkIsTheStrategysAndOnlyBsqRunsTheBsqPhase) {
  for (Algorithm algorithm : {Algorithm::kFedAvg, Algorithm::kLotteryFl, Algorithm::kFedProx}) {
    for (QuantMode quant : {QuantMode::kNone, QuantMode::kUniform8, QuantMode::kUniform2, QuantMode::kBsq}) {
      RunConfig c = Config(algorithm);
      c.quant = quant;
      const EncodeSpec want = MakeStrategy(c).value()->UplinkEncoding();
      absl::StatusOr<ClientStepOptions> o = ClientStepOptionsFor(c, 1, 2, 0);
      ASSERT_TRUE(o.ok()) << o.status();
      EXPECT_EQ(o->uplink.weight_bits, want.weight_bits) << ModeName(algorithm) << " " << ModeName(quant);
      EXPECT_EQ(o->uplink.other_bits, want.other_bits) << ModeName(algorithm) << " " << ModeName(quant);
      EXPECT_EQ(o->bsq.epochs > 0, quant == QuantMode::kBsq) << ModeName(algorithm) << " " << ModeName(quant);
    }
  }
}

// local has no federated strategy; lotteryfl-sim's local mode still trains each client's dense
// model, in fp32 whatever --quant says (nothing travels).
TEST(LocalUpdateTest, LocalTrainsDenseModelsWithoutAStrategy) {
  RunConfig c = Config(Algorithm::kLocal);
  c.quant = QuantMode::kBsq;
  absl::StatusOr<ClientStepOptions> o = ClientStepOptionsFor(c, 1, 2, 0);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_FALSE(o->lottery);
  EXPECT_EQ(o->proximal_mu, 0);
  EXPECT_EQ(o->uplink.weight_bits, 32);
  EXPECT_EQ(o->uplink.other_bits, 32);
  EXPECT_EQ(o->bsq.epochs, 0);
}

}  // namespace
}  // namespace lfl
