#include "config/run_config.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"
#include "toml++/toml.h"

namespace lfl {

double RunConfig::EffectiveTargetDensity() const {
  if (target_density >= 0) return target_density;
  return dataset == DatasetKind::kCifar10 ? 0.5 : 0.1;
}

const std::vector<RunConfigField>& RunConfigFields() {
  using R = RunConfig;
  static const std::vector<RunConfigField> kFields = {
      {"dataset", "fashion-mnist | mnist | emnist-{balanced,byclass,bymerge,letters,digits,mnist} | cifar10",
       &R::dataset},
      {"data-dir", "directory of the dataset files (default: the dataset's standard place)", &R::data_dir},
      {"model",
       "mnist-cnn | cifar-cnn | femnist-cnn | mlp | torchscript:FILE (a TorchScript module; default: picked by "
       "the dataset)",
       &R::model},
      {"partition", "iid | shards | dirichlet | quantity | noise | shared (load tests: clients share images)",
       &R::partition},
      {"client-data",
       "partition (clients take their slice of --partition) | local (each client brings its own files: "
       "lotteryfl-client --local-data; ticket accuracies are then the clients' reports)",
       &R::client_data},
      {"classes-per-client", "shards: labels per client", &R::classes_per_client},
      {"samples-per-class", "shards: training images per label", &R::samples_per_class},
      {"beta", "dirichlet/quantity: concentration (smaller = more skewed)", &R::beta},
      {"min-samples", "dirichlet/quantity: minimum training images per client; shared: images per client",
       &R::min_samples},
      {"noise-sigma", "noise: client i gets Gaussian noise sigma*i/(N-1)", &R::noise_sigma},
      {"test-per-client", "images in each client's local test split", &R::test_per_client},
      {"validation-fraction", "validation slice for the pruning gate, as a fraction of the training size",
       &R::validation_fraction},
      {"clients", "number of clients K", &R::clients},
      {"fraction", "fraction of clients sampled per round: max(1, floor(fraction*K))", &R::fraction},
      {"min-clients", "quorum: a round with fewer completed updates is retried", &R::min_clients},
      {"rounds", "number of federated rounds", &R::rounds},
      {"round-timeout", "seconds a round waits for stragglers before dropping them", &R::round_timeout},
      {"join-timeout", "seconds the server waits for all K clients before starting", &R::join_timeout},
      {"eval-every", "evaluate every N rounds (the last round is always evaluated)", &R::eval_every},
      {"eval-clients",
       "tickets (global-masked accuracy) evaluated per evaluated round: a sample seeded by (seed, round); 0 = "
       "all; the last round always evaluates every client",
       &R::eval_clients},
      {"eval-global-every",
       "evaluate the global model on the whole test set every N rounds (and at the last round)",
       &R::eval_global_every},
      {"seed", "run seed: partition, initial weights, sampling and training all derive from it", &R::seed},
      {"local-epochs", "local SGD epochs per round", &R::local_epochs},
      {"batch-size", "local SGD batch size", &R::batch_size},
      {"lr", "local SGD learning rate", &R::lr},
      {"momentum", "local SGD momentum", &R::momentum},
      {"algorithm",
       "fedavg | lotteryfl | local (lotteryfl-sim only: every client trains alone, no aggregation) | fedprox "
       "(lotteryfl's personalized tickets plus FedProx's proximal term, --proximal-mu)",
       &R::algorithm},
      {"quant", "uplink/downlink encoding: none | uniform8 | uniform4 | uniform2 | bsq", &R::quant},
      {"aggregator",
       "how a round's updates combine (fl/aggregator.h): masked-mean (each element's weighted mean over the "
       "clients that keep it) | keeper-median (each element's unweighted median over the clients that keep it) | "
       "keeper-trimmed-mean (each element's weighted mean over its keepers after cutting --aggregator-trim of them "
       "from each end) | dense-median (ablation: each element's median over all clients, a client that drops it "
       "counting as 0, as Flower's FedMedian over masked updates)",
       &R::aggregator},
      {"aggregator-trim",
       "keeper-trimmed-mean: share of an element's keepers cut from each end, floor(trim * keepers), in [0, 0.5)",
       &R::aggregator_trim},
      {"aggregator-min-keepers",
       "keeper-*: an element kept by fewer clients than this takes their masked mean instead (a median of 1 or 2 "
       "is their mean anyway; keeping the previous value would freeze the weights only a few tickets keep)",
       &R::aggregator_min_keepers},
      {"weighted", "weight the aggregate by client sample counts", &R::weighted},
      {"prune-rate", "lotteryfl: fraction of surviving weights pruned per step", &R::prune_rate},
      {"target-density", "lotteryfl: density a ticket never goes below (<0: 0.5 cifar10, 0.1 otherwise)",
       &R::target_density},
      {"accuracy-threshold", "lotteryfl: prune only when the global ticket reaches this validation accuracy",
       &R::accuracy_threshold},
      {"proximal-mu",
       "fedprox only: mu of the proximal term (mu/2)*||w - w_start||^2 added to the local loss, over the "
       "ticket's kept weights and the biases; w_start is where local training starts (theta0 * mask after a "
       "prune and rewind, otherwise the served global ticket)",
       &R::proximal_mu},
      {"bsq-alpha", "bsq: group-lasso strength of the local BSQ phase", &R::bsq_alpha},
      {"bsq-interval", "bsq: steps between re-quantizations (<0: a fifth of the BSQ phase)", &R::bsq_interval},
      {"bsq-fraction",
       "bsq: length of the BSQ phase as a share of the local epochs: half of it fine-tunes the fp32 ticket "
       "at the learned bits (part of the local epochs), half searches the bits (extra epochs)",
       &R::bsq_fraction},
      {"downlink-bits", "bsq: bits of the quantized downlink model", &R::downlink_bits},
      {"bsq-min-bits",
       "bsq: lowest precision a layer is sent at (0 = as BSQ, layers may reach 0 bits; 2 keeps long runs "
       "accurate at some cost in bytes, see README)",
       &R::bsq_min_bits},
      {"bsq-start-bits", "bsq: bits every layer starts the run at (BSQ: 8)", &R::bsq_start_bits},
      {"bsq-finetune",
       "bsq: fine-tune the fp32 ticket quantization-aware at the searched bits (false: round it to them, "
       "as the uniform modes do)",
       &R::bsq_finetune},
      {"bsq-guard",
       "bsq: largest drop in training accuracy (fp32 ticket -> quantized) a round's lower precision may cost; "
       "beyond it the client keeps its previous bits",
       &R::bsq_guard},
      {"clip-multiplier",
       "clip every update's distance to its starting point to this many times the median of recently accepted "
       "distances (0: no clipping)",
       &R::clip_multiplier},
      {"clip-window", "accepted update distances the clip bound's median is taken over", &R::clip_window},
      {"clip-initial-fraction",
       "clip bound before two distances are known, as a fraction of the global model's L2 norm",
       &R::clip_initial_fraction},
      {"max-refetches", "downloads of one task's model beyond the first that the server still serves",
       &R::max_refetches},
      // The LotteryFL reference's choices (docs/reference.md).
      {"validation-source",
       "unused (the validation slice: training images no client trains on) | own (carved from the client's own "
       "training images, which it then does not train on: the LotteryFL reference, with validation-fraction 0.1)",
       &R::validation_source},
      {"gate-split",
       "lotteryfl: what the pruning gate evaluates the global ticket on: validation | test (the client's local "
       "test split, as the LotteryFL reference does)",
       &R::gate_split},
      {"normalization",
       "dataset (the training split's mean and std) | mnist (0.1307 / 0.3081 for any 1-channel dataset, as the "
       "LotteryFL reference normalizes Fashion-MNIST)",
       &R::normalization},
      {"rewind-biases",
       "lotteryfl: the rewind resets biases to theta0 as well (false: they keep the global model's values; the "
       "LotteryFL reference's rewind shares one bias tensor that every rewound client trains in place)",
       &R::rewind_biases},
      {"out", "output directory (metrics.jsonl, summary.json, checkpoint.bin)", &R::out},
  };
  return kFields;
}

namespace {
std::string flag_name(const RunConfigField& field) { return std::string("--") + field.name; }
}  // namespace

void AddRunConfigFlags(CLI::App& app, RunConfig& config) {
  app.set_config("--config", "", "TOML file of `name = value` lines (any flag below); flags override it");
  app.allow_config_extras(CLI::config_extras_mode::error);
  for (const RunConfigField& field : RunConfigFields()) {
    const std::string flag = std::string("--") + field.name;
    std::visit(
        [&](auto member) {
          auto& ref = config.*member;
          using T = std::decay_t<decltype(ref)>;
          if constexpr (std::is_enum_v<T>) {
            // Parsed here, once: the rest of the code switches on the enum.
            app.add_option_function<std::string>(
                   flag,
                   [&ref, &field](const std::string& text) {
                     absl::StatusOr<T> mode = ParseMode<T>(text);
                     if (!mode.ok()) throw CLI::ValidationError(flag_name(field), std::string(mode.status().message()));
                     ref = *mode;
                   },
                   field.help)
                ->default_str(std::string(ModeName(ref)));
          } else {
            app.add_option(flag, ref, field.help)->capture_default_str();
          }
        },
        field.member);
  }
}

std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return std::nullopt;
}

namespace {

absl::Status Bad(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

}  // namespace

absl::Status ValidateRunConfig(const RunConfig& c) {
  if (c.clients < 1 || c.clients > 1000000) return Bad("clients", "must be in [1, 1000000]");
  if (!(c.fraction > 0 && c.fraction <= 1)) return Bad("fraction", "must be in (0, 1]");
  if (c.min_clients < 1) return Bad("min-clients", "must be >= 1");
  if (c.rounds < 1) return Bad("rounds", "must be >= 1");
  if (!(c.round_timeout > 0)) return Bad("round-timeout", "must be > 0 seconds");
  if (!(c.join_timeout >= 0)) return Bad("join-timeout", "must be >= 0 seconds");
  if (c.eval_every < 1) return Bad("eval-every", "must be >= 1");
  if (c.eval_clients < 0) return Bad("eval-clients", "must be >= 0 (0: all clients)");
  if (c.eval_global_every < 1) return Bad("eval-global-every", "must be >= 1");
  if (c.local_epochs < 1) return Bad("local-epochs", "must be >= 1");
  if (c.batch_size < 1) return Bad("batch-size", "must be >= 1");
  if (!(c.lr > 0 && std::isfinite(c.lr))) return Bad("lr", "must be a positive number");
  if (!(c.momentum >= 0 && c.momentum < 1)) return Bad("momentum", "must be in [0, 1)");
  if (!(c.prune_rate >= 0 && c.prune_rate < 1)) return Bad("prune-rate", "must be in [0, 1)");
  if (c.target_density > 1) return Bad("target-density", "must be <= 1");
  if (!(c.accuracy_threshold >= 0 && c.accuracy_threshold <= 1)) {
    return Bad("accuracy-threshold", "must be in [0, 1]");
  }
  if (!(c.proximal_mu >= 0 && std::isfinite(c.proximal_mu))) {
    return Bad("proximal-mu", "must be a finite number >= 0 (0: no proximal term)");
  }
  if (!(c.bsq_fraction > 0 && c.bsq_fraction <= 1)) return Bad("bsq-fraction", "must be in (0, 1]");
  if (!(c.bsq_alpha >= 0 && std::isfinite(c.bsq_alpha))) return Bad("bsq-alpha", "must be >= 0");
  if (c.downlink_bits < 1 || c.downlink_bits > 8) return Bad("downlink-bits", "must be in [1, 8]");
  if (!(c.bsq_guard >= 0 && c.bsq_guard <= 1)) return Bad("bsq-guard", "must be in [0, 1]");
  if (c.bsq_min_bits < 0 || c.bsq_min_bits > 8) return Bad("bsq-min-bits", "must be in [0, 8]");
  if (c.bsq_start_bits < 1 || c.bsq_start_bits > 8) return Bad("bsq-start-bits", "must be in [1, 8]");
  if (c.classes_per_client < 1) return Bad("classes-per-client", "must be >= 1");
  if (c.samples_per_class < 1) return Bad("samples-per-class", "must be >= 1");
  if (!(c.beta > 0)) return Bad("beta", "must be > 0");
  if (c.test_per_client < 1) return Bad("test-per-client", "must be >= 1");
  if (!(c.validation_fraction >= 0 && c.validation_fraction <= 1)) {
    return Bad("validation-fraction", "must be in [0, 1]");
  }
  if (!(c.clip_multiplier >= 0 && std::isfinite(c.clip_multiplier))) {
    return Bad("clip-multiplier", "must be >= 0 (0: no clipping)");
  }
  if (c.clip_window < 1 || c.clip_window > 100000) return Bad("clip-window", "must be in [1, 100000]");
  if (!(c.clip_initial_fraction >= 0 && std::isfinite(c.clip_initial_fraction))) {
    return Bad("clip-initial-fraction", "must be >= 0");
  }
  if (!(c.aggregator_trim >= 0 && c.aggregator_trim < 0.5)) {
    return Bad("aggregator-trim", "must be in [0, 0.5) (the share of an element's keepers cut from each end)");
  }
  if (c.aggregator_min_keepers < 1) return Bad("aggregator-min-keepers", "must be >= 1");
  if (c.max_refetches < 0 || c.max_refetches > 1000) return Bad("max-refetches", "must be in [0, 1000]");
  if (c.normalization == NormalizationMode::kMnist && c.client_data == ClientDataSource::kLocal) {
    return Bad("normalization", "mnist is for runs on the partition; client-data local uses the dataset's constants");
  }
  if (c.out.empty()) return Bad("out", "must not be empty");
  return absl::OkStatus();
}

namespace {

// toml++ holds integers as int64; a seed above INT64_MAX travels as a decimal string.
toml::table TomlField(const RunConfig& config, const RunConfigField& field) {
  toml::table one;
  std::visit(
      [&](auto member) {
        const auto& v = config.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_enum_v<T>) {
          one.insert(field.name, std::string(ModeName(v)));
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          if (v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            one.insert(field.name, static_cast<int64_t>(v));
          } else {
            one.insert(field.name, std::to_string(v));
          }
        } else {
          one.insert(field.name, v);
        }
      },
      field.member);
  return one;
}

absl::Status WrongType(const RunConfigField& field, const char* expected) {
  return absl::InvalidArgumentError(absl::StrCat("run config: '", field.name, "' must be ", expected));
}

// Sets one field from its TOML value; the value's type must be the field's (an integer is also
// accepted for a floating-point field).
absl::Status SetField(const RunConfigField& field, const toml::node& node, RunConfig& config) {
  return std::visit(
      [&](auto member) -> absl::Status {
        auto& v = config.*member;
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_enum_v<T>) {
          if (!node.is_string()) return WrongType(field, ("one of " + ModeChoices<T>()).c_str());
          absl::StatusOr<T> mode = ParseMode<T>(*node.value<std::string>());
          if (!mode.ok()) {
            return absl::InvalidArgumentError(absl::StrCat("run config: '", field.name, "': ", mode.status().message()));
          }
          v = *mode;
        } else if constexpr (std::is_same_v<T, std::string>) {
          if (!node.is_string()) return WrongType(field, "a string");
          v = *node.value<std::string>();
        } else if constexpr (std::is_same_v<T, bool>) {
          if (!node.is_boolean()) return WrongType(field, "true or false");
          v = *node.value<bool>();
        } else if constexpr (std::is_same_v<T, double>) {
          if (!node.is_number()) return WrongType(field, "a number");
          v = *node.value<double>();
        } else if constexpr (std::is_same_v<T, uint64_t>) {
          if (node.is_integer() && *node.value<int64_t>() >= 0) {
            v = static_cast<uint64_t>(*node.value<int64_t>());
          } else if (!node.is_string() || !absl::SimpleAtoi(*node.value<std::string>(), &v)) {
            return WrongType(field, "a non-negative integer");
          }
        } else {
          if (!node.is_integer()) return WrongType(field, "an integer");
          v = *node.value<int64_t>();
        }
        return absl::OkStatus();
      },
      field.member);
}

}  // namespace

std::string RunConfigToToml(const RunConfig& config) {
  // One `name = value` line per field, in the field table's order; toml++ quotes and escapes.
  std::ostringstream out;
  for (const RunConfigField& field : RunConfigFields()) out << TomlField(config, field) << "\n";
  return out.str();
}

absl::StatusOr<RunConfig> RunConfigFromToml(const std::string& toml_text) {
  toml::table table;
  try {
    table = toml::parse(toml_text);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat("run config: ", std::string(e.description()), " at line ",
                                                   static_cast<uint64_t>(e.source().begin.line)));
  }
  RunConfig config;
  for (const auto& [key, node] : table) {
    const auto& fields = RunConfigFields();
    auto field = std::find_if(fields.begin(), fields.end(),
                              [&, &key = key](const RunConfigField& f) { return key.str() == f.name; });
    if (field == fields.end()) {
      return absl::InvalidArgumentError(absl::StrCat("run config: unknown key '", std::string(key.str()), "'"));
    }
    if (absl::Status s = SetField(*field, node, config); !s.ok()) return s;
  }
  if (absl::Status s = ValidateRunConfig(config); !s.ok()) return s;
  return config;
}

std::string RunConfigToJson(const RunConfig& config) {
  nlohmann::ordered_json j;
  for (const RunConfigField& field : RunConfigFields()) {
    std::visit(
        [&](auto member) {
          const auto& v = config.*member;
          if constexpr (std::is_enum_v<std::decay_t<decltype(v)>>) {
            j[field.name] = std::string(ModeName(v));
          } else {
            j[field.name] = v;
          }
        },
        field.member);
  }
  return j.dump();
}

absl::StatusOr<std::vector<int64_t>> ParseIdRanges(const std::string& text) {
  std::vector<int64_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> ends = absl::StrSplit(part, '-');
    int64_t lo = 0, hi = 0;
    bool ok = ends.size() == 1 ? absl::SimpleAtoi(ends[0], &lo) && (hi = lo, true)
                               : ends.size() == 2 && absl::SimpleAtoi(ends[0], &lo) &&
                                     absl::SimpleAtoi(ends[1], &hi);
    if (!ok || lo < 0 || hi < lo || hi - lo > 10000000) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad client id range '", part, "' (expected e.g. 0-49 or 3 or 0-4,10-14)"));
    }
    for (int64_t id = lo; id <= hi; ++id) ids.push_back(id);
  }
  if (ids.empty()) return absl::InvalidArgumentError("empty client id range");
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace lfl
