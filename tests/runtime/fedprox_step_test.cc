// FedProx's client step (ClientStepOptions::proximal_mu): the ticket trains towards the point its
// training starts from — θ0 ⊙ m after a prune and rewind, the downlink θg ⊙ m otherwise — and
// its pruned weights stay exactly zero.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <utility>

#include "runtime/client_step.h"
#include "tests/models/synthetic_net.h"
#include "tests/runtime/step_fixture.h"

namespace lfl {
namespace {

using test::MakeMnistCnn;

double Distance(const TensorSet& a, const TensorSet& b) {
  double sum = 0;
  for (size_t t = 0; t < a.size(); ++t) {
    for (size_t i = 0; i < a.tensors[t].values.size(); ++i) {
      const double d = static_cast<double>(a.tensors[t].values[i]) - b.tensors[t].values[i];
      sum += d * d;
    }
  }
  return std::sqrt(sum);
}

// Pruned elements of `sent` that are not exactly zero.
int64_t NonZeroPruned(const TensorSet& sent, const Mask& mask) {
  int64_t bad = 0;
  for (size_t t = 0; t < sent.size(); ++t) {
    for (int64_t i = 0; i < sent.tensors[t].numel(); ++i)
      bad += !mask.Get(t, i) && sent.tensors[t].values[i] != 0.f;
  }
  return bad;
}

class FedProxStepTest : public test::StepFixture {
 protected:
  void SetUp() override {
    StepFixture::SetUp();
    // θg: another initialization trained a little, far from θ0, so the two anchors differ.
    Net global = MakeMnistCnn(11);
    EXPECT_TRUE(TrainTicket(ctx_, {}, 2, global.get()).ok());
    downlink_.values = ToTensorSet(*global);
    downlink_.mask = Mask::Full(theta0_);
  }

  // The whole step with `mu`; the model as sent (Verify leaves it in the net; fp32 here).
  ClientStepResult Step(double mu, TensorSet* sent) {
    ctx_.options.proximal_mu = mu;
    Net net = MakeMnistCnn(7);
    absl::StatusOr<ClientStepResult> step =
        RunClientStep(ctx_, ClientStepInput{&downlink_, 0, {}}, net.get());
    EXPECT_TRUE(step.ok()) << step.status();
    *sent = ToTensorSet(*net);
    return step.ok() ? *std::move(step) : ClientStepResult{};
  }

  DecodedModel downlink_;
};

// After a prune the ticket rewinds, and the anchor is θ0 ⊙ m' (biases θ0: rewind_biases).
TEST_F(FedProxStepTest, AfterARewindTheTicketStaysNearTheRewoundWeights) {
  ctx_.options.accuracy_threshold = 0;  // the gate allows
  TensorSet plain, prox;
  const ClientStepResult a = Step(0, &plain);
  const ClientStepResult b = Step(10, &prox);
  ASSERT_TRUE(a.mask_changed && b.mask_changed);
  ASSERT_TRUE(a.mask == b.mask) << "pruning depends on the downlink alone";
  TensorSet rewound = theta0_;
  b.mask.ApplyTo(&rewound);
  TensorSet served = downlink_.values;
  b.mask.ApplyTo(&served);
  EXPECT_LT(Distance(prox, rewound), 0.5 * Distance(plain, rewound));
  EXPECT_LT(Distance(prox, rewound), Distance(prox, served))
      << "the anchor is the rewound θ0, not θg";
  EXPECT_GT(Distance(prox, rewound), 0) << "the ticket still trains";
  EXPECT_EQ(NonZeroPruned(plain, b.mask), 0);
  EXPECT_EQ(NonZeroPruned(prox, b.mask), 0);
  EXPECT_LT(b.mask.Density(), 0.81);
}

// Without a prune the net trains from the downlink θg ⊙ m, which is then the anchor.
TEST_F(FedProxStepTest, WithoutAPruneTheTicketStaysNearTheServedModel) {
  absl::StatusOr<PruneOutcome> pruned = Prune(ctx_, downlink_.values, downlink_.mask);
  ASSERT_TRUE(pruned.ok() && pruned->changed);
  downlink_.mask = pruned->mask;
  downlink_.mask.ApplyTo(&downlink_.values);
  ctx_.options.accuracy_threshold = 1.01;  // the gate refuses: no prune, no rewind
  TensorSet plain, prox;
  const ClientStepResult a = Step(0, &plain);
  const ClientStepResult b = Step(10, &prox);
  ASSERT_FALSE(a.mask_changed || b.mask_changed);
  EXPECT_LT(Distance(prox, downlink_.values), 0.5 * Distance(plain, downlink_.values));
  EXPECT_LT(Distance(prox, downlink_.values), Distance(prox, theta0_))
      << "the anchor is θg, not θ0";
  EXPECT_GT(Distance(prox, downlink_.values), 0);
  EXPECT_EQ(NonZeroPruned(plain, downlink_.mask), 0);
  EXPECT_EQ(NonZeroPruned(prox, downlink_.mask), 0);
}

// mu = 0 is the LotteryFL step (the Trainer computes no term; tests/models/proximal_test.cc);
// any mu > 0 changes what is sent.
TEST_F(FedProxStepTest, OnlyAPositiveMuChangesThePayload) {
  ctx_.options.accuracy_threshold = 0;
  Net net = MakeMnistCnn(7);
  absl::StatusOr<ClientStepResult> lottery =
      RunClientStep(ctx_, ClientStepInput{&downlink_, 0, {}}, net.get());
  ASSERT_TRUE(lottery.ok()) << lottery.status();
  TensorSet sent;
  EXPECT_EQ(Step(0, &sent).update.payload, lottery->update.payload);
  EXPECT_NE(Step(1, &sent).update.payload, lottery->update.payload);
}

}  // namespace
}  // namespace lfl
