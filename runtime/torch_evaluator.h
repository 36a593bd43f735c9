#ifndef LOTTERYFL_RUNTIME_TORCH_EVALUATOR_H_
#define LOTTERYFL_RUNTIME_TORCH_EVALUATOR_H_

// The server's evaluator: the global model on the dataset's whole test set (when asked),
// and θg ⊙ m_k on each requested client's whole local test split (mean over those clients).
// Clients sharing a mask (all of them under FedAvg) share one masked model and one batched
// forward pass over their test images.

#include <memory>

#include "runtime/run_data.h"
#include "fl/evaluator.h"

namespace lfl {

class TorchEvaluator : public Evaluator {
 public:
  explicit TorchEvaluator(std::shared_ptr<const RunData> data) : data_(std::move(data)) {}
  absl::StatusOr<EvalResult> Evaluate(const EvalRequest& request) override;

 private:
  std::shared_ptr<const RunData> data_;
};

// 1 where the net predicts the label, 0 elsewhere, for `indices` of `data` (empty = all).
absl::StatusOr<std::vector<uint8_t>> Correctness(NetImpl& net, const TensorData& data,
                                                 const std::vector<int64_t>& indices);

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_TORCH_EVALUATOR_H_
