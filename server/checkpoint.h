#ifndef LOTTERYFL_SERVER_CHECKPOINT_H_
#define LOTTERYFL_SERVER_CHECKPOINT_H_

// The server's checkpoint: everything needed to continue a run after a crash —
// the global model, every client's ticket and last reported accuracy, the next
// round and the byte totals. (Sampling needs no RNG state: it is seeded by
// (seed, round, attempt).) Written atomically: temp file, fsync, rename, fsync
// of the directory, so a crash leaves either the old or the new checkpoint.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl {

struct CheckpointClient {
  Mask mask;
  uint32_t mask_version = 0;
  double personalized_accuracy = -1;
  int64_t test_count = 0;
  int64_t num_samples = 0;
  std::vector<int> layer_bits;  // BSQ precision per prunable layer (empty: never quantized)
};

struct Checkpoint {
  uint64_t next_round = 1;
  uint64_t seed = 0;
  TensorSet global;
  std::vector<CheckpointClient> clients;
  uint64_t totals_uplink = 0, totals_downlink = 0, totals_dense = 0;
};

std::string SerializeCheckpoint(const Checkpoint& cp);
absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view bytes);
absl::Status WriteCheckpointFile(const Checkpoint& cp, const std::string& path);
absl::StatusOr<Checkpoint> ReadCheckpointFile(const std::string& path);


}  // namespace lfl

#endif  // LOTTERYFL_SERVER_CHECKPOINT_H_
