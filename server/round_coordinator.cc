#include "server/round_coordinator.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/seed.h"
#include "lottery/prune.h"
#include "server/checkpoint.h"
#include "server/run_recorder.h"

namespace lfl {

struct RoundWork {
  std::optional<EvalRequest> eval;
  // The checkpoint of the state the round left: a full snapshot now and then, otherwise a log
  // record of what the round changed.
  std::optional<Checkpoint> snapshot;
  std::optional<CheckpointDelta> delta;
};

namespace {

CheckpointClient ToCheckpointClient(const ClientState& c) {
  CheckpointClient out;
  out.mask = c.mask;
  out.mask_version = c.mask_version;
  out.personalized_accuracy = c.personalized_accuracy;
  out.global_masked_accuracy = c.global_masked_accuracy;
  out.test_count = c.test_count;
  out.num_samples = c.num_samples;
  out.layer_bits = c.layer_bits;
  return out;
}

std::shared_ptr<const Authenticator> MakeAuthenticator(const CoordinatorOptions& o) {
  if (o.authenticator) return o.authenticator;
  if (o.tokens.empty()) return std::make_shared<Authenticator>(Authenticator::AllowAll(o.config.clients));
  return std::make_shared<Authenticator>(Authenticator::FromTokens(o.config.clients, o.tokens));
}

bool ValidAccuracy(double a) { return a == -1 || (a >= 0 && a <= 1); }

ClipOptions ClipOptionsFor(const RunConfig& config) {
  ClipOptions o;
  o.multiplier = config.clip_multiplier;
  o.window = static_cast<size_t>(std::max<int64_t>(1, config.clip_window));
  o.initial_fraction = config.clip_initial_fraction;
  return o;
}

double Mean(const std::vector<double>& v) {
  if (v.empty()) return -1;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

RoundCoordinator::RoundCoordinator(CoordinatorOptions options, TensorSet theta0,
                                   std::unique_ptr<Strategy> strategy, Evaluator* evaluator,
                                   std::string checkpoint_path, double now)
    : options_(std::move(options)),
      strategy_(std::move(strategy)),
      evaluator_(evaluator),
      checkpoint_path_(std::move(checkpoint_path)),
      dense_bytes_per_model_(4 * theta0.TotalElements()),
      max_update_bytes_(MaxEncodedBytes(theta0)),
      authenticator_(MakeAuthenticator(options_)),
      refusals_(options_.refusals ? options_.refusals : std::make_shared<RefusalCounters>()),
      theta0_(theta0) {
  absl::MutexLock lock(&mu_);
  clients_.resize(static_cast<size_t>(options_.config.clients));
  const Mask full = Mask::Full(theta0);  // shared by every client until its ticket changes
  for (ClientState& c : clients_) c.mask = full;
  for (int i = 0; i < std::max(1, options_.fold_shards); ++i) shards_.push_back(std::make_unique<FoldShard>());
  sessions_ = SessionTable(options_.config.clients);
  records_since_snapshot_ = options_.checkpoint_snapshot_every;  // the first checkpoint is a snapshot
  clip_ = AdaptiveClipBound(ClipOptionsFor(options_.config));
  refusals_at_last_row_ = refusals_->Snapshot();
  global_ = std::move(theta0);
  waiting_since_ = now;
}

absl::Status RoundCoordinator::Authenticate(const Credential& c) const {
  absl::Status s = authenticator_->Check(c);
  if (!s.ok()) {
    ++counters_.auth_failures;
    refusals_->Count("bad_credential");
  }
  return s;
}

absl::Status RoundCoordinator::Refused(std::string_view cause, absl::Status why) const {
  refusals_->Count(cause);
  return why;
}

std::optional<absl::Status> RoundCoordinator::EndedTask(int64_t id) const {
  auto it = ended_.find(id);
  if (it == ended_.end()) return std::nullopt;
  return absl::FailedPreconditionError(absl::StrCat("the task of client ", id, " in round ", round_, " attempt ",
                                                    attempt_, " has ended: ", it->second.message()));
}

void RoundCoordinator::MarkLive(int64_t id, double now) { clients_[id].last_seen = now; }

bool RoundCoordinator::IsLive(int64_t id, double now) const {
  const ClientState& c = clients_[static_cast<size_t>(id)];
  if (!c.joined || c.left) return false;
  return now - std::max(c.last_seen, sessions_.LastSeen(id)) <= options_.liveness_seconds;
}

absl::StatusOr<std::string> RoundCoordinator::Join(const Credential& credential, double now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = Authenticate(credential); !s.ok()) return s;
  MarkJoined(credential.client_id, now);
  ++state_version_;
  return RunConfigToToml(options_.config);
}

void RoundCoordinator::MarkJoined(int64_t id, double now) {
  ClientState& c = clients_[static_cast<size_t>(id)];
  if (!c.joined || c.left) ++joined_count_;
  c.joined = true;
  c.left = false;
  MarkLive(id, now);
}

absl::Status RoundCoordinator::Heartbeat(const std::vector<Credential>& clients, double now) {
  absl::MutexLock lock(&mu_);
  for (const Credential& c : clients) {
    if (absl::Status s = Authenticate(c); !s.ok()) return s;
    if (!clients_[c.client_id].joined) {
      return absl::FailedPreconditionError(absl::StrCat("client ", c.client_id, " must join first"));
    }
  }
  for (const Credential& c : clients) MarkLive(c.client_id, now);
  return absl::OkStatus();
}

absl::Status RoundCoordinator::Leave(const std::vector<Credential>& clients, double now) {
  absl::MutexLock lock(&mu_);
  for (const Credential& c : clients) {
    if (absl::Status s = Authenticate(c); !s.ok()) return s;
  }
  for (const Credential& c : clients) {
    ClientState& state = clients_[c.client_id];
    if (state.joined && !state.left) --joined_count_;
    state.left = true;
    uploading_.erase(c.client_id);
  }
  ++state_version_;
  return absl::OkStatus();
}

bool RoundCoordinator::IsSampled(int64_t id) const {
  return std::binary_search(sampled_.begin(), sampled_.end(), id);
}

absl::StatusOr<PollResult> RoundCoordinator::Poll(const std::vector<Credential>& clients, double now) {
  if (absl::Status s = Heartbeat(clients, now); !s.ok()) return s;
  std::vector<int64_t> ids;
  ids.reserve(clients.size());
  for (const Credential& c : clients) ids.push_back(c.client_id);
  std::sort(ids.begin(), ids.end());
  absl::MutexLock lock(&mu_);
  return TasksFor(ids);
}

PollResult RoundCoordinator::TasksFor(const std::vector<int64_t>& ids) const {
  PollResult result;
  result.round = round_;
  if (FinishedLocked()) {
    result.state = PollResult::kFinished;
    return result;
  }
  if (phase_ != Phase::kRoundOpen) return result;
  // The sampled set is small (fraction · K); look each one up in the host's sorted ids.
  for (int64_t id : sampled_) {
    if (accepted_.count(id) == 0 && ended_.count(id) == 0 && std::binary_search(ids.begin(), ids.end(), id)) {
      result.tasks.push_back({id, round_, attempt_});
    }
  }
  if (!result.tasks.empty()) result.state = PollResult::kTrain;
  return result;
}

absl::StatusOr<RoundCoordinator::HostJoin> RoundCoordinator::JoinHost(const std::vector<Credential>& clients,
                                                                       double now) {
  if (clients.empty()) return absl::InvalidArgumentError("join without clients");
  absl::StatusOr<std::string> session;
  {
    absl::MutexLock lock(&mu_);
    std::vector<int64_t> ids;
    ids.reserve(clients.size());
    for (const Credential& c : clients) {
      if (absl::Status s = Authenticate(c); !s.ok()) return s;
      if (c.peer_identity != clients.front().peer_identity) {
        return Refused("mixed_identity", absl::InvalidArgumentError("one session cannot span two client certificates"));
      }
      ids.push_back(c.client_id);
    }
    session = sessions_.Open(std::move(ids), clients.front().peer_identity, now);
    if (!session.ok()) return session.status();
    for (const Credential& c : clients) MarkJoined(c.client_id, now);
    ++state_version_;
  }
  return HostJoin{RunConfigToToml(options_.config), *std::move(session)};
}

int64_t RoundCoordinator::joined_clients() const {
  absl::MutexLock lock(&mu_);
  return joined_count_;
}

absl::StatusOr<Session*> RoundCoordinator::TouchSession(std::string_view token, std::string_view peer_identity,
                                                        double now) {
  absl::StatusOr<Session*> session = sessions_.Find(token, peer_identity);
  if (!session.ok()) {
    ++counters_.auth_failures;
    return Refused("bad_session", session.status());
  }
  (*session)->last_seen = now;
  return session;
}

absl::StatusOr<PollResult> RoundCoordinator::PollSession(std::string_view token, std::string_view peer_identity,
                                                         double now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Session*> session = TouchSession(token, peer_identity, now);
  if (!session.ok()) return session.status();
  return TasksFor((*session)->clients);
}

absl::Status RoundCoordinator::HeartbeatSession(std::string_view token, std::string_view peer_identity, double now) {
  absl::MutexLock lock(&mu_);
  return TouchSession(token, peer_identity, now).status();
}

absl::StatusOr<RoundCoordinator::DownlinkPayload> RoundCoordinator::Downlink(const Credential& client,
                                                                             uint64_t round, uint32_t attempt,
                                                                             uint32_t held_mask_version,
                                                                             uint64_t held_mask_hash, double now) {
  TensorSet model;
  Mask mask;
  uint32_t version = 0;
  std::vector<int> layer_bits;
  bool first_fetch = true;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Authenticate(client); !s.ok()) return s;
    if (phase_ != Phase::kRoundOpen || round != round_ || attempt != attempt_ || !IsSampled(client.client_id)) {
      return Refused("no_task", absl::FailedPreconditionError(absl::StrCat(
                                    "no task for client ", client.client_id, " in round ", round, " attempt ",
                                    attempt, " (open: round ", round_, " attempt ", attempt_, ")")));
    }
    if (std::optional<absl::Status> ended = EndedTask(client.client_id)) return Refused("task_ended", *ended);
    int64_t& fetches = fetches_[client.client_id];
    if (fetches > options_.config.max_refetches) {
      return Refused("refetch_limit",
                     absl::ResourceExhaustedError(absl::StrCat(
                         "client ", client.client_id, " fetched the model of round ", round, " attempt ", attempt,
                         " ", fetches, " times; the server serves a task at most ",
                         options_.config.max_refetches + 1, " times")));
    }
    first_fetch = fetches++ == 0;
    MarkLive(client.client_id, now);
    model = global_;
    mask = clients_[client.client_id].mask;
    version = clients_[client.client_id].mask_version;
    layer_bits = clients_[client.client_id].layer_bits;
  }
  EncodeSpec spec = strategy_->DownlinkEncoding();
  spec.round = round;
  spec.client_id = static_cast<uint32_t>(client.client_id);
  if (strategy_->uses_masks()) {
    mask.ApplyTo(&model);
    spec.mask = &mask;
    spec.mask_version = version;
    spec.send_mask = !(held_mask_version == version && held_mask_hash == MaskHash(mask));
  }
  absl::StatusOr<std::string> bytes = EncodeModel(model, spec);
  if (!bytes.ok()) return bytes.status();
  std::optional<Mask> derived;
  if (strategy_->uses_masks() && strategy_->DerivesMask(mask)) {
    // Exactly what the client decodes, pruned by the client's rule.
    absl::StatusOr<DecodedModel> seen = DecodeModel(*bytes, model, &mask, version);
    if (!seen.ok()) return absl::InternalError(absl::StrCat("own downlink does not decode: ", seen.status().message()));
    absl::StatusOr<std::optional<Mask>> pruned = strategy_->DeriveMask(seen->values, seen->mask);
    if (!pruned.ok()) return pruned.status();
    derived = *std::move(pruned);
  }
  absl::MutexLock lock(&mu_);
  if (first_fetch) {
    pending_.downlink_bytes += bytes->size();
  } else {
    pending_.refetch_bytes += bytes->size();
    ++pending_.refetches;
  }
  if (phase_ != Phase::kRoundOpen || round != round_ || attempt != attempt_) {
    // The round moved on while this (stale) downlink was encoded: it must not touch the open round.
  } else if (derived) {
    derived_[client.client_id] = DerivedMask{round, attempt, *std::move(derived)};
  } else {
    derived_.erase(client.client_id);
  }
  return DownlinkPayload{*std::move(bytes), version, std::move(layer_bits)};
}

absl::Status RoundCoordinator::CheckTask(const UpdateReport& report) const {
  if (phase_ != Phase::kRoundOpen || report.round != round_ || report.attempt != attempt_) {
    return absl::FailedPreconditionError(absl::StrCat("update for round ", report.round, " attempt ", report.attempt,
                                                      " refused: the open round is ", round_, " attempt ", attempt_));
  }
  if (!IsSampled(report.client_id)) {
    return absl::PermissionDeniedError(
        absl::StrCat("client ", report.client_id, " was not sampled in round ", round_));
  }
  return absl::OkStatus();
}

absl::Status RoundCoordinator::BeginUpload(const UpdateReport& header, uint64_t payload_bytes, double now) {
  absl::MutexLock lock(&mu_);
  auto refuse = [&](std::string_view cause, absl::Status why) {
    ++counters_.uploads_refused;
    return Refused(cause, std::move(why));
  };
  if (absl::Status s = Authenticate({header.client_id, header.token, header.peer_identity}); !s.ok()) {
    ++counters_.uploads_refused;  // counted by cause in Authenticate
    return s;
  }
  if (absl::Status s = CheckTask(header); !s.ok()) return refuse("no_task", s);
  if (accepted_.count(header.client_id)) {
    return refuse("duplicate", absl::AlreadyExistsError(absl::StrCat("the update of client ", header.client_id,
                                                                     " for round ", round_, " was already accepted")));
  }
  if (std::optional<absl::Status> ended = EndedTask(header.client_id)) return refuse("task_ended", *ended);
  if (payload_bytes == 0 || payload_bytes > max_update_bytes_) {
    return refuse("upload_size", absl::ResourceExhaustedError(absl::StrCat(
                                     "declared update size ", payload_bytes, " bytes is outside (0, ",
                                     max_update_bytes_, "], the largest encoding of this run's model")));
  }
  if (!uploading_.insert(header.client_id).second) {
    return refuse("upload_in_flight", absl::ResourceExhaustedError(absl::StrCat(
                                          "client ", header.client_id, " already has an upload in flight")));
  }
  upload_started_[header.client_id] = now;
  MarkLive(header.client_id, now);
  return absl::OkStatus();
}

void RoundCoordinator::EndUpload(int64_t client_id) {
  absl::MutexLock lock(&mu_);
  uploading_.erase(client_id);
}

absl::Status RoundCoordinator::CheckReport(const UpdateReport& report) const {
  if (!ValidAccuracy(report.local_accuracy) || !ValidAccuracy(report.validation_accuracy) ||
      !ValidAccuracy(report.global_masked_accuracy)) {
    return absl::InvalidArgumentError(absl::StrCat("accuracies must be in [0, 1] (or -1: not measured); got local ",
                                                   report.local_accuracy, ", validation ",
                                                   report.validation_accuracy, ", global-masked ",
                                                   report.global_masked_accuracy));
  }
  const size_t id = static_cast<size_t>(report.client_id);
  if (!options_.test_counts.empty() && id < options_.test_counts.size() &&
      report.test_count != options_.test_counts[id]) {
    return absl::InvalidArgumentError(absl::StrCat("test_count ", report.test_count, " is not the ",
                                                   options_.test_counts[id], " test images the server assigned"));
  }
  // Where the server does not know the data, test_count is informational (it weighs nothing);
  // --max-client-samples bounds training counts, not this.
  if (options_.test_counts.empty() && (report.test_count < 0 || report.test_count > (int64_t{1} << 31))) {
    return absl::InvalidArgumentError(absl::StrCat("test_count ", report.test_count, " out of range"));
  }
  return absl::OkStatus();
}

double RoundCoordinator::AggregationWeight(const UpdateReport& report, bool* clamped) const {
  const size_t id = static_cast<size_t>(report.client_id);
  *clamped = false;
  // The server's own partition says how much data the client trains on; a report cannot change it.
  if (!options_.train_counts.empty() && id < options_.train_counts.size()) {
    return strategy_->UpdateWeight(options_.train_counts[id]);
  }
  const int64_t samples = std::clamp<int64_t>(report.num_samples, 1, options_.max_reported_samples);
  *clamped = samples != report.num_samples;
  return strategy_->UpdateWeight(samples);
}

absl::Status RoundCoordinator::CheckUpdate(const DecodedModel& decoded, const TensorSet& global, const Mask& held,
                                           double* norm, std::string* cause) const {
  if (absl::Status s = strategy_->CheckUpdate(decoded, global, held, cause); !s.ok()) return s;
  double sq = 0;
  for (size_t t = 0; t < global.tensors.size(); ++t) {
    const std::vector<float>& v = decoded.values.tensors[t].values;
    const std::vector<float>& g = global.tensors[t].values;
    for (size_t i = 0; i < v.size(); ++i) {
      if (!decoded.mask.Get(t, static_cast<int64_t>(i))) continue;
      const double d = static_cast<double>(v[i]) - static_cast<double>(g[i]);
      sq += d * d;
    }
  }
  *norm = std::sqrt(sq);
  if (options_.max_update_norm > 0 && !(*norm <= options_.max_update_norm)) {
    *cause = "norm";
    return absl::InvalidArgumentError(
        absl::StrCat("update norm ", *norm, " exceeds --max-update-norm ", options_.max_update_norm));
  }
  return absl::OkStatus();
}

void RoundCoordinator::EndTask(const UpdateReport& report, const absl::Status& why) {
  if (phase_ != Phase::kRoundOpen || report.round != round_ || report.attempt != attempt_) return;
  if (!IsSampled(report.client_id) || accepted_.count(report.client_id)) return;
  ended_.emplace(report.client_id, why);
  ++state_version_;  // the round may now be complete, and parked polls must not hand the task out
}

absl::Status RoundCoordinator::CountRefusal(const UpdateReport& report, std::string_view cause,
                                            const absl::Status& why) {
  ++counters_.updates_refused;
  ++pending_.refused;
  absl::Status out(why.code(), absl::StrCat("update of client ", report.client_id, " refused (", std::string(cause),
                                            "): ", why.message()));
  refusals_->Count(cause);
  EndTask(report, out);
  return out;
}

int64_t RoundCoordinator::SanitizeTimings(UpdateReport* report) const {
  int64_t zeroed = 0;
  for (double* t : {&report->train_seconds, &report->encode_seconds, &report->network_seconds}) {
    if (!(std::isfinite(*t) && *t >= 0 && *t <= options_.config.round_timeout)) {
      *t = 0;
      ++zeroed;
    }
  }
  return zeroed;
}

absl::StatusOr<bool> RoundCoordinator::Submit(const UpdateReport& report, std::string_view payload,
                                              double now) {
  const Credential credential{report.client_id, report.token, report.peer_identity};
  TensorSet layout;
  Mask held;
  uint32_t held_version = 0;
  std::optional<Mask> derived;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = Authenticate(credential); !s.ok()) return s;
    if (absl::Status s = CheckTask(report); !s.ok()) return Refused("no_task", s);
    if (accepted_.count(report.client_id)) return true;
    // An ended task (a refused update) is refused at BeginUpload, before any payload is read;
    // Submit only follows an admitted header.
    MarkLive(report.client_id, now);
    layout = global_;
    held = clients_[report.client_id].mask;
    held_version = clients_[report.client_id].mask_version;
    if (auto it = derived_.find(report.client_id);
        it != derived_.end() && it->second.round == report.round && it->second.attempt == report.attempt) {
      derived = it->second.mask;
    }
  }
  auto refuse = [&](std::string_view cause, const absl::Status& s) {
    absl::MutexLock lock(&mu_);
    return CountRefusal(report, cause, s);
  };
  if (payload.size() > max_update_bytes_) {
    return refuse("payload_size", absl::ResourceExhaustedError(absl::StrCat(
                                      payload.size(), " bytes exceed the largest encoding of ", "this run's model (",
                                      max_update_bytes_, ")")));
  }
  if (absl::Status s = CheckReport(report); !s.ok()) return refuse("report", s);
  std::vector<HeldMask> candidates{{held_version, &held}};
  if (derived) candidates.push_back({held_version + 1, &*derived});
  absl::StatusOr<DecodedModel> decoded = DecodeModel(payload, layout, candidates);
  if (!decoded.ok()) return refuse("decode", absl::InvalidArgumentError(decoded.status().message()));
  double norm = 0;
  std::string cause;
  if (absl::Status s = CheckUpdate(*decoded, layout, held, &norm, &cause); !s.ok()) return refuse(cause, s);
  const bool new_mask = decoded->mask_sent || (decoded->mask_referenced && decoded->referenced_version != held_version);
  // Clipping (fl/clipping.h), before the exact fold: a ticket that changed was rewound to θ0 ⊙ m'
  // by the client (LotteryFL step 3), every other update started from the served θg ⊙ m.
  const TensorSet& origin = strategy_->uses_masks() && new_mask ? theta0_ : layout;
  bool clamped = false;
  const double weight = AggregationWeight(report, &clamped);
  {
    absl::MutexLock lock(&mu_);
    if (phase_ != Phase::kRoundOpen || closing_ || report.round != round_ || report.attempt != attempt_) {
      return Refused("round_closed", absl::FailedPreconditionError(
                                         absl::StrCat("round ", report.round, " closed while the update arrived")));
    }
    if (accepted_.count(report.client_id)) return true;
    if (!folding_.insert(report.client_id).second) {
      return Refused("fold_in_progress", absl::UnavailableError(absl::StrCat(
                                             "an update of client ", report.client_id, " is being folded in; retry")));
    }
  }
  // Folded in outside the coordinator's lock, into whichever shard is free: the fixed-point
  // sums make the result independent of the order and of the grouping (fl/accumulator.h). The
  // round cannot close meanwhile: CloseRound waits for folding_ to drain.
  ClientUpdate update;
  update.client_id = report.client_id;
  update.values = &decoded->values;
  update.mask = strategy_->uses_masks() ? &decoded->mask : nullptr;
  update.weight = static_cast<int64_t>(weight);
  update.start = &origin;
  absl::Status folded = FoldIn(update);
  absl::MutexLock lock(&mu_);
  folding_.erase(report.client_id);
  if (!folded.ok()) return CountRefusal(report, "fold", absl::InvalidArgumentError(folded.message()));
  accepted_[report.client_id] = new_mask ? std::optional<Mask>(std::move(decoded->mask)) : std::optional<Mask>();
  accepted_bits_[report.client_id] = decoded->layer_bits;
  UpdateReport kept = report;
  if (const int64_t zeroed = SanitizeTimings(&kept); zeroed > 0) {
    pending_.timings_zeroed += zeroed;
    refusals_->Count("timing", static_cast<uint64_t>(zeroed));
  }
  reports_[report.client_id] = std::move(kept);
  if (auto it = upload_started_.find(report.client_id); it != upload_started_.end()) {
    server_network_sum_ += std::max(0.0, now - it->second);
  }
  pending_.uplink_bytes += payload.size() + report.header_bytes;
  pending_.max_update_norm = std::max(pending_.max_update_norm, norm);
  if (clamped) ++pending_.clamped_samples;
  ++counters_.updates_accepted;
  ++state_version_;
  return false;
}

std::vector<int64_t> RoundCoordinator::Sample(double now) const {
  std::vector<int64_t> live;
  for (size_t id = 0; id < clients_.size(); ++id) {
    if (IsLive(static_cast<int64_t>(id), now)) live.push_back(static_cast<int64_t>(id));
  }
  return strategy_->SampleClients(std::move(live), round_, attempt_);
}

void RoundCoordinator::StartRound(double now) {
  sampled_ = Sample(now);
  if (sampled_.empty()) {
    phase_ = Phase::kWaitingForClients;
    waiting_since_ = now;
    return;
  }
  round_clip_bound_ = clip_.Bound(ModelNorm(global_));
  for (const std::unique_ptr<FoldShard>& shard : shards_) {
    absl::MutexLock shard_lock(&shard->mu);
    absl::StatusOr<std::unique_ptr<ClippedAggregator>> acc = strategy_->NewAggregator(global_, round_clip_bound_);
    shard->acc = acc.ok() ? *std::move(acc) : nullptr;
  }
  accepted_.clear();
  accepted_bits_.clear();
  derived_.clear();
  reports_.clear();
  ended_.clear();
  fetches_.clear();
  upload_started_.clear();
  server_network_sum_ = 0;
  round_opened_ = now;
  pending_.open_gap_seconds = last_closed_ >= 0 ? now - last_closed_ : 0;
  deadline_ = now + options_.config.round_timeout;
  phase_ = Phase::kRoundOpen;
  ++state_version_;
}

std::vector<RoundEvent> RoundCoordinator::Tick(double now, const std::function<void(const RoundEvent&)>& on_round) {
  std::vector<RoundEvent> events;
  {
    absl::MutexLock lock(&mu_);
    if (phase_ == Phase::kBetweenRounds) StartRound(now);
    if (phase_ == Phase::kWaitingForClients) {
      int64_t live = 0, expected = 0;
      for (size_t id = 0; id < clients_.size(); ++id) {
        if (clients_[id].left) continue;
        ++expected;
        if (IsLive(static_cast<int64_t>(id), now)) ++live;
      }
      const bool all_here = live == expected && live > 0;
      const bool waited =
          now - waiting_since_ >= options_.config.join_timeout && live >= options_.config.min_clients;
      if (all_here || waited) StartRound(now);
    }
    if (phase_ == Phase::kRoundOpen && (RoundComplete() || now >= deadline_)) events.push_back(CloseRound(now));
  }
  for (RoundEvent& e : events) {
    if (!e.work) {
      if (on_round) on_round(e);
    } else if (!options_.defer_round_work) {
      FinishRound(&e, on_round);
    }
  }
  return events;
}

void RoundCoordinator::FinishRound(RoundEvent* event, const std::function<void(const RoundEvent&)>& on_round) {
  std::shared_ptr<RoundWork> work = std::move(event->work);
  RoundMetrics& m = event->metrics;
  // Evaluation runs outside the lock, on the caller's thread: the next round may already train.
  if (work && work->eval && evaluator_ != nullptr) {
    const auto t0 = absl::Now();
    absl::StatusOr<EvalResult> r = evaluator_->Evaluate(*work->eval);
    if (r.ok()) {
      m.global_accuracy = r->global_accuracy;
      // Without tickets to evaluate (client-data local) the clients' reports stand.
      if (!work->eval->clients.empty()) m.global_masked_accuracy = r->global_masked_accuracy;
    } else {
      m.errors.push_back(absl::StrCat("evaluation failed: ", r.status().message()));
      absl::MutexLock lock(&mu_);
      ++counters_.evaluation_failures;
    }
    m.evaluate_seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  }
  if (on_round) on_round(*event);
  if (work && (work->snapshot || work->delta)) WriteCheckpointWithRetry(*work);
  absl::MutexLock lock(&mu_);
  recorded_through_ = std::max(recorded_through_, m.round);
  ++state_version_;  // the last round's record may be what a parked poll waits for (FINISHED)
}

bool RoundCoordinator::RoundComplete() const {
  // Every sampled client answered, or left the federation (a round never waits on them; the
  // quorum and the deadline still apply to the rest).
  for (int64_t id : sampled_) {
    if (accepted_.count(id) == 0 && ended_.count(id) == 0 && !clients_[id].left) return false;
  }
  return true;
}

void RoundCoordinator::WriteCheckpointWithRetry(const RoundWork& work) {
  // Serialized and fsynced outside the lock: the next round goes on meanwhile.
  absl::Status last;
  for (int attempt = 0; attempt < kCheckpointAttempts; ++attempt) {
    last = work.snapshot ? WriteCheckpointFile(*work.snapshot, checkpoint_path_)
                         : AppendCheckpointRecord(*work.delta, checkpoint_path_);
    if (last.ok()) return;
    absl::MutexLock lock(&mu_);
    ++counters_.checkpoint_failures;
  }
  absl::MutexLock lock(&mu_);
  const uint64_t round = (work.snapshot ? work.snapshot->next_round : work.delta->next_round) - 1;
  fatal_ = absl::DataLossError(absl::StrCat("checkpoint of round ", round, " failed ", kCheckpointAttempts,
                                            " times; stopping so that no round is lost: ", last.message()));
  phase_ = Phase::kFinished;
  ++state_version_;
}

absl::Status RoundCoordinator::fatal_error() const {
  absl::MutexLock lock(&mu_);
  return fatal_;
}

CoordinatorCounters RoundCoordinator::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

absl::StatusOr<TensorSet> RoundCoordinator::MergedFinish() {
  FoldShard& first = *shards_.front();
  absl::MutexLock first_lock(&first.mu);
  if (!first.acc) return absl::InternalError("the round has no aggregator");
  for (size_t i = 1; i < shards_.size(); ++i) {
    absl::MutexLock lock(&shards_[i]->mu);
    if (absl::Status s = first.acc->Merge(*shards_[i]->acc); !s.ok()) return s;
  }
  return first.acc->Finish(global_);
}

absl::Status RoundCoordinator::FoldIn(const ClientUpdate& update) {
  for (const std::unique_ptr<FoldShard>& shard : shards_) {
    if (shard->mu.TryLock()) {
      absl::Status s = shard->acc ? shard->acc->Add(update) : absl::InternalError("no aggregator for this round");
      shard->mu.Unlock();
      return s;
    }
  }
  FoldShard& shard = *shards_[static_cast<size_t>(update.client_id) % shards_.size()];
  absl::MutexLock lock(&shard.mu);
  return shard.acc ? shard.acc->Add(update) : absl::InternalError("no aggregator for this round");
}

RoundEvent RoundCoordinator::CloseRound(double now) {
  // Updates being folded in belong to this round: wait for them (Await releases mu_ meanwhile;
  // closing_ keeps new ones out).
  closing_ = true;
  mu_.Await(absl::Condition(
      +[](std::set<int64_t>* folding) { return folding->empty(); }, &folding_));
  closing_ = false;
  RoundEvent event;
  RoundMetrics& m = event.metrics;
  m.round = round_;
  m.attempts = attempt_ + 1;
  m.sampled = static_cast<int64_t>(sampled_.size());
  m.completed = static_cast<int64_t>(accepted_.size());
  m.dropped = m.sampled - m.completed;
  if (m.completed < options_.config.min_clients) {
    event.retried = true;
    ++attempt_;
    phase_ = Phase::kBetweenRounds;
    return event;
  }
  const double t0 = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  absl::StatusOr<TensorSet> next = MergedFinish();
  if (next.ok()) {
    global_ = *std::move(next);
  } else {
    // The global model stays as it was; the round's tickets are still committed below.
    ++counters_.aggregation_failures;
    m.errors.push_back(absl::StrCat("aggregation failed, the global model is unchanged: ", next.status().message()));
  }
  std::vector<double> trained_accuracy;
  for (auto& [id, mask] : accepted_) {
    ClientState& c = clients_[id];
    if (reports_[id].local_accuracy >= 0) trained_accuracy.push_back(reports_[id].local_accuracy);
    if (mask) {
      c.mask = std::move(*mask);
      c.density = c.mask.Density();
      ++c.mask_version;
    }
    if (options_.config.quant == QuantMode::kBsq) {
      c.layer_bits = accepted_bits_[id];
    }
    const UpdateReport& r = reports_[id];
    c.personalized_accuracy = r.local_accuracy;
    c.global_masked_accuracy = r.global_masked_accuracy;
    dirty_.insert(id);
    c.test_count = r.test_count;
    c.num_samples = r.num_samples;
    m.train_seconds += r.train_seconds / m.completed;
    m.encode_seconds += r.encode_seconds / m.completed;
    m.network_seconds += r.network_seconds / m.completed;
    m.pruned_clients += r.pruned ? 1 : 0;
  }
  m.server_network_seconds = m.completed > 0 ? server_network_sum_ / static_cast<double>(m.completed) : 0;
  m.clip_bound = round_clip_bound_;
  if (const ClippedAggregator* merged = shards_.front()->acc.get()) {
    for (const auto& [id, distance] : merged->distances()) {
      clip_.Add(std::min(distance, round_clip_bound_));  // client-id order
      m.max_start_distance = std::max(m.max_start_distance, distance);
    }
    m.clipped = merged->clipped();
  }
  m.timings_zeroed = pending_.timings_zeroed;
  m.refetches = pending_.refetches;
  m.refetch_bytes = pending_.refetch_bytes;
  {
    std::map<std::string, uint64_t> now_refused = refusals_->Snapshot();
    m.refusals = RefusalCounters::Delta(refusals_at_last_row_, now_refused);
    refusals_at_last_row_ = std::move(now_refused);
  }
  m.personalized_trained_accuracy = Mean(trained_accuracy);
  m.uplink_bytes = pending_.uplink_bytes;
  m.refused = pending_.refused;
  m.max_update_norm = pending_.max_update_norm;
  m.clamped_samples = pending_.clamped_samples;
  m.weights_source = options_.train_counts.empty() ? "clients" : "server";
  m.downlink_bytes = pending_.downlink_bytes;
  m.dense_fp32_bytes = static_cast<uint64_t>(m.completed) * static_cast<uint64_t>(dense_bytes_per_model_);
  m.open_gap_seconds = pending_.open_gap_seconds;
  pending_ = RoundMetrics();
  std::vector<double> density;
  density.reserve(clients_.size());
  for (const ClientState& c : clients_) density.push_back(c.density);
  m.mean_density = Mean(density);
  // In client-id order (accepted_bits_ is a sorted map), so the float sums do not depend on the
  // order in which updates arrived.
  if (!accepted_bits_.empty()) {
    m.layer_bits.assign(accepted_bits_.begin()->second.size(), 0.0);
    for (const auto& [id, bits] : accepted_bits_) {
      for (size_t l = 0; l < bits.size() && l < m.layer_bits.size(); ++l) {
        m.layer_bits[l] += static_cast<double>(bits[l]) / static_cast<double>(accepted_bits_.size());
      }
    }
  }
  std::vector<int64_t> sizes;
  for (const NamedTensor& t : global_.tensors) {
    if (t.prunable) sizes.push_back(t.numel());
  }
  m.mean_bits = WeightedMeanBits(m.layer_bits, sizes);
  const RunConfig& cfg = options_.config;
  const bool last = round_ >= static_cast<uint64_t>(cfg.rounds);
  m.evaluated = strategy_->Evaluates(round_);
  auto work = std::make_shared<RoundWork>();
  if (m.evaluated) {
    // Personalized (reported) and global-masked (evaluated) accuracy over the same sample.
    // With client-data local the server holds none of the clients' images: both figures are
    // the clients' own reports (the row says so), and only the global model is evaluated here.
    const bool clients_report = cfg.client_data == ClientDataSource::kLocal;
    const std::vector<int64_t> sample = strategy_->EvalSample(round_);
    std::vector<double> personalized, global_masked;
    for (int64_t id : sample) {
      const ClientState& c = clients_[id];
      if (c.personalized_accuracy >= 0) personalized.push_back(c.personalized_accuracy);
      if (c.global_masked_accuracy >= 0) global_masked.push_back(c.global_masked_accuracy);
    }
    m.personalized_accuracy = Mean(personalized);
    m.eval_clients = static_cast<int64_t>(sample.size());
    if (clients_report) {
      m.accuracy_source = "clients";
      m.global_masked_accuracy = Mean(global_masked);
      m.eval_clients = static_cast<int64_t>(global_masked.size());
    }
    if (evaluator_) {
      EvalRequest request;
      request.global = global_;
      request.global_accuracy = round_ % static_cast<uint64_t>(cfg.eval_global_every) == 0 || last;
      if (!clients_report) {
        request.clients = sample;
        request.masks.reserve(sample.size());
        for (int64_t id : sample) request.masks.push_back(clients_[id].mask);
      }
      if (request.global_accuracy || !request.clients.empty()) work->eval = std::move(request);
    }
  }
  m.aggregate_seconds = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch()) - t0;
  m.wall_seconds = now - round_opened_;
  last_closed_ = now;
  totals_.rounds_completed = round_;
  totals_.uplink_bytes += m.uplink_bytes;
  totals_.downlink_bytes += m.downlink_bytes;
  totals_.dense_fp32_bytes += m.dense_fp32_bytes;
  ++round_;
  attempt_ = 0;
  if (!checkpoint_path_.empty()) {
    // A log record of what changed, and a full snapshot (which empties the log) now and then.
    if (records_since_snapshot_ + 1 >= options_.checkpoint_snapshot_every) {
      ++generation_;
      work->snapshot = SnapshotCheckpoint();
      records_since_snapshot_ = 0;
    } else {
      work->delta = DeltaCheckpoint();
      ++records_since_snapshot_;
    }
    dirty_.clear();
  }
  event.work = std::move(work);
  phase_ = round_ > static_cast<uint64_t>(cfg.rounds) ? Phase::kFinished : Phase::kBetweenRounds;
  ++state_version_;
  return event;
}

CheckpointDelta RoundCoordinator::DeltaCheckpoint() const {
  CheckpointDelta d;
  d.generation = generation_;
  d.next_round = round_;
  d.global = global_;
  d.totals_uplink = totals_.uplink_bytes;
  d.totals_downlink = totals_.downlink_bytes;
  d.totals_dense = totals_.dense_fp32_bytes;
  d.clients.reserve(dirty_.size());
  for (int64_t id : dirty_) d.clients.emplace_back(id, ToCheckpointClient(clients_[static_cast<size_t>(id)]));
  return d;
}

Checkpoint RoundCoordinator::SnapshotCheckpoint() const {
  Checkpoint cp;
  cp.generation = generation_;
  cp.next_round = round_;
  cp.seed = options_.config.seed;
  cp.global = global_;
  cp.totals_uplink = totals_.uplink_bytes;
  cp.totals_downlink = totals_.downlink_bytes;
  cp.totals_dense = totals_.dense_fp32_bytes;
  cp.clients.reserve(clients_.size());
  for (const ClientState& c : clients_) cp.clients.push_back(ToCheckpointClient(c));
  return cp;
}

absl::Status RoundCoordinator::CheckpointNow() {
  absl::MutexLock lock(&mu_);
  if (checkpoint_path_.empty()) return absl::OkStatus();
  ++generation_;
  records_since_snapshot_ = 0;
  dirty_.clear();
  return WriteCheckpointFile(SnapshotCheckpoint(), checkpoint_path_);
}

absl::Status RoundCoordinator::Restore(const std::string& checkpoint_path, double now) {
  absl::StatusOr<Checkpoint> cp = ReadCheckpointFile(checkpoint_path);
  if (!cp.ok()) return cp.status();
  absl::MutexLock lock(&mu_);
  if (cp->seed != options_.config.seed) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint_path, " was written with seed ", cp->seed, ", this run uses ",
                     options_.config.seed));
  }
  if (absl::Status s = cp->global.CheckLayout(global_); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", checkpoint_path, " is for another model: ",
                                                      s.message()));
  }
  if (cp->clients.size() != clients_.size()) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint ", checkpoint_path, " has ", cp->clients.size(),
                                                      " clients, this run has ", clients_.size()));
  }
  global_ = std::move(cp->global);
  size_t prunable = 0;
  for (const NamedTensor& t : global_.tensors) prunable += t.prunable ? 1 : 0;
  for (size_t i = 0; i < clients_.size(); ++i) {
    const CheckpointClient& c = cp->clients[i];
    if (absl::Status s = c.mask.CheckMatches(global_); !s.ok()) return s;
    if (!c.layer_bits.empty() && c.layer_bits.size() != prunable) {
      return absl::FailedPreconditionError(absl::StrCat("checkpoint ", checkpoint_path, ": client ", i, " has ",
                                                        c.layer_bits.size(), " layer bits, the model has ", prunable,
                                                        " prunable tensors"));
    }
    clients_[i].mask = c.mask;
    clients_[i].density = c.mask.Density();
    clients_[i].mask_version = c.mask_version;
    clients_[i].personalized_accuracy = c.personalized_accuracy;
    clients_[i].global_masked_accuracy = c.global_masked_accuracy;
    clients_[i].test_count = c.test_count;
    clients_[i].num_samples = c.num_samples;
    clients_[i].layer_bits = c.layer_bits;
  }
  round_ = cp->next_round;
  attempt_ = 0;
  totals_.rounds_completed = round_ - 1;
  recorded_through_ = round_ - 1;
  // The first round closed after a restore writes a fresh snapshot (of a new generation).
  generation_ = cp->generation;
  records_since_snapshot_ = options_.checkpoint_snapshot_every;
  dirty_.clear();
  totals_.uplink_bytes = cp->totals_uplink;
  totals_.downlink_bytes = cp->totals_downlink;
  totals_.dense_fp32_bytes = cp->totals_dense;
  phase_ = round_ > static_cast<uint64_t>(options_.config.rounds) ? Phase::kFinished : Phase::kWaitingForClients;
  waiting_since_ = now;
  ++state_version_;
  return absl::OkStatus();
}

bool RoundCoordinator::FinishedLocked() const {
  // Not before the last round's row and checkpoint are written: a client host told FINISHED
  // exits, and a server killed before that record would resume into a round nobody trains.
  return phase_ == Phase::kFinished &&
         (recorded_through_ >= static_cast<uint64_t>(options_.config.rounds) || !fatal_.ok());
}

bool RoundCoordinator::finished() const {
  absl::MutexLock lock(&mu_);
  return FinishedLocked();
}

uint64_t RoundCoordinator::current_round() const {
  absl::MutexLock lock(&mu_);
  return round_;
}

uint64_t RoundCoordinator::state_version() const {
  absl::MutexLock lock(&mu_);
  return state_version_;
}

TensorSet RoundCoordinator::global_model() const {
  absl::MutexLock lock(&mu_);
  return global_;
}

std::vector<ClientState> RoundCoordinator::clients() const {
  absl::MutexLock lock(&mu_);
  return clients_;
}

RoundCoordinator::Totals RoundCoordinator::totals() const {
  absl::MutexLock lock(&mu_);
  return totals_;
}

double RoundCoordinator::clip_bound() const {
  absl::MutexLock lock(&mu_);
  return round_clip_bound_;
}

double RoundCoordinator::seconds_until_deadline(double now) const {
  absl::MutexLock lock(&mu_);
  return phase_ == Phase::kRoundOpen ? deadline_ - now : 1.0;
}

}  // namespace lfl
