// CheckpointLog: when a round's state goes to disk as a full snapshot and when as a log record
// of what it changed (server/coordinator/checkpoint.h has the format), and the checks a checkpoint must
// pass before a run continues from it.
//
// Every snapshot_every rounds a snapshot (of a new generation) replaces the log; in between each
// round appends one record holding the global model, the totals and the tickets that changed.
// The first checkpoint of a process, and the first after a restore, is a snapshot.
//
// Not thread-safe: the coordinator plans under its mutex and writes outside it.
#ifndef LOTTERYFL_SERVER_CHECKPOINT_LOG_H_
#define LOTTERYFL_SERVER_CHECKPOINT_LOG_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fl/tensor_set.h"
#include "server/coordinator/checkpoint.h"
#include "server/coordinator/round_metrics.h"
#include "server/coordinator/ticket.h"

namespace lfl {

// The state a checkpoint records.
struct RunState {
  uint64_t next_round = 1;
  uint64_t seed = 0;
  const TensorSet* global = nullptr;
  const std::vector<Ticket>* tickets = nullptr;
  RunTotals totals;
};

// What to write for one round: exactly one of the two is set.
struct CheckpointWrite {
  std::optional<Checkpoint> snapshot;
  std::optional<CheckpointDelta> delta;
  uint64_t round() const { return (snapshot ? snapshot->next_round : delta->next_round) - 1; }
};

class CheckpointLog {
 public:
  // An empty path: no checkpoints (enabled() is false, Plan returns nothing).
  CheckpointLog(std::string path, int64_t snapshot_every);

  bool enabled() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // A ticket changed since the last record.
  void Changed(int64_t id) { changed_.insert(id); }
  // The write for a round that just closed, leaving `state`.
  std::optional<CheckpointWrite> Plan(const RunState& state);
  // A snapshot now, of a new generation (SIGTERM).
  CheckpointWrite SnapshotNow(const RunState& state);
  // One attempt at writing `write` to path().
  absl::Status Write(const CheckpointWrite& write) const;
  // Up to `attempts` of them; *failures counts the failed ones. DataLoss when all failed.
  absl::Status WriteWithRetry(const CheckpointWrite& write, int attempts, int* failures) const;

  // Reads path `from` and checks it fits this run (seed, the model's layout, the client count,
  // every mask and layer-bit count); the next checkpoint is then a snapshot of a new generation.
  absl::StatusOr<Checkpoint> Restore(const std::string& from, uint64_t seed, const TensorSet& layout,
                                     size_t num_clients);

 private:
  Checkpoint Snapshot(const RunState& state) const;
  CheckpointDelta Delta(const RunState& state) const;

  const std::string path_;
  const int64_t snapshot_every_;
  uint64_t generation_ = 0;
  int64_t records_since_snapshot_;
  std::set<int64_t> changed_;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_CHECKPOINT_LOG_H_
