#ifndef LOTTERYFL_CLIENT_CLIENT_CLI_H_
#define LOTTERYFL_CLIENT_CLIENT_CLI_H_

// lotteryfl-client's command line and run, so that its main() only parses, runs the host (or
// the probe) and maps the result to an exit code. Every check of the flags is
// made here, once, before anything connects.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "client/client_host.h"

namespace lfl {

struct ClientLaunch {
  // Set: exit now with this code, CLI11 having printed its text (0 after --help, 2 for a flag
  // that does not parse).
  std::optional<int> exit_code;
  // Set (--probe ADDRESS): only check the server's gRPC health there (options.server is it);
  // the other flags are not checked.
  bool probe = false;
  // For a run: client_ids parsed from --client-ids, tokens read from --tokens, the bench attack
  // parsed, load_data set for --local-data.
  ClientOptions options;
  std::string client_ids_text;  // --client-ids as given, for the log
  std::string report_file;      // --report; empty: none
  // What the operator should know (ignored run-configuration flags, --insecure, a bench attack).
  std::vector<std::string> warnings;
};

// Parses and checks lotteryfl-client's flags. InvalidArgument / FailedPrecondition naming the
// flag for a command line that parses but cannot run (--parallel 0, --client-ids 5-x, a bad
// --bench-attack, an unreadable --tokens file, no --tls-ca without --insecure); the caller
// prints it and exits 2.
absl::StatusOr<ClientLaunch> ParseClientCommandLine(int argc, char** argv);

// Runs a ClientHost for `launch` (not a probe) until the run finishes or SIGINT / SIGTERM stops
// it, logging its start and end, then writes --report. Returns the run's error, else the
// report's (prefixed "--report: "); a report that fails after a failed run is logged.
absl::Status RunClientHost(const ClientLaunch& launch);

// Writes --report's JSON: the host's name, the tasks it trained and the updates the server
// acknowledged per round. Errors name nothing but the write's cause.
absl::Status WriteClientReport(const std::string& path, const std::string& host_name, const ClientHost& host);

}  // namespace lfl

#endif  // LOTTERYFL_CLIENT_CLIENT_CLI_H_
