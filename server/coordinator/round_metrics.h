// What the coordinator reports: one metrics.jsonl row per round, the process's failure
// counters, the run's byte totals, and what a client says with its update.
#ifndef LOTTERYFL_SERVER_ROUND_METRICS_H_
#define LOTTERYFL_SERVER_ROUND_METRICS_H_

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace lfl {

// What a client reports with its update (proto UpdateHeader, minus transport; built from the
// proto by UpdateReportFromHeader in server/federation_service.h).
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

// Totals for summary.json (and the checkpoint).
struct RunTotals {
  uint64_t rounds_completed = 0, uplink_bytes = 0, downlink_bytes = 0, dense_fp32_bytes = 0;
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
  // Tasks their clients gave up (AbandonTask: training or encoding failed on the client, e.g.
  // a model that went non-finite); each is also in `dropped`, and none made the round wait.
  int64_t abandoned = 0;
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

// What is left to do for an aggregated round once its state is committed: evaluate it, record
// it, checkpoint the state it left. Snapshots, so that it can run while the next round trains.
struct RoundWork;

// Emitted by RoundCoordinator::Tick when a round is aggregated.
struct RoundEvent {
  RoundMetrics metrics;
  bool retried = false;  // quorum not met; the same round runs again with attempt+1
  // Set when the coordinator defers the round's work (CoordinatorOptions::defer_round_work):
  // pass the event to FinishRound. Null for retried rounds and when the work ran inside Tick.
  std::shared_ptr<RoundWork> work;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_ROUND_METRICS_H_
