// The benchmark-only attacks of lotteryfl-client and lotteryfl-sim (client/bench_attack.h).
#include "client/bench_attack.h"

#include <cmath>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/sampler.h"
#include "common/seed.h"
#include "config/run_config.h"
#include "runtime/local_update.h"
#include "strategy/strategy.h"

namespace lfl {

namespace {

absl::StatusOr<BenchAttack> ParseBenchAttackKind(const std::string& text) {
  BenchAttack a;
  const size_t colon = text.find(':');
  const std::string kind = text.substr(0, colon);
  const std::string arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (kind == "none" && arg.empty()) return a;
  if (kind == "return-served" && arg.empty()) {
    a.kind = BenchAttack::kReturnServed;
    return a;
  }
  if (kind == "bias" && absl::SimpleAtod(arg, &a.bias_delta) && std::isfinite(a.bias_delta)) {
    a.kind = BenchAttack::kAddToBias;
    return a;
  }
  if (kind == "refetch" && absl::SimpleAtoi(arg, &a.refetches) && a.refetches >= 0) {
    a.kind = BenchAttack::kRefetch;
    return a;
  }
  if (kind == "scale" && absl::SimpleAtod(arg, &a.scale) && std::isfinite(a.scale)) {
    a.kind = BenchAttack::kScale;
    return a;
  }
  if (kind == "signflip" && colon == std::string::npos) {
    a.kind = BenchAttack::kSignFlip;
    return a;
  }
  if (kind == "noise" && absl::SimpleAtod(arg, &a.noise_sigma) && std::isfinite(a.noise_sigma) &&
      a.noise_sigma >= 0) {
    a.kind = BenchAttack::kNoise;
    return a;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown bench attack '", text,
                                                 "' (none | return-served | bias:DELTA | refetch:N | scale:F | "
                                                 "signflip | noise:SIGMA, SIGMA >= 0)"));
}

// Encodes `values` restricted to `mask` as a client of `config` would (runtime/client_step.cc's
// Encode). bsq_bits (bsq only, nullable): quantize each prunable layer to these bits as exact
// levels, as an honest BSQ update at those bits travels; null: every layer at the most bits.
absl::StatusOr<std::string> EncodeAsClient(const RunConfig& config, const TensorSet& values, const Mask& mask,
                                           uint32_t mask_version, uint32_t client_id, uint64_t round,
                                           const std::vector<int>* bsq_bits, std::vector<int>* layer_bits) {
  absl::StatusOr<std::unique_ptr<Strategy>> strategy = MakeStrategy(config);
  if (!strategy.ok()) return strategy.status();
  EncodeSpec spec = (*strategy)->UplinkEncoding();
  if ((*strategy)->uses_masks()) {
    spec.mask = &mask;
    spec.send_mask = false;
    spec.mask_version = mask_version;
  }
  std::vector<std::optional<ExactLevels>> exact;
  if (config.quant == QuantMode::kBsq && bsq_bits != nullptr) {
    exact.resize(values.size());
    size_t layer = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      const NamedTensor& t = values.tensors[i];
      if (!t.prunable) continue;
      if (layer >= bsq_bits->size()) return absl::InternalError("fewer layer bits than prunable layers");
      const int bits = (*bsq_bits)[layer++];
      // Dropped elements are 0 in `values`, so quantizing every element gives the kept ones'
      // scale and level 0 where dropped.
      codec::TensorRecord r = codec::QuantizeUniform(0, t.shape, t.values.data(), nullptr, bits);
      exact[i] = ExactLevels{bits, r.scale, std::move(r.levels)};
    }
    spec.exact = &exact;
  }
  spec.round = round;
  spec.client_id = client_id;
  return EncodeModel(values, spec, layer_bits);
}

// s of a value attack (client_host.h): θ0 ⊙ m' after a rewind (the mask is applied later;
// biases as runtime/client_step.cc's RewindNet leaves them), the served θg ⊙ m otherwise.
TensorSet TrainingStart(const RunData& data, const TensorSet& served, bool rewound) {
  TensorSet start = served;
  if (!rewound) return start;
  for (size_t i = 0; i < start.size(); ++i) {
    if (start.tensors[i].prunable || data.config.rewind_biases) {
      start.tensors[i].values = data.theta0.tensors[i].values;
    }
  }
  return start;
}

bool IsValueAttack(BenchAttack::Kind kind) {
  return kind == BenchAttack::kScale || kind == BenchAttack::kSignFlip || kind == BenchAttack::kNoise;
}

}  // namespace

absl::StatusOr<BenchAttack> ParseBenchAttack(const std::string& text, const std::string& clients) {
  absl::StatusOr<BenchAttack> attack = ParseBenchAttackKind(text);
  if (!attack.ok() || clients.empty()) return attack;
  absl::StatusOr<std::vector<int64_t>> ids = ParseIdRanges(clients);
  if (!ids.ok()) return ids.status();
  attack->clients.insert(ids->begin(), ids->end());
  return attack;
}

absl::Status PoisonTrainedValues(const BenchAttack& attack, const TensorSet& start, const Mask& kept,
                                 uint64_t noise_seed, TensorSet* values) {
  if (!IsValueAttack(attack.kind)) return absl::InvalidArgumentError("not a value attack");
  if (absl::Status s = values->CheckLayout(start); !s.ok()) return s;
  if (absl::Status s = kept.CheckMatches(*values); !s.ok()) return s;
  Sampler normal(noise_seed);  // portable Box–Muller (common/sampler.h)
  const double factor = attack.kind == BenchAttack::kScale ? attack.scale : -1.0;
  for (size_t i = 0; i < values->size(); ++i) {
    std::vector<float>& w = values->tensors[i].values;
    const std::vector<float>& s = start.tensors[i].values;
    for (size_t j = 0; j < w.size(); ++j) {
      if (!kept.Get(i, static_cast<int64_t>(j))) {
        w[j] = 0;
      } else if (attack.kind == BenchAttack::kNoise) {
        w[j] = static_cast<float>(w[j] + attack.noise_sigma * normal.Normal());
      } else {
        w[j] = static_cast<float>(s[j] + factor * (static_cast<double>(w[j]) - s[j]));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyBenchAttack(const BenchAttack& attack, const RunData& data, int64_t client_id, uint64_t round,
                              uint32_t attempt, const DecodedModel& served, uint32_t served_version,
                              LocalResult* result) {
  if (attack.clients.count(client_id) == 0) return absl::OkStatus();
  ClientStepResult& step = result->step;
  const RunConfig& config = data.config;
  const uint32_t id = static_cast<uint32_t>(client_id);
  if (IsValueAttack(attack.kind)) {
    const bool lottery = TrainsTickets(config.algorithm);
    const uint32_t version = step.mask_changed ? served_version + 1 : served_version;
    absl::StatusOr<DecodedModel> trained =
        DecodeModel(step.update.payload, data.theta0, lottery ? &step.mask : nullptr, version);
    if (!trained.ok()) {
      return absl::InternalError(absl::StrCat("own update does not decode: ", trained.status().message()));
    }
    const TensorSet start = TrainingStart(data, served.values, lottery && step.mask_changed);
    const uint64_t noise_seed = MixSeed(MixSeed(config.seed, static_cast<uint64_t>(client_id), round, attempt),
                                        0x6e6f697365ull);  // a stream of its own, apart from training's
    if (absl::Status s = PoisonTrainedValues(attack, start, trained->mask, noise_seed, &trained->values); !s.ok()) {
      return s;
    }
    std::vector<int> bits;
    const std::vector<int> honest_bits = step.update.layer_bits;
    absl::StatusOr<std::string> payload =
        EncodeAsClient(config, trained->values, trained->mask, version, id, round, &honest_bits, &bits);
    if (!payload.ok()) return payload.status();
    step.update.payload = *std::move(payload);
    step.update.layer_bits = std::move(bits);
    return absl::OkStatus();
  }
  if (attack.kind != BenchAttack::kReturnServed && attack.kind != BenchAttack::kAddToBias) return absl::OkStatus();
  TensorSet values = served.values;  // θg ⊙ m as served
  if (attack.kind == BenchAttack::kAddToBias) {
    for (auto t = values.tensors.rbegin(); t != values.tensors.rend(); ++t) {
      if (!t->prunable && !t->values.empty()) {
        t->values[0] = static_cast<float>(t->values[0] + attack.bias_delta);
        break;
      }
    }
  }
  // Encoded as an honest client of this run would (runtime/client_step.cc), so only the
  // values are hostile (the payload's informational round stays 0, as these attacks always sent).
  std::vector<int> bits;
  absl::StatusOr<std::string> payload =
      EncodeAsClient(config, values, served.mask, served_version, id, 0, nullptr, &bits);
  if (!payload.ok()) return payload.status();
  step.update.payload = *std::move(payload);
  step.update.layer_bits = std::move(bits);
  // The payload references the served ticket now (a dense run's references none, as in Encode).
  step.update.mask_version = TrainsTickets(config.algorithm) ? served_version : 0;
  step.mask = served.mask;
  step.mask_changed = false;
  return absl::OkStatus();
}

}  // namespace lfl
