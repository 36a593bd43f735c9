// How a round's updates become the next global model.
#ifndef LFL_FL_STRATEGY_H_
#define LFL_FL_STRATEGY_H_

#include <cstdint>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "fl/accumulator.h"
#include "fl/tensor_set.h"

namespace lfl {

// A strategy tells the round loop whether clients train masked tickets and how updates are
// weighted; the aggregation itself is always a MaskedMeanAccumulator (FedAvg = full masks).
// Strategies are immutable and safe to share between threads.
class Strategy {
 public:
  virtual ~Strategy() = default;
  // "fedavg" or "lotteryfl" — the name MakeStrategy() accepts.
  virtual std::string_view name() const = 0;
  // True when clients train lottery tickets: pass each client's mask to Add(). When false,
  // pass nullptr (every element counts).
  virtual bool uses_masks() const = 0;
  // True: weight each update by its client's training-sample count; false: weight 1.
  virtual bool weight_by_samples() const = 0;

  // The weight to pass to MaskedMeanAccumulator::Add for a client with `num_samples` samples.
  int64_t UpdateWeight(int64_t num_samples) const { return weight_by_samples() ? num_samples : 1; }
  // Fresh accumulator for a round on `global`'s layout.
  virtual std::unique_ptr<MaskedMeanAccumulator> NewRound(const TensorSet& global) const;
};

// Weighted by sample count, full masks, no pruning.
std::unique_ptr<Strategy> MakeFedAvg();
// Masked mean: each weight element averages the clients that keep it; biases (never masked)
// are plainly averaged. Unweighted by default, as in the LotteryFL reference.
std::unique_ptr<Strategy> MakeLotteryFl(bool weight_by_samples = false);
// "fedavg" | "lotteryfl" (unweighted); InvalidArgument otherwise.
absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(std::string_view name);

}  // namespace lfl

#endif  // LFL_FL_STRATEGY_H_
