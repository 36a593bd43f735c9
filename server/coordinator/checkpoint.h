#ifndef LOTTERYFL_SERVER_CHECKPOINT_H_
#define LOTTERYFL_SERVER_CHECKPOINT_H_

// The server's checkpoint: everything needed to continue a run after a crash —
// the global model, every client's ticket and last reported accuracy, the next
// round and the byte totals. (Sampling needs no RNG state: it is seeded by
// (seed, round, attempt).)
//
// On disk it is a snapshot plus a log, so that a round's checkpoint costs what the round
// changed, not what K clients hold:
//   PATH      a full snapshot (format 5), written atomically: temp file, fsync, rename, fsync
//             of the directory, so a crash leaves either the old or the new snapshot;
//   PATH.log  one record per round since that snapshot: the new global model, the totals and
//             the state of the clients whose tickets changed. Appended and fsynced. Every
//             record names its snapshot's generation, so records left over from an older
//             snapshot (a crash between the rename and the log's truncation) are ignored.
// A record torn by a crash during its append is the last one in the file and is ignored (its
// round re-runs after --resume); damage anywhere else is DataLoss.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"
#include "server/coordinator/ticket.h"

namespace lfl {

struct Checkpoint {
  uint64_t generation = 0;  // pairs the snapshot with its log (0: format 4 and older, no log)
  uint64_t next_round = 1;
  uint64_t seed = 0;
  TensorSet global;
  std::vector<Ticket> clients;  // by id; density is recomputed from the mask when read
  uint64_t totals_uplink = 0, totals_downlink = 0, totals_dense = 0;
};

// What one round changed: applied on top of the snapshot (and the records before it).
struct CheckpointDelta {
  uint64_t generation = 0;  // the snapshot this record belongs to
  uint64_t next_round = 1;
  TensorSet global;
  std::vector<std::pair<int64_t, Ticket>> clients;  // changed clients, by id
  uint64_t totals_uplink = 0, totals_downlink = 0, totals_dense = 0;
};

std::string SerializeCheckpoint(const Checkpoint& cp);
absl::StatusOr<Checkpoint> ParseCheckpoint(std::string_view bytes);
// One framed log record: magic, length, payload, SHA-256 of the payload.
std::string SerializeDeltaRecord(const CheckpointDelta& delta);
// Applies, in order, the records of `log` that belong to cp->generation. Returns how many were
// applied. A record must advance next_round and name clients of the snapshot.
absl::StatusOr<int> ApplyCheckpointLog(std::string_view log, Checkpoint* cp);

// Reads PATH and applies PATH.log (if any). NotFound without PATH; DataLoss names the file.
absl::StatusOr<Checkpoint> ReadCheckpointFile(const std::string& path);
// Writes a snapshot to PATH and empties PATH.log.
absl::Status WriteCheckpointFile(const Checkpoint& cp, const std::string& path);
// Appends a record to PATH.log and fsyncs it. On failure the log is cut back to its length
// before the call, so a retry appends the record once.
absl::Status AppendCheckpointRecord(const CheckpointDelta& delta, const std::string& path);
std::string CheckpointLogPath(const std::string& path);


}  // namespace lfl

#endif  // LOTTERYFL_SERVER_CHECKPOINT_H_
