// Membership: who may speak for which client, who has joined, who is live, and the hosts'
// sessions. The coordinator's first collaborator: every call from the network starts here.
//
// A client is live when it joined, has not left, and was heard from (a call with its own
// credential, or its host's session) within liveness_seconds. Only live clients are sampled.
// Every refused credential is counted (auth_failures, and RefusalCounters by cause).
//
// Not thread-safe: RoundCoordinator calls it under its mutex.
#ifndef LOTTERYFL_SERVER_MEMBERSHIP_H_
#define LOTTERYFL_SERVER_MEMBERSHIP_H_

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/coordinator/authenticator.h"
#include "server/coordinator/refusals.h"
#include "server/coordinator/session_table.h"

namespace lfl {

// A host's join: the run config it gets (TOML) and its session's token.
struct HostJoin {
  std::string config_toml;
  std::string session;
};

class Membership {
 public:
  // The authenticator a coordinator's options name: `authenticator`, else one from `tokens`
  // (tests), else one that accepts any id of the run (--insecure, the in-process simulator).
  static std::shared_ptr<const Authenticator> AuthenticatorFor(std::shared_ptr<const Authenticator> authenticator,
                                                               const std::map<int64_t, std::string>& tokens,
                                                               int64_t num_clients);

  Membership(int64_t num_clients, std::shared_ptr<const Authenticator> authenticator,
             std::shared_ptr<RefusalCounters> refusals, double liveness_seconds);

  // OK when the credential may speak for its client id; counts a refusal otherwise.
  absl::Status Authenticate(const Credential& c);
  // Authenticates every credential (all or none) and, when `same_identity`, that they share one
  // certificate identity. Returns their ids, in the given order.
  absl::StatusOr<std::vector<int64_t>> AuthenticateAll(const std::vector<Credential>& clients,
                                                       bool same_identity = false);
  // Authenticate, then: join one client; open a session for a host's clients (one certificate
  // identity, all or none) and join them, returning the session's token; mark joined clients
  // live (FailedPrecondition for one that never joined); leave.
  absl::Status Join(const Credential& c, double now);
  absl::StatusOr<std::string> JoinHost(const std::vector<Credential>& clients, double now);
  // Heartbeat returns the ids, sorted.
  absl::StatusOr<std::vector<int64_t>> Heartbeat(const std::vector<Credential>& clients, double now);
  absl::Status Leave(const std::vector<Credential>& clients);
  void MarkLive(int64_t id, double now);
  // The session `token` names, marked heard from now (a refusal is counted if there is none).
  absl::StatusOr<const Session*> TouchSession(std::string_view token, std::string_view peer_identity, double now);

  bool joined(int64_t id) const { return clients_[static_cast<size_t>(id)].joined; }
  bool left(int64_t id) const { return clients_[static_cast<size_t>(id)].left; }
  bool IsLive(int64_t id, double now) const;
  // Live clients, sorted.
  std::vector<int64_t> LiveIds(double now) const;
  // Whether the first round (after a start or a resume) may open: every client that has not
  // left is live, or `waited` (the join timeout passed) and at least min_clients are.
  bool ReadyToStart(double now, bool waited, int64_t min_clients) const;
  int64_t joined_count() const { return joined_count_; }
  uint64_t auth_failures() const { return auth_failures_; }

  // Upload slots: at most one upload in flight per client. false when it already has one.
  bool BeginUpload(int64_t id) { return uploading_.insert(id).second; }
  void EndUpload(int64_t id) { uploading_.erase(id); }

 private:
  void Join(int64_t id, double now);
  struct Client {
    bool joined = false;
    bool left = false;
    double last_seen = -1e300;
  };
  std::shared_ptr<const Authenticator> authenticator_;
  std::shared_ptr<RefusalCounters> refusals_;
  double liveness_seconds_;
  std::vector<Client> clients_;
  SessionTable sessions_;
  std::set<int64_t> uploading_;
  int64_t joined_count_ = 0;  // joined and not left
  uint64_t auth_failures_ = 0;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_MEMBERSHIP_H_
