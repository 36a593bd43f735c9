#include "runtime/run_data.h"

#include "absl/strings/str_cat.h"
#include "models/torchscript_net.h"

namespace lfl {

PartitionOptions PartitionOptionsFor(const RunConfig& c) {
  PartitionOptions p;
  p.scheme = c.partition;
  p.clients = c.clients;
  p.classes_per_client = c.classes_per_client;
  p.samples_per_class = c.samples_per_class;
  p.beta = c.beta;
  p.min_samples = c.min_samples;
  p.noise_sigma = c.noise_sigma;
  p.test_per_client = c.test_per_client;
  p.validation_fraction = c.validation_fraction;
  p.validation_source = c.validation_source;
  p.seed = c.seed;
  return p;
}

Normalization FixedNormalization(DatasetKind dataset) {
  if (dataset == DatasetKind::kFashionMnist) return Normalization{{0.2860f}, {0.3530f}};
  if (dataset == DatasetKind::kMnist) return Normalization{{0.1307f}, {0.3081f}};
  if (dataset == DatasetKind::kCifar10) {
    return Normalization{{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
  }
  return Normalization{{0.1751f}, {0.3332f}};  // every EMNIST split
}

absl::StatusOr<Normalization> RunNormalization(const RunConfig& config, const Dataset& dataset) {
  if (config.normalization == NormalizationMode::kMnist) {
    if (dataset.channels != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--normalization mnist needs a 1-channel dataset; ", std::string(ModeName(config.dataset)),
                       " has ", dataset.channels));
    }
    return FixedNormalization(DatasetKind::kMnist);
  }
  if (config.client_data == ClientDataSource::kLocal) return FixedNormalization(config.dataset);
  return ComputeNormalization(dataset.train, dataset.channels);
}

std::string RunModelName(const RunConfig& config) {
  return config.model.empty() ? std::string(ModelKindName(DefaultModelFor(config.dataset))) : config.model;
}

absl::Status PrepareRunModel(const RunConfig& config) {
  if (!IsTorchScriptModel(config.model)) return absl::OkStatus();
  absl::Status s = RegisterTorchScriptModel(config.model);
  return s.ok() ? s : absl::Status(s.code(), absl::StrCat("--model: ", s.message()));
}

absl::StatusOr<std::shared_ptr<const RunData>> LoadRunData(const RunConfig& config) {
  if (absl::Status s = PrepareRunModel(config); !s.ok()) return s;
  absl::StatusOr<Dataset> dataset = LoadDataset(config.dataset, config.data_dir);
  if (!dataset.ok()) return dataset.status();
  auto data = std::make_shared<RunData>();
  data->config = config;
  absl::StatusOr<Partition> partition = MakePartition(*dataset, PartitionOptionsFor(config));
  if (!partition.ok()) return partition.status();
  data->partition = *std::move(partition);
  data->shape = {dataset->channels, dataset->height, dataset->width, dataset->num_classes};
  data->num_classes = dataset->num_classes;
  data->model = RunModelName(config);
  absl::StatusOr<Normalization> norm = RunNormalization(config, *dataset);
  if (!norm.ok()) return norm.status();
  data->train = ToTensorData(dataset->train, *dataset, *norm);
  data->test = ToTensorData(dataset->test, *dataset, *norm);
  absl::StatusOr<Net> net = MakeNamedNet(data->model, data->shape, config.seed);
  if (!net.ok()) return absl::Status(net.status().code(), absl::StrCat("--model: ", net.status().message()));
  data->theta0 = ToTensorSet(**net);
  return std::shared_ptr<const RunData>(std::move(data));
}

absl::StatusOr<Net> NewNet(const RunData& data) { return MakeNamedNet(data.model, data.shape, data.config.seed); }

}  // namespace lfl
