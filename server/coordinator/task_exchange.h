// TaskExchange: what travels for one task, checked where it crosses — the downlink out
// (θg ⊙ m_k encoded by the strategy's rule, and the mask the client will derive from it) and
// the update in (size, report, decoding against the ticket, the strategy's rules, the norm
// bound, the aggregation weight). Pure functions of their inputs: the coordinator calls them
// outside its lock with a snapshot of what they need. Thread-safe.
#ifndef LOTTERYFL_SERVER_TASK_EXCHANGE_H_
#define LOTTERYFL_SERVER_TASK_EXCHANGE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"
#include "server/coordinator/round_metrics.h"
#include "server/coordinator/ticket.h"
#include "strategy/strategy.h"
#include "wire/model_payload.h"

namespace lfl {

// The server-side limits an update is held to (CoordinatorOptions).
struct UpdateLimits {
  // What the server computed from the partition it assigned (index = client id): training
  // images (the weight, whatever a client reports) and local test images (a reported
  // test_count must equal it). Empty: reported counts are clamped to [1, max_reported_samples].
  std::vector<int64_t> train_counts;
  std::vector<int64_t> test_counts;
  int64_t max_reported_samples = 100000;
  double max_update_norm = 1000;  // L2 distance to the served model; <= 0: no bound
  uint64_t max_update_bytes = 0;  // the largest honest encoding of the model
  double round_timeout = 120;     // reported timings outside [0, this] are zeroed
};

// A task's downlink as the coordinator hands it out.
struct DownlinkPayload {
  std::string bytes;
  uint32_t mask_version = 0;    // the server's version of the client's ticket
  std::vector<int> layer_bits;  // the client's BSQ precision per prunable layer (empty: initial)
};

struct EncodedDownlink {
  std::string bytes;
  std::optional<Mask> derived;  // the mask the client gets by pruning what it decodes (if it prunes)
};

// An update that passed every check, ready to fold in.
struct CheckedUpdate {
  DecodedModel decoded;
  bool new_mask = false;  // the ticket changes: the client sent or referenced a new mask
  double norm = 0;        // L2 distance to the served model over the kept elements
  int64_t weight = 1;
  bool clamped = false;   // the reported sample count was clamped
  UpdateReport report;    // as reported, with timings that are not finite or outside
  int64_t timings_zeroed = 0;  // [0, round_timeout] zeroed (this many)
};

class TaskExchange {
 public:
  TaskExchange(const Strategy& strategy, UpdateLimits limits) : strategy_(strategy), limits_(std::move(limits)) {}

  // The downlink of `ticket` for model `global` (masked by the ticket when the strategy uses
  // masks); the mask travels unless the client holds this version with this hash.
  absl::StatusOr<EncodedDownlink> EncodeDownlink(TensorSet global, const Ticket& ticket, uint64_t round,
                                                 int64_t client_id, uint32_t held_mask_version,
                                                 uint64_t held_mask_hash) const;

  // Checks `payload` from `report`'s client against the model it was served and its ticket
  // (`derived`: the mask the server derived for this task, which the client may reference as
  // version+1). On a refusal *cause names the rule (payload_size, report, decode, layout,
  // quant_mode, mask_outside_ticket, mask_density, norm).
  absl::StatusOr<CheckedUpdate> Check(const UpdateReport& report, std::string_view payload, const TensorSet& served,
                                      const Mask& held, uint32_t held_version, const Mask* derived,
                                      std::string* cause) const;
  // A declared upload size is in (0, max_update_bytes]; ResourceExhausted otherwise.
  absl::Status CheckDeclaredSize(uint64_t bytes) const;
  const UpdateLimits& limits() const { return limits_; }

 private:
  int64_t SanitizeTimings(UpdateReport* report) const;
  absl::Status CheckReport(const UpdateReport& report) const;
  int64_t Weight(const UpdateReport& report, bool* clamped) const;

  const Strategy& strategy_;
  const UpdateLimits limits_;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_TASK_EXCHANGE_H_
