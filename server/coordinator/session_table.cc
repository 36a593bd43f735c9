#include "server/coordinator/session_table.h"

#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "server/coordinator/authenticator.h"

namespace lfl {
namespace {

std::string Digest(std::string_view token) {
  const Sha256Digest d = Sha256(token);
  return std::string(reinterpret_cast<const char*>(d.data()), d.size());
}

}  // namespace

SessionTable::SessionTable(int64_t num_clients) : session_of_(static_cast<size_t>(std::max<int64_t>(0, num_clients))) {}

absl::StatusOr<std::string> SessionTable::Open(std::vector<int64_t> clients, std::string peer_identity, double now) {
  std::sort(clients.begin(), clients.end());
  clients.erase(std::unique(clients.begin(), clients.end()), clients.end());
  if (clients.empty()) return absl::InvalidArgumentError("a session needs at least one client");
  if (clients.front() < 0 || static_cast<size_t>(clients.back()) >= session_of_.size()) {
    return absl::InvalidArgumentError(absl::StrCat("client ids must be in [0, ", session_of_.size(), ")"));
  }
  std::array<unsigned char, 32> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
    return absl::InternalError("no random bytes for a session token");
  }
  const std::string token =
      absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
  // Only the ids this join authenticated move to the new session: an older session keeps its
  // other clients (a join with one stolen token must not cut off the rest of a host).
  for (int64_t id : clients) {
    if (const uint64_t old = session_of_[static_cast<size_t>(id)]; old != 0) Release(old, id);
  }
  const uint64_t sid = next_id_++;
  for (int64_t id : clients) session_of_[static_cast<size_t>(id)] = sid;
  std::string digest = Digest(token);
  by_digest_.emplace(digest, sid);
  digest_of_.emplace(sid, std::move(digest));
  sessions_.emplace(sid, Session{sid, std::move(clients), std::move(peer_identity), now});
  return token;
}

void SessionTable::Release(uint64_t sid, int64_t id) {
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return;
  std::vector<int64_t>& ids = it->second.clients;
  auto pos = std::lower_bound(ids.begin(), ids.end(), id);
  if (pos != ids.end() && *pos == id) ids.erase(pos);
  session_of_[static_cast<size_t>(id)] = 0;
  if (ids.empty()) Close(sid);
}

void SessionTable::Close(uint64_t sid) {
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return;
  for (int64_t id : it->second.clients) {
    if (session_of_[static_cast<size_t>(id)] == sid) session_of_[static_cast<size_t>(id)] = 0;
  }
  by_digest_.erase(digest_of_[sid]);
  digest_of_.erase(sid);
  sessions_.erase(it);
}

absl::StatusOr<Session*> SessionTable::Find(std::string_view token, std::string_view peer_identity) {
  // The lookup is by SHA-256 of a 256-bit random token: timing reveals nothing an attacker
  // can steer towards a valid token.
  auto it = by_digest_.find(Digest(token));
  if (it == by_digest_.end()) {
    return absl::FailedPreconditionError("unknown or replaced session: join again");
  }
  Session& s = sessions_.at(it->second);
  if (s.peer_identity != peer_identity) {
    return absl::UnauthenticatedError("this session was opened by another client certificate");
  }
  return &s;
}

double SessionTable::LastSeen(int64_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= session_of_.size()) return -1e300;
  const uint64_t sid = session_of_[static_cast<size_t>(id)];
  if (sid == 0) return -1e300;
  return sessions_.at(sid).last_seen;
}

}  // namespace lfl
