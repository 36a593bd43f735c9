#ifndef LOTTERYFL_SERVER_ROUND_COORDINATOR_H_
#define LOTTERYFL_SERVER_ROUND_COORDINATOR_H_

// RoundCoordinator: the federation's network-free state machine. It conducts — the phase,
// the lock, the sequencing — and the Strategy (strategy/strategy.h) decides.
//
//   waiting for clients → round r open (sampled set, deadline) → aggregate →
//   evaluate → checkpoint → round r+1 … → finished
//
// Collaborators: Membership (credentials, joins, liveness, sessions, upload slots), OpenRound
// (one attempt of one round as a value), CheckpointLog (snapshot or record, restore checks) and
// TaskExchange (what crosses the network for a task). docs/architecture.md walks a round
// through them, with the determinism, ticket and derived-mask contracts. The gRPC service and
// the in-process simulator drive it alike; tests drive it with fake times. Thread-safe. Time is
// passed in (seconds on any monotonic clock): nothing here sleeps or reads a clock.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fl/clipping.h"
#include "fl/evaluator.h"
#include "server/coordinator/checkpoint_log.h"
#include "server/coordinator/coordinator_options.h"
#include "server/coordinator/membership.h"
#include "server/coordinator/open_round.h"
#include "server/coordinator/task_exchange.h"
#include "strategy/strategy.h"

namespace lfl {

class RoundCoordinator {
 public:
  // theta0: the round-0 global weights (derived from the seed by the caller).
  // evaluator may be null (no accuracies). checkpoint_path empty = no checkpoints.
  RoundCoordinator(CoordinatorOptions options, TensorSet theta0, std::unique_ptr<Strategy> strategy,
                   Evaluator* evaluator, std::string checkpoint_path, double now);

  // Continues from a checkpoint written by an earlier run with the same config.
  absl::Status Restore(const std::string& checkpoint_path, double now);

  // Registers a client; returns the run config as TOML. Unknown id or bad token → error.
  absl::StatusOr<std::string> Join(const Credential& credential, double now);
  // Registers a host's clients (all or none: any bad credential refuses the whole call) and
  // opens their session: after the join, one credential for all of them (server/coordinator/session_table.h).
  absl::StatusOr<HostJoin> JoinHost(const std::vector<Credential>& clients, double now);
  // Marks clients live and returns their tasks of the open round (if any).
  absl::StatusOr<PollResult> Poll(const std::vector<Credential>& clients, double now);
  absl::Status Heartbeat(const std::vector<Credential>& clients, double now);
  // Poll and Heartbeat with a session from JoinHost: O(sampled · log(host's clients)), not one
  // token check per client. An unknown session is FailedPrecondition (join again).
  absl::StatusOr<PollResult> PollSession(std::string_view token, std::string_view peer_identity, double now);
  absl::Status HeartbeatSession(std::string_view token, std::string_view peer_identity, double now);
  absl::Status Leave(const std::vector<Credential>& clients, double now);

  // The encoded downlink θg ⊙ m_k for a task. held_* describe the mask the client caches.
  absl::StatusOr<DownlinkPayload> Downlink(const Credential& client, uint64_t round, uint32_t attempt,
                                           uint32_t held_mask_version, uint64_t held_mask_hash, double now);
  // Checks an upload's header before any payload is read: credential, task (this round and
  // attempt open, the client sampled, not yet accepted: else AlreadyExists, which the client
  // takes as success), declared size, no other upload of the client in flight. On OK the client
  // holds the upload slot until EndUpload (call it exactly once, whatever the stream does).
  absl::Status BeginUpload(const UpdateReport& header, uint64_t payload_bytes, double now);
  void EndUpload(int64_t client_id);
  // Validates, decodes and folds an update in. Returns true for a duplicate of an accepted
  // submission (idempotent retry). Late, foreign, malformed or non-finite updates are refused
  // and touch nothing; a refused update ends its client's task (it is not handed out again).
  absl::StatusOr<bool> Submit(const UpdateReport& report, std::string_view payload, double now);
  // The client gives up its task of `round`, `attempt` (its training or encoding failed): the
  // task ends now instead of at the deadline, counted in the row's `abandoned`. Refused when it
  // has no open task there, or its update was accepted or began uploading.
  absl::Status Abandon(const Credential& client, uint64_t round, uint32_t attempt, std::string_view reason,
                       double now);
  // The largest payload an honest client can send: every tensor raw fp32 with a mask bitmap.
  uint64_t max_update_bytes() const { return exchange_.limits().max_update_bytes; }

  // Advances the state machine: starts rounds, closes them at their deadline or when every
  // sampled client has submitted, aggregates, evaluates, checkpoints. Call it after every
  // submission and periodically (the service uses a Boost.Asio timer). on_round (optional) sees
  // every event before the round's checkpoint is written. Call Tick from one thread at a time.
  std::vector<RoundEvent> Tick(double now, const std::function<void(const RoundEvent&)>& on_round = nullptr);
  // The deferred work of an aggregated round: evaluation (its figures land in event->metrics),
  // then on_round (the metrics.jsonl row), then the checkpoint of the state the round left
  // (bounded retry; a checkpoint that cannot be written sets fatal_error()). Call it for every
  // event with work, in round order, from one thread. The checkpoint follows the row, so a
  // crash in between re-runs that round instead of losing its row.
  void FinishRound(RoundEvent* event, const std::function<void(const RoundEvent&)>& on_round);

  // Writes a checkpoint of the last completed round now (SIGTERM).
  absl::Status CheckpointNow();
  // Set when the run cannot go on (a checkpoint that failed kCheckpointAttempts times in a
  // row); the server stops with it. OK otherwise.
  absl::Status fatal_error() const;
  static constexpr int kCheckpointAttempts = 3;
  CoordinatorCounters counters() const;
  // The refusal counters (shared with whoever passed them in CoordinatorOptions).
  const std::shared_ptr<RefusalCounters>& refusals() const { return refusals_; }
  // The run is over: every round is aggregated and its row and checkpoint are written (or the
  // run stopped on a fatal error). Until then a poll is told to wait, not that the run is over.
  bool finished() const;
  uint64_t current_round() const;
  uint64_t state_version() const;  // changes with the tasks or the finished state (long polls)
  int64_t joined_clients() const;  // joined and not left (a /metrics gauge; O(1))
  const RunConfig& config() const { return options_.config; }
  RunTotals totals() const;
  // Inspection: the global model, tickets, whether a client left, the clip bound (+inf: none).
  TensorSet global_model() const;
  std::vector<Ticket> tickets() const;
  bool has_left(int64_t id) const;
  double clip_bound() const;

 private:
  // kBetweenRounds: a round closed; the next Tick opens the next one with a fresh clock, so
  // evaluation time never eats into the next round's deadline.
  enum class Phase { kWaitingForClients, kRoundOpen, kBetweenRounds, kFinished };

  // The open round if it is `round`, `attempt` (else null); refusals of a task: no such round
  // open, an update that may not be taken (*cause says why).
  OpenRound* OpenFor(uint64_t round, uint32_t attempt) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status NoRound(uint64_t round, uint32_t attempt) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status AdmitUpdate(const UpdateReport& report, std::string* cause, bool even_ended = false) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Counts a refused update (in the row too), names the client and the cause, and ends the
  // client's task in the open round.
  absl::Status CountRefusal(const UpdateReport& report, std::string_view cause, const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The row tally refusals and bytes go to: the open round's, or the next one's between rounds.
  RoundMetrics& Tally() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PollResult TasksFor(const std::vector<int64_t>& ids) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool FinishedLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Folds a checked update in and records it; false when the round closed meanwhile.
  absl::StatusOr<bool> FoldAndAccept(const UpdateReport& report, CheckedUpdate update, const TensorSet& served,
                                     uint64_t bytes, double now) ABSL_LOCKS_EXCLUDED(mu_);
  void StartRound(double now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  RoundEvent CloseRound(double now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  RunState State() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Writes outside the lock; on kCheckpointAttempts failures sets fatal_ and finishes.
  void WriteCheckpointWithRetry(const CheckpointWrite& write) ABSL_LOCKS_EXCLUDED(mu_);

  const CoordinatorOptions options_;
  const std::unique_ptr<Strategy> strategy_;
  Evaluator* const evaluator_;
  const int64_t dense_bytes_per_model_;
  const std::shared_ptr<RefusalCounters> refusals_;
  const TaskExchange exchange_;
  const TensorSet theta0_;  // where a rewound (pruned) LotteryFL ticket restarts from

  mutable absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kWaitingForClients;
  TensorSet global_ ABSL_GUARDED_BY(mu_);
  std::vector<Ticket> tickets_ ABSL_GUARDED_BY(mu_);  // by client id
  Membership members_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<OpenRound> open_ ABSL_GUARDED_BY(mu_);  // set while a round is open
  RoundMetrics carry_ ABSL_GUARDED_BY(mu_);  // the next round's row tally, between rounds
  CheckpointLog checkpoints_ ABSL_GUARDED_BY(mu_);
  AdaptiveClipBound clip_ ABSL_GUARDED_BY(mu_);  // the clip bound's history (fl/clipping.h)
  uint64_t round_ ABSL_GUARDED_BY(mu_) = 1;      // the round being run (1-based)
  uint32_t attempt_ ABSL_GUARDED_BY(mu_) = 0;
  double waiting_since_ ABSL_GUARDED_BY(mu_) = 0;
  double last_closed_ ABSL_GUARDED_BY(mu_) = -1;  // when the last round was aggregated (-1: none yet)
  RunTotals totals_ ABSL_GUARDED_BY(mu_);
  uint64_t recorded_through_ ABSL_GUARDED_BY(mu_) = 0;  // the last round whose FinishRound is done
  uint64_t state_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, uint64_t> refusals_at_last_row_ ABSL_GUARDED_BY(mu_);
  mutable CoordinatorCounters counters_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_ROUND_COORDINATOR_H_
