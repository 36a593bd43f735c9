#ifndef LOTTERYFL_SERVER_SERVER_CLI_H_
#define LOTTERYFL_SERVER_SERVER_CLI_H_

// lotteryfl-server's command line and start, so that its main() only parses, starts, waits
// and maps the result to an exit code. The flags bind to ServerOptions; their checks are
// CheckServerOptions (server/federation_server.h), the same ones FederationServer::Start
// makes, here made before any data is loaded.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/federation_server.h"

namespace lfl {

struct ServerLaunch {
  // Set: exit now with this code, CLI11 having printed its text (0 after --help, 2 for a flag
  // that does not parse: unknown flag, a value of the wrong type, an unknown mode name).
  std::optional<int> exit_code;
  ServerOptions options;
  // What the operator should know about options that are allowed but risky (--insecure,
  // /metrics on a network address without a token); LaunchServer logs them.
  std::vector<std::string> warnings;
};

// Parses and checks lotteryfl-server's flags (the run configuration's, config/run_config.h, and
// the server's own). A command line that parses but cannot run is the error of
// CheckServerOptions, naming the flag (the caller prints it and exits 2).
absl::StatusOr<ServerLaunch> ParseServerCommandLine(int argc, char** argv);

// The warnings of ServerLaunch for `options` (empty when there is nothing to say).
std::vector<std::string> ServerWarnings(const ServerOptions& options);

// Logs the warnings, raises the open-files limit, loads the run's data (its partition gives the
// per-client counts the server checks), and starts the server with progress logged per round.
// Errors: loading the data, FederationServer::Start's.
absl::StatusOr<std::unique_ptr<FederationServer>> LaunchServer(const ServerLaunch& launch);

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_SERVER_CLI_H_
