#ifndef LOTTERYFL_SERVER_AUTHENTICATOR_H_
#define LOTTERYFL_SERVER_AUTHENTICATOR_H_

// Authenticator: who may speak for which client id.
//
// The server holds, per client id, the SHA-256 of that client's token (never the
// token itself) and, optionally, the identity of the client host allowed to
// speak for it: the common name of the certificate that host presents under
// mutual TLS. A credential is accepted when its id is known, the SHA-256 of its
// token equals the stored digest (compared in constant time, CRYPTO_memcmp), and,
// when the server runs mutual TLS and the id is bound to a host, the peer's
// certificate names that host.
//
// Tokens file (`lotteryfl-server --tokens FILE`), one client per line, '#' comments:
//   <client-id> sha256:<64 hex digits> [<host identity>]
//   <client-id> <plain token> [<host identity>]      (hashed when read)
// scripts/gen-tokens.sh N HOSTS DIR writes the hashed form with host identities.
//
// Thread-safe: immutable after construction.

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace lfl {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::string_view data);

// What a request presents: the client id it speaks for, its token, and (under mutual TLS)
// the common name of the peer's certificate (empty otherwise).
struct Credential {
  int64_t client_id = 0;
  std::string token;
  std::string peer_identity;
};

class Authenticator {
 public:
  struct Entry {
    Sha256Digest token_sha256{};
    std::string host;  // empty: any host with the token may speak for the id
  };

  // Every id in [0, num_clients) is accepted without a token (--insecure runs and the
  // in-process simulator).
  static Authenticator AllowAll(int64_t num_clients);
  // Plain tokens (tests, and callers that generated them in memory).
  static Authenticator FromTokens(int64_t num_clients, const std::map<int64_t, std::string>& tokens);
  // Parses a tokens file (format above). Every id must be in [0, num_clients); a duplicate id,
  // a malformed digest or an empty file is an error naming the line.
  static absl::StatusOr<Authenticator> FromFile(const std::string& path, int64_t num_clients);
  static absl::StatusOr<Authenticator> Parse(const std::string& text, const std::string& source,
                                            int64_t num_clients);

  // Host bindings are enforced only when this is set (the server runs mutual TLS, so the
  // peer identity is the verified certificate's).
  void set_enforce_host_binding(bool enforce) { enforce_host_binding_ = enforce; }

  // OK, or NotFound (unknown id), Unauthenticated (bad or missing token) or PermissionDenied
  // (the peer's certificate is not the host bound to the id).
  absl::Status Check(const Credential& credential) const;

  bool requires_tokens() const { return !allow_all_; }
  int64_t num_clients() const { return num_clients_; }
  // Number of ids bound to a host identity.
  int64_t host_bound_ids() const;

 private:
  Authenticator(int64_t num_clients, bool allow_all) : num_clients_(num_clients), allow_all_(allow_all) {}

  int64_t num_clients_ = 0;
  bool allow_all_ = false;
  bool enforce_host_binding_ = false;
  std::map<int64_t, Entry> entries_;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_AUTHENTICATOR_H_
