// lotteryfl-server's command line (server/cli/server_cli.h): flags reach ServerOptions, and a bad
// one is refused before any data is loaded, with the flag named.
#include "server/cli/server_cli.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace lfl {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<ServerLaunch> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "lotteryfl-server");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return ParseServerCommandLine(static_cast<int>(argv.size()), argv.data());
}

TEST(ServerCliTest, FlagsReachTheOptions) {
  absl::StatusOr<ServerLaunch> launch =
      Parse({"--insecure", "--listen", "127.0.0.1:0", "--rounds", "3", "--partition", "iid", "--max-ping-strikes",
             "5", "--max-concurrent-uploads", "7"});
  ASSERT_TRUE(launch.ok()) << launch.status();
  EXPECT_FALSE(launch->exit_code.has_value());
  EXPECT_EQ(launch->options.listen, "127.0.0.1:0");
  EXPECT_EQ(launch->options.config.rounds, 3);
  EXPECT_EQ(launch->options.config.partition, PartitionScheme::kIid);
  EXPECT_EQ(launch->options.connection_limits.max_ping_strikes, 5);
  EXPECT_EQ(launch->options.service_limits.max_concurrent_uploads, 7);
  EXPECT_TRUE(launch->options.insecure);
  ASSERT_EQ(launch->warnings.size(), 1u);
  EXPECT_THAT(launch->warnings[0], HasSubstr("TLS is OFF"));
  EXPECT_THAT(launch->warnings[0], HasSubstr("no tokens"));
}

TEST(ServerCliTest, HelpExitsZeroAndUnparsableFlagsTwo) {
  ::testing::internal::CaptureStdout();
  absl::StatusOr<ServerLaunch> help = Parse({"--help"});
  const std::string text = ::testing::internal::GetCapturedStdout();
  ASSERT_TRUE(help.ok());
  EXPECT_EQ(help->exit_code.value_or(-1), 0);
  for (const char* flag : {"--listen", "--tokens", "--insecure", "--metrics-listen", "--handshake-timeout-ms",
                           "--fraction", "--partition", "--dataset"}) {
    EXPECT_THAT(text, HasSubstr(flag));
  }
  const std::vector<std::vector<std::string>> unparsable = {
      {"--no-such-flag"}, {"--algorithm", "fedsgd"}, {"--rounds", "ten"}, {"--dataset", "imagenet"}};
  for (const std::vector<std::string>& bad : unparsable) {
    ::testing::internal::CaptureStderr();
    absl::StatusOr<ServerLaunch> launch = Parse(bad);
    const std::string err = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(launch.ok()) << bad[0];
    EXPECT_EQ(launch->exit_code.value_or(-1), 2) << bad[0];
    EXPECT_THAT(err, HasSubstr(bad[0]));
  }
}

// Each check of CheckServerOptions, made before any data is loaded; the message names the flag.
TEST(ServerCliTest, BadCombinationsNameTheFlag) {
  const struct {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{"--insecure", "--fraction", "2"}, "--fraction"},
      {{"--insecure", "--algorithm", "local"}, "lotteryfl-sim"},
      {{"--insecure", "--tls-cert", "server.pem"}, "--tls-cert and --tls-key go together"},
      {{}, "--insecure"},
      {{"--tokens", "tokens.txt"}, "TLS (--tls-cert and --tls-key)"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<ServerLaunch> launch = Parse(c.args);
    ASSERT_FALSE(launch.ok()) << c.message;
    EXPECT_THAT(std::string(launch.status().message()), HasSubstr(c.message));
  }
  ServerOptions insecure;
  insecure.insecure = true;
  EXPECT_TRUE(CheckServerOptions(insecure).ok());
  // The in-process server (no listen address) needs neither TLS nor tokens.
  ServerOptions in_process;
  in_process.listen.clear();
  EXPECT_TRUE(CheckServerOptions(in_process).ok());
}

TEST(ServerCliTest, MetricsOnANetworkWithoutATokenIsWarned) {
  ServerOptions options;
  options.insecure = true;
  options.tls_cert = options.tls_key = "x.pem";
  options.tokens_file = "tokens.txt";
  EXPECT_TRUE(ServerWarnings(options).empty());
  for (const char* loopback : {"9090", ":9090", "127.0.0.1:9090", "[::1]:9090", "localhost:9090"}) {
    options.metrics_listen = loopback;
    EXPECT_TRUE(ServerWarnings(options).empty()) << loopback;
  }
  options.metrics_listen = "0.0.0.0:9090";
  ASSERT_EQ(ServerWarnings(options).size(), 1u);
  EXPECT_THAT(ServerWarnings(options)[0], HasSubstr("--metrics-token-file"));
  options.metrics.token_file = "metrics-token";
  EXPECT_TRUE(ServerWarnings(options).empty());
}

}  // namespace
}  // namespace lfl
