#include "runtime/client_step.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/seed.h"

namespace lfl {
namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The net's parameters, copied (the fp32 ticket the BSQ phase returns to).
std::vector<torch::Tensor> Snapshot(NetImpl& net) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (const torch::Tensor& p : net.parameters()) out.push_back(p.detach().clone());
  return out;
}

// The net's parameters times their masks (an undefined mask, or none at all: kept whole), copied:
// FedProx's anchor, zero where the ticket prunes.
std::vector<torch::Tensor> MaskedSnapshot(NetImpl& net, const std::vector<torch::Tensor>& masks) {
  std::vector<torch::Tensor> out = Snapshot(net);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < out.size() && i < masks.size(); ++i) {
    // A mask that does not fit is left for the Trainer's PlainSource to refuse.
    if (masks[i].defined() && masks[i].sizes() == out[i].sizes()) {
      out[i].mul_(masks[i].to(out[i].scalar_type()));
    }
  }
  return out;
}

void Restore(const std::vector<torch::Tensor>& snapshot, NetImpl& net) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> params = net.parameters();
  for (size_t i = 0; i < params.size(); ++i) params[i].copy_(snapshot[i]);
}

absl::StatusOr<double> TrainingAccuracy(const StepContext& ctx, NetImpl& net) {
  const ClientSplit& split = *ctx.data.split;
  return Trainer::Evaluate(net, *ctx.data.train, split.train, split.noise_sigma);
}

// Quantization-aware training of the net's prunable weights at fixed per-layer bits.
absl::StatusOr<std::vector<QuantizedWeight>> TrainFixedScheme(const StepContext& ctx,
                                                              const std::vector<torch::Tensor>& masks,
                                                              const std::vector<int>& bits, TrainOptions train,
                                                              NetImpl* net) {
  UniformQuantSource source(*net, masks, bits);
  absl::StatusOr<TrainStats> stats = Trainer::Train(*net, source, *ctx.data.train, ctx.data.split->train, train);
  if (!stats.ok()) return stats.status();
  return source.Export();
}

BsqOptions SearchOptions(const BsqPhaseOptions& phase, int64_t total_steps, const std::vector<int>& layer_bits) {
  BsqOptions o;
  o.alpha = phase.alpha;
  // Local training is short (LotteryFL: ~120 steps a round); keep a few re-quantizations in every
  // round unless the user set the interval. The fixed-scheme fine-tune runs in weight space after
  // the search, so the bit planes get none of their own.
  o.interval = phase.interval > 0 ? phase.interval : std::max<int64_t>(5, total_steps / 5);
  o.finetune_steps = 0;
  o.never_raise = true;
  o.initial_bits = std::clamp(phase.start_bits, 1, kMaxBsqBits);
  const int floor_bits = std::max(1, phase.min_bits);
  for (int b : layer_bits) o.layer_initial_bits.push_back(std::clamp(b, floor_bits, kMaxBsqBits));
  return o;
}

// The guard's fallback: the fp32 ticket fine-tuned at `bits`, one more bit per layer at a time
// while it stays below `floor` (8 bits at most: the last try is kept regardless).
absl::StatusOr<std::vector<QuantizedWeight>> RaiseUntilAccurate(const StepContext& ctx,
                                                                const std::vector<torch::Tensor>& masks,
                                                                const std::vector<torch::Tensor>& fp32,
                                                                std::vector<int> bits, double floor,
                                                                TrainOptions train, NetImpl* net) {
  for (;;) {
    Restore(fp32, *net);
    absl::StatusOr<std::vector<QuantizedWeight>> weights = TrainFixedScheme(ctx, masks, bits, train, net);
    if (!weights.ok()) return weights.status();
    if (std::all_of(bits.begin(), bits.end(), [](int b) { return b >= kMaxBsqBits; })) return weights;
    absl::StatusOr<double> accuracy = TrainingAccuracy(ctx, *net);
    if (!accuracy.ok()) return accuracy.status();
    if (*accuracy >= floor) return weights;
    for (int& b : bits) b = std::min(b + 1, kMaxBsqBits);
  }
}

std::vector<int> BitsOf(const std::vector<QuantizedWeight>& weights) {
  std::vector<int> bits;
  for (const QuantizedWeight& w : weights) bits.push_back(w.bits);
  return bits;
}

}  // namespace

absl::StatusOr<double> LocalTestAccuracy(const StepContext& ctx, NetImpl& net) {
  const ClientSplit& split = *ctx.data.split;
  return Trainer::Evaluate(net, *ctx.data.test, split.test, split.noise_sigma);
}

absl::StatusOr<GateOutcome> Gate(const StepContext& ctx, NetImpl& net, const Mask& mask) {
  const ClientSplit& split = *ctx.data.split;
  const std::vector<int64_t>& gate_set = split.validation.empty() ? split.train : split.validation;
  absl::StatusOr<double> accuracy = ctx.options.gate_on_test
                                        ? LocalTestAccuracy(ctx, net)
                                        : Trainer::Evaluate(net, *ctx.data.train, gate_set, split.noise_sigma);
  if (!accuracy.ok()) return accuracy.status();
  GateOutcome out;
  out.validation_accuracy = *accuracy;
  out.prune = DecidePrune(*accuracy, ctx.options.accuracy_threshold, mask.Density(), ctx.options.prune);
  return out;
}

absl::StatusOr<PruneOutcome> Prune(const StepContext& ctx, const TensorSet& downlink, const Mask& mask) {
  PruneOutcome out{mask, false};
  absl::StatusOr<bool> changed = PruneByMagnitude(downlink, ctx.options.prune, &out.mask);
  if (!changed.ok()) return changed.status();
  out.changed = *changed;
  return out;
}

absl::Status RewindNet(const StepContext& ctx, const Mask& mask, NetImpl* net) {
  absl::StatusOr<TensorSet> rewound = Rewind(*ctx.data.theta0, *ctx.data.theta0, mask);
  if (!rewound.ok()) return rewound.status();
  if (!ctx.options.rewind_biases) {
    const TensorSet held = ToTensorSet(*net);
    if (absl::Status s = held.CheckLayout(*rewound); !s.ok()) return s;
    for (size_t i = 0; i < held.size(); ++i) {
      if (!held.tensors[i].prunable) rewound->tensors[i].values = held.tensors[i].values;
    }
  }
  return LoadTensorSet(*rewound, net);
}

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

absl::StatusOr<TrainStats> TrainTicket(const StepContext& ctx, const std::vector<torch::Tensor>& masks,
                                       int64_t epochs, NetImpl* net) {
  PlainSource source(*net, masks);
  TrainOptions train = ctx.options.train;
  train.epochs = epochs;
  if (ctx.options.proximal_mu > 0) {
    train.proximal_mu = ctx.options.proximal_mu;
    train.proximal_anchor = MaskedSnapshot(*net, masks);
  }
  return Trainer::Train(*net, source, *ctx.data.train, ctx.data.split->train, train);
}

int64_t BsqFinetuneEpochs(int64_t epochs) { return epochs / 2; }

int64_t BsqFinetuneEpochs(const BsqPhaseOptions& options) {
  return options.finetune ? BsqFinetuneEpochs(options.epochs) : 0;
}

absl::StatusOr<BsqOutcome> BsqPhase(const StepContext& ctx, const std::vector<torch::Tensor>& masks,
                                    const std::vector<int>& layer_bits, NetImpl* net) {
  const BsqPhaseOptions& phase = ctx.options.bsq;
  const std::vector<torch::Tensor> fp32 = Snapshot(*net);
  absl::StatusOr<double> fp32_accuracy = TrainingAccuracy(ctx, *net);
  if (!fp32_accuracy.ok()) return fp32_accuracy.status();
  const int64_t search_epochs = phase.epochs - BsqFinetuneEpochs(phase.epochs);
  const int64_t finetune_epochs = BsqFinetuneEpochs(phase);
  TrainOptions train = ctx.options.train;
  const int64_t n = static_cast<int64_t>(ctx.data.split->train.size());
  BsqSource search(*net, masks,
                   SearchOptions(phase, search_epochs * ((n + train.batch_size - 1) / train.batch_size), layer_bits));
  BsqOutcome out;
  out.start_bits = search.Bits();
  train.epochs = search_epochs;
  train.seed = MixSeed(train.seed, 1);
  absl::StatusOr<TrainStats> stats = Trainer::Train(*net, search, *ctx.data.train, ctx.data.split->train, train);
  if (!stats.ok()) return stats.status();
  out.search_bits = search.Bits();
  absl::StatusOr<std::vector<QuantizedWeight>> weights = search.Export();
  train.epochs = finetune_epochs;
  train.seed = MixSeed(train.seed, 2);
  if (finetune_epochs > 0 || !phase.finetune) {  // without the fine-tune: 0 epochs, i.e. rounding
    Restore(fp32, *net);
    std::vector<int> chosen = out.search_bits;
    for (int& b : chosen) b = std::max(b, phase.min_bits);
    weights = TrainFixedScheme(ctx, masks, chosen, train, net);
  }
  if (!weights.ok()) return weights.status();
  absl::StatusOr<double> accuracy = TrainingAccuracy(ctx, *net);
  if (!accuracy.ok()) return accuracy.status();
  const double floor = *fp32_accuracy - phase.guard;
  if (*accuracy < floor) {
    out.precision_kept = true;
    train.epochs = phase.finetune ? std::max<int64_t>(1, finetune_epochs) : 0;
    weights = RaiseUntilAccurate(ctx, masks, fp32, out.start_bits, floor, train, net);
    if (!weights.ok()) return weights.status();
  }
  out.weights = *std::move(weights);
  out.bits = BitsOf(out.weights);
  return out;
}

absl::StatusOr<EncodedUpdate> Encode(const StepContext& ctx, NetImpl& net, const Mask& mask, uint32_t mask_version,
                                     const BsqOutcome* bsq) {
  const ClientStepOptions& o = ctx.options;
  TensorSet trained = ToTensorSet(net);
  if (o.lottery) mask.ApplyTo(&trained);
  EncodeSpec spec = o.uplink;
  EncodedUpdate out;
  if (o.lottery) {
    spec.mask = &mask;
    spec.send_mask = false;
    spec.mask_version = mask_version;
    out.mask_version = mask_version;
  }
  std::vector<std::optional<ExactLevels>> exact;
  if (bsq != nullptr) {
    exact.resize(trained.size());
    for (const QuantizedWeight& q : bsq->weights) exact[q.param_index] = ExactLevels{q.bits, q.scale, q.levels};
    spec.exact = &exact;
  }
  spec.round = ctx.round;
  spec.client_id = ctx.client_id;
  absl::StatusOr<std::string> payload = EncodeModel(trained, spec, &out.layer_bits);
  if (!payload.ok()) return payload.status();
  out.payload = *std::move(payload);
  return out;
}

absl::StatusOr<double> Verify(const StepContext& ctx, const EncodedUpdate& update, const Mask& mask, NetImpl* net) {
  const Mask* held = ctx.options.lottery ? &mask : nullptr;
  absl::StatusOr<DecodedModel> sent = DecodeModel(update.payload, *ctx.data.theta0, held, update.mask_version);
  if (!sent.ok()) return absl::InternalError(absl::StrCat("own update does not decode: ", sent.status().message()));
  if (absl::Status s = LoadTensorSet(sent->values, net); !s.ok()) return s;
  return LocalTestAccuracy(ctx, *net);
}

absl::StatusOr<ClientStepResult> RunClientStep(const StepContext& ctx, const ClientStepInput& in, NetImpl* net) {
  const ClientStepOptions& o = ctx.options;
  const DecodedModel& downlink = *in.downlink;
  if (absl::Status s = LoadTensorSet(downlink.values, net); !s.ok()) return s;
  ClientStepResult out;
  out.mask = o.lottery ? downlink.mask : Mask::Full(downlink.values);
  const auto t_train = std::chrono::steady_clock::now();
  if (o.evaluate_downlink) {
    absl::StatusOr<double> accuracy = LocalTestAccuracy(ctx, *net);
    if (!accuracy.ok()) return accuracy.status();
    out.global_masked_accuracy = *accuracy;
  }

  if (o.lottery) {
    absl::StatusOr<GateOutcome> gate = Gate(ctx, *net, out.mask);
    if (!gate.ok()) return gate.status();
    out.gate = *gate;
    if (gate->prune) {
      absl::StatusOr<PruneOutcome> pruned = Prune(ctx, downlink.values, out.mask);
      if (!pruned.ok()) return pruned.status();
      if (pruned->changed) {
        out.mask = std::move(pruned->mask);
        out.mask_changed = true;
        if (absl::Status s = RewindNet(ctx, out.mask, net); !s.ok()) return s;
      }
    }
  }

  const std::vector<torch::Tensor> masks =
      o.lottery ? TorchMasks(out.mask, downlink.values) : std::vector<torch::Tensor>(downlink.values.size());
  const bool bsq = o.bsq.epochs > 0;
  // The ticket's weights train local epochs in all: fp32, then (bsq) the fine-tune at the learned
  // bits; the precision search comes on top.
  const int64_t fp32_epochs = o.train.epochs - (bsq ? BsqFinetuneEpochs(o.bsq) : 0);
  if (fp32_epochs > 0) {
    absl::StatusOr<TrainStats> stats = TrainTicket(ctx, masks, fp32_epochs, net);
    if (!stats.ok()) return stats.status();
  }
  std::optional<BsqOutcome> quantized;
  if (bsq) {
    absl::StatusOr<BsqOutcome> phase = BsqPhase(ctx, masks, in.layer_bits, net);
    if (!phase.ok()) return phase.status();
    out.precision_kept = phase->precision_kept;
    quantized = *std::move(phase);
  }
  out.train_seconds = Since(t_train);

  const auto t_encode = std::chrono::steady_clock::now();
  const uint32_t version = out.mask_changed ? in.mask_version + 1 : in.mask_version;
  absl::StatusOr<EncodedUpdate> update = Encode(ctx, *net, out.mask, version, quantized ? &*quantized : nullptr);
  if (!update.ok()) return update.status();
  out.update = *std::move(update);
  out.encode_seconds = Since(t_encode);

  absl::StatusOr<double> accuracy = Verify(ctx, out.update, out.mask, net);
  if (!accuracy.ok()) return accuracy.status();
  out.local_accuracy = *accuracy;
  return out;
}

}  // namespace lfl
