// embedded_run: a federated LotteryFL run inside this program's own process.
//
// The server (FederationServer) and the clients (a ClientHost carrying every
// virtual client) talk over the server's in-process gRPC channel, exactly as
// lotteryfl-sim does; the program watches the run through the round callback.
// The clients train a model of this program's own (SmallConvNet, not in
// lotteryfl's zoo), registered with lfl::RegisterModel and named in the run
// config, so the server and the clients build it from the same name.
//   embedded_run [--rounds N] [--clients K] [--out DIR]
// Exit codes: 0 when every round completed, 1 on an error, 77 when the
// Fashion-MNIST files (Debian's dataset-fashion-mnist) are missing.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "client/client_host.h"
#include "config/run_config.h"
#include "models/net.h"
#include "models/trainer.h"
#include "runtime/run_data.h"
#include "runtime/torch_evaluator.h"
#include "server/federation_server.h"

namespace {

// This program's own model: conv (8 channels, k3, stride 2) → batch norm → relu → linear. Its
// conv and linear weights are pruned and quantized; the biases and the batch norm are not.
struct SmallConvNetImpl : torch::nn::Module {
  explicit SmallConvNetImpl(const lfl::NetShape& shape)
      : conv(register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(shape.channels, 8, 3).stride(2)))),
        norm(register_module("norm", torch::nn::BatchNorm2d(8))),
        fc(register_module("fc", torch::nn::Linear(8 * ((shape.height - 3) / 2 + 1) * ((shape.width - 3) / 2 + 1),
                                                   shape.num_classes))) {}
  torch::Tensor forward(const torch::Tensor& x) { return fc(torch::relu(norm(conv(x))).flatten(1)); }
  torch::nn::Conv2d conv;
  torch::nn::BatchNorm2d norm;
  torch::nn::Linear fc;
};
TORCH_MODULE(SmallConvNet);

// A small run: LotteryFL on Fashion-MNIST, two labels per client, one local epoch.
lfl::RunConfig SmallRun(int argc, char** argv) {
  lfl::RunConfig config;
  config.algorithm = lfl::Algorithm::kLotteryFl;
  config.clients = 4;
  config.fraction = 0.5;
  config.rounds = 3;
  config.local_epochs = 1;
  config.samples_per_class = 20;
  config.test_per_client = 50;
  config.out = "embedded_run.out";
  config.model = "small-conv";  // registered in main()
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--rounds") == 0) config.rounds = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--clients") == 0) config.clients = std::atoll(argv[i + 1]);
    if (std::strcmp(argv[i], "--out") == 0) config.out = argv[i + 1];
  }
  return config;
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "embedded_run: %s\n", std::string(status.message()).c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::Status registered = lfl::RegisterModel(
      "small-conv", [](const lfl::NetShape& shape) { return lfl::WrapModule(SmallConvNet(shape)); });
  if (!registered.ok()) return Fail(registered);
  lfl::ServerOptions server_options;
  server_options.config = SmallRun(argc, argv);
  server_options.listen.clear();  // in-process only: no port is opened
  const lfl::RunConfig& config = server_options.config;
  if (absl::Status s = lfl::ValidateRunConfig(config); !s.ok()) return Fail(s);

  lfl::SetMathThreads(1);
  absl::StatusOr<std::shared_ptr<const lfl::RunData>> data = lfl::LoadRunData(config);
  if (absl::IsNotFound(data.status())) {
    std::fprintf(stderr, "embedded_run: skipped, no dataset: %s\n", std::string(data.status().message()).c_str());
    return 77;
  }
  if (!data.ok()) return Fail(data.status());
  std::printf("model %s:", config.model.c_str());
  for (const lfl::NamedTensor& t : (*data)->theta0.tensors) {
    std::printf(" %s%s", t.name.c_str(), t.prunable ? " (prunable)" : "");
  }
  std::printf("\n");

  auto server = lfl::FederationServer::Start(
      server_options, (*data)->theta0, std::make_unique<lfl::TorchEvaluator>(*data),
      [](const lfl::RoundEvent& e) {
        if (e.retried) return;
        std::printf("round %llu: %lld/%lld updates, personalized accuracy %.3f, global-masked %.3f, density %.3f\n",
                    static_cast<unsigned long long>(e.metrics.round), static_cast<long long>(e.metrics.completed),
                    static_cast<long long>(e.metrics.sampled), e.metrics.personalized_accuracy,
                    e.metrics.global_masked_accuracy, e.metrics.mean_density);
        std::fflush(stdout);
      });
  if (!server.ok()) return Fail(server.status());

  lfl::ClientOptions client_options;
  client_options.client_ids.clear();
  for (int64_t id = 0; id < config.clients; ++id) client_options.client_ids.push_back(id);
  client_options.parallel = 2;
  client_options.poll_wait_ms = 200;
  lfl::ClientHost host(client_options, (*server)->InProcessChannel(), *data);
  absl::Status host_status;
  std::thread clients([&] { host_status = host.Run(); });
  const absl::Status run_status = (*server)->Wait();
  host.Stop();
  clients.join();
  if (!run_status.ok()) return Fail(run_status);
  if (!host_status.ok()) return Fail(host_status);

  const lfl::RunTotals totals = (*server)->coordinator().totals();
  std::printf("finished: %llu rounds, uplink %llu bytes (dense fp32 would be %llu), model in %s/model.bin\n",
              static_cast<unsigned long long>(totals.rounds_completed),
              static_cast<unsigned long long>(totals.uplink_bytes),
              static_cast<unsigned long long>(totals.dense_fp32_bytes), config.out.c_str());
  return totals.rounds_completed == static_cast<uint64_t>(config.rounds) ? 0 : 1;
}
