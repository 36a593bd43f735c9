// LotteryFL's client step, stage by stage, on small synthetic data: the properties the
// algorithm promises (DESIGN §1), not just that the calls return.
#include "runtime/client_step.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <utility>

#include "strategy/strategy.h"
#include "tests/models/synthetic_net.h"
#include "tests/runtime/step_fixture.h"

namespace lfl {
namespace {

using test::MakeMnistCnn;

// How a client of a LotteryFL run at `quant` encodes its update (ClientStepOptions::uplink).
EncodeSpec UplinkAt(QuantMode quant) {
  RunConfig config;
  config.algorithm = Algorithm::kLotteryFl;
  config.quant = quant;
  return MakeStrategy(config).value()->UplinkEncoding();
}

class ClientStepTest : public test::StepFixture {
 protected:
  // A net holding θg: θ0 trained a few epochs, so that it is no longer θ0.
  Net TrainedNet(int64_t epochs) {
    Net net = MakeMnistCnn(7);
    EXPECT_TRUE(TrainTicket(ctx_, {}, epochs, net.get()).ok());
    return net;
  }

};

TEST_F(ClientStepTest, GateRefusesBelowTheThresholdAndAllowsAtOrAbove) {
  Net net = TrainedNet(6);
  const Mask full = Mask::Full(theta0_);
  ctx_.options.accuracy_threshold = 0;
  absl::StatusOr<GateOutcome> probe = Gate(ctx_, *net, full);
  ASSERT_TRUE(probe.ok()) << probe.status();
  const double accuracy = probe->validation_accuracy;
  ASSERT_GT(accuracy, 0.3);  // learnable data, so the threshold has room on both sides

  ctx_.options.accuracy_threshold = accuracy + 1e-6;
  EXPECT_FALSE(Gate(ctx_, *net, full)->prune);
  ctx_.options.accuracy_threshold = accuracy;
  EXPECT_TRUE(Gate(ctx_, *net, full)->prune);
  ctx_.options.accuracy_threshold = accuracy / 2;
  EXPECT_TRUE(Gate(ctx_, *net, full)->prune);
  EXPECT_DOUBLE_EQ(Gate(ctx_, *net, full)->validation_accuracy, accuracy);
}

TEST_F(ClientStepTest, GateRefusesATicketAtItsTargetDensity) {
  Net net = TrainedNet(2);
  ctx_.options.accuracy_threshold = 0;
  ctx_.options.prune = PruneOptions{0.9, 0.1};
  absl::StatusOr<PruneOutcome> pruned = Prune(ctx_, ToTensorSet(*net), Mask::Full(theta0_));
  ASSERT_TRUE(pruned.ok());
  EXPECT_NEAR(pruned->mask.Density(), 0.1, 0.01);
  EXPECT_FALSE(Gate(ctx_, *net, pruned->mask)->prune);
}

TEST_F(ClientStepTest, PruneDropsTheRateOfEachLayersSurvivorsWithTheSmallestMagnitude) {
  const TensorSet weights = ToTensorSet(*TrainedNet(1));
  Mask mask = Mask::Full(theta0_);
  for (int step = 0; step < 3; ++step) {
    absl::StatusOr<PruneOutcome> pruned = Prune(ctx_, weights, mask);
    ASSERT_TRUE(pruned.ok());
    EXPECT_TRUE(pruned->changed);
    for (size_t t = 0; t < weights.size(); ++t) {
      const int64_t kept = mask.Kept(t);
      if (!weights.tensors[t].prunable) {
        EXPECT_EQ(pruned->mask.Kept(t), kept) << weights.tensors[t].name;
        continue;
      }
      EXPECT_EQ(pruned->mask.Kept(t), kept - std::llround(0.2 * static_cast<double>(kept))) << weights.tensors[t].name;
      // Every dropped weight is no larger than any survivor.
      float largest_dropped = 0, smallest_kept = INFINITY;
      for (int64_t i = 0; i < mask.numel(t); ++i) {
        if (!mask.Get(t, i)) continue;
        const float w = std::fabs(weights.tensors[t].values[i]);
        if (pruned->mask.Get(t, i)) {
          smallest_kept = std::min(smallest_kept, w);
        } else {
          largest_dropped = std::max(largest_dropped, w);
        }
      }
      EXPECT_LE(largest_dropped, smallest_kept) << weights.tensors[t].name;
    }
    mask = pruned->mask;
  }
}

TEST_F(ClientStepTest, RewindSetsSurvivorsToTheta0AndDroppedWeightsToZero) {
  Net net = TrainedNet(1);
  absl::StatusOr<PruneOutcome> pruned = Prune(ctx_, ToTensorSet(*net), Mask::Full(theta0_));
  ASSERT_TRUE(pruned.ok());
  ASSERT_TRUE(RewindNet(ctx_, pruned->mask, net.get()).ok());
  const TensorSet rewound = ToTensorSet(*net);
  int64_t survivors = 0, dropped = 0;
  for (size_t t = 0; t < rewound.size(); ++t) {
    for (int64_t i = 0; i < rewound.tensors[t].numel(); ++i) {
      const float got = rewound.tensors[t].values[i];
      if (pruned->mask.Get(t, i)) {
        ASSERT_EQ(got, theta0_.tensors[t].values[i]) << rewound.tensors[t].name << "[" << i << "]";
        ++survivors;
      } else {
        ASSERT_EQ(got, 0.f) << rewound.tensors[t].name << "[" << i << "]";
        ++dropped;
      }
    }
  }
  EXPECT_GT(survivors, 0);
  EXPECT_GT(dropped, 0);
}

// Pruned weights are exactly zero after training, in the net and in what is sent, and the
// surviving weights did train.
TEST_F(ClientStepTest, PrunedWeightsStayExactlyZeroThroughTheWholeStep) {
  DecodedModel downlink;
  downlink.values = ToTensorSet(*TrainedNet(2));
  downlink.mask = Mask::Full(theta0_);
  ctx_.options.accuracy_threshold = 0;  // the gate allows
  ctx_.options.train.epochs = 15;       // from the rewound θ0
  for (QuantMode quant : {QuantMode::kNone, QuantMode::kUniform4, QuantMode::kBsq}) {
    ctx_.options.uplink = UplinkAt(quant);
    ctx_.options.bsq.epochs = quant == QuantMode::kBsq ? 2 : 0;
    Net net = MakeMnistCnn(7);
    absl::StatusOr<ClientStepResult> step = RunClientStep(ctx_, ClientStepInput{&downlink, 0, {}}, net.get());
    ASSERT_TRUE(step.ok()) << step.status();
    ASSERT_TRUE(step->mask_changed);
    EXPECT_EQ(step->update.mask_version, 1u);
    EXPECT_LT(step->mask.Density(), 0.81);
    const TensorSet sent = ToTensorSet(*net);  // Verify leaves the decoded payload in the net
    int64_t moved = 0;
    for (size_t t = 0; t < sent.size(); ++t) {
      for (int64_t i = 0; i < sent.tensors[t].numel(); ++i) {
        if (!step->mask.Get(t, i)) {
          ASSERT_EQ(sent.tensors[t].values[i], 0.f) << sent.tensors[t].name << "[" << i << "]";
        } else if (sent.tensors[t].values[i] != theta0_.tensors[t].values[i]) {
          ++moved;
        }
      }
    }
    EXPECT_GT(moved, 1000) << "the rewound ticket should have trained";
    EXPECT_GT(step->local_accuracy, 0.5);
  }
}

TEST_F(ClientStepTest, TheGateRefusingKeepsTheMaskAndDoesNotRewind) {
  DecodedModel downlink;
  downlink.values = ToTensorSet(*TrainedNet(2));
  downlink.mask = Mask::Full(theta0_);
  ctx_.options.accuracy_threshold = 1.01;
  Net net = MakeMnistCnn(7);
  absl::StatusOr<ClientStepResult> step = RunClientStep(ctx_, ClientStepInput{&downlink, 4, {}}, net.get());
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_FALSE(step->gate.prune);
  EXPECT_FALSE(step->mask_changed);
  EXPECT_EQ(step->update.mask_version, 4u);
  EXPECT_DOUBLE_EQ(step->mask.Density(), 1.0);
}

// A client whose data the server does not hold reports θg ⊙ m_k on its local test split, measured
// on the downlink as received (before the gate, pruning and training change the net); without the
// option the step spends no evaluation on it.
TEST_F(ClientStepTest, EvaluateDownlinkMeasuresTheReceivedModelOnTheLocalTestSplit) {
  DecodedModel downlink;
  downlink.mask = Mask::Full(theta0_);
  ctx_.options.prune = PruneOptions{0.5, 0.1};
  absl::StatusOr<PruneOutcome> pruned = Prune(ctx_, ToTensorSet(*TrainedNet(3)), downlink.mask);
  ASSERT_TRUE(pruned.ok());
  downlink.mask = pruned->mask;
  downlink.values = ToTensorSet(*TrainedNet(3));
  downlink.mask.ApplyTo(&downlink.values);
  Net reference = MakeMnistCnn(7);
  ASSERT_TRUE(LoadTensorSet(downlink.values, reference.get()).ok());
  absl::StatusOr<double> want = Trainer::Evaluate(*reference, train_, split_.test);
  ASSERT_TRUE(want.ok()) << want.status();
  absl::StatusOr<double> on_validation = Trainer::Evaluate(*reference, train_, split_.validation);
  ASSERT_TRUE(on_validation.ok());

  ctx_.options.accuracy_threshold = 0;  // the gate allows: the net is pruned, rewound and trained
  ctx_.options.train.epochs = 1;
  Net net = MakeMnistCnn(7);
  absl::StatusOr<ClientStepResult> plain = RunClientStep(ctx_, ClientStepInput{&downlink, 2, {}}, net.get());
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(plain->global_masked_accuracy, -1);

  ctx_.options.evaluate_downlink = true;
  absl::StatusOr<ClientStepResult> step = RunClientStep(ctx_, ClientStepInput{&downlink, 2, {}}, net.get());
  ASSERT_TRUE(step.ok()) << step.status();
  EXPECT_DOUBLE_EQ(step->global_masked_accuracy, *want);
  EXPECT_DOUBLE_EQ(step->gate.validation_accuracy, *on_validation);
  ASSERT_TRUE(step->mask_changed);
  // The rest of the step is unchanged by the extra evaluation.
  EXPECT_EQ(step->update.payload, plain->update.payload);
  EXPECT_DOUBLE_EQ(step->local_accuracy, plain->local_accuracy);
}

// The search only lowers precision: without the guard stepping in, no layer ends above the bits
// it started the round at; when the guard steps in, it starts again from those bits.
TEST_F(ClientStepTest, BsqPhaseNeverRaisesBitsUnlessTheGuardDid) {
  ctx_.options.bsq.epochs = 4;
  const Mask full = Mask::Full(theta0_);
  const std::vector<torch::Tensor> masks = TorchMasks(full, theta0_);
  int guarded = 0, free = 0;
  for (double guard : {1.0, 0.0}) {
    for (const std::vector<int>& start : {std::vector<int>{4, 4, 4, 4}, std::vector<int>{8, 3, 2, 6}}) {
      ctx_.options.bsq.finetune = start[0] == 4;  // both ways of reaching the searched bits
      ctx_.options.bsq.guard = guard;
      ctx_.options.bsq.alpha = 30;
      Net net = TrainedNet(3);
      absl::StatusOr<BsqOutcome> out = BsqPhase(ctx_, masks, start, net.get());
      ASSERT_TRUE(out.ok()) << out.status();
      ASSERT_EQ(out->bits.size(), start.size());
      EXPECT_EQ(out->start_bits, start);
      for (size_t l = 0; l < start.size(); ++l) EXPECT_LE(out->search_bits[l], start[l]) << l;
      if (out->precision_kept) {
        ++guarded;
        for (size_t l = 0; l < start.size(); ++l) EXPECT_GE(out->bits[l], start[l]) << l;
      } else {
        ++free;
        EXPECT_EQ(out->bits, out->search_bits);
        for (size_t l = 0; l < start.size(); ++l) EXPECT_LE(out->bits[l], start[l]) << l;
      }
    }
  }
  EXPECT_GT(free, 0);  // guard 1.0 never refuses
}

TEST_F(ClientStepTest, BsqPhaseKeepsPrunedWeightsAtZeroLevels) {
  ctx_.options.bsq.epochs = 2;
  Net net = TrainedNet(2);
  absl::StatusOr<PruneOutcome> pruned = Prune(ctx_, ToTensorSet(*net), Mask::Full(theta0_));
  ASSERT_TRUE(pruned.ok());
  absl::StatusOr<BsqOutcome> out = BsqPhase(ctx_, TorchMasks(pruned->mask, theta0_), {}, net.get());
  ASSERT_TRUE(out.ok()) << out.status();
  for (const QuantizedWeight& w : out->weights) {
    for (size_t i = 0; i < w.levels.size(); ++i) {
      if (!pruned->mask.Get(w.param_index, static_cast<int64_t>(i))) ASSERT_EQ(w.levels[i], 0);
    }
  }
}

}  // namespace
}  // namespace lfl
