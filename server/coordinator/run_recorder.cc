#include "server/coordinator/run_recorder.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/file_io.h"
#include "nlohmann/json.hpp"
#include "server/coordinator/checkpoint.h"

namespace lfl {

using nlohmann::ordered_json;

std::string RoundMetricsToJson(const RoundMetrics& m) {
  ordered_json j;
  j["round"] = m.round;
  j["attempts"] = m.attempts;
  j["sampled"] = m.sampled;
  j["completed"] = m.completed;
  j["dropped"] = m.dropped;
  j["evaluated"] = m.evaluated;
  auto acc = [&](const char* name, double v) { j[name] = v >= 0 ? ordered_json(v) : ordered_json(nullptr); };
  acc("personalized_accuracy", m.personalized_accuracy);
  acc("personalized_trained_accuracy", m.personalized_trained_accuracy);
  acc("global_masked_accuracy", m.global_masked_accuracy);
  acc("global_accuracy", m.global_accuracy);
  j["accuracy_source"] = m.accuracy_source;
  j["weights_source"] = m.weights_source;
  j["clamped_samples"] = m.clamped_samples;
  j["mean_density"] = m.mean_density;
  j["pruned_clients"] = m.pruned_clients;
  j["layer_bits"] = m.layer_bits;
  j["mean_bits"] = m.mean_bits;
  j["uplink_bytes"] = m.uplink_bytes;
  j["downlink_bytes"] = m.downlink_bytes;
  j["dense_fp32_bytes"] = m.dense_fp32_bytes;
  j["train_seconds"] = m.train_seconds;
  j["encode_seconds"] = m.encode_seconds;
  j["network_seconds"] = m.network_seconds;
  j["aggregate_seconds"] = m.aggregate_seconds;
  j["evaluate_seconds"] = m.evaluate_seconds;
  j["eval_clients"] = m.eval_clients;
  j["wall_seconds"] = m.wall_seconds;
  j["open_gap_seconds"] = m.open_gap_seconds;
  j["refused"] = m.refused;
  j["abandoned"] = m.abandoned;
  j["max_update_norm"] = m.max_update_norm;
  j["clip_bound"] = std::isfinite(m.clip_bound) ? ordered_json(m.clip_bound) : ordered_json(nullptr);
  j["clipped"] = m.clipped;
  j["max_start_distance"] = m.max_start_distance;
  j["server_network_seconds"] = m.server_network_seconds;
  j["timings_zeroed"] = m.timings_zeroed;
  j["refetches"] = m.refetches;
  j["refetch_bytes"] = m.refetch_bytes;
  j["refusals"] = m.refusals;
  // Figures the clients report and the server cannot measure (range-checked; see RoundMetrics).
  j["client_reported"] = {"personalized_accuracy", "train_seconds", "encode_seconds", "network_seconds"};
  j["errors"] = m.errors;
  return j.dump();
}

absl::StatusOr<RoundMetrics> RoundMetricsFromJson(const std::string& line) {
  ordered_json j = ordered_json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("round")) {
    return absl::InvalidArgumentError("not a metrics row");
  }
  RoundMetrics m;
  auto num = [&](const char* name, auto* out) {
    if (j.contains(name) && j[name].is_number()) *out = j[name].get<std::decay_t<decltype(*out)>>();
  };
  num("round", &m.round);
  num("attempts", &m.attempts);
  num("sampled", &m.sampled);
  num("completed", &m.completed);
  num("dropped", &m.dropped);
  if (j.contains("evaluated") && j["evaluated"].is_boolean()) m.evaluated = j["evaluated"].get<bool>();
  num("personalized_accuracy", &m.personalized_accuracy);
  num("global_masked_accuracy", &m.global_masked_accuracy);
  num("global_accuracy", &m.global_accuracy);
  num("mean_density", &m.mean_density);
  num("pruned_clients", &m.pruned_clients);
  if (j.contains("layer_bits") && j["layer_bits"].is_array()) m.layer_bits = j["layer_bits"].get<std::vector<double>>();
  num("mean_bits", &m.mean_bits);
  num("uplink_bytes", &m.uplink_bytes);
  num("downlink_bytes", &m.downlink_bytes);
  num("dense_fp32_bytes", &m.dense_fp32_bytes);
  num("train_seconds", &m.train_seconds);
  num("encode_seconds", &m.encode_seconds);
  num("network_seconds", &m.network_seconds);
  num("aggregate_seconds", &m.aggregate_seconds);
  num("evaluate_seconds", &m.evaluate_seconds);
  num("eval_clients", &m.eval_clients);
  num("wall_seconds", &m.wall_seconds);
  num("open_gap_seconds", &m.open_gap_seconds);
  num("refused", &m.refused);
  num("abandoned", &m.abandoned);
  num("max_update_norm", &m.max_update_norm);
  num("clip_bound", &m.clip_bound);
  num("clipped", &m.clipped);
  num("max_start_distance", &m.max_start_distance);
  num("server_network_seconds", &m.server_network_seconds);
  num("timings_zeroed", &m.timings_zeroed);
  num("refetches", &m.refetches);
  num("refetch_bytes", &m.refetch_bytes);
  if (j.contains("refusals") && j["refusals"].is_object()) {
    for (const auto& [cause, n] : j["refusals"].items()) {
      if (n.is_number_unsigned()) m.refusals[cause] = n.get<uint64_t>();
    }
  }
  if (j.contains("accuracy_source") && j["accuracy_source"].is_string()) {
    m.accuracy_source = j["accuracy_source"].get<std::string>();
  }
  if (j.contains("weights_source") && j["weights_source"].is_string()) {
    m.weights_source = j["weights_source"].get<std::string>();
  }
  num("clamped_samples", &m.clamped_samples);
  if (j.contains("errors") && j["errors"].is_array()) {
    for (const auto& e : j["errors"]) {
      if (e.is_string()) m.errors.push_back(e.get<std::string>());
    }
  }
  return m;
}

absl::StatusOr<std::unique_ptr<RunRecorder>> RunRecorder::Open(const std::string& out_dir,
                                                               uint64_t keep_rounds_before) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", out_dir, ": ", ec.message()));
  const std::string path = out_dir + "/metrics.jsonl";
  std::vector<RoundMetrics> kept;
  std::string kept_text;
  if (keep_rounds_before > 0) {
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      absl::StatusOr<RoundMetrics> m = RoundMetricsFromJson(line);
      if (m.ok() && m->round < keep_rounds_before) {
        kept.push_back(*m);
        absl::StrAppend(&kept_text, line, "\n");
      }
    }
  }
  if (absl::Status s = WriteFileAtomically(path, kept_text); !s.ok()) return s;
  std::FILE* f = std::fopen(path.c_str(), "a");
  if (f == nullptr) return absl::UnavailableError(absl::StrCat("cannot open ", path));
  auto recorder = std::unique_ptr<RunRecorder>(new RunRecorder(out_dir, f));
  recorder->rows_ = std::move(kept);
  return recorder;
}

RunRecorder::~RunRecorder() { std::fclose(file_); }

absl::Status RunRecorder::WriteRound(const RoundMetrics& m) {
  const std::string line = RoundMetricsToJson(m) + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    return absl::UnavailableError(absl::StrCat("cannot append to ", dir_, "/metrics.jsonl"));
  }
  rows_.push_back(m);
  return absl::OkStatus();
}

double WeightedMeanBits(const std::vector<double>& layer_bits, const std::vector<int64_t>& layer_sizes) {
  if (layer_bits.empty()) return 32;
  double num = 0, den = 0;
  for (size_t l = 0; l < layer_bits.size(); ++l) {
    const double w = l < layer_sizes.size() ? static_cast<double>(layer_sizes[l]) : 1.0;
    num += w * layer_bits[l];
    den += w;
  }
  return den > 0 ? num / den : 32;
}

absl::Status RunRecorder::WriteSummary(const RunConfig& config, const RunTotals& totals,
                                       double wall_seconds, const std::vector<std::string>& layer_names) {
  ordered_json j;
  j["rounds"] = totals.rounds_completed;
  const RoundMetrics* last_eval = nullptr;
  for (const RoundMetrics& m : rows_) {
    if (m.evaluated) last_eval = &m;
  }
  auto acc = [&](double v) { return v >= 0 ? ordered_json(v) : ordered_json(nullptr); };
  j["global_accuracy"] = acc(last_eval ? last_eval->global_accuracy : -1);
  j["personalized_accuracy"] = acc(last_eval ? last_eval->personalized_accuracy : -1);
  j["global_masked_accuracy"] = acc(last_eval ? last_eval->global_masked_accuracy : -1);
  j["mean_density"] = rows_.empty() ? 1.0 : rows_.back().mean_density;
  j["uplink_bytes"] = totals.uplink_bytes;
  j["downlink_bytes"] = totals.downlink_bytes;
  j["dense_fp32_bytes"] = totals.dense_fp32_bytes;
  auto ratio = [](uint64_t a, uint64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; };
  j["uplink_ratio"] = ratio(totals.uplink_bytes, totals.dense_fp32_bytes);
  j["downlink_ratio"] = ratio(totals.downlink_bytes, totals.dense_fp32_bytes);
  std::vector<double> bits;
  if (!rows_.empty()) bits = rows_.back().layer_bits;
  j["layer_bits"] = bits;
  j["layer_names"] = layer_names;
  j["mean_bits"] = rows_.empty() ? 32.0 : rows_.back().mean_bits;
  j["wall_seconds"] = wall_seconds;
  j["config"] = ordered_json::parse(RunConfigToJson(config));
  return WriteFileAtomically(dir_ + "/summary.json", j.dump(2) + "\n");
}

std::string FormatProgress(const RoundMetrics& m, int64_t total_rounds) {
  auto pct = [](double v) { return v >= 0 ? absl::StrFormat("%5.1f%%", 100 * v) : std::string("    - "); };
  const double up = m.dense_fp32_bytes ? static_cast<double>(m.dense_fp32_bytes) / std::max<uint64_t>(1, m.uplink_bytes) : 0;
  const double down =
      m.dense_fp32_bytes ? static_cast<double>(m.dense_fp32_bytes) / std::max<uint64_t>(1, m.downlink_bytes) : 0;
  return absl::StrFormat(
      "round %3d/%d  clients %d/%d  personalized %s  global-masked %s  global %s  density %.3f  "
      "up %7.1f KB (%5.1fx)  down %7.1f KB (%5.1fx)  %.2fs",
      m.round, total_rounds, m.completed, m.sampled, pct(m.personalized_accuracy), pct(m.global_masked_accuracy),
      pct(m.global_accuracy), m.mean_density, m.uplink_bytes / 1e3, up, m.downlink_bytes / 1e3, down,
      m.wall_seconds);
}

}  // namespace lfl
