#include "config/modes/run_modes.h"

namespace lfl {

template <>
const std::vector<std::pair<std::string_view, DatasetKind>>& ModeNames<DatasetKind>() {
  static const auto* k = new std::vector<std::pair<std::string_view, DatasetKind>>{
      {"fashion-mnist", DatasetKind::kFashionMnist},
      {"mnist", DatasetKind::kMnist},
      {"emnist-balanced", DatasetKind::kEmnistBalanced},
      {"emnist-byclass", DatasetKind::kEmnistByclass},
      {"emnist-bymerge", DatasetKind::kEmnistBymerge},
      {"emnist-letters", DatasetKind::kEmnistLetters},
      {"emnist-digits", DatasetKind::kEmnistDigits},
      {"emnist-mnist", DatasetKind::kEmnistMnist},
      {"cifar10", DatasetKind::kCifar10}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, PartitionScheme>>& ModeNames<PartitionScheme>() {
  static const auto* k = new std::vector<std::pair<std::string_view, PartitionScheme>>{
      {"iid", PartitionScheme::kIid},           {"shards", PartitionScheme::kShards},
      {"dirichlet", PartitionScheme::kDirichlet}, {"quantity", PartitionScheme::kQuantity},
      {"noise", PartitionScheme::kNoise},       {"shared", PartitionScheme::kShared}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, Algorithm>>& ModeNames<Algorithm>() {
  static const auto* k = new std::vector<std::pair<std::string_view, Algorithm>>{
      {"fedavg", Algorithm::kFedAvg},
      {"lotteryfl", Algorithm::kLotteryFl},
      {"local", Algorithm::kLocal},
      {"fedprox", Algorithm::kFedProx}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, QuantMode>>& ModeNames<QuantMode>() {
  static const auto* k = new std::vector<std::pair<std::string_view, QuantMode>>{
      {"none", QuantMode::kNone},
      {"uniform8", QuantMode::kUniform8},
      {"uniform4", QuantMode::kUniform4},
      {"uniform2", QuantMode::kUniform2},
      {"bsq", QuantMode::kBsq}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, ClientDataSource>>& ModeNames<ClientDataSource>() {
  static const auto* k = new std::vector<std::pair<std::string_view, ClientDataSource>>{
      {"partition", ClientDataSource::kPartition}, {"local", ClientDataSource::kLocal}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, AggregatorKind>>& ModeNames<AggregatorKind>() {
  static const auto* k = new std::vector<std::pair<std::string_view, AggregatorKind>>{
      {"masked-mean", AggregatorKind::kMaskedMean},
      {"keeper-median", AggregatorKind::kKeeperMedian},
      {"keeper-trimmed-mean", AggregatorKind::kKeeperTrimmedMean},
      {"dense-median", AggregatorKind::kDenseMedian}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, GateSplit>>& ModeNames<GateSplit>() {
  static const auto* k = new std::vector<std::pair<std::string_view, GateSplit>>{
      {"validation", GateSplit::kValidation}, {"test", GateSplit::kTest}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, NormalizationMode>>& ModeNames<NormalizationMode>() {
  static const auto* k = new std::vector<std::pair<std::string_view, NormalizationMode>>{
      {"dataset", NormalizationMode::kDataset}, {"mnist", NormalizationMode::kMnist}};
  return *k;
}

template <>
const std::vector<std::pair<std::string_view, ValidationSource>>& ModeNames<ValidationSource>() {
  static const auto* k = new std::vector<std::pair<std::string_view, ValidationSource>>{
      {"unused", ValidationSource::kUnused}, {"own", ValidationSource::kOwn}};
  return *k;
}

}  // namespace lfl
