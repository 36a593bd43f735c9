// ClientStepOptions::rewind_biases: the rewind resets biases to θ0 (default), or keeps the ones the
// net holds (the global model's), rewinding only the ticket's weights.
#include <gtest/gtest.h>

#include "runtime/client_step.h"

namespace lfl {
namespace {

TEST(RewindBiasesTest, WeightsAlwaysRewindBiasesOnlyWhenAsked) {
  absl::StatusOr<Net> init = MakeNet(ModelKind::kMnistCnn, NetShape{}, 7);
  absl::StatusOr<Net> global = MakeNet(ModelKind::kMnistCnn, NetShape{}, 8);  // stands in for θg
  ASSERT_TRUE(init.ok() && global.ok());
  const TensorSet theta0 = ToTensorSet(**init);
  const TensorSet held = ToTensorSet(**global);
  Mask mask = Mask::Full(theta0);
  ASSERT_TRUE(PruneByMagnitude(held, PruneOptions{0.5, 0.1}, &mask).ok());

  for (bool rewind_biases : {true, false}) {
    StepContext ctx;
    ctx.data.theta0 = &theta0;
    ctx.options.rewind_biases = rewind_biases;
    ASSERT_TRUE(LoadTensorSet(held, global->get()).ok());
    ASSERT_TRUE(RewindNet(ctx, mask, global->get()).ok());
    const TensorSet rewound = ToTensorSet(**global);
    int64_t biases = 0;
    for (size_t t = 0; t < rewound.size(); ++t) {
      const NamedTensor& got = rewound.tensors[t];
      for (int64_t i = 0; i < got.numel(); ++i) {
        if (got.prunable) {
          ASSERT_EQ(got.values[i], mask.Get(t, i) ? theta0.tensors[t].values[i] : 0.f)
              << got.name << "[" << i << "]";
        } else {
          const float want =
              rewind_biases ? theta0.tensors[t].values[i] : held.tensors[t].values[i];
          ASSERT_EQ(got.values[i], want)
              << got.name << "[" << i << "] rewind_biases=" << rewind_biases;
          ++biases;
        }
      }
    }
    EXPECT_GT(biases, 0);
  }
  // θ0's and θg's biases differ, so the two cases above are really different.
  EXPECT_NE(theta0.tensors[1].values, held.tensors[1].values);
}

}  // namespace
}  // namespace lfl
