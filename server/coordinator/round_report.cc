#include "server/coordinator/round_report.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

#include "server/coordinator/run_recorder.h"

namespace lfl {
namespace {

double Mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? -1 : s / static_cast<double>(v.size());
}

}  // namespace

bool EvaluateRound(Evaluator& evaluator, const EvalRequest& request, RoundMetrics* m) {
  const auto t0 = absl::Now();
  absl::StatusOr<EvalResult> r = evaluator.Evaluate(request);
  m->evaluate_seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  if (!r.ok()) {
    m->errors.push_back(absl::StrCat("evaluation failed: ", r.status().message()));
    return false;
  }
  m->global_accuracy = r->global_accuracy;
  // Without tickets to evaluate (client-data local) the clients' reports stand.
  if (!request.clients.empty()) m->global_masked_accuracy = r->global_masked_accuracy;
  return true;
}

void AddToTotals(const RoundMetrics& m, RunTotals* totals) {
  totals->rounds_completed = m.round;
  totals->uplink_bytes += m.uplink_bytes;
  totals->downlink_bytes += m.downlink_bytes;
  totals->dense_fp32_bytes += m.dense_fp32_bytes;
}

void FillRunFigures(const std::vector<Ticket>& tickets, const TensorSet& global, int64_t dense_bytes_per_model,
                    bool server_weights, RoundMetrics* m) {
  m->weights_source = server_weights ? "server" : "clients";
  m->dense_fp32_bytes = static_cast<uint64_t>(m->completed) * static_cast<uint64_t>(dense_bytes_per_model);
  std::vector<double> density;
  density.reserve(tickets.size());
  for (const Ticket& t : tickets) density.push_back(t.density);
  m->mean_density = Mean(density);
  std::vector<int64_t> sizes;
  for (const NamedTensor& t : global.tensors) {
    if (t.prunable) sizes.push_back(t.numel());
  }
  m->mean_bits = WeightedMeanBits(m->layer_bits, sizes);
}

std::optional<EvalRequest> PlanEvaluation(const Strategy& strategy, uint64_t round, const std::vector<Ticket>& tickets,
                                          const TensorSet& global, bool has_evaluator, RoundMetrics* m) {
  const RunConfig& cfg = strategy.config();
  m->evaluated = strategy.Evaluates(round);
  if (!m->evaluated) return std::nullopt;
  // Personalized (reported) and global-masked (evaluated) accuracy over the same sample. With
  // client-data local the server holds none of the clients' images: both figures are the
  // clients' own reports (the row says so), and only the global model is evaluated here.
  const bool clients_report = cfg.client_data == ClientDataSource::kLocal;
  const std::vector<int64_t> sample = strategy.EvalSample(round);
  std::vector<double> personalized, global_masked;
  for (int64_t id : sample) {
    const Ticket& t = tickets[static_cast<size_t>(id)];
    if (t.personalized_accuracy >= 0) personalized.push_back(t.personalized_accuracy);
    if (t.global_masked_accuracy >= 0) global_masked.push_back(t.global_masked_accuracy);
  }
  m->personalized_accuracy = Mean(personalized);
  m->eval_clients = static_cast<int64_t>(sample.size());
  if (clients_report) {
    m->accuracy_source = "clients";
    m->global_masked_accuracy = Mean(global_masked);
    m->eval_clients = static_cast<int64_t>(global_masked.size());
  }
  if (!has_evaluator) return std::nullopt;
  EvalRequest request;
  request.global = global;
  request.global_accuracy =
      round % static_cast<uint64_t>(cfg.eval_global_every) == 0 || round >= static_cast<uint64_t>(cfg.rounds);
  if (!clients_report) {
    request.clients = sample;
    request.masks.reserve(sample.size());
    for (int64_t id : sample) request.masks.push_back(tickets[static_cast<size_t>(id)].mask);
  }
  if (!request.global_accuracy && request.clients.empty()) return std::nullopt;
  return request;
}

}  // namespace lfl
