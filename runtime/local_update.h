#ifndef LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_
#define LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_

// One client's work for one task (DESIGN §1, LotteryFL steps 3–5, with BSQ):
//   evaluate θg ⊙ m_k on the validation slice → if the gate allows, prune the
//   smallest |θg| per layer and rewind the survivors to θ0 ⊙ m_k → train
//   local_epochs with the mask (BSQ on the kept weights with --quant bsq) →
//   encode the update (the mask only when it changed) → decode it back, so the
//   model evaluated as "personalized" is exactly the one the server receives.
// Deterministic: training randomness is seeded by (seed, client, round, attempt).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "runtime/run_data.h"
#include "wire/model_payload.h"

namespace lfl {

struct LocalResult {
  std::string payload;          // the encoded update
  Mask mask;                    // the ticket after this task
  bool mask_changed = false;    // pruned this round (the payload carries the mask)
  int64_t num_samples = 0;
  double validation_accuracy = -1;
  double local_accuracy = -1;   // the sent model on the client's local test split
  int64_t test_count = 0;
  std::vector<int> layer_bits;  // per prunable layer, as sent
  double train_seconds = 0, encode_seconds = 0;
};

// Runs one task. `downlink` is the decoded θg ⊙ m_k; `mask_version` the version of its mask.
absl::StatusOr<LocalResult> RunLocalUpdate(const RunData& data, int64_t client_id, uint64_t round, uint32_t attempt,
                                           const DecodedModel& downlink, uint32_t mask_version);

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_
