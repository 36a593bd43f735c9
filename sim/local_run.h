// `--algorithm local`: the baseline every personalized-FL paper reports. Each client trains
// alone on its own data through the same client step as LotteryFL and FedAvg
// (runtime/client_step.h, here with a full mask and fp32 values): no server, no aggregation,
// no bytes on any wire. A client keeps its own model across rounds, starting from θ0.
//
// Rounds sample clients exactly as RoundCoordinator does with every client live (the same
// (seed, round, attempt 0) draw), so each client trains as often as in the federated runs it is
// compared with. Writes metrics.jsonl and summary.json in the RunRecorder schema: personalized
// accuracy as the coordinator computes it (the mean over clients of their last sent model on
// their own test split), global and global-masked accuracy absent (null), bytes 0.
#ifndef LOTTERYFL_SIM_LOCAL_RUN_H_
#define LOTTERYFL_SIM_LOCAL_RUN_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "runtime/run_data.h"
#include "server/coordinator/round_coordinator.h"

namespace lfl {

// Runs data->config.rounds rounds, `parallel` clients at a time; `on_round` sees every row.
absl::Status RunLocalOnly(std::shared_ptr<const RunData> data, int parallel,
                          const std::function<void(const RoundMetrics&)>& on_round);

}  // namespace lfl

#endif  // LOTTERYFL_SIM_LOCAL_RUN_H_
