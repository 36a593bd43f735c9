// lotteryfl-client: hosts a range of virtual clients and trains their tickets.
//   lotteryfl-client --server 10.0.0.1:50051 --client-ids 0-49 --parallel 2
//   lotteryfl-client --server 10.0.0.1:50051 --client-ids 3 --local-data /data/mine   (client-data local)
// Exit codes: 0 the run finished (or --probe found the server SERVING), 2 bad flags, 1 anything else.

#include <spdlog/spdlog.h>

#include "client/client_cli.h"

int main(int argc, char** argv) {
  absl::StatusOr<lfl::ClientLaunch> launch = lfl::ParseClientCommandLine(argc, argv);
  if (!launch.ok()) {
    spdlog::error("{}", std::string(launch.status().message()));
    return 2;
  }
  if (launch->exit_code) return *launch->exit_code;
  for (const std::string& warning : launch->warnings) spdlog::warn("{}", warning);
  if (launch->probe) {
    absl::Status s = lfl::ProbeServer(launch->options, 5);
    if (!s.ok()) spdlog::error("probe {}: {}", launch->options.server, std::string(s.message()));
    return s.ok() ? 0 : 1;
  }
  if (absl::Status s = lfl::RunClientHost(*launch); !s.ok()) {
    spdlog::error("{}", std::string(s.message()));
    return 1;
  }
  return 0;
}
