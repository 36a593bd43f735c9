#include "server/coordinator/authenticator.h"

#include <gtest/gtest.h>

namespace lfl {
namespace {

std::string Hex(const Sha256Digest& d) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (uint8_t b : d) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

TEST(Sha256Test, KnownVector) {
  EXPECT_EQ(Hex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AuthenticatorTest, HashedAndPlainLinesAndHostBindings) {
  const std::string text = "# comment\n0 sha256:" + Hex(Sha256("secret-0")) + " lotteryfl-host-0\n" +
                           "1 sha256:" + Hex(Sha256("secret-1")) + " lotteryfl-host-1\n2 plain-two\n";
  absl::StatusOr<Authenticator> a = Authenticator::Parse(text, "tokens.txt", 4);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_TRUE(a->requires_tokens());
  EXPECT_EQ(a->host_bound_ids(), 2);
  EXPECT_TRUE(a->Check({0, "secret-0", ""}).ok());
  EXPECT_TRUE(a->Check({2, "plain-two", ""}).ok());
  EXPECT_TRUE(absl::IsUnauthenticated(a->Check({0, "secret-1", ""})));
  EXPECT_TRUE(absl::IsUnauthenticated(a->Check({0, "", ""})));
  EXPECT_TRUE(absl::IsUnauthenticated(a->Check({3, "anything", ""}))) << "an id without a token line";
  EXPECT_TRUE(absl::IsNotFound(a->Check({4, "secret-0", ""})));
  EXPECT_TRUE(absl::IsNotFound(a->Check({-1, "secret-0", ""})));
  // Host bindings apply once the server runs mutual TLS (the peer identity is then verified).
  EXPECT_TRUE(a->Check({0, "secret-0", "lotteryfl-host-1"}).ok());
  a->set_enforce_host_binding(true);
  EXPECT_TRUE(absl::IsPermissionDenied(a->Check({0, "secret-0", "lotteryfl-host-1"})));
  EXPECT_TRUE(absl::IsPermissionDenied(a->Check({0, "secret-0", ""})));
  EXPECT_TRUE(a->Check({0, "secret-0", "lotteryfl-host-0"}).ok());
  EXPECT_TRUE(a->Check({2, "plain-two", "lotteryfl-host-1"}).ok()) << "an unbound id accepts any host";
}

TEST(AuthenticatorTest, MalformedFilesNameTheLine) {
  struct Case {
    std::string text, needle;
  };
  for (const Case& c : std::vector<Case>{
           {"0 sha256:abc\n", ":1: sha256: must be followed by 64 hex digits"},
           {"0 a\n0 b\n", ":2: client id 0 repeated"},
           {"9 a\n", ":1: client id 9 is outside"},
           {"x a\n", ":1: expected"},
           {"0 a b c\n", ":1: expected"},
           {"# only comments\n", "no tokens"},
       }) {
    absl::StatusOr<Authenticator> a = Authenticator::Parse(c.text, "f", 4);
    ASSERT_FALSE(a.ok()) << c.text;
    EXPECT_NE(a.status().message().find(c.needle), std::string::npos) << a.status() << " for " << c.text;
  }
}

TEST(AuthenticatorTest, AllowAllChecksOnlyTheIdRange) {
  Authenticator a = Authenticator::AllowAll(3);
  EXPECT_FALSE(a.requires_tokens());
  EXPECT_TRUE(a.Check({2, "", ""}).ok());
  EXPECT_TRUE(absl::IsNotFound(a.Check({3, "", ""})));
}

}  // namespace
}  // namespace lfl
