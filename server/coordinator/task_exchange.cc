#include "server/coordinator/task_exchange.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

bool ValidAccuracy(double a) { return a == -1 || (a >= 0 && a <= 1); }

double DistanceToServed(const DecodedModel& decoded, const TensorSet& served) {
  double sq = 0;
  for (size_t t = 0; t < served.tensors.size(); ++t) {
    const std::vector<float>& v = decoded.values.tensors[t].values;
    const std::vector<float>& g = served.tensors[t].values;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!decoded.mask.Get(t, static_cast<int64_t>(i))) continue;
      const double d = static_cast<double>(v[i]) - static_cast<double>(g[i]);
      sq += d * d;
    }
  }
  return std::sqrt(sq);
}

}  // namespace

absl::StatusOr<EncodedDownlink> TaskExchange::EncodeDownlink(TensorSet global, const Ticket& ticket, uint64_t round,
                                                             int64_t client_id, uint32_t held_mask_version,
                                                             uint64_t held_mask_hash) const {
  EncodeSpec spec = strategy_.DownlinkEncoding();
  spec.round = round;
  spec.client_id = static_cast<uint32_t>(client_id);
  const bool masked = strategy_.uses_masks();
  if (masked) {
    ticket.mask.ApplyTo(&global);
    spec.mask = &ticket.mask;
    spec.mask_version = ticket.mask_version;
    spec.send_mask = !(held_mask_version == ticket.mask_version && held_mask_hash == MaskHash(ticket.mask));
  }
  EncodedDownlink out;
  absl::StatusOr<std::string> bytes = EncodeModel(global, spec);
  if (!bytes.ok()) return bytes.status();
  out.bytes = *std::move(bytes);
  if (masked && strategy_.DerivesMask(ticket.mask)) {
    // Exactly what the client decodes, pruned by the client's rule.
    absl::StatusOr<DecodedModel> seen = DecodeModel(out.bytes, global, &ticket.mask, ticket.mask_version);
    if (!seen.ok()) return absl::InternalError(absl::StrCat("own downlink does not decode: ", seen.status().message()));
    absl::StatusOr<std::optional<Mask>> derived = strategy_.DeriveMask(seen->values, seen->mask);
    if (!derived.ok()) return derived.status();
    out.derived = *std::move(derived);
  }
  return out;
}

absl::Status TaskExchange::CheckReport(const UpdateReport& report) const {
  if (!ValidAccuracy(report.local_accuracy) || !ValidAccuracy(report.validation_accuracy) ||
      !ValidAccuracy(report.global_masked_accuracy)) {
    return absl::InvalidArgumentError(absl::StrCat("accuracies must be in [0, 1] (or -1: not measured); got local ",
                                                   report.local_accuracy, ", validation ",
                                                   report.validation_accuracy, ", global-masked ",
                                                   report.global_masked_accuracy));
  }
  const std::vector<int64_t>& tests = limits_.test_counts;
  const size_t id = static_cast<size_t>(report.client_id);
  if (!tests.empty() && id < tests.size() && report.test_count != tests[id]) {
    return absl::InvalidArgumentError(absl::StrCat("test_count ", report.test_count, " is not the ", tests[id],
                                                   " test images the server assigned"));
  }
  // Where the server does not know the data, test_count is informational (it weighs nothing);
  // --max-client-samples bounds training counts, not this.
  if (tests.empty() && (report.test_count < 0 || report.test_count > (int64_t{1} << 31))) {
    return absl::InvalidArgumentError(absl::StrCat("test_count ", report.test_count, " out of range"));
  }
  return absl::OkStatus();
}

int64_t TaskExchange::Weight(const UpdateReport& report, bool* clamped) const {
  const size_t id = static_cast<size_t>(report.client_id);
  *clamped = false;
  // The server's own partition says how much data the client trains on; a report cannot change it.
  if (!limits_.train_counts.empty() && id < limits_.train_counts.size()) {
    return strategy_.UpdateWeight(limits_.train_counts[id]);
  }
  const int64_t samples = std::clamp<int64_t>(report.num_samples, 1, limits_.max_reported_samples);
  *clamped = samples != report.num_samples;
  return strategy_.UpdateWeight(samples);
}

absl::StatusOr<CheckedUpdate> TaskExchange::Check(const UpdateReport& report, std::string_view payload,
                                                  const TensorSet& served, const Mask& held, uint32_t held_version,
                                                  const Mask* derived, std::string* cause) const {
  auto refuse = [&](std::string_view rule, absl::Status why) {
    *cause = std::string(rule);
    return why;
  };
  if (payload.size() > limits_.max_update_bytes) {
    return refuse("payload_size", absl::ResourceExhaustedError(absl::StrCat(
                                      payload.size(), " bytes exceed the largest encoding of this run's model (",
                                      limits_.max_update_bytes, ")")));
  }
  if (absl::Status s = CheckReport(report); !s.ok()) return refuse("report", s);
  std::vector<HeldMask> candidates{{held_version, &held}};
  if (derived != nullptr) candidates.push_back({held_version + 1, derived});
  absl::StatusOr<DecodedModel> decoded = DecodeModel(payload, served, candidates);
  if (!decoded.ok()) return refuse("decode", absl::InvalidArgumentError(decoded.status().message()));
  CheckedUpdate out;
  out.decoded = *std::move(decoded);
  if (absl::Status s = strategy_.CheckUpdate(out.decoded, served, held, cause); !s.ok()) return s;
  out.norm = DistanceToServed(out.decoded, served);
  if (limits_.max_update_norm > 0 && !(out.norm <= limits_.max_update_norm)) {
    return refuse("norm", absl::InvalidArgumentError(absl::StrCat("update norm ", out.norm,
                                                                  " exceeds --max-update-norm ",
                                                                  limits_.max_update_norm)));
  }
  const DecodedModel& d = out.decoded;
  out.new_mask = d.mask_sent || (d.mask_referenced && d.referenced_version != held_version);
  out.weight = Weight(report, &out.clamped);
  out.report = report;
  out.timings_zeroed = SanitizeTimings(&out.report);
  return out;
}

absl::Status TaskExchange::CheckDeclaredSize(uint64_t bytes) const {
  if (bytes > 0 && bytes <= limits_.max_update_bytes) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat("declared update size ", bytes, " bytes is outside (0, ",
                                                   limits_.max_update_bytes,
                                                   "], the largest encoding of this run's model"));
}

int64_t TaskExchange::SanitizeTimings(UpdateReport* report) const {
  int64_t zeroed = 0;
  for (double* t : {&report->train_seconds, &report->encode_seconds, &report->network_seconds}) {
    if (!(std::isfinite(*t) && *t >= 0 && *t <= limits_.round_timeout)) {
      *t = 0;
      ++zeroed;
    }
  }
  return zeroed;
}

}  // namespace lfl
