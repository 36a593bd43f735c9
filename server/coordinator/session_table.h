#ifndef LOTTERYFL_SERVER_SESSION_TABLE_H_
#define LOTTERYFL_SERVER_SESSION_TABLE_H_

// SessionTable: a client host authenticates its clients once, at Join, and then polls and
// heartbeats with one session credential bound to that set of ids (and, under mutual TLS, to
// the certificate identity that opened it). A poll then costs what the round's tasks cost,
// not one token check per hosted client, and its message no longer grows with the host's
// client count (gRPC's 4 MiB default is reached near 55,000 credentials).
//
// Tokens are 32 random bytes (OpenSSL RAND_bytes), handed out once and kept only as their
// SHA-256. A client belongs to at most one session: a host that joins again (after its own
// restart, or the server's) moves the clients it authenticated to its new session; an older
// session keeps the clients that join did not name, and closes when it has none left. Under
// mutual TLS a session answers only the certificate that opened it. Sessions live in memory;
// after a server restart a poll with an old session is told to join again (FailedPrecondition).
//
// Not thread-safe: RoundCoordinator calls it under its mutex.

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/statusor.h"

namespace lfl {

struct Session {
  uint64_t id = 0;
  std::vector<int64_t> clients;  // sorted, unique
  std::string peer_identity;     // the mutual-TLS common name that opened it (empty without mTLS)
  double last_seen = -1e300;
};

class SessionTable {
 public:
  // num_clients: ids are 0 .. num_clients-1.
  explicit SessionTable(int64_t num_clients = 0);

  // Opens a session for `clients` (already authenticated by the caller) and returns its token.
  // Those clients leave the sessions they were in (a session left without clients closes). InvalidArgument for an empty set or an id
  // out of range; Internal when no random bytes can be had.
  absl::StatusOr<std::string> Open(std::vector<int64_t> clients, std::string peer_identity, double now);
  // The open session `token` names, when presented by `peer_identity`. FailedPrecondition for a
  // token this table never issued (or closed): the host should join again; Unauthenticated
  // when another certificate presents it.
  absl::StatusOr<Session*> Find(std::string_view token, std::string_view peer_identity);
  // When client `id`'s session was last heard from (-1e300: it has none).
  double LastSeen(int64_t id) const;
  size_t size() const { return sessions_.size(); }

 private:
  void Close(uint64_t session_id);
  // Takes client `id` out of session `session_id` (closing it when it has no client left).
  void Release(uint64_t session_id, int64_t id);

  std::unordered_map<std::string, uint64_t> by_digest_;  // SHA-256 of the token → session id
  std::unordered_map<uint64_t, Session> sessions_;
  std::unordered_map<uint64_t, std::string> digest_of_;
  std::vector<uint64_t> session_of_;  // per client id; 0 = none
  uint64_t next_id_ = 1;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_SESSION_TABLE_H_
