#include "server/coordinator/round_coordinator.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/coordinator/round_report.h"

namespace lfl {

namespace {

UpdateLimits LimitsFor(const CoordinatorOptions& o, const TensorSet& layout) {
  return UpdateLimits{o.train_counts,    o.test_counts,           o.max_reported_samples,
                      o.max_update_norm, MaxEncodedBytes(layout), o.config.round_timeout};
}

}  // namespace

RoundCoordinator::RoundCoordinator(CoordinatorOptions options, TensorSet theta0, std::unique_ptr<Strategy> strategy,
                                   Evaluator* evaluator, std::string checkpoint_path, double now)
    : options_(std::move(options)),
      strategy_(std::move(strategy)),
      evaluator_(evaluator),
      dense_bytes_per_model_(4 * theta0.TotalElements()),
      refusals_(options_.refusals ? options_.refusals : std::make_shared<RefusalCounters>()),
      exchange_(*strategy_, LimitsFor(options_, theta0)),
      theta0_(theta0),
      members_(options_.config.clients,
               Membership::AuthenticatorFor(options_.authenticator, options_.tokens, options_.config.clients),
               refusals_, options_.liveness_seconds),
      checkpoints_(std::move(checkpoint_path), options_.checkpoint_snapshot_every),
      clip_(strategy_->clip_options()) {
  absl::MutexLock lock(&mu_);
  Ticket fresh;
  fresh.mask = Mask::Full(theta0);  // shared by every client until its ticket changes
  tickets_.assign(static_cast<size_t>(options_.config.clients), fresh);
  refusals_at_last_row_ = refusals_->Snapshot();
  global_ = std::move(theta0);
  waiting_since_ = now;
}

OpenRound* RoundCoordinator::OpenFor(uint64_t round, uint32_t attempt) const {
  return phase_ == Phase::kRoundOpen && open_ && open_->Is(round, attempt) ? open_.get() : nullptr;
}

RoundMetrics& RoundCoordinator::Tally() { return open_ ? open_->tally() : carry_; }

absl::StatusOr<std::string> RoundCoordinator::Join(const Credential& credential, double now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = members_.Join(credential, now); !s.ok()) return s;
  ++state_version_;
  return RunConfigToToml(options_.config);
}

absl::StatusOr<HostJoin> RoundCoordinator::JoinHost(const std::vector<Credential>& clients, double now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::string> session = members_.JoinHost(clients, now);
  if (!session.ok()) return session.status();
  ++state_version_;
  return HostJoin{RunConfigToToml(options_.config), *std::move(session)};
}

absl::Status RoundCoordinator::Heartbeat(const std::vector<Credential>& clients, double now) {
  absl::MutexLock lock(&mu_);
  return members_.Heartbeat(clients, now).status();
}

absl::Status RoundCoordinator::Leave(const std::vector<Credential>& clients, double) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = members_.Leave(clients); !s.ok()) return s;
  ++state_version_;
  return absl::OkStatus();
}

absl::StatusOr<PollResult> RoundCoordinator::Poll(const std::vector<Credential>& clients, double now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<int64_t>> ids = members_.Heartbeat(clients, now);
  if (!ids.ok()) return ids.status();
  return TasksFor(*ids);
}

absl::StatusOr<PollResult> RoundCoordinator::PollSession(std::string_view token, std::string_view peer_identity,
                                                         double now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<const Session*> session = members_.TouchSession(token, peer_identity, now);
  if (!session.ok()) return session.status();
  return TasksFor((*session)->clients);
}

absl::Status RoundCoordinator::HeartbeatSession(std::string_view token, std::string_view peer_identity, double now) {
  absl::MutexLock lock(&mu_);
  return members_.TouchSession(token, peer_identity, now).status();
}

PollResult RoundCoordinator::TasksFor(const std::vector<int64_t>& ids) const {
  PollResult result;
  result.round = round_;
  if (FinishedLocked()) {
    result.state = PollResult::kFinished;
  } else if (phase_ == Phase::kRoundOpen) {
    result.tasks = open_->TasksFor(ids);
    if (!result.tasks.empty()) result.state = PollResult::kTrain;
  }
  return result;
}

absl::StatusOr<DownlinkPayload> RoundCoordinator::Downlink(const Credential& client, uint64_t round, uint32_t attempt,
                                                           uint32_t held_mask_version, uint64_t held_mask_hash,
                                                           double now) {
  const int64_t id = client.client_id;
  TensorSet model;
  Ticket ticket;
  bool first = true;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = members_.Authenticate(client); !s.ok()) return s;
    std::string cause = "no_task";
    OpenRound* open = OpenFor(round, attempt);
    absl::Status s = open ? open->AdmitFetch(id, options_.config.max_refetches, &first, &cause) : NoRound(round, attempt);
    if (!s.ok()) return refusals_->Refuse(cause, s);
    members_.MarkLive(id, now);
    model = global_;
    ticket = tickets_[static_cast<size_t>(id)];
  }
  absl::StatusOr<EncodedDownlink> down =
      exchange_.EncodeDownlink(std::move(model), ticket, round, id, held_mask_version, held_mask_hash);
  if (!down.ok()) return down.status();
  absl::MutexLock lock(&mu_);
  // A stale downlink (the round moved on while it was encoded) counts, but touches no round.
  OpenRound::CountDownlink(first, down->bytes.size(), &Tally());
  if (OpenRound* open = OpenFor(round, attempt)) open->SetDerived(id, std::move(down->derived));
  return DownlinkPayload{std::move(down->bytes), ticket.mask_version, std::move(ticket.layer_bits)};
}

absl::Status RoundCoordinator::Abandon(const Credential& client, uint64_t round, uint32_t attempt,
                                       std::string_view reason, double now) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = members_.Authenticate(client); !s.ok()) return s;
  std::string cause = "no_task";
  OpenRound* open = OpenFor(round, attempt);
  absl::Status s = open ? open->Abandon(client.client_id, reason, &cause) : NoRound(round, attempt);
  if (!s.ok()) return refusals_->Refuse(cause, s);
  members_.MarkLive(client.client_id, now);
  ++state_version_;  // the round may now be complete, and parked polls must not hand the task out
  return absl::OkStatus();
}

absl::Status RoundCoordinator::NoRound(uint64_t round, uint32_t attempt) const {
  return absl::FailedPreconditionError(absl::StrCat("no task in round ", round, " attempt ", attempt,
                                                    ": the open round is ", round_, " attempt ", attempt_));
}

absl::Status RoundCoordinator::AdmitUpdate(const UpdateReport& report, std::string* cause, bool even_ended) const {
  *cause = "no_task";
  OpenRound* open = OpenFor(report.round, report.attempt);
  return open ? open->AdmitUpload(report.client_id, cause, even_ended) : NoRound(report.round, report.attempt);
}

absl::Status RoundCoordinator::BeginUpload(const UpdateReport& header, uint64_t payload_bytes, double now) {
  absl::MutexLock lock(&mu_);
  const int64_t id = header.client_id;
  std::string cause;
  absl::Status s = members_.Authenticate({id, header.token, header.peer_identity});
  if (s.ok() && (s = AdmitUpdate(header, &cause)).ok()) {
    if (!(s = exchange_.CheckDeclaredSize(payload_bytes)).ok()) {
      cause = "upload_size";
    } else if (!members_.BeginUpload(id)) {
      cause = "upload_in_flight";
      s = absl::ResourceExhaustedError(absl::StrCat("client ", id, " already has an upload in flight"));
    }
  }
  if (!s.ok()) {
    ++counters_.uploads_refused;
    return cause.empty() ? s : refusals_->Refuse(cause, s);  // a bad credential is counted by Membership
  }
  open_->UploadStarted(id, now);
  members_.MarkLive(id, now);
  return absl::OkStatus();
}

void RoundCoordinator::EndUpload(int64_t client_id) {
  absl::MutexLock lock(&mu_);
  members_.EndUpload(client_id);
}

absl::Status RoundCoordinator::CountRefusal(const UpdateReport& report, std::string_view cause,
                                            const absl::Status& why) {
  ++counters_.updates_refused;
  ++Tally().refused;
  absl::Status out(why.code(), absl::StrCat("update of client ", report.client_id, " refused (", std::string(cause),
                                            "): ", why.message()));
  refusals_->Count(cause);
  if (OpenRound* open = OpenFor(report.round, report.attempt); open && open->End(report.client_id, out)) {
    ++state_version_;  // the round may now be complete, and parked polls must not hand the task out
  }
  return out;
}

absl::StatusOr<bool> RoundCoordinator::Submit(const UpdateReport& report, std::string_view payload, double now) {
  TensorSet served;
  Ticket held;
  std::optional<Mask> derived;
  {
    absl::MutexLock lock(&mu_);
    if (absl::Status s = members_.Authenticate({report.client_id, report.token, report.peer_identity}); !s.ok()) return s;
    std::string cause;
    if (absl::Status s = AdmitUpdate(report, &cause, /*even_ended=*/true); !s.ok()) {
      if (absl::IsAlreadyExists(s)) return true;  // an idempotent retry of an accepted update
      return refusals_->Refuse(cause, s);
    }
    // An ended task (a refused update) is refused at BeginUpload, before any payload is read.
    members_.MarkLive(report.client_id, now);
    served = global_;
    held = tickets_[static_cast<size_t>(report.client_id)];
    if (const Mask* d = open_->Derived(report.client_id)) derived = *d;
  }
  std::string cause;
  absl::StatusOr<CheckedUpdate> update = exchange_.Check(report, payload, served, held.mask, held.mask_version,
                                                          derived ? &*derived : nullptr, &cause);
  if (!update.ok()) {
    absl::MutexLock lock(&mu_);
    return CountRefusal(report, cause, update.status());
  }
  return FoldAndAccept(report, *std::move(update), served, payload.size() + report.header_bytes, now);
}

absl::StatusOr<bool> RoundCoordinator::FoldAndAccept(const UpdateReport& report, CheckedUpdate update,
                                                     const TensorSet& served, uint64_t bytes, double now) {
  OpenRound* open = nullptr;
  {
    absl::MutexLock lock(&mu_);
    open = OpenFor(report.round, report.attempt);
    std::string cause = "round_closed";
    absl::Status s = open ? open->BeginFold(report.client_id, &cause) : NoRound(report.round, report.attempt);
    if (absl::IsAlreadyExists(s)) return true;  // accepted meanwhile (a concurrent retry)
    if (!s.ok()) return refusals_->Refuse(cause, s);
  }
  // Folded in outside the lock; the round cannot close meanwhile (CloseRound waits for the folds).
  // Clipping starts from θ0 ⊙ m' where the client rewound (a changed ticket), else from θg ⊙ m.
  const bool masked = strategy_->uses_masks();
  ClientUpdate u{report.client_id, &update.decoded.values, masked ? &update.decoded.mask : nullptr, update.weight,
                 masked && update.new_mask ? &theta0_ : &served};
  absl::Status folded = open->Fold(u);
  absl::MutexLock lock(&mu_);
  open->EndFold(report.client_id);
  if (!folded.ok()) return CountRefusal(report, "fold", absl::InvalidArgumentError(folded.message()));
  if (update.timings_zeroed > 0) refusals_->Count("timing", static_cast<uint64_t>(update.timings_zeroed));
  open->Accept(report.client_id, std::move(update), now, bytes);
  ++counters_.updates_accepted;
  ++state_version_;
  return false;
}

void RoundCoordinator::StartRound(double now) {
  std::vector<int64_t> sampled = strategy_->SampleClients(members_.LiveIds(now), round_, attempt_);
  if (sampled.empty()) {
    phase_ = Phase::kWaitingForClients;
    waiting_since_ = now;
    return;
  }
  carry_.open_gap_seconds = last_closed_ >= 0 ? now - last_closed_ : 0;
  // The clip bound is fixed when the round opens, so arrival order does not matter.
  absl::StatusOr<std::unique_ptr<OpenRound>> open =
      OpenRound::Open(*strategy_, round_, attempt_, std::move(sampled), now, now + options_.config.round_timeout,
                      global_, clip_.Bound(ModelNorm(global_)), options_.fold_shards, std::exchange(carry_, {}));
  if (!open.ok()) {  // a strategy that cannot aggregate this model: stop, do not run blind
    fatal_ = absl::InternalError(absl::StrCat("no aggregator for round ", round_, ": ", open.status().message()));
    phase_ = Phase::kFinished;
    return;
  }
  open_ = *std::move(open);
  phase_ = Phase::kRoundOpen;
  ++state_version_;
}

std::vector<RoundEvent> RoundCoordinator::Tick(double now, const std::function<void(const RoundEvent&)>& on_round) {
  std::vector<RoundEvent> events;
  {
    absl::MutexLock lock(&mu_);
    if (phase_ == Phase::kBetweenRounds) StartRound(now);
    const RunConfig& cfg = options_.config;
    const bool waited = now - waiting_since_ >= cfg.join_timeout;
    if (phase_ == Phase::kWaitingForClients && members_.ReadyToStart(now, waited, cfg.min_clients)) StartRound(now);
    const bool complete = phase_ == Phase::kRoundOpen && open_->Complete([&](int64_t id) { return members_.left(id); });
    if (phase_ == Phase::kRoundOpen && (complete || now >= open_->deadline())) events.push_back(CloseRound(now));
  }
  for (RoundEvent& e : events) {
    if (e.work == nullptr && on_round) on_round(e);
    if (e.work != nullptr && !options_.defer_round_work) FinishRound(&e, on_round);
  }
  return events;
}

void RoundCoordinator::FinishRound(RoundEvent* event, const std::function<void(const RoundEvent&)>& on_round) {
  std::shared_ptr<RoundWork> work = std::move(event->work);
  RoundMetrics& m = event->metrics;
  // Evaluation runs outside the lock, on the caller's thread: the next round may already train.
  if (work && work->eval && evaluator_ != nullptr && !EvaluateRound(*evaluator_, *work->eval, &m)) {
    absl::MutexLock lock(&mu_);
    ++counters_.evaluation_failures;
  }
  if (on_round) on_round(*event);
  if (work && work->checkpoint) WriteCheckpointWithRetry(*work->checkpoint);
  absl::MutexLock lock(&mu_);
  recorded_through_ = std::max(recorded_through_, m.round);
  ++state_version_;  // the last round's record may be what a parked poll waits for (FINISHED)
}

RoundEvent RoundCoordinator::CloseRound(double now) {
  // Updates being folded in belong to this round: wait for them (Await releases mu_ meanwhile;
  // `closing` keeps new ones out).
  open_->closing = true;
  mu_.Await(absl::Condition(+[](const std::set<int64_t>* folding) { return folding->empty(); }, open_->folding()));
  std::unique_ptr<OpenRound> open = std::move(open_);
  RoundEvent event{open->Row()};
  RoundMetrics& m = event.metrics;
  if (m.completed < options_.config.min_clients) {
    event.retried = true;
    carry_ = std::move(open->tally());  // the failed attempt's bytes count in the round's row
    ++attempt_;
    phase_ = Phase::kBetweenRounds;
    return event;
  }
  const absl::Time t0 = absl::Now();
  absl::StatusOr<TensorSet> next = open->Aggregate(global_);
  if (next.ok()) {
    global_ = *std::move(next);
  } else {  // the global model stays as it was; the round's tickets are still committed below
    ++counters_.aggregation_failures;
    m.errors.push_back(absl::StrCat("aggregation failed, the global model is unchanged: ", next.status().message()));
  }
  for (const auto& [id, distance] : open->start_distances()) clip_.Add(std::min(distance, open->clip_bound()));
  for (int64_t id : open->Commit(&tickets_, options_.config.quant == QuantMode::kBsq, &m)) checkpoints_.Changed(id);
  m.refusals = refusals_->TakeDelta(&refusals_at_last_row_);
  FillRunFigures(tickets_, global_, dense_bytes_per_model_, !options_.train_counts.empty(), &m);
  auto work = std::make_shared<RoundWork>();
  work->eval = PlanEvaluation(*strategy_, round_, tickets_, global_, evaluator_ != nullptr, &m);
  m.aggregate_seconds = absl::ToDoubleSeconds(absl::Now() - t0);
  m.wall_seconds = now - open->opened();
  last_closed_ = now;
  AddToTotals(m, &totals_);
  ++round_;
  attempt_ = 0;
  work->checkpoint = checkpoints_.Plan(State());
  event.work = std::move(work);
  phase_ = round_ > static_cast<uint64_t>(options_.config.rounds) ? Phase::kFinished : Phase::kBetweenRounds;
  ++state_version_;
  return event;
}

RunState RoundCoordinator::State() const {
  return RunState{round_, options_.config.seed, &global_, &tickets_, totals_};
}

void RoundCoordinator::WriteCheckpointWithRetry(const CheckpointWrite& write) {
  int failures = 0;  // serialized and fsynced outside the lock: the next round goes on meanwhile
  absl::Status s = checkpoints_.WriteWithRetry(write, kCheckpointAttempts, &failures);
  absl::MutexLock lock(&mu_);
  counters_.checkpoint_failures += static_cast<uint64_t>(failures);
  if (s.ok()) return;
  fatal_ = std::move(s);
  phase_ = Phase::kFinished;
  ++state_version_;
}

absl::Status RoundCoordinator::CheckpointNow() {
  absl::MutexLock lock(&mu_);
  if (!checkpoints_.enabled()) return absl::OkStatus();
  return checkpoints_.Write(checkpoints_.SnapshotNow(State()));
}

absl::Status RoundCoordinator::Restore(const std::string& checkpoint_path, double now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Checkpoint> cp =
      checkpoints_.Restore(checkpoint_path, options_.config.seed, global_, tickets_.size());
  if (!cp.ok()) return cp.status();
  global_ = std::move(cp->global);
  tickets_ = std::move(cp->clients);
  round_ = cp->next_round;
  attempt_ = 0;
  recorded_through_ = round_ - 1;
  totals_ = RunTotals{round_ - 1, cp->totals_uplink, cp->totals_downlink, cp->totals_dense};
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

absl::Status RoundCoordinator::fatal_error() const { absl::MutexLock l(&mu_); return fatal_; }
bool RoundCoordinator::finished() const { absl::MutexLock l(&mu_); return FinishedLocked(); }
uint64_t RoundCoordinator::current_round() const { absl::MutexLock l(&mu_); return round_; }
uint64_t RoundCoordinator::state_version() const { absl::MutexLock l(&mu_); return state_version_; }
int64_t RoundCoordinator::joined_clients() const { absl::MutexLock l(&mu_); return members_.joined_count(); }
RunTotals RoundCoordinator::totals() const { absl::MutexLock l(&mu_); return totals_; }
TensorSet RoundCoordinator::global_model() const { absl::MutexLock l(&mu_); return global_; }
std::vector<Ticket> RoundCoordinator::tickets() const { absl::MutexLock l(&mu_); return tickets_; }
bool RoundCoordinator::has_left(int64_t id) const { absl::MutexLock l(&mu_); return members_.left(id); }
double RoundCoordinator::clip_bound() const {
  absl::MutexLock l(&mu_);
  return open_ ? open_->clip_bound() : std::numeric_limits<double>::infinity();
}

CoordinatorCounters RoundCoordinator::counters() const {
  absl::MutexLock lock(&mu_);
  CoordinatorCounters c = counters_;
  c.auth_failures = members_.auth_failures();
  return c;
}

}  // namespace lfl
