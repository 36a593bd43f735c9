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
// Loads the dataset, partitions it and builds θ0. Errors name the file or flag at fault.
absl::StatusOr<std::shared_ptr<const RunData>> LoadRunData(const RunConfig& config);
// A fresh net holding θ0.
absl::StatusOr<Net> NewNet(const RunData& data);

}  // namespace lfl

#endif  // LOTTERYFL_RUNTIME_RUN_DATA_H_
