// lotteryfl-client's command line (client/client_cli.h): flags reach ClientOptions, and a bad
// one is refused before anything connects, with the flag named.
#include "client/client_cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace lfl {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ClientLaunch> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "lotteryfl-client");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseClientCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(ClientCliTest, FlagsReachTheOptions) {
  absl::StatusOr<ClientLaunch> launch =
      Parse({"--insecure", "--client-ids", "0-2,5", "--parallel", "2", "--server", "10.0.0.1:1", "--rounds", "4"});
  ASSERT_TRUE(launch.ok()) << launch.status();
  EXPECT_FALSE(launch->exit_code.has_value());
  EXPECT_FALSE(launch->probe);
  EXPECT_EQ(launch->options.client_ids, (std::vector<int64_t>{0, 1, 2, 5}));
  EXPECT_EQ(launch->client_ids_text, "0-2,5");
  EXPECT_EQ(launch->options.parallel, 2);
  EXPECT_EQ(launch->options.server, "10.0.0.1:1");
  EXPECT_TRUE(launch->options.load_data != nullptr);
  // --rounds is the server's: ignored here, and said so.
  ASSERT_EQ(launch->warnings.size(), 2u);
  EXPECT_THAT(launch->warnings[0], HasSubstr("--rounds is ignored"));
  EXPECT_THAT(launch->warnings[1], HasSubstr("TLS is OFF"));
}

TEST(ClientCliTest, ProbeChecksNothingElse) {
  absl::StatusOr<ClientLaunch> launch = Parse({"--probe", "127.0.0.1:9", "--parallel", "0"});
  ASSERT_TRUE(launch.ok()) << launch.status();
  EXPECT_TRUE(launch->probe);
  EXPECT_EQ(launch->options.server, "127.0.0.1:9");
}

TEST(ClientCliTest, BadFlagsNameTheFlag) {
  const std::string tokens = ::testing::TempDir() + "/client_cli_tokens.txt";
  std::remove(tokens.c_str());
  const struct {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{"--insecure", "--client-ids", "5-x"}, "--client-ids"},
      {{"--insecure", "--parallel", "0"}, "--parallel must be >= 1"},
      {{"--insecure", "--bench-attack", "scale:x", "--bench-attack-clients", "1"}, "--bench-attack"},
      {{"--insecure", "--tokens", tokens}, tokens.c_str()},
      {{}, "--tls-ca"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<ClientLaunch> launch = Parse(c.args);
    ASSERT_FALSE(launch.ok()) << c.message;
    EXPECT_THAT(std::string(launch.status().message()), HasSubstr(c.message));
  }
  ::testing::internal::CaptureStderr();
  absl::StatusOr<ClientLaunch> launch = Parse({"--parallel", "two"});
  const std::string err = ::testing::internal::GetCapturedStderr();
  ASSERT_TRUE(launch.ok());
  EXPECT_EQ(launch->exit_code.value_or(-1), 2);
  EXPECT_THAT(err, HasSubstr("--parallel"));
}

}  // namespace
}  // namespace lfl
