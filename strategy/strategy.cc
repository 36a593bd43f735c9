#include "strategy/strategy.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sampler.h"
#include "common/seed.h"

namespace lfl {
namespace {

// `want` of `ids` drawn by the project's portable, unbiased sampler seeded by `seed`, sorted.
std::vector<int64_t> SeededSample(std::vector<int64_t> ids, size_t want, uint64_t seed) {
  return Sampler(seed).Choose(std::move(ids), want);
}

// The --aggregator options of the run.
AggregatorOptions AggregatorOptionsFor(const RunConfig& config) {
  AggregatorOptions options;
  options.trim_fraction = config.aggregator_trim;
  options.min_keepers = config.aggregator_min_keepers;
  return options;
}

class FedAvgStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string_view name() const override { return "fedavg"; }
  bool uses_masks() const override { return false; }
};

class LotteryFlStrategy : public Strategy {
 public:
  using Strategy::Strategy;
  std::string_view name() const override { return "lotteryfl"; }
  bool uses_masks() const override { return true; }
  FitInstructions ConfigureFit() const override {
    return FitInstructions{true, PruneOptions{config_.prune_rate, config_.EffectiveTargetDensity()}};
  }
  bool DerivesMask(const Mask& held) const override {
    return held.Density() > config_.EffectiveTargetDensity();
  }
  // Pruning is a deterministic function of the downlink the client decodes, so the server
  // computes the mask the client will get and holds it as the ticket's next version.
  absl::StatusOr<std::optional<Mask>> DeriveMask(const TensorSet& seen, const Mask& held) const override {
    const FitInstructions fit = ConfigureFit();
    if (!DerivesMask(held)) return std::optional<Mask>();
    Mask pruned = held;
    absl::StatusOr<bool> changed = PruneByMagnitude(seen, fit.prune, &pruned);
    if (!changed.ok()) return changed.status();
    if (!*changed) return std::optional<Mask>();
    return std::optional<Mask>(std::move(pruned));
  }
};

// LotteryFL's tickets, trained locally with FedProx's proximal term. The server side (masks,
// derived masks, update rules) is LotteryFL's: the term changes only what clients train.
class FedProxStrategy : public LotteryFlStrategy {
 public:
  using LotteryFlStrategy::LotteryFlStrategy;
  std::string_view name() const override { return "fedprox"; }
  FitInstructions ConfigureFit() const override {
    FitInstructions fit = LotteryFlStrategy::ConfigureFit();
    fit.proximal_mu = config_.proximal_mu;
    return fit;
  }
};

}  // namespace

Strategy::Strategy(RunConfig config) : config_(std::move(config)) {}

std::vector<int64_t> SampleRound(const RunConfig& config, std::vector<int64_t> live, uint64_t round,
                                 uint32_t attempt) {
  const size_t want = static_cast<size_t>(std::max<int64_t>(
      1, static_cast<int64_t>(std::floor(config.fraction * static_cast<double>(config.clients)))));
  return SeededSample(std::move(live), want, MixSeed(config.seed, round, attempt));
}

std::vector<int64_t> Strategy::SampleClients(std::vector<int64_t> live, uint64_t round, uint32_t attempt) const {
  return SampleRound(config_, std::move(live), round, attempt);
}

FitInstructions Strategy::ConfigureFit() const { return FitInstructions{}; }

EncodeSpec Strategy::DownlinkEncoding() const {
  EncodeSpec spec;
  if (config_.quant == QuantMode::kNone) return spec;
  spec.weight_bits =
      config_.quant == QuantMode::kBsq ? static_cast<int>(config_.downlink_bits) : UniformBits(config_.quant);
  spec.other_bits = 8;
  return spec;
}

EncodeSpec Strategy::UplinkEncoding() const {
  EncodeSpec spec;
  if (config_.quant == QuantMode::kNone) return spec;
  spec.weight_bits = config_.quant == QuantMode::kBsq ? codec::kMaxQuantBits : UniformBits(config_.quant);
  spec.other_bits = 8;
  return spec;
}

bool Strategy::DerivesMask(const Mask&) const { return false; }

absl::StatusOr<std::optional<Mask>> Strategy::DeriveMask(const TensorSet&, const Mask&) const {
  return std::optional<Mask>();
}

absl::Status Strategy::CheckUpdate(const DecodedModel& update, const TensorSet& served, const Mask& held,
                                   std::string* cause) const {
  if (!uses_masks() && update.mask.Density() < 1.0) {
    *cause = "layout";
    return absl::InvalidArgumentError(absl::StrCat("a sparse update was sent to a dense (", std::string(name()), ") run"));
  }
  // The run's encoding, for every tensor: an update may not carry more precision (or raw fp32)
  // where the run quantizes, nor other bit widths than the uniform modes use.
  // That is UplinkEncoding's, where honest clients encode (runtime/local_update.cc); under BSQ
  // a prunable tensor may take any precision up to it (each layer learns its own).
  const EncodeSpec run = UplinkEncoding();
  for (size_t t = 0; t < update.tensor_bits.size() && t < served.size(); ++t) {
    const int bits = update.tensor_bits[t];
    const bool prunable = served.tensors[t].prunable;
    const bool up_to = prunable && config_.quant == QuantMode::kBsq;
    const int want = prunable ? run.weight_bits : run.other_bits;
    if (up_to ? bits > want : bits != want) {
      *cause = "quant_mode";
      return absl::InvalidArgumentError(absl::StrCat(
          served.tensors[t].name, " is sent at ", bits, " bits; a ", std::string(ModeName(config_.quant)), " run takes ",
          up_to ? "at most " : "", want, want == 32 ? " (raw fp32)" : ""));
    }
  }
  // Every record stays inside the client's ticket, whether its mask travelled, was referenced or
  // was left out ("every element kept", which only a full tensor of the ticket may claim); a
  // mask may drop weights the ticket holds, and no deeper than the target.
  if (!update.mask.IsSubsetOf(held)) {
    *cause = "mask_outside_ticket";
    return absl::InvalidArgumentError(
        update.mask_sent || update.mask_referenced
            ? "the mask keeps weights its ticket had already pruned"
            : "a record claims every element kept where the ticket has pruned some (send or reference the mask)");
  }
  const double target = config_.EffectiveTargetDensity();
  const double floor = std::min(target, held.Density());
  if (update.mask.Density() < floor - 1e-9) {
    *cause = "mask_density";
    return absl::InvalidArgumentError(
        absl::StrCat("the mask's density ", update.mask.Density(), " is below the target ", target));
  }
  return absl::OkStatus();
}

int64_t Strategy::UpdateWeight(int64_t train_samples) const { return config_.weighted ? train_samples : 1; }

absl::StatusOr<std::unique_ptr<ClippedAggregator>> Strategy::NewAggregator(const TensorSet& layout,
                                                                          double clip_bound) const {
  absl::StatusOr<std::unique_ptr<Aggregator>> inner =
      MakeAggregator(config_.aggregator, layout, AggregatorOptionsFor(config_));
  if (!inner.ok()) return inner.status();
  return std::make_unique<ClippedAggregator>(*std::move(inner), clip_bound);
}

ClipOptions Strategy::clip_options() const {
  ClipOptions o;
  o.multiplier = config_.clip_multiplier;
  o.window = static_cast<size_t>(std::max<int64_t>(1, config_.clip_window));
  o.initial_fraction = config_.clip_initial_fraction;
  return o;
}

bool Strategy::Evaluates(uint64_t round) const {
  return round % static_cast<uint64_t>(config_.eval_every) == 0 || round >= static_cast<uint64_t>(config_.rounds);
}

std::vector<int64_t> Strategy::EvalSample(uint64_t round) const {
  std::vector<int64_t> ids(static_cast<size_t>(config_.clients));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>(i);
  const size_t want = static_cast<size_t>(config_.eval_clients);
  if (want == 0 || round >= static_cast<uint64_t>(config_.rounds)) return ids;
  // Seeded by (seed, round), independent of the training sample: the same rounds evaluate the
  // same tickets in every run with this seed.
  return SeededSample(std::move(ids), want, MixSeed(config_.seed, round, 0xe7a1));
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(const RunConfig& config) {
  switch (config.algorithm) {
    case Algorithm::kFedAvg:
      return std::unique_ptr<Strategy>(std::make_unique<FedAvgStrategy>(config));
    case Algorithm::kLotteryFl:
      return std::unique_ptr<Strategy>(std::make_unique<LotteryFlStrategy>(config));
    case Algorithm::kFedProx:
      return std::unique_ptr<Strategy>(std::make_unique<FedProxStrategy>(config));
    case Algorithm::kLocal:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("no federated strategy for --algorithm ", std::string(ModeName(config.algorithm))));
}

}  // namespace lfl
