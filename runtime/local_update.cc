#include "runtime/local_update.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/seed.h"
#include "strategy/strategy.h"

namespace lfl {

namespace {

// What the run's strategy asks of a sampled client, and how its update travels.
struct ClientPolicy {
  FitInstructions fit;
  EncodeSpec uplink;
};

// local (lotteryfl-sim only) has no federated strategy: each client trains its own dense model
// (FitInstructions' defaults), and nothing travels, so nothing is quantized.
absl::StatusOr<ClientPolicy> PolicyFor(const RunConfig& cfg) {
  if (cfg.algorithm == Algorithm::kLocal) return ClientPolicy{};
  absl::StatusOr<std::unique_ptr<Strategy>> strategy = MakeStrategy(cfg);
  if (!strategy.ok()) return strategy.status();
  return ClientPolicy{(*strategy)->ConfigureFit(), (*strategy)->UplinkEncoding()};
}

}  // namespace

absl::StatusOr<ClientStepOptions> ClientStepOptionsFor(const RunConfig& cfg, uint64_t client_id, uint64_t round,
                                                       uint32_t attempt) {
  absl::StatusOr<ClientPolicy> policy = PolicyFor(cfg);
  if (!policy.ok()) return policy.status();
  ClientStepOptions o;
  o.lottery = policy->fit.train_ticket;
  o.prune = policy->fit.prune;
  o.proximal_mu = policy->fit.proximal_mu;
  o.accuracy_threshold = cfg.accuracy_threshold;
  o.gate_on_test = cfg.gate_split == GateSplit::kTest;
  o.rewind_biases = cfg.rewind_biases;
  o.train.epochs = cfg.local_epochs;
  o.train.batch_size = cfg.batch_size;
  o.train.lr = cfg.lr;
  o.train.momentum = cfg.momentum;
  o.train.seed = MixSeed(cfg.seed, client_id, round, attempt);
  o.uplink = policy->uplink;
  // The server cannot evaluate a ticket on data it does not hold: the client reports it.
  o.evaluate_downlink = cfg.client_data == ClientDataSource::kLocal;
  if (cfg.quant == QuantMode::kBsq && cfg.algorithm != Algorithm::kLocal) {
    // With BSQ the ticket first trains in fp32 (the BSQ paper also starts from a trained model:
    // bit-plane SGD moves weights too slowly to train from a rewound θ0 within one round), then
    // runs the BSQ phase of bsq_fraction · local_epochs: precision search, then fine-tuning.
    o.bsq.epochs = std::clamp<int64_t>(std::llround(cfg.bsq_fraction * static_cast<double>(cfg.local_epochs)), 1,
                                       cfg.local_epochs);
    o.bsq.alpha = cfg.bsq_alpha;
    o.bsq.interval = cfg.bsq_interval;
    o.bsq.start_bits = static_cast<int>(cfg.bsq_start_bits);
    o.bsq.min_bits = static_cast<int>(cfg.bsq_min_bits);
    o.bsq.guard = cfg.bsq_guard;
    o.bsq.finetune = cfg.bsq_finetune;
  }
  return o;
}

absl::StatusOr<LocalResult> RunLocalUpdate(const RunData& data, int64_t client_id, uint64_t round, uint32_t attempt,
                                           const DecodedModel& downlink, uint32_t mask_version,
                                           const std::vector<int>& layer_bits) {
  const RunConfig& cfg = data.config;
  if (client_id < 0 || client_id >= static_cast<int64_t>(data.partition.clients.size())) {
    return absl::InvalidArgumentError(absl::StrCat("client ", client_id, " is not in the partition"));
  }
  const ClientSplit& split = data.partition.clients[client_id];
  StepContext ctx;
  ctx.data = ClientData{&data.train, &data.test, &split, &data.theta0};
  absl::StatusOr<ClientStepOptions> options =
      ClientStepOptionsFor(cfg, static_cast<uint64_t>(client_id), round, attempt);
  if (!options.ok()) return options.status();
  ctx.options = *std::move(options);
  ctx.options.train.noise_sigma = split.noise_sigma;
  ctx.round = round;
  ctx.client_id = static_cast<uint32_t>(client_id);
  absl::StatusOr<Net> net = NewNet(data);
  if (!net.ok()) return net.status();
  absl::StatusOr<ClientStepResult> step =
      RunClientStep(ctx, ClientStepInput{&downlink, mask_version, layer_bits}, net->get());
  if (!step.ok()) return step.status();
  LocalResult out;
  out.step = *std::move(step);
  out.num_samples = static_cast<int64_t>(split.train.size());
  out.test_count = static_cast<int64_t>(split.test.size());
  return out;
}

}  // namespace lfl
