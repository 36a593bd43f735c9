#include "server/coordinator/membership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lfl {

Membership::Membership(int64_t num_clients, std::shared_ptr<const Authenticator> authenticator,
                       std::shared_ptr<RefusalCounters> refusals, double liveness_seconds)
    : authenticator_(std::move(authenticator)),
      refusals_(std::move(refusals)),
      liveness_seconds_(liveness_seconds),
      clients_(static_cast<size_t>(num_clients)),
      sessions_(num_clients) {}

std::shared_ptr<const Authenticator> Membership::AuthenticatorFor(std::shared_ptr<const Authenticator> authenticator,
                                                                   const std::map<int64_t, std::string>& tokens,
                                                                   int64_t num_clients) {
  if (authenticator) return authenticator;
  if (tokens.empty()) return std::make_shared<Authenticator>(Authenticator::AllowAll(num_clients));
  return std::make_shared<Authenticator>(Authenticator::FromTokens(num_clients, tokens));
}

absl::Status Membership::Authenticate(const Credential& c) {
  absl::Status s = authenticator_->Check(c);
  if (!s.ok()) {
    ++auth_failures_;
    refusals_->Count("bad_credential");
  }
  return s;
}

absl::StatusOr<std::vector<int64_t>> Membership::AuthenticateAll(const std::vector<Credential>& clients,
                                                                 bool same_identity) {
  std::vector<int64_t> ids;
  ids.reserve(clients.size());
  for (const Credential& c : clients) {
    if (absl::Status s = Authenticate(c); !s.ok()) return s;
    if (same_identity && c.peer_identity != clients.front().peer_identity) {
      refusals_->Count("mixed_identity");
      return absl::InvalidArgumentError("one session cannot span two client certificates");
    }
    ids.push_back(c.client_id);
  }
  return ids;
}

void Membership::Join(int64_t id, double now) {
  Client& c = clients_[static_cast<size_t>(id)];
  if (!c.joined || c.left) ++joined_count_;
  c.joined = true;
  c.left = false;
  MarkLive(id, now);
}

absl::Status Membership::Join(const Credential& c, double now) {
  if (absl::Status s = Authenticate(c); !s.ok()) return s;
  Join(c.client_id, now);
  return absl::OkStatus();
}

absl::StatusOr<std::string> Membership::JoinHost(const std::vector<Credential>& clients, double now) {
  if (clients.empty()) return absl::InvalidArgumentError("join without clients");
  absl::StatusOr<std::vector<int64_t>> ids = AuthenticateAll(clients, /*same_identity=*/true);
  if (!ids.ok()) return ids.status();
  absl::StatusOr<std::string> token = sessions_.Open(*ids, clients.front().peer_identity, now);
  if (!token.ok()) return token.status();
  for (int64_t id : *ids) Join(id, now);
  return token;
}

absl::StatusOr<std::vector<int64_t>> Membership::Heartbeat(const std::vector<Credential>& clients, double now) {
  absl::StatusOr<std::vector<int64_t>> ids = AuthenticateAll(clients);
  if (!ids.ok()) return ids.status();
  for (int64_t id : *ids) {
    if (!joined(id)) return absl::FailedPreconditionError(absl::StrCat("client ", id, " must join first"));
  }
  for (int64_t id : *ids) MarkLive(id, now);
  std::sort(ids->begin(), ids->end());
  return ids;
}

absl::Status Membership::Leave(const std::vector<Credential>& clients) {
  absl::StatusOr<std::vector<int64_t>> ids = AuthenticateAll(clients);
  if (!ids.ok()) return ids.status();
  for (int64_t id : *ids) {
    Client& c = clients_[static_cast<size_t>(id)];
    if (c.joined && !c.left) --joined_count_;
    c.left = true;
    uploading_.erase(id);
  }
  return absl::OkStatus();
}

void Membership::MarkLive(int64_t id, double now) { clients_[static_cast<size_t>(id)].last_seen = now; }

absl::StatusOr<const Session*> Membership::TouchSession(std::string_view token, std::string_view peer_identity,
                                                        double now) {
  absl::StatusOr<Session*> session = sessions_.Find(token, peer_identity);
  if (!session.ok()) {
    ++auth_failures_;
    refusals_->Count("bad_session");
    return session.status();
  }
  (*session)->last_seen = now;
  return *session;
}

bool Membership::IsLive(int64_t id, double now) const {
  const Client& c = clients_[static_cast<size_t>(id)];
  if (!c.joined || c.left) return false;
  return now - std::max(c.last_seen, sessions_.LastSeen(id)) <= liveness_seconds_;
}

std::vector<int64_t> Membership::LiveIds(double now) const {
  std::vector<int64_t> live;
  for (size_t id = 0; id < clients_.size(); ++id) {
    if (IsLive(static_cast<int64_t>(id), now)) live.push_back(static_cast<int64_t>(id));
  }
  return live;
}

bool Membership::ReadyToStart(double now, bool waited, int64_t min_clients) const {
  int64_t expected = 0, live = 0;
  for (size_t id = 0; id < clients_.size(); ++id) {
    if (clients_[id].left) continue;
    ++expected;
    if (IsLive(static_cast<int64_t>(id), now)) ++live;
  }
  return (live == expected && live > 0) || (waited && live >= min_clients);
}

}  // namespace lfl
