#ifndef LOTTERYFL_FL_EVALUATOR_H_
#define LOTTERYFL_FL_EVALUATOR_H_

// The evaluator interface between the coordinator (which decides what an evaluated round
// measures) and whoever can run a model (runtime/ supplies a LibTorch one). Torch-free; it
// lives in fl/ so that neither side depends on the other.

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl {

struct EvalResult {
  double global_accuracy = -1;         // global model on the dataset's whole test set (-1: not asked)
  double global_masked_accuracy = -1;  // θg ⊙ m_k on client k's local test split, mean over `clients`
};

// What one evaluated round asks for: the global model on the whole test set (when
// `global_accuracy`), and the tickets of `clients` (ids, ascending; masks[i] is clients[i]'s).
struct EvalRequest {
  TensorSet global;
  bool global_accuracy = true;
  std::vector<int64_t> clients;
  std::vector<Mask> masks;
};

// Evaluates the global model (the server binary supplies a LibTorch one). Called from one
// thread at a time (the server's bookkeeping worker).
class Evaluator {
 public:
  virtual ~Evaluator() = default;
  virtual absl::StatusOr<EvalResult> Evaluate(const EvalRequest& request) = 0;
};

}  // namespace lfl

#endif  // LOTTERYFL_FL_EVALUATOR_H_
