// OpenRound: one attempt of one round, as a value — whom it sampled, the tasks it has handed
// out and how each ended, the masks it derived, the updates it accepted, its tallies, and the
// aggregator shards its updates fold into. The coordinator makes one when a round opens and
// drops it when the round closes, so nothing of a round can leak into the next.
//
// Not thread-safe, except Fold (each shard has its own lock): the coordinator calls everything
// else under its mutex, and folds outside it.
#ifndef LOTTERYFL_SERVER_OPEN_ROUND_H_
#define LOTTERYFL_SERVER_OPEN_ROUND_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fl/aggregator.h"
#include "server/coordinator/round_metrics.h"
#include "server/coordinator/task_exchange.h"
#include "server/coordinator/ticket.h"
#include "strategy/strategy.h"

namespace lfl {

struct Task {
  int64_t client_id = 0;
  uint64_t round = 0;
  uint32_t attempt = 0;
};

// What a poll answers: wait, train these tasks, or the run is over.
struct PollResult {
  enum State { kWait, kTrain, kFinished } state = kWait;
  std::vector<Task> tasks;
  uint64_t round = 0;
};

// An accepted update, as the round keeps it until it closes.
struct AcceptedUpdate {
  std::optional<Mask> new_mask;  // set when the update changed the ticket
  std::vector<int> layer_bits;   // the precision it was sent at, per prunable layer
  UpdateReport report;           // timings range-checked
};

class OpenRound {
 public:
  // `sampled`: sorted ids. `shards`: one aggregator per fold shard, all for this round.
  // `tally`: what this round's row already counts (a failed attempt's bytes, refusals that
  // arrived between rounds, the gap since the last close).
  OpenRound(uint64_t round, uint32_t attempt, std::vector<int64_t> sampled, double opened, double deadline,
            std::vector<std::unique_ptr<ClippedAggregator>> shards, RoundMetrics tally);
  // A round whose `shards` aggregators the strategy makes for `layout`, clipped at `clip_bound`.
  static absl::StatusOr<std::unique_ptr<OpenRound>> Open(const Strategy& strategy, uint64_t round, uint32_t attempt,
                                                         std::vector<int64_t> sampled, double opened, double deadline,
                                                         const TensorSet& layout, double clip_bound, int shards,
                                                         RoundMetrics tally);

  uint64_t round() const { return round_; }
  uint32_t attempt() const { return attempt_; }
  double opened() const { return opened_; }
  double deadline() const { return deadline_; }
  double clip_bound() const;
  const std::vector<int64_t>& sampled() const { return sampled_; }
  bool Is(uint64_t round, uint32_t attempt) const { return round == round_ && attempt == attempt_; }
  bool IsSampled(int64_t id) const;
  bool Accepted(int64_t id) const { return accepted_.count(id) != 0; }
  // The status a task ended with (an update refused), if it did.
  std::optional<absl::Status> Ended(int64_t id) const;
  // Ends a sampled client's task that has no accepted update; true if it did.
  bool End(int64_t id, absl::Status why);
  // The client gave its task up (its training or encoding failed): ends the task now, so the
  // round need not wait for its deadline, and counts it in the row's `abandoned`. Refused
  // (*cause names the rule) when the client has no open task: not sampled, its task already
  // ended, an update already accepted or begun uploading.
  absl::Status Abandon(int64_t id, std::string_view reason, std::string* cause);
  // The open tasks among `ids` (sorted).
  std::vector<Task> TasksFor(const std::vector<int64_t>& ids) const;
  // Every sampled client answered (or its task ended), apart from those `left` says have left.
  template <typename LeftFn>
  bool Complete(LeftFn left) const {
    for (int64_t id : sampled_) {
      if (!Accepted(id) && ended_.count(id) == 0 && !left(id)) return false;
    }
    return true;
  }

  // Admits a download of `id`'s model (sampled, task not ended, at most max_refetches beyond
  // the first; counted); *first: it is the task's first. On a refusal *cause names the rule.
  absl::Status AdmitFetch(int64_t id, int64_t max_refetches, bool* first, std::string* cause);
  // Admits an upload of `id` (sampled, not yet accepted: AlreadyExists, and unless
  // `even_ended`, its task not ended: Submit follows an admitted header, so it does not ask).
  absl::Status AdmitUpload(int64_t id, std::string* cause, bool even_ended = false) const;
  // Counts a served downlink in the row (the task's first, or a refetch).
  static void CountDownlink(bool first, uint64_t bytes, RoundMetrics* tally);
  void SetDerived(int64_t id, std::optional<Mask> mask);
  const Mask* Derived(int64_t id) const;
  void UploadStarted(int64_t id, double now) { upload_started_[id] = now; }

  // Folding: BeginFold reserves the client until EndFold. Refused (*cause names the rule) while
  // the round is closing (round_closed), when another of its updates is folding
  // (fold_in_progress, Unavailable: retry); AlreadyExists when its update was accepted meanwhile.
  absl::Status BeginFold(int64_t id, std::string* cause);
  void EndFold(int64_t id) { folding_.erase(id); }
  const std::set<int64_t>* folding() const { return &folding_; }
  bool closing = false;  // the coordinator is closing the round: no new folds
  // Folds an update into a free shard. Thread-safe.
  absl::Status Fold(const ClientUpdate& update);
  // Records a folded update (`bytes` on the wire) as accepted.
  void Accept(int64_t id, CheckedUpdate update, double now, uint64_t bytes);
  // The row's running tallies (bytes, refusals, outliers), carried to a retried attempt.
  RoundMetrics& tally() { return tally_; }
  // The round's row, begun: round, attempts, sampled, completed, dropped.
  RoundMetrics Row() const;

  // Merges the shards (call once, after the folds drained) and returns the aggregate.
  absl::StatusOr<TensorSet> Aggregate(const TensorSet& previous);
  // Per accepted client, its distance to its start point before clipping (after Aggregate). A
  // copy, taken under the shard's lock: one entry per accepted update.
  std::map<int64_t, double> start_distances() const;
  // Commits the accepted updates to the tickets (masks and, when keep_bits, precisions; the
  // reported accuracies and counts) and fills the row's per-update figures. Returns the ids of
  // the tickets it touched.
  std::vector<int64_t> Commit(std::vector<Ticket>* tickets, bool keep_bits, RoundMetrics* m) const;

 private:
  absl::Status AdmitTask(int64_t id, std::string* cause) const;
  void FillTallies(RoundMetrics* m) const;

  const uint64_t round_;
  const uint32_t attempt_;
  const std::vector<int64_t> sampled_;
  const double opened_;
  const double deadline_;
  std::map<int64_t, AcceptedUpdate> accepted_;
  std::map<int64_t, absl::Status> ended_;
  std::map<int64_t, Mask> derived_;
  std::map<int64_t, int64_t> fetches_;
  std::map<int64_t, double> upload_started_;
  std::set<int64_t> folding_;
  double server_network_sum_ = 0;
  RoundMetrics tally_;  // the bytes, refusals and outliers of this attempt
  struct Shard {
    absl::Mutex mu;
    std::unique_ptr<ClippedAggregator> acc ABSL_GUARDED_BY(mu);
  };
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_OPEN_ROUND_H_
