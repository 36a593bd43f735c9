#ifndef LOTTERYFL_SERVER_ROUND_COORDINATOR_H_
#define LOTTERYFL_SERVER_ROUND_COORDINATOR_H_

// RoundCoordinator: the federation's network-free state machine.
//
//   waiting for clients → round r open (sampled set, deadline) → aggregate →
//   evaluate → checkpoint → round r+1 … → finished
//
// The gRPC service and the in-process simulator drive it alike; tests drive it
// directly with fake times. All methods are thread-safe. Time is passed in
// (seconds on any monotonic clock) so nothing here sleeps or reads a clock.
//
// Determinism: sampling is seeded by (seed, round, attempt) over the sorted
// set of live clients, and aggregation is exact and order-independent
// (fl/accumulator.h), so the same seed and config give the same global model
// whatever the arrival order. After a start or a --resume the first round waits
// until all K clients are live (or join_timeout passes), so a resumed run
// samples exactly as the uninterrupted one would.
//
// The server is the source of truth for every client's ticket (mask, version
// and, with --quant bsq, the per-layer precision its bit planes reached): a
// client's new mask and bits take effect when the round they were sent in is
// aggregated and checkpointed; a retried or resumed round hands out the
// checkpointed ticket again.
//
// Derived masks: pruning is a deterministic function of the downlink the
// client received (LotteryFL step 3), so when it serves a downlink the server
// also computes the mask the client would get by pruning it and holds it as
// version v+1. A client that pruned references v+1 instead of sending its mask
// (an explicit mask is still accepted).

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "config/run_config.h"
#include "fl/accumulator.h"
#include "fl/clipping.h"
#include "fl/evaluator.h"
#include "fl/mask.h"
#include "strategy/strategy.h"
#include "fl/tensor_set.h"
#include "server/authenticator.h"
#include "server/refusals.h"
#include "server/session_table.h"
#include "wire/model_payload.h"

namespace lfl {

struct Checkpoint;
struct CheckpointDelta;

// Failures and refusals since the start of this process (Prometheus counters).
struct CoordinatorCounters {
  uint64_t updates_accepted = 0;
  uint64_t updates_refused = 0;     // by Submit: decode, layout, mask, norm, report checks
  uint64_t uploads_refused = 0;     // at the header, before any payload was read (BeginUpload)
  uint64_t auth_failures = 0;       // every refused credential, on any call
  uint64_t checkpoint_failures = 0; // failed checkpoint writes (each attempt)
  uint64_t evaluation_failures = 0;
  uint64_t aggregation_failures = 0;
};


// What a client reports with its update (proto UpdateHeader, minus transport).
struct UpdateReport {
  int64_t client_id = 0;
  std::string token;
  std::string peer_identity;  // the mutual-TLS certificate's common name (empty without mTLS)
  uint64_t round = 0;
  uint32_t attempt = 0;
  int64_t num_samples = 1;  // informational where the server assigned the data (see CoordinatorOptions)
  double local_accuracy = -1;
  int64_t test_count = 0;
  double validation_accuracy = -1;
  double global_masked_accuracy = -1;  // the downlink on the client's own test split (-1: not measured)
  bool pruned = false;
  double train_seconds = 0;
  double encode_seconds = 0;
  double network_seconds = 0;
  uint64_t header_bytes = 0;  // serialized size of the header message (counted in uplink bytes)
};

// One metrics.jsonl row.
struct RoundMetrics {
  uint64_t round = 0;
  uint32_t attempts = 1;
  int64_t sampled = 0, completed = 0, dropped = 0;
  bool evaluated = false;
  double personalized_accuracy = -1, global_masked_accuracy = -1, global_accuracy = -1;
  // The LotteryFL reference's personalized figure: the mean of the local accuracy (the sent model
  // on the client's own test split) reported by the clients that trained in this round, every round.
  double personalized_trained_accuracy = -1;
  double mean_density = 1;
  std::vector<double> layer_bits;  // mean over this round's updates, per prunable layer
  double mean_bits = 32;           // layer_bits weighted by the layers' parameter counts
  uint64_t uplink_bytes = 0, downlink_bytes = 0, dense_fp32_bytes = 0;
  double train_seconds = 0, encode_seconds = 0, network_seconds = 0, aggregate_seconds = 0;
  double evaluate_seconds = 0;  // the server's evaluation of this round (off the critical path)
  double wall_seconds = 0;  // this round, open to aggregated
  double open_gap_seconds = 0;  // the previous round's close to this round's open (server clock)
  int64_t pruned_clients = 0;
  int64_t eval_clients = 0;  // tickets behind global_masked_accuracy (and personalized_accuracy)
  int64_t refused = 0;  // updates of this round refused by Submit (malformed, outliers, lies)
  // Who measured global_masked_accuracy: "server" (it evaluated the tickets on the test splits
  // it assigned) or "clients" (client-data local: the clients' own reports). Personalized
  // accuracy is always the clients' report of the model they sent.
  std::string accuracy_source = "server";
  // Where the aggregation weights came from: "server" (its partition's training counts) or
  // "clients" (reported counts, clamped to [1, --max-client-samples]; clamped_samples of this
  // round's updates were).
  std::string weights_source = "server";
  int64_t clamped_samples = 0;
  double max_update_norm = 0;  // largest L2 distance of an accepted update to the global model
  // Clipping (fl/clipping.h): the round's bound (+inf: none yet, or clipping off), how many
  // accepted updates it scaled back, and the largest distance of an accepted update to the point
  // its client started from (the served model, or θ0 ⊙ m' after a rewind), before clipping.
  double clip_bound = std::numeric_limits<double>::infinity();
  int64_t clipped = 0;
  double max_start_distance = 0;
  // Measured by the server: mean seconds from an admitted upload header to its last chunk
  // (train/encode/network_seconds above are the clients' own reports, range-checked: a value
  // that is not finite or outside [0, round-timeout] is zeroed and counted in timings_zeroed).
  double server_network_seconds = 0;
  int64_t timings_zeroed = 0;
  // downlink_bytes counts each task's first download; later downloads of the same task
  // (bounded by --max-refetches) are counted here.
  int64_t refetches = 0;
  uint64_t refetch_bytes = 0;
  // Requests refused since the previous row, by cause (RefusalCounters; the coordinator's and,
  // when the server shares the counters, the transport's).
  std::map<std::string, uint64_t> refusals;
  // Failures while closing this round (aggregation, evaluation, checkpoint of the previous
  // round), each a message; also counted in CoordinatorCounters. Empty in a healthy run.
  std::vector<std::string> errors;
};

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
  // Checkpoints are a snapshot plus one log record per round (server/checkpoint.h); every
  // this many rounds a full snapshot replaces the log. 1 = a snapshot every round.
  int64_t checkpoint_snapshot_every = 20;
  // Accumulator shards that accepted updates fold into concurrently (merged exactly at the
  // close). Each costs 24 bytes per model element.
  int fold_shards = 2;
  // Every refusal, counted by cause (server/refusals.h). Null: the coordinator keeps its own.
  // The server shares one instance between the gRPC service and the coordinator.
  std::shared_ptr<RefusalCounters> refusals;
};

// Per-client state the server keeps (and checkpoints).
struct ClientState {
  bool joined = false;
  bool left = false;
  double last_seen = -1e300;
  Mask mask;
  double density = 1;  // mask.Density(), kept with it
  uint32_t mask_version = 0;
  // Magnitude bits per prunable layer of the client's last accepted BSQ update
  // (empty: never quantized; BSQ then starts at 8 bits).
  std::vector<int> layer_bits;
  double personalized_accuracy = -1;  // after its last local training
  double global_masked_accuracy = -1;  // as reported by the client (client-data local)
  int64_t test_count = 0;
  int64_t num_samples = 0;
};

struct Task {
  int64_t client_id = 0;
  uint64_t round = 0;
  uint32_t attempt = 0;
};

struct PollResult {
  enum State { kWait, kTrain, kFinished } state = kWait;
  std::vector<Task> tasks;
  uint64_t round = 0;
};

// What is left to do for an aggregated round once its state is committed: evaluate it, record
// it, checkpoint the state it left. Snapshots, so that it can run while the next round trains.
struct RoundWork;

// Emitted by Tick when a round is aggregated.
struct RoundEvent {
  RoundMetrics metrics;
  bool retried = false;  // quorum not met; the same round runs again with attempt+1
  // Set when the coordinator defers the round's work (CoordinatorOptions::defer_round_work):
  // pass the event to FinishRound. Null for retried rounds and when the work ran inside Tick.
  std::shared_ptr<RoundWork> work;
};

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
  // opens their session: after the join, one credential for all of them (server/session_table.h).
  struct HostJoin {
    std::string config_toml;
    std::string session;
  };
  absl::StatusOr<HostJoin> JoinHost(const std::vector<Credential>& clients, double now);
  // Marks clients live and returns their tasks of the open round (if any).
  absl::StatusOr<PollResult> Poll(const std::vector<Credential>& clients, double now);
  absl::Status Heartbeat(const std::vector<Credential>& clients, double now);
  // Number of clients joined and not left (a /metrics gauge; O(1)).
  int64_t joined_clients() const;
  // Poll and Heartbeat with a session from JoinHost: O(sampled · log(host's clients)), not one
  // token check per client. An unknown session is FailedPrecondition (join again).
  absl::StatusOr<PollResult> PollSession(std::string_view token, std::string_view peer_identity, double now);
  absl::Status HeartbeatSession(std::string_view token, std::string_view peer_identity, double now);
  absl::Status Leave(const std::vector<Credential>& clients, double now);

  // The encoded downlink θg ⊙ m_k for a task. held_* describe the mask the client caches.
  struct DownlinkPayload {
    std::string bytes;
    uint32_t mask_version = 0;  // the server's version of the client's ticket
    std::vector<int> layer_bits;  // the client's BSQ precision per prunable layer (empty: initial)
  };
  absl::StatusOr<DownlinkPayload> Downlink(const Credential& client, uint64_t round, uint32_t attempt,
                                           uint32_t held_mask_version, uint64_t held_mask_hash, double now);
  // Validates, decodes and folds an update in. Returns true for a duplicate of an accepted
  // submission (idempotent retry). Late, foreign, malformed or non-finite updates are refused
  // and touch nothing.
  absl::StatusOr<bool> Submit(const UpdateReport& report, std::string_view payload, double now);

  // Checks an upload's header before any of its payload is read: the credential, the task
  // (round open, this round and attempt, the client sampled and not yet accepted), the declared
  // size against max_update_bytes(), and that no other upload of this client is in flight.
  // On OK the client holds the upload slot until EndUpload (call it exactly once, whatever
  // happens to the stream). A duplicate of an accepted update is refused here with
  // AlreadyExists; the client treats that as success.
  absl::Status BeginUpload(const UpdateReport& header, uint64_t payload_bytes, double now);
  void EndUpload(int64_t client_id);
  // The largest payload an honest client of this run can send: the worst-case encoding of
  // the model layout (every tensor raw fp32 with an explicit mask bitmap, plus record headers).
  uint64_t max_update_bytes() const { return max_update_bytes_; }

  // Advances the state machine: starts rounds, closes them at their deadline or when every
  // sampled client has submitted, aggregates, evaluates, checkpoints. Call it after every
  // submission and periodically (the service uses a Boost.Asio timer).
  // on_round (optional) sees every event before the round's checkpoint is written. Call Tick
  // from one thread at a time.
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
  // The open round's clip bound (+inf when none applies).
  double clip_bound() const;

  // The run is over: every round is aggregated and its row and checkpoint are written (or the
  // run stopped on a fatal error). Until then a poll is told to wait, not that the run is over.
  bool finished() const;
  uint64_t current_round() const;
  // Changes whenever tasks or the finished state change (long-poll wake-ups).
  uint64_t state_version() const;
  TensorSet global_model() const;
  std::vector<ClientState> clients() const;
  const RunConfig& config() const { return options_.config; }
  // Totals for summary.json.
  struct Totals {
    uint64_t rounds_completed = 0, uplink_bytes = 0, downlink_bytes = 0, dense_fp32_bytes = 0;
  };
  Totals totals() const;
  double seconds_until_deadline(double now) const;

 private:
  // kBetweenRounds: a round closed; the next Tick opens the next one with a fresh clock, so
  // evaluation time never eats into the next round's deadline.
  enum class Phase { kWaitingForClients, kRoundOpen, kBetweenRounds, kFinished };

  absl::Status Authenticate(const Credential& c) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckTask(const UpdateReport& report) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Counts a refusal under `cause` and returns `why` unchanged.
  absl::Status Refused(std::string_view cause, absl::Status why) const;
  // The task of `id` in the open round ended with a refused update: the status that says why.
  std::optional<absl::Status> EndedTask(int64_t id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  absl::Status CheckReport(const UpdateReport& report) const;
  // On OK, *norm is the update's L2 distance to `global` over the elements it keeps.
  // On a refusal, *cause names the rule (layout, mask_outside_ticket, mask_density, quant_mode,
  // norm).
  absl::Status CheckUpdate(const DecodedModel& decoded, const TensorSet& global, const Mask& held,
                           double* norm, std::string* cause) const;
  // *clamped: the reported count was outside [1, max_reported_samples] and was clamped.
  double AggregationWeight(const UpdateReport& report, bool* clamped) const;
  // Counts a refused update under `cause` (counters and this round's row), names the client and
  // the cause in the status, and ends the client's task when `report` is of the open round
  // and attempt: it is not handed out again, and the round does not wait for it.
  absl::Status CountRefusal(const UpdateReport& report, std::string_view cause, const absl::Status& why)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the client's task of `report`'s round and attempt (if that is the open one) with `why`.
  void EndTask(const UpdateReport& report, const absl::Status& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Zeroes reported timings that are not finite or outside [0, round-timeout]; returns how many.
  int64_t SanitizeTimings(UpdateReport* report) const;
  bool RoundComplete() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool FinishedLocked() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // Writes `cp` outside the lock; on kCheckpointAttempts failures sets fatal_ and finishes.
  void WriteCheckpointWithRetry(const RoundWork& work) ABSL_LOCKS_EXCLUDED(mu_);
  void MarkLive(int64_t id, double now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MarkJoined(int64_t id, double now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool IsLive(int64_t id, double now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  // The session `token` names (counted as an auth failure if none), marked heard from now.
  absl::StatusOr<Session*> TouchSession(std::string_view token, std::string_view peer_identity, double now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The open round's tasks among `ids` (sorted), not yet accepted.
  PollResult TasksFor(const std::vector<int64_t>& ids) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void StartRound(double now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::vector<int64_t> Sample(double now) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  RoundEvent CloseRound(double now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FoldIn(const ClientUpdate& update) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<TensorSet> MergedFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Checkpoint SnapshotCheckpoint() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  CheckpointDelta DeltaCheckpoint() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool IsSampled(int64_t id) const ABSL_SHARED_LOCKS_REQUIRED(mu_);

  const CoordinatorOptions options_;
  const std::unique_ptr<Strategy> strategy_;
  Evaluator* const evaluator_;
  const std::string checkpoint_path_;
  const int64_t dense_bytes_per_model_;
  const uint64_t max_update_bytes_;
  const std::shared_ptr<const Authenticator> authenticator_;
  const std::shared_ptr<RefusalCounters> refusals_;
  const TensorSet theta0_;  // where a rewound (pruned) LotteryFL ticket restarts from

  mutable absl::Mutex mu_;
  Phase phase_ ABSL_GUARDED_BY(mu_) = Phase::kWaitingForClients;
  TensorSet global_ ABSL_GUARDED_BY(mu_);
  std::vector<ClientState> clients_ ABSL_GUARDED_BY(mu_);
  uint64_t round_ ABSL_GUARDED_BY(mu_) = 1;  // the round being run (1-based)
  uint32_t attempt_ ABSL_GUARDED_BY(mu_) = 0;
  double waiting_since_ ABSL_GUARDED_BY(mu_) = 0;
  double round_opened_ ABSL_GUARDED_BY(mu_) = 0;
  double last_closed_ ABSL_GUARDED_BY(mu_) = -1;  // when the last round was aggregated (-1: none yet)
  double deadline_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<int64_t> sampled_ ABSL_GUARDED_BY(mu_);
  // The open round's sums, in shards that updates fold into concurrently (FoldIn) and that are
  // merged when the round closes. The vector is fixed at construction; each shard has a lock.
  struct FoldShard {
    absl::Mutex mu;
    std::unique_ptr<ClippedAggregator> acc ABSL_GUARDED_BY(mu);
  };
  std::vector<std::unique_ptr<FoldShard>> shards_;
  std::set<int64_t> folding_ ABSL_GUARDED_BY(mu_);  // clients whose update is being folded in
  bool closing_ ABSL_GUARDED_BY(mu_) = false;       // CloseRound is waiting for folding_ to drain
  // Accepted updates of the open round: client → its new mask (if it sent one).
  std::map<int64_t, std::optional<Mask>> accepted_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, UpdateReport> reports_ ABSL_GUARDED_BY(mu_);
  // Per client id, the mask it gets by pruning the downlink served in this round and attempt
  // (version = its mask_version + 1); see "Derived masks" above.
  struct DerivedMask {
    uint64_t round = 0;
    uint32_t attempt = 0;
    Mask mask;
  };
  std::map<int64_t, DerivedMask> derived_ ABSL_GUARDED_BY(mu_);
  // Per accepted client of the open round, the precision its update was sent at.
  std::map<int64_t, std::vector<int>> accepted_bits_ ABSL_GUARDED_BY(mu_);
  RoundMetrics pending_ ABSL_GUARDED_BY(mu_);  // bytes of the open round
  Totals totals_ ABSL_GUARDED_BY(mu_);
  uint64_t recorded_through_ ABSL_GUARDED_BY(mu_) = 0;  // the last round whose FinishRound is done
  // Checkpoint log (server/checkpoint.h): the snapshot generation records belong to, records
  // since it, and the clients whose state changed since the last record.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t records_since_snapshot_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<int64_t> dirty_ ABSL_GUARDED_BY(mu_);
  uint64_t state_version_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<int64_t> uploading_ ABSL_GUARDED_BY(mu_);  // clients with an upload in flight
  // Clipping: the bound's history, the open round's bound (fixed when it opens, so arrival
  // order does not matter) and each accepted update's clipped distance (added to the history,
  // in client-id order, when the round is aggregated).
  AdaptiveClipBound clip_ ABSL_GUARDED_BY(mu_);
  double round_clip_bound_ ABSL_GUARDED_BY(mu_) = std::numeric_limits<double>::infinity();
  // Open round and attempt: tasks ended by a refused update (client → the refusal), downloads
  // per task, and when each admitted upload's header arrived.
  std::map<int64_t, absl::Status> ended_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int64_t> fetches_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, double> upload_started_ ABSL_GUARDED_BY(mu_);
  double server_network_sum_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, uint64_t> refusals_at_last_row_ ABSL_GUARDED_BY(mu_);
  SessionTable sessions_ ABSL_GUARDED_BY(mu_);
  int64_t joined_count_ ABSL_GUARDED_BY(mu_) = 0;  // joined and not left
  mutable CoordinatorCounters counters_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_ROUND_COORDINATOR_H_
