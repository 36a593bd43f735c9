#ifndef LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_
#define LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_

// One client's work for one task: the glue between a run (RunData, RunConfig) and LotteryFL's
// client step, whose stages live in runtime/client_step.h (gate → prune → rewind → train →
// BSQ phase → encode → verify). Deterministic: training randomness is seeded by
// (seed, client, round, attempt).

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/client_step.h"
#include "runtime/run_data.h"
#include "wire/model_payload.h"

namespace lfl {

// One task's outcome: the client step's, as it returned it, and the sizes of the client's split
// that the update header reports with it.
struct LocalResult {
  // The update as sent (payload, bits, mask version), the ticket after this task (mask_changed:
  // pruned this round, the payload references the derived mask, version + 1), the gate's
  // validation accuracy, the accuracies on the local test split and the timings.
  ClientStepResult step;
  int64_t num_samples = 0;  // the client's training images (its update's aggregation weight)
  int64_t test_count = 0;   // the images of its local test split (what the accuracies are measured on)
};

// The client step's options for a run configuration and one task (client, round, attempt).
// What the step does — train a ticket, how to prune, the proximal term — is the run's strategy's
// ConfigureFit (strategy/strategy.h; the server builds the same strategy from the same config),
// and the update is encoded as its UplinkEncoding says; local, which has no federated strategy,
// trains each client's dense model alone, in fp32 (nothing travels: no BSQ phase, no quantizing).
// With client-data = local the step also measures the downlink on the local test split
// (LocalResult::step.global_masked_accuracy); otherwise the server does and the client does not.
// InvalidArgument when the algorithm has no strategy (and is not local).
absl::StatusOr<ClientStepOptions> ClientStepOptionsFor(const RunConfig& config, uint64_t client_id, uint64_t round,
                                                       uint32_t attempt);

// Runs one task. `downlink` is the decoded θg ⊙ m_k; `mask_version` the version of its mask;
// `layer_bits` the BSQ precision per prunable layer the server holds for this client (empty: the
// initial 8 bits; a layer that ended at 0 bits restarts at 1 so it can recover).
//
// A pruned ticket is not sent: pruning is a function of the downlink alone, so the server
// derives the same mask (server/coordinator/round_coordinator.h, "Derived masks") and the update
// references it as version mask_version + 1.
absl::StatusOr<LocalResult> RunLocalUpdate(const RunData& data, int64_t client_id, uint64_t round, uint32_t attempt,
                                           const DecodedModel& downlink, uint32_t mask_version,
                                           const std::vector<int>& layer_bits = {});

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_LOCAL_UPDATE_H_
