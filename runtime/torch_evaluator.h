#ifndef LOTTERYFL_RUNTIME_TORCH_EVALUATOR_H_
#define LOTTERYFL_RUNTIME_TORCH_EVALUATOR_H_

// The server's evaluator: the global model on the dataset's whole test set (when asked),
// and θg ⊙ m_k on each requested client's whole local test split (mean over those clients).
// Clients sharing a mask (all of them under FedAvg) share one masked model, and each distinct
// test image of the group is scored once: clients whose splits overlap (the `shared`
// partition: 100,000 clients x 10 images of a 10,000-image test set) cost the group's distinct
// images, not the sum of the splits. Every client's accuracy is the mean of its own images'
// results, and the mean over clients is summed group by group (groups by mask hash, members in
// request order), so the figures are those of scoring every split on its own.

#include <cstddef>
#include <memory>
#include <vector>

#include "fl/evaluator.h"
#include "runtime/run_data.h"

namespace lfl {

class TorchEvaluator : public Evaluator {
 public:
  explicit TorchEvaluator(std::shared_ptr<const RunData> data) : data_(std::move(data)) {}
  absl::StatusOr<EvalResult> Evaluate(const EvalRequest& request) override;

  // θg ⊙ m_k's accuracy on each requested client's test split, in request order (-1 for a
  // client without test images): the per-client figures whose mean Evaluate reports as
  // global_masked_accuracy. InvalidArgument for a client outside the partition, a test index
  // outside the test set, or masks.size() != clients.size().
  absl::StatusOr<std::vector<double>> TicketAccuracies(const EvalRequest& request);

 private:
  struct TicketScores {
    std::vector<double> accuracy;  // per request index; -1 without test images
    std::vector<size_t> order;     // request indices, group by group: the summation order
  };
  absl::StatusOr<TicketScores> ScoreTickets(const EvalRequest& request, NetImpl& net);

  std::shared_ptr<const RunData> data_;
};

// 1 where the net predicts the label, 0 elsewhere, for `indices` of `data` (empty = all).
absl::StatusOr<std::vector<uint8_t>> Correctness(NetImpl& net, const TensorData& data,
                                                 const std::vector<int64_t>& indices);

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_TORCH_EVALUATOR_H_
