#include "server/coordinator/open_round.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "wire/model_payload.h"

namespace lfl {
namespace {

double Mean(const std::vector<double>& v) {
  if (v.empty()) return -1;
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

}  // namespace

OpenRound::OpenRound(uint64_t round, uint32_t attempt, std::vector<int64_t> sampled, double opened, double deadline,
                     std::vector<std::unique_ptr<ClippedAggregator>> shards, RoundMetrics tally)
    : round_(round),
      attempt_(attempt),
      sampled_(std::move(sampled)),
      opened_(opened),
      deadline_(deadline),
      tally_(std::move(tally)) {
  for (std::unique_ptr<ClippedAggregator>& acc : shards) {
    shards_.push_back(std::make_unique<Shard>());
    absl::MutexLock lock(&shards_.back()->mu);
    shards_.back()->acc = std::move(acc);
  }
}

absl::StatusOr<std::unique_ptr<OpenRound>> OpenRound::Open(const Strategy& strategy, uint64_t round, uint32_t attempt,
                                                           std::vector<int64_t> sampled, double opened,
                                                           double deadline, const TensorSet& layout,
                                                           double clip_bound, int shards, RoundMetrics tally) {
  std::vector<std::unique_ptr<ClippedAggregator>> accs;
  for (int i = 0; i < std::max(1, shards); ++i) {
    absl::StatusOr<std::unique_ptr<ClippedAggregator>> acc = strategy.NewAggregator(layout, clip_bound);
    if (!acc.ok()) return acc.status();
    accs.push_back(*std::move(acc));
  }
  return std::make_unique<OpenRound>(round, attempt, std::move(sampled), opened, deadline, std::move(accs),
                                     std::move(tally));
}

double OpenRound::clip_bound() const {
  absl::MutexLock lock(&shards_.front()->mu);
  return shards_.front()->acc->bound();
}

bool OpenRound::IsSampled(int64_t id) const { return std::binary_search(sampled_.begin(), sampled_.end(), id); }

std::optional<absl::Status> OpenRound::Ended(int64_t id) const {
  auto it = ended_.find(id);
  if (it == ended_.end()) return std::nullopt;
  return absl::FailedPreconditionError(absl::StrCat("the task of client ", id, " in round ", round_, " attempt ",
                                                    attempt_, " has ended: ", it->second.message()));
}

bool OpenRound::End(int64_t id, absl::Status why) {
  if (!IsSampled(id) || Accepted(id)) return false;
  return ended_.emplace(id, std::move(why)).second;
}

absl::Status OpenRound::Abandon(int64_t id, std::string_view reason, std::string* cause) {
  if (absl::Status s = AdmitUpload(id, cause); !s.ok()) {
    if (!absl::IsAlreadyExists(s)) return s;
    *cause = "abandon_accepted";
    return absl::FailedPreconditionError(
        absl::StrCat("client ", id, " cannot abandon round ", round_, ": its update was accepted"));
  }
  // An upload that began may still be folded in (Submit does not re-check an ended task).
  if (upload_started_.count(id) != 0) {
    *cause = "abandon_uploading";
    return absl::FailedPreconditionError(
        absl::StrCat("client ", id, " cannot abandon round ", round_, ": it began uploading an update"));
  }
  End(id, absl::AbortedError(absl::StrCat("abandoned by the client: ", std::string(reason))));
  ++tally_.abandoned;
  return absl::OkStatus();
}

absl::Status OpenRound::BeginFold(int64_t id, std::string* cause) {
  if (closing) {
    *cause = "round_closed";
    return absl::FailedPreconditionError(absl::StrCat("round ", round_, " closed while the update arrived"));
  }
  if (Accepted(id)) return absl::AlreadyExistsError(absl::StrCat("client ", id, "'s update is accepted"));
  if (!folding_.insert(id).second) {
    *cause = "fold_in_progress";
    return absl::UnavailableError(absl::StrCat("an update of client ", id, " is being folded in; retry"));
  }
  return absl::OkStatus();
}

std::vector<Task> OpenRound::TasksFor(const std::vector<int64_t>& ids) const {
  std::vector<Task> tasks;
  // The sampled set is small (fraction · K); look each one up in the host's sorted ids.
  for (int64_t id : sampled_) {
    if (!Accepted(id) && ended_.count(id) == 0 && std::binary_search(ids.begin(), ids.end(), id)) {
      tasks.push_back({id, round_, attempt_});
    }
  }
  return tasks;
}

absl::Status OpenRound::AdmitFetch(int64_t id, int64_t max_refetches, bool* first, std::string* cause) {
  if (absl::Status s = AdmitTask(id, cause); !s.ok()) return s;
  const int64_t fetches = fetches_[id]++;
  if (fetches > max_refetches) {
    *cause = "refetch_limit";
    return absl::ResourceExhaustedError(absl::StrCat("client ", id, " fetched the model of round ", round_,
                                                     " attempt ", attempt_, " ", fetches,
                                                     " times; the server serves a task at most ", max_refetches + 1,
                                                     " times"));
  }
  *first = fetches == 0;
  return absl::OkStatus();
}

absl::Status OpenRound::AdmitUpload(int64_t id, std::string* cause, bool even_ended) const {
  if (Accepted(id)) {
    *cause = "duplicate";
    return absl::AlreadyExistsError(
        absl::StrCat("the update of client ", id, " for round ", round_, " was already accepted"));
  }
  if (even_ended && IsSampled(id)) return absl::OkStatus();
  return AdmitTask(id, cause);
}

absl::Status OpenRound::AdmitTask(int64_t id, std::string* cause) const {
  if (!IsSampled(id)) {
    *cause = "no_task";
    return absl::PermissionDeniedError(absl::StrCat("client ", id, " was not sampled in round ", round_));
  }
  if (std::optional<absl::Status> ended = Ended(id)) {
    *cause = "task_ended";
    return *ended;
  }
  return absl::OkStatus();
}

void OpenRound::CountDownlink(bool first, uint64_t bytes, RoundMetrics* tally) {
  if (first) {
    tally->downlink_bytes += bytes;
  } else {
    tally->refetch_bytes += bytes;
    ++tally->refetches;
  }
}

void OpenRound::SetDerived(int64_t id, std::optional<Mask> mask) {
  if (mask) {
    derived_[id] = *std::move(mask);
  } else {
    derived_.erase(id);
  }
}

const Mask* OpenRound::Derived(int64_t id) const {
  auto it = derived_.find(id);
  return it == derived_.end() ? nullptr : &it->second;
}

absl::Status OpenRound::Fold(const ClientUpdate& update) {
  // Into whichever shard is free: every aggregator's result is independent of the order and of
  // the grouping of its Merges (fl/aggregator.h).
  for (const std::unique_ptr<Shard>& shard : shards_) {
    if (shard->mu.TryLock()) {
      absl::Status s = shard->acc->Add(update);
      shard->mu.Unlock();
      return s;
    }
  }
  Shard& shard = *shards_[static_cast<size_t>(update.client_id) % shards_.size()];
  absl::MutexLock lock(&shard.mu);
  return shard.acc->Add(update);
}

void OpenRound::Accept(int64_t id, CheckedUpdate update, double now, uint64_t bytes) {
  DecodedModel& d = update.decoded;
  accepted_[id] = AcceptedUpdate{update.new_mask ? std::optional<Mask>(std::move(d.mask)) : std::nullopt,
                                 std::move(d.layer_bits), std::move(update.report)};
  tally_.timings_zeroed += update.timings_zeroed;
  const double norm = update.norm;
  const bool clamped = update.clamped;
  if (auto it = upload_started_.find(id); it != upload_started_.end()) {
    server_network_sum_ += std::max(0.0, now - it->second);
  }
  tally_.uplink_bytes += bytes;
  tally_.max_update_norm = std::max(tally_.max_update_norm, norm);
  if (clamped) ++tally_.clamped_samples;
}

absl::StatusOr<TensorSet> OpenRound::Aggregate(const TensorSet& previous) {
  Shard& first = *shards_.front();
  absl::MutexLock first_lock(&first.mu);
  for (size_t i = 1; i < shards_.size(); ++i) {
    absl::MutexLock lock(&shards_[i]->mu);
    if (absl::Status s = first.acc->Merge(*shards_[i]->acc); !s.ok()) return s;
  }
  return first.acc->Finish(previous);
}

std::map<int64_t, double> OpenRound::start_distances() const {
  absl::MutexLock lock(&shards_.front()->mu);
  return shards_.front()->acc->distances();
}

RoundMetrics OpenRound::Row() const {
  RoundMetrics m;
  m.round = round_;
  m.attempts = attempt_ + 1;
  m.sampled = static_cast<int64_t>(sampled_.size());
  m.completed = static_cast<int64_t>(accepted_.size());
  m.dropped = m.sampled - m.completed;
  return m;
}

void OpenRound::FillTallies(RoundMetrics* m) const {
  const RoundMetrics& t = tally_;
  m->uplink_bytes = t.uplink_bytes;
  m->downlink_bytes = t.downlink_bytes;
  m->refetches = t.refetches;
  m->refetch_bytes = t.refetch_bytes;
  m->refused = t.refused;
  m->abandoned = t.abandoned;
  m->max_update_norm = t.max_update_norm;
  m->clamped_samples = t.clamped_samples;
  m->timings_zeroed = t.timings_zeroed;
  m->open_gap_seconds = t.open_gap_seconds;
  m->server_network_seconds = m->completed > 0 ? server_network_sum_ / static_cast<double>(m->completed) : 0;
  {
    absl::MutexLock lock(&shards_.front()->mu);
    const ClippedAggregator& merged = *shards_.front()->acc;
    m->clip_bound = merged.bound();
    m->clipped = merged.clipped();
    for (const auto& [id, distance] : merged.distances()) m->max_start_distance = std::max(m->max_start_distance, distance);
  }
}

std::vector<int64_t> OpenRound::Commit(std::vector<Ticket>* tickets, bool keep_bits, RoundMetrics* m) const {
  std::vector<int64_t> changed;
  FillTallies(m);
  std::vector<double> trained_accuracy;
  for (const auto& [id, u] : accepted_) {  // client-id order: the float sums do not depend on arrival
    Ticket& c = (*tickets)[static_cast<size_t>(id)];
    const UpdateReport& r = u.report;
    if (r.local_accuracy >= 0) trained_accuracy.push_back(r.local_accuracy);
    if (u.new_mask) {
      c.mask = *u.new_mask;
      c.density = c.mask.Density();
      ++c.mask_version;
    }
    if (keep_bits) c.layer_bits = u.layer_bits;
    c.personalized_accuracy = r.local_accuracy;
    c.global_masked_accuracy = r.global_masked_accuracy;
    c.test_count = r.test_count;
    c.num_samples = r.num_samples;
    changed.push_back(id);
    m->train_seconds += r.train_seconds / m->completed;
    m->encode_seconds += r.encode_seconds / m->completed;
    m->network_seconds += r.network_seconds / m->completed;
    m->pruned_clients += r.pruned ? 1 : 0;
  }
  m->personalized_trained_accuracy = Mean(trained_accuracy);
  if (!accepted_.empty()) {
    m->layer_bits.assign(accepted_.begin()->second.layer_bits.size(), 0.0);
    for (const auto& [id, u] : accepted_) {
      for (size_t l = 0; l < u.layer_bits.size() && l < m->layer_bits.size(); ++l) {
        m->layer_bits[l] += static_cast<double>(u.layer_bits[l]) / static_cast<double>(accepted_.size());
      }
    }
  }
  return changed;
}

}  // namespace lfl
