#include "config/run_config.h"

#include <CLI/CLI.hpp>

#include <cmath>
#include <limits>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "nlohmann/json.hpp"

namespace lfl {

double RunConfig::EffectiveTargetDensity() const {
  if (target_density >= 0) return target_density;
  return dataset == "cifar10" ? 0.5 : 0.1;
}

const std::vector<RunConfigField>& RunConfigFields() {
  using R = RunConfig;
  static const std::vector<RunConfigField> kFields = {
      {"dataset", "fashion-mnist | mnist | emnist-<split> | cifar10", &R::dataset},
      {"data-dir", "directory of the dataset files (default: the dataset's standard place)", &R::data_dir},
      {"model", "mnist-cnn | cifar-cnn | femnist-cnn | mlp (default: picked by the dataset)", &R::model},
      {"partition", "iid | shards | dirichlet | quantity | noise", &R::partition},
      {"classes-per-client", "shards: labels per client", &R::classes_per_client},
      {"samples-per-class", "shards: training images per label", &R::samples_per_class},
      {"beta", "dirichlet/quantity: concentration (smaller = more skewed)", &R::beta},
      {"min-samples", "dirichlet/quantity: minimum training images per client", &R::min_samples},
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
      {"seed", "run seed: partition, initial weights, sampling and training all derive from it", &R::seed},
      {"local-epochs", "local SGD epochs per round", &R::local_epochs},
      {"batch-size", "local SGD batch size", &R::batch_size},
      {"lr", "local SGD learning rate", &R::lr},
      {"momentum", "local SGD momentum", &R::momentum},
      {"algorithm", "fedavg | lotteryfl | local (lotteryfl-sim only: every client trains alone, no aggregation)",
       &R::algorithm},
      {"quant", "uplink/downlink encoding: none | uniform8 | uniform4 | uniform2 | bsq", &R::quant},
      {"weighted", "weight the aggregate by client sample counts", &R::weighted},
      {"prune-rate", "lotteryfl: fraction of surviving weights pruned per step", &R::prune_rate},
      {"target-density", "lotteryfl: density a ticket never goes below (<0: 0.5 cifar10, 0.1 otherwise)",
       &R::target_density},
      {"accuracy-threshold", "lotteryfl: prune only when the global ticket reaches this validation accuracy",
       &R::accuracy_threshold},
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
      {"bsq-guard",
       "bsq: largest drop in training accuracy (fp32 ticket -> quantized) a round's lower precision may cost; "
       "beyond it the client keeps its previous bits",
       &R::bsq_guard},
      {"out", "output directory (metrics.jsonl, summary.json, checkpoint.bin)", &R::out},
  };
  return kFields;
}

void AddRunConfigFlags(CLI::App& app, RunConfig& config) {
  app.set_config("--config", "", "TOML file of `name = value` lines (any flag below); flags override it");
  app.allow_config_extras(CLI::config_extras_mode::error);
  for (const RunConfigField& field : RunConfigFields()) {
    const std::string flag = std::string("--") + field.name;
    std::visit(
        [&](auto member) {
          auto& ref = config.*member;
          app.add_option(flag, ref, field.help)->capture_default_str();
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

bool OneOf(const std::string& value, std::initializer_list<const char*> options) {
  for (const char* o : options) {
    if (value == o) return true;
  }
  return false;
}

absl::Status Bad(const std::string& flag, const std::string& why) {
  return absl::InvalidArgumentError(absl::StrCat("--", flag, ": ", why));
}

}  // namespace

absl::Status ValidateRunConfig(const RunConfig& c) {
  if (!OneOf(c.partition, {"iid", "shards", "dirichlet", "quantity", "noise"})) {
    return Bad("partition", "unknown scheme '" + c.partition + "' (iid|shards|dirichlet|quantity|noise)");
  }
  if (!OneOf(c.algorithm, {"fedavg", "lotteryfl", "local"})) {
    return Bad("algorithm", "unknown algorithm '" + c.algorithm + "' (fedavg|lotteryfl|local)");
  }
  if (!OneOf(c.quant, {"none", "uniform8", "uniform4", "uniform2", "bsq"})) {
    return Bad("quant", "unknown encoding '" + c.quant + "' (none|uniform8|uniform4|uniform2|bsq)");
  }
  if (c.clients < 1 || c.clients > 1000000) return Bad("clients", "must be in [1, 1000000]");
  if (!(c.fraction > 0 && c.fraction <= 1)) return Bad("fraction", "must be in (0, 1]");
  if (c.min_clients < 1) return Bad("min-clients", "must be >= 1");
  if (c.rounds < 1) return Bad("rounds", "must be >= 1");
  if (!(c.round_timeout > 0)) return Bad("round-timeout", "must be > 0 seconds");
  if (!(c.join_timeout >= 0)) return Bad("join-timeout", "must be >= 0 seconds");
  if (c.eval_every < 1) return Bad("eval-every", "must be >= 1");
  if (c.local_epochs < 1) return Bad("local-epochs", "must be >= 1");
  if (c.batch_size < 1) return Bad("batch-size", "must be >= 1");
  if (!(c.lr > 0 && std::isfinite(c.lr))) return Bad("lr", "must be a positive number");
  if (!(c.momentum >= 0 && c.momentum < 1)) return Bad("momentum", "must be in [0, 1)");
  if (!(c.prune_rate >= 0 && c.prune_rate < 1)) return Bad("prune-rate", "must be in [0, 1)");
  if (c.target_density > 1) return Bad("target-density", "must be <= 1");
  if (!(c.accuracy_threshold >= 0 && c.accuracy_threshold <= 1)) {
    return Bad("accuracy-threshold", "must be in [0, 1]");
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
  if (c.out.empty()) return Bad("out", "must not be empty");
  return absl::OkStatus();
}

namespace {

std::string TomlString(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + "\"";
}

std::string FormatDouble(double v) {
  std::ostringstream os;
  os.precision(std::numeric_limits<double>::max_digits10);
  os << v;
  std::string s = os.str();
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}

}  // namespace

std::string RunConfigToToml(const RunConfig& config) {
  std::string out;
  for (const RunConfigField& field : RunConfigFields()) {
    std::string value = std::visit(
        [&](auto member) -> std::string {
          const auto& v = config.*member;
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, std::string>) {
            return TomlString(v);
          } else if constexpr (std::is_same_v<T, bool>) {
            return v ? "true" : "false";
          } else if constexpr (std::is_same_v<T, double>) {
            return FormatDouble(v);
          } else {
            return std::to_string(v);
          }
        },
        field.member);
    absl::StrAppend(&out, field.name, " = ", value, "\n");
  }
  return out;
}

absl::StatusOr<RunConfig> RunConfigFromToml(const std::string& toml) {
  RunConfig config;
  CLI::App app;
  AddRunConfigFlags(app, config);
  std::istringstream in(toml);
  try {
    app.parse_from_stream(in);
  } catch (const CLI::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("run config: ", e.what()));
  }
  if (absl::Status s = ValidateRunConfig(config); !s.ok()) return s;
  return config;
}

std::string RunConfigToJson(const RunConfig& config) {
  nlohmann::ordered_json j;
  for (const RunConfigField& field : RunConfigFields()) {
    std::visit([&](auto member) { j[field.name] = config.*member; }, field.member);
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
