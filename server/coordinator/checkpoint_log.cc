#include "server/coordinator/checkpoint_log.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace lfl {

CheckpointLog::CheckpointLog(std::string path, int64_t snapshot_every)
    : path_(std::move(path)), snapshot_every_(snapshot_every), records_since_snapshot_(snapshot_every) {}

std::optional<CheckpointWrite> CheckpointLog::Plan(const RunState& state) {
  if (!enabled()) return std::nullopt;
  CheckpointWrite write;
  if (records_since_snapshot_ + 1 >= snapshot_every_) {
    ++generation_;
    write.snapshot = Snapshot(state);
    records_since_snapshot_ = 0;
  } else {
    write.delta = Delta(state);
    ++records_since_snapshot_;
  }
  changed_.clear();
  return write;
}

CheckpointWrite CheckpointLog::SnapshotNow(const RunState& state) {
  ++generation_;
  records_since_snapshot_ = 0;
  changed_.clear();
  CheckpointWrite write;
  write.snapshot = Snapshot(state);
  return write;
}

absl::Status CheckpointLog::Write(const CheckpointWrite& write) const {
  return write.snapshot ? WriteCheckpointFile(*write.snapshot, path_) : AppendCheckpointRecord(*write.delta, path_);
}

absl::Status CheckpointLog::WriteWithRetry(const CheckpointWrite& write, int attempts, int* failures) const {
  absl::Status last;
  for (int attempt = 0; attempt < attempts; ++attempt) {
    if ((last = Write(write)).ok()) return last;
    ++*failures;
  }
  return absl::DataLossError(absl::StrCat("checkpoint of round ", write.round(), " failed ", attempts,
                                          " times; stopping so that no round is lost: ", last.message()));
}

Checkpoint CheckpointLog::Snapshot(const RunState& state) const {
  Checkpoint cp;
  cp.generation = generation_;
  cp.next_round = state.next_round;
  cp.seed = state.seed;
  cp.global = *state.global;
  cp.totals_uplink = state.totals.uplink_bytes;
  cp.totals_downlink = state.totals.downlink_bytes;
  cp.totals_dense = state.totals.dense_fp32_bytes;
  cp.clients = *state.tickets;
  return cp;
}

CheckpointDelta CheckpointLog::Delta(const RunState& state) const {
  CheckpointDelta d;
  d.generation = generation_;
  d.next_round = state.next_round;
  d.global = *state.global;
  d.totals_uplink = state.totals.uplink_bytes;
  d.totals_downlink = state.totals.downlink_bytes;
  d.totals_dense = state.totals.dense_fp32_bytes;
  d.clients.reserve(changed_.size());
  for (int64_t id : changed_) d.clients.emplace_back(id, (*state.tickets)[static_cast<size_t>(id)]);
  return d;
}

absl::StatusOr<Checkpoint> CheckpointLog::Restore(const std::string& from, uint64_t seed, const TensorSet& layout,
                                                  size_t num_clients) {
  absl::StatusOr<Checkpoint> cp = ReadCheckpointFile(from);
  if (!cp.ok()) return cp.status();
  auto refuse = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", from, why));
  };
  if (cp->seed != seed) return refuse(absl::StrCat(" was written with seed ", cp->seed, ", this run uses ", seed));
  if (absl::Status s = cp->global.CheckLayout(layout); !s.ok()) {
    return refuse(absl::StrCat(" is for another model: ", s.message()));
  }
  if (cp->clients.size() != num_clients) {
    return refuse(absl::StrCat(" has ", cp->clients.size(), " clients, this run has ", num_clients));
  }
  size_t prunable = 0;
  for (const NamedTensor& t : layout.tensors) prunable += t.prunable ? 1 : 0;
  for (size_t i = 0; i < cp->clients.size(); ++i) {
    const Ticket& c = cp->clients[i];
    if (absl::Status s = c.mask.CheckMatches(layout); !s.ok()) return s;
    if (!c.layer_bits.empty() && c.layer_bits.size() != prunable) {
      return refuse(absl::StrCat(": client ", i, " has ", c.layer_bits.size(), " layer bits, the model has ",
                                 prunable, " prunable tensors"));
    }
  }
  // The first round closed after a restore writes a fresh snapshot (of a new generation).
  generation_ = cp->generation;
  records_since_snapshot_ = snapshot_every_;
  changed_.clear();
  return cp;
}

}  // namespace lfl
