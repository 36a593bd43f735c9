#ifndef LOTTERYFL_CONFIG_RUN_CONFIG_H_
#define LOTTERYFL_CONFIG_RUN_CONFIG_H_

// The run configuration shared by lotteryfl-server, lotteryfl-client and lotteryfl-sim.
//
// One table of fields (RunConfigFields) drives everything: the CLI11 flags
// (`--local-epochs 5`), the TOML config file (`local-epochs = 5`, read by
// CLI11's config parser with `--config FILE`), and the TOML text the server
// sends to clients when they join, so the three can never drift apart.
// Torch-free.

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/modes/run_modes.h"

namespace CLI {
class App;
}

namespace lfl {

struct RunConfig {
  // --- data -------------------------------------------------------------
  DatasetKind dataset = DatasetKind::kFashionMnist;  // config/modes/run_modes.h
  std::string data_dir;                   // empty: the dataset's default directory
  std::string model;                      // empty: the dataset's default model
  PartitionScheme partition = PartitionScheme::kShards;  // partitioning/partition.h says what each does
  int64_t classes_per_client = 2;         // shards: labels per client (LotteryFL)
  int64_t samples_per_class = 20;         // shards: training images per label
  double beta = 0.5;                      // dirichlet / quantity concentration
  int64_t min_samples = 10;               // dirichlet / quantity: minimum images per client
  double noise_sigma = 0.1;               // noise: client i gets sigma*i/(N-1)
  int64_t test_per_client = 200;          // each client's local test split
  double validation_fraction = 0.2;       // validation slice for the pruning gate
  // partition: every client takes its slice of the partition above (the server computes it
  // too, and evaluates the tickets). local: each client brings its own files
  // (lotteryfl-client --local-data); the server cannot evaluate them, so ticket accuracies in
  // metrics.jsonl are the clients' own reports and say so.
  ClientDataSource client_data = ClientDataSource::kPartition;

  // --- federation -------------------------------------------------------
  int64_t clients = 10;         // K
  double fraction = 0.5;        // sampled per round: max(1, floor(fraction*K))
  int64_t min_clients = 1;      // quorum: fewer completed updates → the round is retried
  int64_t rounds = 10;
  double round_timeout = 120;   // seconds before stragglers are dropped
  double join_timeout = 60;     // seconds the server waits for all K clients before round 1
  int64_t eval_every = 1;       // evaluate every N rounds (always the last)
  int64_t eval_clients = 20;    // tickets evaluated per evaluated round, a seeded sample (0: all;
                                // the last round always evaluates all)
  int64_t eval_global_every = 10;  // the global model on the whole test set every N evaluated
                                   // rounds' worth of rounds (always at the last round)
  uint64_t seed = 1;

  // --- local training (LotteryFL reference defaults) --------------------
  int64_t local_epochs = 5;
  int64_t batch_size = 32;
  double lr = 0.01;
  double momentum = 0.5;

  // --- algorithm and transport -----------------------------------------
  Algorithm algorithm = Algorithm::kFedAvg;  // config/modes/run_modes.h
  QuantMode quant = QuantMode::kNone;
  AggregatorKind aggregator = AggregatorKind::kMaskedMean;  // fl/aggregator.h
  double aggregator_trim = 0.2;        // keeper-trimmed-mean: share cut from each end, [0, 0.5)
  int64_t aggregator_min_keepers = 3;  // keeper-*: fewer keepers → the element's masked mean
  bool weighted = true;               // weight the mean by client sample counts

  // --- LotteryFL ---------------------------------------------------------
  double prune_rate = 0.2;            // fraction of surviving weights pruned per step
  double target_density = -1;         // <0: 0.5 for cifar10, 0.1 otherwise
  double accuracy_threshold = 0.2;    // prune only when θg⊙m reaches this validation accuracy
                                      // (the reference's prune_start_acc, there on test images)

  // --- FedProx (--algorithm fedprox) --------------------------------------
  double proximal_mu = 0.01;          // mu of the proximal term (mu/2)·‖w − w_start‖² in local
                                      // training; other algorithms ignore it

  // --- BSQ -----------------------------------------------------------------
  double bsq_alpha = 16;              // group-lasso strength of the (short) federated BSQ phase;
                                      // higher shrinks bits faster and costs accuracy
  int64_t bsq_interval = -1;          // <0: a fifth of the BSQ phase's steps
  double bsq_fraction = 0.25;         // BSQ phase length / local epochs (search + fine-tune)
  int64_t downlink_bits = 8;          // bits of the quantized downlink with --quant bsq
  int64_t bsq_min_bits = 0;           // no layer is sent below this precision (BSQ: 0)
  int64_t bsq_start_bits = 8;         // precision of a layer the client has none for yet (BSQ: 8)
  bool bsq_finetune = true;           // fine-tune at the searched bits (false: round to them)
  double bsq_guard = 0.05;            // largest drop of training accuracy a lower precision may
                                      // cost; beyond it the client keeps its previous precision

  // --- defenses against hostile clients (the server's side; fl/clipping.h) -------
  // Every update is clipped to B = clip_multiplier × the median of the last clip_window
  // accepted distances (to the point its client started from); until two are known, B is
  // clip_initial_fraction × the global model's norm. 0 disables clipping.
  double clip_multiplier = 4;
  int64_t clip_window = 64;
  double clip_initial_fraction = 0.75;
  // FetchModel calls per task beyond the first that the server still answers (and counts
  // apart from the downlink); more are refused.
  int64_t max_refetches = 8;
  // --- the LotteryFL reference's choices (docs/reference.md; defaults are lotteryfl's) ---------
  ValidationSource validation_source = ValidationSource::kUnused;  // unused: images no client trains on | own: carved from
                                             // the client's own (the reference: 4 of its 40)
  GateSplit gate_split = GateSplit::kValidation;  // the reference: kTest, the client's local test split
  NormalizationMode normalization = NormalizationMode::kDataset;  // the reference: kMnist, for Fashion-MNIST too
  bool rewind_biases = true;                 // the rewind resets biases to θ0 too; false: they keep
                                             // the global values (docs/reference.md)

  // --- output --------------------------------------------------------------
  std::string out = "runs/latest";

  double EffectiveTargetDensity() const;
};

// One configurable field: its flag name (without dashes), help text and the member it binds.
struct RunConfigField {
  const char* name;
  const char* help;
  std::variant<std::string RunConfig::*, int64_t RunConfig::*, uint64_t RunConfig::*, double RunConfig::*,
               bool RunConfig::*, DatasetKind RunConfig::*, PartitionScheme RunConfig::*, Algorithm RunConfig::*,
               QuantMode RunConfig::*, ClientDataSource RunConfig::*, AggregatorKind RunConfig::*,
               GateSplit RunConfig::*, NormalizationMode RunConfig::*, ValidationSource RunConfig::*>
      member;
};
const std::vector<RunConfigField>& RunConfigFields();

// Registers every field as `--name` on `app`, bound to `config`, plus `--config FILE` (TOML).
void AddRunConfigFlags(CLI::App& app, RunConfig& config);

// Parses argv. Returns nullopt to go on, or the process exit code: 0 after --help, 2 for any
// usage error (CLI11's own codes vary), with CLI11's message printed.
std::optional<int> ParseCommandLine(CLI::App& app, int argc, char** argv);

// Checks ranges and combinations; InvalidArgument says which flag is wrong and why. (Names of
// modes are checked where they are parsed: an enum field always holds a valid mode.)
absl::Status ValidateRunConfig(const RunConfig& config);

// TOML text with every field (`name = value` lines); FromToml reads it back (unknown keys are errors).
std::string RunConfigToToml(const RunConfig& config);
absl::StatusOr<RunConfig> RunConfigFromToml(const std::string& toml);

// JSON object with every field (for summary.json).
std::string RunConfigToJson(const RunConfig& config);

// Parses "0-49", "3", "0-4,10-14" into a sorted id list.
absl::StatusOr<std::vector<int64_t>> ParseIdRanges(const std::string& text);

}  // namespace lfl

#endif  // LOTTERYFL_CONFIG_RUN_CONFIG_H_
