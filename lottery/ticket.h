// Per-client lottery-ticket state and the LotteryFL pruning gate.
#ifndef LFL_LOTTERY_TICKET_H_
#define LFL_LOTTERY_TICKET_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "fl/tensor_set.h"
#include "lottery/mask.h"
#include "lottery/prune.h"

namespace lfl {

struct TicketState {
  Mask mask;
  double density = 1.0;       // mask.Density(), cached
  uint32_t mask_version = 0;  // bumps whenever the mask changes; the wire codec references
                              // masks by version
  int64_t prune_steps = 0;    // pruning steps that changed the mask
};

// A fresh ticket: full mask over `layout`, density 1, version 0, no prune steps.
TicketState NewTicket(const TensorSet& layout);

struct GateDecision {
  bool prune = false;
  std::string reason;  // human-readable, for logs and metrics
};

// LotteryFL's accuracy gate: prune when validation_accuracy >= accuracy_threshold and the
// ticket's density is still above options.target_density.
GateDecision DecidePrune(double validation_accuracy, double accuracy_threshold,
                         const TicketState& ticket, const PruneOptions& options);

// One pruning step on the ticket: PruneByMagnitude on its mask and, when that changed the mask,
// refreshes density, bumps mask_version and prune_steps. Returns whether the mask changed;
// the ticket is unchanged on error.
absl::StatusOr<bool> PruneTicket(const TensorSet& weights, const PruneOptions& options,
                                 TicketState* ticket);

// Checkpoint format (checksummed, versioned envelope). The density is recomputed from the mask
// on load rather than trusted; corrupt or truncated input is refused with a status.
std::string SerializeTicket(const TicketState& ticket);
absl::StatusOr<TicketState> DeserializeTicket(std::string_view bytes);

}  // namespace lfl

#endif  // LFL_LOTTERY_TICKET_H_
