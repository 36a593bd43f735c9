// The figures of a closed round that come from the whole run rather than from its updates
// (OpenRound::Commit fills those): the tickets' mean density and the row's mean bits, and
// what evaluating the round takes — the strategy's evaluation sample of tickets, the figures
// the clients reported for them, and the request for the server's evaluator.
#ifndef LOTTERYFL_SERVER_ROUND_REPORT_H_
#define LOTTERYFL_SERVER_ROUND_REPORT_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "fl/evaluator.h"
#include "fl/tensor_set.h"
#include "server/coordinator/checkpoint_log.h"
#include "server/coordinator/round_metrics.h"
#include "server/coordinator/ticket.h"
#include "strategy/strategy.h"

namespace lfl {

// mean_density over every ticket; mean_bits, the row's layer_bits weighted by the prunable
// layers' sizes in `global`; the dense fp32 bytes the completed updates stand for; where the
// weights came from (the server's partition, or the clients' reports).
void FillRunFigures(const std::vector<Ticket>& tickets, const TensorSet& global, int64_t dense_bytes_per_model,
                    bool server_weights, RoundMetrics* m);

// The deferred work of an aggregated round (RoundEvent::work): its evaluation, then the
// checkpoint of the state it left.
struct RoundWork {
  std::optional<EvalRequest> eval;
  std::optional<CheckpointWrite> checkpoint;
};

// Runs the evaluation `request` asks for and puts its figures (and seconds) in `m`; false, with
// the failure in m->errors, when the evaluator fails.
bool EvaluateRound(Evaluator& evaluator, const EvalRequest& request, RoundMetrics* m);

// Adds a completed round's bytes to the run's totals.
void AddToTotals(const RoundMetrics& m, RunTotals* totals);

// Sets m->evaluated and, for an evaluated round, the reported figures over the strategy's
// evaluation sample (personalized accuracy; with client-data local, the clients' global-masked
// reports too, and the row says "clients"). Returns what the server's evaluator must compute
// (nullopt: nothing, or no evaluator).
std::optional<EvalRequest> PlanEvaluation(const Strategy& strategy, uint64_t round, const std::vector<Ticket>& tickets,
                                          const TensorSet& global, bool has_evaluator, RoundMetrics* m);

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_ROUND_REPORT_H_
