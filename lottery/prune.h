// LotteryFL's pruning gate, magnitude pruning and the lottery-ticket rewind.
#ifndef LFL_LOTTERY_PRUNE_H_
#define LFL_LOTTERY_PRUNE_H_

#include "absl/status/statusor.h"
#include "fl/tensor_set.h"
#include "lottery/mask.h"

namespace lfl {

struct PruneOptions {
  // Fraction of the *surviving* weights of each layer removed per pruning step (paper: 0.2).
  double rate = 0.2;
  // Never prune a layer below this density (0.1 for the MNIST family, 0.5 for CIFAR-10).
  double target_density = 0.1;
};

// LotteryFL's accuracy gate: a ticket of `density` prunes this round when validation_accuracy
// reaches accuracy_threshold and the density is still above options.target_density.
bool DecidePrune(double validation_accuracy, double accuracy_threshold, double density,
                 const PruneOptions& options);

// Per prunable layer: among the kept elements, drops the round(rate · kept) with the smallest
// |weights| (ties broken by lower index first, so the result is deterministic), but never leaves
// fewer than ceil(target_density · numel) kept (a 1e-9 tolerance absorbs floating-point noise
// such as 0.1 · 30 = 3.0000000000000004). Non-prunable tensors are untouched.
// Returns whether any bit changed. InvalidArgument (mask unchanged) when rate or target_density
// is outside [0, 1], the mask does not match `weights`, or a weight is not finite.
absl::StatusOr<bool> PruneByMagnitude(const TensorSet& weights, const PruneOptions& options,
                                      Mask* mask);

// The lottery-ticket reset, as in the LotteryFL reference (which reloads the whole initial state
// dict and then applies the mask): the result is θ0 with the mask applied — surviving weights of
// prunable layers take their θ0 values, dropped ones are 0, and non-prunable tensors (biases,
// norm parameters) are reset to θ0 as well. `current` is only used to check that the caller's
// model has θ0's layout. InvalidArgument when `current` or the mask does not match θ0.
absl::StatusOr<TensorSet> Rewind(const TensorSet& theta0, const TensorSet& current,
                                 const Mask& mask);

}  // namespace lfl

#endif  // LFL_LOTTERY_PRUNE_H_
