#ifndef LOTTERYFL_SERVER_RUN_RECORDER_H_
#define LOTTERYFL_SERVER_RUN_RECORDER_H_

// Run output: `metrics.jsonl` (one JSON object per aggregated round) and
// `summary.json`, in the run's --out directory. On --resume, rows past the
// checkpoint's round are dropped first, so a crash between writing a row and
// writing the checkpoint never duplicates a round.

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include <memory>

#include "config/run_config.h"
#include "server/coordinator/round_metrics.h"

namespace lfl {

class RunRecorder {
 public:
  // Creates the directory. keep_rounds_before: rows with round >= it are dropped (resume);
  // 0 starts a fresh metrics.jsonl.
  static absl::StatusOr<std::unique_ptr<RunRecorder>> Open(const std::string& out_dir, uint64_t keep_rounds_before);
  ~RunRecorder();

  absl::Status WriteRound(const RoundMetrics& m);
  // summary.json: totals, the last evaluated accuracies, mean bits, wall time and the config.
  // layer_names: the prunable tensors that `layer_bits` refer to, in order (may be empty).
  absl::Status WriteSummary(const RunConfig& config, const RunTotals& totals, double wall_seconds,
                            const std::vector<std::string>& layer_names = {});

  const std::string& dir() const { return dir_; }
  // All rows written or kept so far (for the summary and the closing table).
  const std::vector<RoundMetrics>& rows() const { return rows_; }

 private:
  RunRecorder(std::string dir, std::FILE* file) : dir_(std::move(dir)), file_(file) {}
  std::string dir_;
  std::FILE* file_;
  std::vector<RoundMetrics> rows_;
};

std::string RoundMetricsToJson(const RoundMetrics& m);
absl::StatusOr<RoundMetrics> RoundMetricsFromJson(const std::string& line);
// One human progress line for a round ("round 3/30  acc ...  up ...").
std::string FormatProgress(const RoundMetrics& m, int64_t total_rounds);
// Parameter-weighted mean of per-layer bits given the layer sizes (0 sizes → plain mean).
double WeightedMeanBits(const std::vector<double>& layer_bits, const std::vector<int64_t>& layer_sizes);

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_RUN_RECORDER_H_
