// CoordinatorOptions: how a RoundCoordinator is set up (server/coordinator/round_coordinator.h).
#ifndef LOTTERYFL_SERVER_COORDINATOR_OPTIONS_H_
#define LOTTERYFL_SERVER_COORDINATOR_OPTIONS_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/run_config.h"
#include "server/coordinator/authenticator.h"
#include "server/coordinator/refusals.h"

namespace lfl {

struct CoordinatorOptions {
  RunConfig config;
  // Who may speak for which client id. Null: `tokens` below (tests); both empty = any id of
  // the run is accepted without a token (--insecure, the in-process simulator).
  std::shared_ptr<const Authenticator> authenticator;
  std::map<int64_t, std::string> tokens;  // client id → plain token (tests)
  double liveness_seconds = 15;           // a client unseen this long is not sampled
  // What the server computed itself from the partition it assigned (index = client id):
  // training images (the aggregation weight, whatever num_samples a client reports) and local
  // test images (a reported test_count must equal it). Empty: the server does not know the
  // clients' data; reported counts are then clamped to [1, max_reported_samples].
  std::vector<int64_t> train_counts;
  std::vector<int64_t> test_counts;
  int64_t max_reported_samples = 100000;
  // An update whose L2 distance to the global model it was trained from (over the elements it
  // keeps) exceeds this is refused as an outlier; <= 0 disables the check.
  double max_update_norm = 1000;
  // false: Tick evaluates, calls on_round and checkpoints each aggregated round before it
  // returns (tests, simple drivers). true: Tick returns at once and the caller runs
  // FinishRound for each event, in order, on a thread of its own (the server does), so
  // evaluation and the checkpoint's serialization and fsync never hold up the next round.
  bool defer_round_work = false;
  // Checkpoints are a snapshot plus one log record per round (server/coordinator/checkpoint.h); every
  // this many rounds a full snapshot replaces the log. 1 = a snapshot every round.
  int64_t checkpoint_snapshot_every = 20;
  // Accumulator shards that accepted updates fold into concurrently (merged exactly at the
  // close). Each costs 24 bytes per model element.
  int fold_shards = 2;
  // Every refusal, counted by cause (server/coordinator/refusals.h). Null: the coordinator keeps its own.
  // The server shares one instance between the gRPC service and the coordinator.
  std::shared_ptr<RefusalCounters> refusals;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_COORDINATOR_OPTIONS_H_
