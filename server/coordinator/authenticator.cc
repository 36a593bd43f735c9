#include "server/coordinator/authenticator.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace lfl {

Sha256Digest Sha256(std::string_view data) {
  Sha256Digest out{};
  unsigned int len = 0;
  // EVP_Digest cannot fail for SHA-256 on in-memory data short of allocation failure; a zero
  // digest would then simply never match a token.
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

namespace {

bool ParseHexDigest(std::string_view hex, Sha256Digest* out) {
  if (hex.size() != 64) return false;
  for (size_t i = 0; i < 32; ++i) {
    int v = 0;
    for (char ch : hex.substr(2 * i, 2)) {
      int d = 0;
      if (ch >= '0' && ch <= '9') {
        d = ch - '0';
      } else if (ch >= 'a' && ch <= 'f') {
        d = ch - 'a' + 10;
      } else if (ch >= 'A' && ch <= 'F') {
        d = ch - 'A' + 10;
      } else {
        return false;
      }
      v = v * 16 + d;
    }
    (*out)[i] = static_cast<uint8_t>(v);
  }
  return true;
}

}  // namespace

Authenticator Authenticator::AllowAll(int64_t num_clients) { return Authenticator(num_clients, true); }

Authenticator Authenticator::FromTokens(int64_t num_clients, const std::map<int64_t, std::string>& tokens) {
  Authenticator a(num_clients, false);
  for (const auto& [id, token] : tokens) a.entries_[id] = Entry{Sha256(token), ""};
  return a;
}

absl::StatusOr<Authenticator> Authenticator::Parse(const std::string& text, const std::string& source,
                                                   int64_t num_clients) {
  Authenticator a(num_clients, false);
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    const std::string where = absl::StrCat(source, ":", line_no, ": ");
    std::vector<absl::string_view> parts = absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    int64_t id = 0;
    if (parts.size() < 2 || parts.size() > 3 || !absl::SimpleAtoi(parts[0], &id)) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "expected '<client-id> sha256:<hex>|<token> [<host identity>]'"));
    }
    if (id < 0 || id >= num_clients) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "client id ", id, " is outside this run's 0-", num_clients - 1));
    }
    if (a.entries_.count(id)) return absl::InvalidArgumentError(absl::StrCat(where, "client id ", id, " repeated"));
    Entry e;
    if (absl::StartsWith(parts[1], "sha256:")) {
      if (!ParseHexDigest(std::string_view(parts[1].data() + 7, parts[1].size() - 7), &e.token_sha256)) {
        return absl::InvalidArgumentError(absl::StrCat(where, "sha256: must be followed by 64 hex digits"));
      }
    } else {
      e.token_sha256 = Sha256(std::string_view(parts[1].data(), parts[1].size()));
    }
    if (parts.size() == 3) e.host = std::string(parts[2]);
    a.entries_[id] = std::move(e);
  }
  if (a.entries_.empty()) return absl::InvalidArgumentError(absl::StrCat(source, ": no tokens"));
  return a;
}

absl::StatusOr<Authenticator> Authenticator::FromFile(const std::string& path, int64_t num_clients) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read tokens file ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path, num_clients);
}

absl::Status Authenticator::Check(const Credential& c) const {
  if (c.client_id < 0 || c.client_id >= num_clients_) {
    return absl::NotFoundError(
        absl::StrCat("unknown client id ", c.client_id, " (this run has clients 0-", num_clients_ - 1, ")"));
  }
  if (allow_all_) return absl::OkStatus();
  auto it = entries_.find(c.client_id);
  const Sha256Digest presented = Sha256(c.token);
  // Hash and compare even for an id without a token, so timing says nothing about which ids exist.
  static const Sha256Digest kNone{};
  const Sha256Digest& expected = it == entries_.end() ? kNone : it->second.token_sha256;
  const bool match = CRYPTO_memcmp(presented.data(), expected.data(), presented.size()) == 0;
  if (it == entries_.end() || !match) {
    return absl::UnauthenticatedError(absl::StrCat("bad or missing token for client ", c.client_id));
  }
  if (enforce_host_binding_ && !it->second.host.empty() && c.peer_identity != it->second.host) {
    return absl::PermissionDeniedError(absl::StrCat("client ", c.client_id, " is bound to host '", it->second.host,
                                                    "'; this peer's certificate names '", c.peer_identity, "'"));
  }
  return absl::OkStatus();
}

int64_t Authenticator::host_bound_ids() const {
  int64_t n = 0;
  for (const auto& [id, e] : entries_) n += e.host.empty() ? 0 : 1;
  return n;
}

}  // namespace lfl
