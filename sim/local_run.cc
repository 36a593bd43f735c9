#include "sim/local_run.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <random>
#include <thread>
#include <utility>

#include "common/seed.h"
#include "runtime/local_update.h"
#include "strategy/strategy.h"
#include "server/coordinator/run_recorder.h"

namespace lfl {
namespace {

struct LocalClient {
  TensorSet values;         // the client's own model, θ0 before its first round
  double accuracy = -1;     // its last sent model on its test split
  absl::Status status;      // of its last step
};

double Mean(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x;
  return v.empty() ? -1 : sum / static_cast<double>(v.size());
}

// One client's step on its own model: the downlink is what it holds.
void TrainAlone(const RunData& data, int64_t id, uint64_t round, LocalClient* client, double* train_seconds) {
  DecodedModel own;
  own.values = client->values;
  own.mask = Mask::Full(own.values);
  StepContext ctx;
  const ClientSplit& split = data.partition.clients[id];
  ctx.data = ClientData{&data.train, &data.test, &split, &data.theta0};
  absl::StatusOr<ClientStepOptions> options = ClientStepOptionsFor(data.config, static_cast<uint64_t>(id), round, 0);
  if (!options.ok()) {
    client->status = options.status();
    return;
  }
  ctx.options = *std::move(options);
  ctx.options.train.noise_sigma = split.noise_sigma;
  ctx.round = round;
  ctx.client_id = static_cast<uint32_t>(id);
  absl::StatusOr<Net> net = NewNet(data);
  if (!net.ok()) {
    client->status = net.status();
    return;
  }
  absl::StatusOr<ClientStepResult> step = RunClientStep(ctx, ClientStepInput{&own, 0, {}}, net->get());
  if (!step.ok()) {
    client->status = step.status();
    return;
  }
  client->values = ToTensorSet(**net);  // Verify left the model as sent (here: fp32, exact) in the net
  client->accuracy = step->local_accuracy;
  *train_seconds = step->train_seconds;
}

}  // namespace


absl::Status RunLocalOnly(std::shared_ptr<const RunData> data, int parallel,
                          const std::function<void(const RoundMetrics&)>& on_round) {
  const RunConfig& cfg = data->config;
  absl::StatusOr<std::unique_ptr<RunRecorder>> recorder = RunRecorder::Open(cfg.out, 0);
  if (!recorder.ok()) return recorder.status();
  const auto start = std::chrono::steady_clock::now();
  std::vector<LocalClient> clients(static_cast<size_t>(cfg.clients));
  for (LocalClient& c : clients) c.values = data->theta0;
  RunTotals totals;
  for (uint64_t round = 1; round <= static_cast<uint64_t>(cfg.rounds); ++round) {
    const auto round_start = std::chrono::steady_clock::now();
    std::vector<int64_t> everyone(static_cast<size_t>(cfg.clients));
    for (int64_t id = 0; id < cfg.clients; ++id) everyone[static_cast<size_t>(id)] = id;
    // The federated runs' draw (strategy/strategy.h), so `local` trains the same clients.
    const std::vector<int64_t> sampled = SampleRound(cfg, std::move(everyone), round, 0);
    std::vector<double> train_seconds(sampled.size(), 0.0);
    std::atomic<size_t> next{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < std::max(1, parallel); ++w) {
      workers.emplace_back([&] {
        for (size_t i = next++; i < sampled.size(); i = next++) {
          TrainAlone(*data, sampled[i], round, &clients[sampled[i]], &train_seconds[i]);
        }
      });
    }
    for (std::thread& t : workers) t.join();
    for (int64_t id : sampled) {
      if (!clients[id].status.ok()) return clients[id].status;
    }
    RoundMetrics m;
    m.round = round;
    m.sampled = m.completed = static_cast<int64_t>(sampled.size());
    for (double s : train_seconds) m.train_seconds += s;
    m.evaluated = round % static_cast<uint64_t>(cfg.eval_every) == 0 || round >= static_cast<uint64_t>(cfg.rounds);
    if (m.evaluated) {
      std::vector<double> personalized;
      for (const LocalClient& c : clients) {
        if (c.accuracy >= 0) personalized.push_back(c.accuracy);
      }
      m.personalized_accuracy = Mean(personalized);
    }
    m.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - round_start).count();
    totals.rounds_completed = round;
    if (absl::Status s = (*recorder)->WriteRound(m); !s.ok()) return s;
    on_round(m);
  }
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<std::string> layers;
  for (const NamedTensor& t : data->theta0.tensors) {
    if (t.prunable) layers.push_back(t.name);
  }
  return (*recorder)->WriteSummary(cfg, totals, wall, layers);
}

}  // namespace lfl
