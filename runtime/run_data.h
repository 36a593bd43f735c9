#ifndef LOTTERYFL_RUNTIME_RUN_DATA_H_
#define LOTTERYFL_RUNTIME_RUN_DATA_H_

// RunData: what a run's server evaluator and its clients derive from the run
// configuration alone — the dataset (loaded once per process and shared
// read-only by every virtual client, which hold only index lists), the
// deterministic partition, the model shape and the round-0 weights θ0.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "config/run_config.h"
#include "fl/tensor_set.h"
#include "models/data.h"
#include "models/net.h"
#include "partitioning/dataset.h"
#include "partitioning/partition.h"

namespace lfl {

struct RunData {
  RunConfig config;
  Partition partition;
  NetShape shape;
  std::string model;  // a zoo or registered model name (MakeNamedNet); NewNet builds it
  TensorData train, test;  // whole splits as normalized tensors
  TensorSet theta0;        // round-0 global weights (seeded by config.seed)
  int64_t num_classes = 10;
};

PartitionOptions PartitionOptionsFor(const RunConfig& config);

// Fixed per-channel statistics of each dataset's whole standard training set, for runs whose
// clients bring their own data (client-data = local): no process sees all the training data
// there, and the server's global model and every client must normalize alike.
//   fashion-mnist 0.2860 / 0.3530 (measured on Debian's dataset-fashion-mnist)
//   mnist         0.1307 / 0.3081
//   emnist-*      0.1751 / 0.3332 (the balanced split's, for every split)
//   cifar10       (0.4914, 0.4822, 0.4465) / (0.2470, 0.2435, 0.2616)
Normalization FixedNormalization(DatasetKind dataset);

// The normalization of a run: MNIST's fixed statistics with --normalization mnist (1-channel
// datasets only; the LotteryFL reference's choice), FixedNormalization(dataset) for
// client-data = local, otherwise the statistics of `dataset.train` (the whole training split,
// which every process loads).
absl::StatusOr<Normalization> RunNormalization(const RunConfig& config, const Dataset& dataset);

// The model name of a run: config.model, or the dataset's default.
std::string RunModelName(const RunConfig& config);

// Makes the run's model buildable in this process: a "torchscript:FILE" model
// (models/torchscript_net.h) is registered; zoo and registered names need nothing.
// LoadRunData and LoadLocalRunData call it. Errors name the file.
absl::Status PrepareRunModel(const RunConfig& config);

// Loads the dataset, partitions it and builds θ0. Errors name the file or flag at fault.
// With client-data = local (the server's global model) the images are normalized by
// FixedNormalization, as the clients' own (runtime/local_data.h); the rest is unchanged.
absl::StatusOr<std::shared_ptr<const RunData>> LoadRunData(const RunConfig& config);
// A fresh net holding θ0.
absl::StatusOr<Net> NewNet(const RunData& data);

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_RUN_DATA_H_
