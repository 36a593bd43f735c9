#include "runtime/local_update.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "lottery/prune.h"
#include "lottery/ticket.h"
#include "models/trainer.h"
#include "quant/bsq/bsq.h"
#include "common/seed.h"

namespace lfl {
namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Float 0/1 masks per parameter (undefined for never-pruned tensors).
std::vector<torch::Tensor> TorchMasks(const Mask& mask, const TensorSet& layout) {
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < layout.size(); ++i) {
    if (!layout.tensors[i].prunable) {
      out.emplace_back();
      continue;
    }
    std::vector<float> m = mask.AsFloat(i);
    out.push_back(torch::from_blob(m.data(), layout.tensors[i].shape, torch::kFloat).clone());
  }
  return out;
}

BsqOptions BsqOptionsFor(const RunConfig& config, int64_t total_steps) {
  BsqOptions o;
  o.alpha = config.bsq_alpha;
  // Local training is short (LotteryFL: ~120 steps a round); keep a few re-quantizations in every
  // round unless the user set the interval. The fixed-scheme fine-tune runs in weight space after
  // the search (TrainBitPlanes), so the bit planes get none of their own.
  o.interval = config.bsq_interval > 0 ? config.bsq_interval : std::max<int64_t>(5, total_steps / 5);
  o.finetune_steps = 0;
  return o;
}

// Quantization-aware training of the net's prunable weights at fixed per-layer bits.
absl::StatusOr<std::vector<QuantizedWeight>> TrainFixedScheme(NetImpl& net, const RunData& data,
                                                              const ClientSplit& split,
                                                              const std::vector<torch::Tensor>& masks,
                                                              const std::vector<int>& bits, TrainOptions train) {
  UniformQuantSource source(net, masks, bits);
  absl::StatusOr<TrainStats> stats = Trainer::Train(net, source, data.train, split.train, train);
  if (!stats.ok()) return stats.status();
  return source.Export();
}

// Of a BSQ phase of `epochs`, the epochs of fine-tuning at the learned bits (the rest is the search).
int64_t BsqFinetuneEpochs(int64_t epochs) { return epochs / 2; }

// The BSQ phase, starting from the fp32-trained ticket in `net`. The search — bit-plane training
// with the group lasso, starting from the bits the client reached before (`layer_bits`; empty: 8)
// — picks each layer's precision. It runs on the ticket as extra epochs and its weights are then
// dropped: at the model's lr a bit plane moves a weight by only s·2^b/(2^n−1) per unit, so the
// search trains the weights far less than fp32 epochs would (on other seeds that cost up to 7
// points). The fp32 ticket is then fine-tuned at the chosen fixed scheme, quantization-aware in
// weight space (BsqFinetuneEpochs). Without fine-tune epochs the search's own weights are sent.
// The precision guard: a round may lower the precision only as far as it keeps the training
// accuracy of the fp32 ticket within cfg.bsq_guard; otherwise the fp32 ticket is fine-tuned at the
// bits the round started from, raised one bit per layer at a time until it passes
// (*precision_kept = true).
// Leaves the exact dequantized weights in `net`.
absl::StatusOr<std::vector<QuantizedWeight>> TrainBitPlanes(NetImpl& net, const RunData& data,
                                                            const ClientSplit& split,
                                                            const std::vector<torch::Tensor>& masks,
                                                            const RunConfig& cfg, TrainOptions train,
                                                            const std::vector<int>& layer_bits, int64_t epochs,
                                                            bool* precision_kept) {
  const TensorSet fp32 = ToTensorSet(net);
  absl::StatusOr<double> fp32_accuracy = Trainer::Evaluate(net, data.train, split.train, split.noise_sigma);
  if (!fp32_accuracy.ok()) return fp32_accuracy.status();
  const int64_t finetune_epochs = BsqFinetuneEpochs(epochs);
  const int64_t search_epochs = epochs - finetune_epochs;
  const int64_t n = static_cast<int64_t>(split.train.size());
  BsqOptions bsq = BsqOptionsFor(cfg, search_epochs * ((n + train.batch_size - 1) / train.batch_size));
  const int floor_bits = std::max(1, static_cast<int>(cfg.bsq_min_bits));
  for (int b : layer_bits) bsq.layer_initial_bits.push_back(std::clamp(b, floor_bits, kMaxBsqBits));
  BsqSource search(net, masks, bsq);
  train.epochs = search_epochs;
  train.seed = MixSeed(train.seed, 1);
  absl::StatusOr<TrainStats> stats = Trainer::Train(net, search, data.train, split.train, train);
  if (!stats.ok()) return stats.status();
  absl::StatusOr<std::vector<QuantizedWeight>> weights = search.Export();
  train.epochs = finetune_epochs;
  train.seed = MixSeed(train.seed, 2);
  if (finetune_epochs > 0) {
    if (absl::Status s = LoadTensorSet(fp32, &net); !s.ok()) return s;
    std::vector<int> chosen = search.Bits();
    for (int& b : chosen) b = std::max(b, static_cast<int>(cfg.bsq_min_bits));
    weights = TrainFixedScheme(net, data, split, masks, chosen, train);
  }
  if (!weights.ok()) return weights.status();
  absl::StatusOr<double> accuracy = Trainer::Evaluate(net, data.train, split.train, split.noise_sigma);
  if (!accuracy.ok()) return accuracy.status();
  const double floor = *fp32_accuracy - cfg.bsq_guard;
  if (*accuracy >= floor) return weights;

  // Refused: fine-tune the fp32 ticket at the bits the round started from, one more bit per layer
  // at a time while that still falls short (8 bits at most: the last try is kept regardless).
  *precision_kept = true;
  std::vector<int> bits = bsq.layer_initial_bits;
  bits.resize(search.Bits().size(), kMaxBsqBits);
  train.epochs = std::max<int64_t>(1, finetune_epochs);
  for (;;) {
    if (absl::Status s = LoadTensorSet(fp32, &net); !s.ok()) return s;
    weights = TrainFixedScheme(net, data, split, masks, bits, train);
    if (!weights.ok()) return weights.status();
    const bool at_most = std::all_of(bits.begin(), bits.end(), [](int b) { return b >= kMaxBsqBits; });
    if (at_most) return weights;
    accuracy = Trainer::Evaluate(net, data.train, split.train, split.noise_sigma);
    if (!accuracy.ok()) return accuracy.status();
    if (*accuracy >= floor) return weights;
    for (int& b : bits) b = std::min(b + 1, kMaxBsqBits);
  }
}

}  // namespace

absl::StatusOr<LocalResult> RunLocalUpdate(const RunData& data, int64_t client_id, uint64_t round, uint32_t attempt,
                                           const DecodedModel& downlink, uint32_t mask_version,
                                           const std::vector<int>& layer_bits) {
  const RunConfig& cfg = data.config;
  if (client_id < 0 || client_id >= static_cast<int64_t>(data.partition.clients.size())) {
    return absl::InvalidArgumentError(absl::StrCat("client ", client_id, " is not in the partition"));
  }
  const ClientSplit& split = data.partition.clients[client_id];
  absl::StatusOr<Net> net_or = NewNet(data);
  if (!net_or.ok()) return net_or.status();
  NetImpl& net = **net_or;
  if (absl::Status s = LoadTensorSet(downlink.values, &net); !s.ok()) return s;

  LocalResult out;
  out.num_samples = static_cast<int64_t>(split.train.size());
  const bool lottery = cfg.algorithm == "lotteryfl";
  out.mask = lottery ? downlink.mask : Mask::Full(downlink.values);
  const auto t_train = std::chrono::steady_clock::now();

  if (lottery) {
    const std::vector<int64_t>& gate_set = split.validation.empty() ? split.train : split.validation;
    absl::StatusOr<double> val = Trainer::Evaluate(net, data.train, gate_set, split.noise_sigma);
    if (!val.ok()) return val.status();
    out.validation_accuracy = *val;
    TicketState ticket;
    ticket.mask = out.mask;
    ticket.density = out.mask.Density();
    ticket.mask_version = mask_version;
    PruneOptions prune{cfg.prune_rate, cfg.EffectiveTargetDensity()};
    if (DecidePrune(*val, cfg.accuracy_threshold, ticket, prune).prune) {
      absl::StatusOr<bool> changed = PruneByMagnitude(downlink.values, prune, &out.mask);
      if (!changed.ok()) return changed.status();
      if (*changed) {
        absl::StatusOr<TensorSet> rewound = Rewind(data.theta0, downlink.values, out.mask);
        if (!rewound.ok()) return rewound.status();
        if (absl::Status s = LoadTensorSet(*rewound, &net); !s.ok()) return s;
        out.mask_changed = true;
      }
    }
  }

  TrainOptions train;
  train.epochs = cfg.local_epochs;
  train.batch_size = cfg.batch_size;
  train.lr = cfg.lr;
  train.momentum = cfg.momentum;
  train.seed = MixSeed(cfg.seed, static_cast<uint64_t>(client_id), round, attempt);
  train.noise_sigma = split.noise_sigma;
  const TensorSet layout = ToTensorSet(net);
  std::vector<torch::Tensor> masks = lottery ? TorchMasks(out.mask, layout) : std::vector<torch::Tensor>(layout.size());
  absl::StatusOr<QuantMode> mode = ParseQuantMode(cfg.quant);
  if (!mode.ok()) return mode.status();

  std::vector<std::optional<ExactLevels>> exact;
  // With BSQ the ticket first trains in fp32 (the BSQ paper also starts from a trained model:
  // bit-plane SGD moves weights too slowly to train from a rewound θ0 within one round), then runs
  // the BSQ phase of bsq_fraction · local_epochs: precision search, then fine-tuning at those bits.
  const int64_t bsq_epochs =
      *mode == QuantMode::kBsq
          ? std::clamp<int64_t>(std::llround(cfg.bsq_fraction * static_cast<double>(cfg.local_epochs)), 1,
                                cfg.local_epochs)
          : 0;
  // The ticket's weights train for local_epochs in all: fp32, then (bsq) the fine-tune at the learned
  // bits. The precision search comes on top, its weights dropped (TrainBitPlanes).
  const int64_t fp32_epochs = cfg.local_epochs - BsqFinetuneEpochs(bsq_epochs);
  if (fp32_epochs > 0) {
    PlainSource source(net, masks);
    train.epochs = fp32_epochs;
    absl::StatusOr<TrainStats> stats = Trainer::Train(net, source, data.train, split.train, train);
    if (!stats.ok()) return stats.status();
  }
  if (bsq_epochs > 0) {
    absl::StatusOr<std::vector<QuantizedWeight>> weights =
        TrainBitPlanes(net, data, split, masks, cfg, train, layer_bits, bsq_epochs, &out.precision_kept);
    if (!weights.ok()) return weights.status();
    exact.resize(layout.size());
    for (QuantizedWeight& q : *weights) {
      exact[q.param_index] = ExactLevels{q.bits, q.scale, std::move(q.levels)};
    }
  }
  out.train_seconds = Since(t_train);

  const auto t_encode = std::chrono::steady_clock::now();
  TensorSet trained = ToTensorSet(net);
  if (lottery) out.mask.ApplyTo(&trained);
  EncodeSpec spec;
  if (*mode != QuantMode::kNone) {
    spec.weight_bits = *mode == QuantMode::kBsq ? 8 : UniformBits(*mode);
    spec.other_bits = 8;
  }
  if (lottery) {
    spec.mask = &out.mask;
    spec.send_mask = false;
    spec.mask_version = out.mask_changed ? mask_version + 1 : mask_version;
  }
  if (!exact.empty()) spec.exact = &exact;
  spec.round = round;
  spec.client_id = static_cast<uint32_t>(client_id);
  absl::StatusOr<std::string> payload = EncodeModel(trained, spec, &out.layer_bits);
  if (!payload.ok()) return payload.status();
  out.payload = *std::move(payload);
  out.encode_seconds = Since(t_encode);

  // The personalized model is exactly what the server decodes.
  const Mask* held = lottery ? &out.mask : nullptr;
  absl::StatusOr<DecodedModel> sent = DecodeModel(out.payload, layout, held, spec.mask_version);
  if (!sent.ok()) return absl::InternalError(absl::StrCat("own update does not decode: ", sent.status().message()));
  if (absl::Status s = LoadTensorSet(sent->values, &net); !s.ok()) return s;
  absl::StatusOr<double> acc = Trainer::Evaluate(net, data.test, split.test, split.noise_sigma);
  if (!acc.ok()) return acc.status();
  out.local_accuracy = *acc;
  out.test_count = static_cast<int64_t>(split.test.size());
  return out;
}

}  // namespace lfl
