// The run's modes — which dataset, how it is partitioned, which algorithm, which encoding,
// whose data, how updates combine — as enums. RunConfig holds them as these types: a mode's name is parsed once, where the flag
// or the TOML key is read (config/run_config.cc), and everything else switches on the enum.
// Torch-free and dependency-free apart from absl: partitioning/ (below config/) uses the
// dataset and partition enums too, and lotteryfl-partition parses them with ParseMode.
#ifndef LOTTERYFL_CONFIG_RUN_MODES_H_
#define LOTTERYFL_CONFIG_RUN_MODES_H_

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace lfl {

// The datasets partitioning/dataset.h reads: a closed set, each with its own files, labels and
// default model. A manifest's or a Dataset's `name` is ModeName of one of these (tests build
// synthetic datasets under other names).
enum class DatasetKind {
  kFashionMnist,
  kMnist,
  kEmnistBalanced,
  kEmnistByclass,
  kEmnistBymerge,
  kEmnistLetters,
  kEmnistDigits,
  kEmnistMnist,
  kCifar10
};
// How training images are spread over the clients (partitioning/partition.h says what each
// scheme does); a manifest records the scheme's ModeName.
enum class PartitionScheme { kIid, kShards, kDirichlet, kQuantity, kNoise, kShared };
// fedavg: dense weighted mean. lotteryfl: personalized tickets (accuracy-gated magnitude
// pruning with rewinding), masked mean. fedprox: here LotteryFL's personalized tickets plus
// FedProx's proximal term in local training ((mu/2)·‖w − w_start‖² over the kept weights,
// mu = --proximal-mu). local: lotteryfl-sim only, every client trains alone (no aggregation,
// no bytes).
enum class Algorithm { kFedAvg, kLotteryFl, kLocal, kFedProx };
// The uplink/downlink encoding.
enum class QuantMode { kNone, kUniform8, kUniform4, kUniform2, kBsq };
// partition: clients take their slice of the partition, which the server computes too.
// local: each client brings its own files; the server cannot evaluate them.
enum class ClientDataSource { kPartition, kLocal };
// How a round's updates combine into the next global model (fl/aggregator.h).
enum class AggregatorKind { kMaskedMean, kKeeperMedian, kKeeperTrimmedMean, kDenseMedian };
// What LotteryFL's pruning gate judges the global ticket on.
enum class GateSplit { kValidation, kTest };
// Where a client's validation slice (the pruning gate's) comes from: unused, training images
// no client trains on; own, carved from the client's own (the LotteryFL reference's).
enum class ValidationSource { kUnused, kOwn };
// dataset: the training split's statistics; mnist: 0.1307 / 0.3081 for any 1-channel dataset.
enum class NormalizationMode { kDataset, kMnist };

// Every name of a mode, in its enum's order: {"fedavg", kFedAvg}, ...
template <typename Mode>
const std::vector<std::pair<std::string_view, Mode>>& ModeNames();
template <>
const std::vector<std::pair<std::string_view, DatasetKind>>& ModeNames<DatasetKind>();
template <>
const std::vector<std::pair<std::string_view, PartitionScheme>>& ModeNames<PartitionScheme>();
template <>
const std::vector<std::pair<std::string_view, Algorithm>>& ModeNames<Algorithm>();
template <>
const std::vector<std::pair<std::string_view, QuantMode>>& ModeNames<QuantMode>();
template <>
const std::vector<std::pair<std::string_view, ClientDataSource>>& ModeNames<ClientDataSource>();
template <>
const std::vector<std::pair<std::string_view, AggregatorKind>>& ModeNames<AggregatorKind>();
template <>
const std::vector<std::pair<std::string_view, GateSplit>>& ModeNames<GateSplit>();
template <>
const std::vector<std::pair<std::string_view, NormalizationMode>>& ModeNames<NormalizationMode>();
template <>
const std::vector<std::pair<std::string_view, ValidationSource>>& ModeNames<ValidationSource>();

// The name of a mode ("lotteryfl").
template <typename Mode>
std::string_view ModeName(Mode mode) {
  for (const auto& [name, m] : ModeNames<Mode>()) {
    if (m == mode) return name;
  }
  return "?";
}

// "a | b | c", for help texts and errors.
template <typename Mode>
std::string ModeChoices() {
  std::string out;
  for (const auto& [name, m] : ModeNames<Mode>()) {
    if (!out.empty()) out += " | ";
    out += name;
  }
  return out;
}

// The mode named `name`; InvalidArgument listing the choices otherwise.
template <typename Mode>
absl::StatusOr<Mode> ParseMode(std::string_view name) {
  for (const auto& [n, m] : ModeNames<Mode>()) {
    if (n == name) return m;
  }
  return absl::InvalidArgumentError(std::string("unknown value '") + std::string(name) + "' (" +
                                    ModeChoices<Mode>() + ")");
}

// Kept as a named function: the encodings are parsed in tests and tools too.
inline absl::StatusOr<QuantMode> ParseQuantMode(std::string_view name) { return ParseMode<QuantMode>(name); }

// True for the EMNIST splits: IDX files under EMNIST's names, images stored column-major, the
// FEMNIST model and EMNIST's normalization.
inline bool IsEmnist(DatasetKind d) {
  return d != DatasetKind::kFashionMnist && d != DatasetKind::kMnist && d != DatasetKind::kCifar10;
}

// True for the algorithms whose clients train lottery tickets (masks, pruning, rewinding).
inline bool TrainsTickets(Algorithm a) { return a == Algorithm::kLotteryFl || a == Algorithm::kFedProx; }

}  // namespace lfl

#endif  // LOTTERYFL_CONFIG_RUN_MODES_H_
