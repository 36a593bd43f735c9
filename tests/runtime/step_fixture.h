// The client-step tests' common setting: one synthetic dataset of four classes cut into train,
// validation and test slices, θ0 of MnistCnn seed 7, and a StepContext that trains 4 epochs at
// lr 0.05 and prunes at rate 0.2 towards density 0.1.
#ifndef LOTTERYFL_TESTS_RUNTIME_STEP_FIXTURE_H_
#define LOTTERYFL_TESTS_RUNTIME_STEP_FIXTURE_H_

#include <gtest/gtest.h>

#include "runtime/client_step.h"
#include "tests/models/synthetic_net.h"

namespace lfl::test {

class StepFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    train_ = SyntheticData(160, 1, 0.5);
    split_.train = Range(0, 64);
    split_.validation = Range(64, 96);
    split_.test = Range(96, 160);
    theta0_ = ToTensorSet(*MakeMnistCnn(7));
    ctx_.data = ClientData{&train_, &train_, &split_, &theta0_};
    ctx_.options.train.epochs = 4;
    ctx_.options.train.lr = 0.05;
    ctx_.options.train.seed = 3;
    ctx_.options.prune = PruneOptions{0.2, 0.1};
  }

  TensorData train_;
  ClientSplit split_;
  TensorSet theta0_;
  StepContext ctx_;
};

}  // namespace lfl::test

#endif  // LOTTERYFL_TESTS_RUNTIME_STEP_FIXTURE_H_
