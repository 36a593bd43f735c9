#ifndef LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_
#define LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_

// One client's work for one task: the glue between a run (RunData, RunConfig) and LotteryFL's
// client step, whose stages live in runtime/client_step.h (gate → prune → rewind → train →
// BSQ phase → encode → verify). Deterministic: training randomness is seeded by
// (seed, client, round, attempt).

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "runtime/client_step.h"
#include "runtime/run_data.h"
#include "wire/model_payload.h"

namespace lfl {

struct LocalResult {
  std::string payload;          // the encoded update
  Mask mask;                    // the ticket after this task
  bool mask_changed = false;    // pruned this round (the payload references the derived mask, version + 1)
  int64_t num_samples = 0;
  double validation_accuracy = -1;
  double local_accuracy = -1;   // the sent model on the client's local test split
  double global_masked_accuracy = -1;  // the downlink θg ⊙ m_k on the same split, before training (-1: not measured)
  int64_t test_count = 0;
  std::vector<int> layer_bits;  // per prunable layer, as sent
  bool precision_kept = false;  // bsq: the precision guard refused this round's lower bits
  double train_seconds = 0, encode_seconds = 0;
};

// The client step's options for a run configuration and one task (client, round, attempt).
// What the step does — train a ticket, how to prune, the proximal term — is the run's strategy's
// ConfigureFit (strategy/strategy.h; the server builds the same strategy from the same config);
// local, which has no federated strategy, trains each client's dense model alone.
// With client-data = local the step also measures the downlink on the local test split
// (LocalResult::global_masked_accuracy); otherwise the server does and the client does not.
// InvalidArgument when the algorithm has no strategy (and is not local).
absl::StatusOr<ClientStepOptions> ClientStepOptionsFor(const RunConfig& config, uint64_t client_id, uint64_t round,
                                                       uint32_t attempt);

// Runs one task. `downlink` is the decoded θg ⊙ m_k; `mask_version` the version of its mask;
// `layer_bits` the BSQ precision per prunable layer the server holds for this client (empty: the
// initial 8 bits; a layer that ended at 0 bits restarts at 1 so it can recover).
//
// A pruned ticket is not sent: pruning is a function of the downlink alone, so the server
// derives the same mask (server/round_coordinator.h, "Derived masks") and the update
// references it as version mask_version + 1.
absl::StatusOr<LocalResult> RunLocalUpdate(const RunData& data, int64_t client_id, uint64_t round, uint32_t attempt,
                                           const DecodedModel& downlink, uint32_t mask_version,
                                           const std::vector<int>& layer_bits = {});

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_
