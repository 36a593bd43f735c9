// lotteryfl-server: coordinates a federated run over gRPC.
//   lotteryfl-server --config configs/lotteryfl-fmnist.toml --listen 0.0.0.0:50051 --out runs/a
// Exit codes: 0 the run finished or was stopped (checkpointed), 2 bad flags, 1 anything else.

#include <spdlog/spdlog.h>

#include "server/cli/server_cli.h"

int main(int argc, char** argv) {
  absl::StatusOr<lfl::ServerLaunch> launch = lfl::ParseServerCommandLine(argc, argv);
  if (!launch.ok()) {
    spdlog::error("{}", std::string(launch.status().message()));
    return 2;
  }
  if (launch->exit_code) return *launch->exit_code;
  absl::StatusOr<std::unique_ptr<lfl::FederationServer>> server = lfl::LaunchServer(*launch);
  if (!server.ok()) {
    spdlog::error("{}", std::string(server.status().message()));
    return 1;
  }
  const std::string& out = launch->options.config.out;
  absl::Status s = (*server)->Wait();
  if (s.ok()) {
    spdlog::info("run finished: {}/summary.json", out);
    return 0;
  }
  if (absl::IsCancelled(s)) {
    spdlog::info("stopped; checkpoint in {}/checkpoint.bin (restart with --resume)", out);
    return 0;
  }
  spdlog::error("{}", std::string(s.message()));
  return 1;
}
