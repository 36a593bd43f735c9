// Training throughput of MnistCnn on the 60,000 Fashion-MNIST training images:
// one epoch per (batch size, thread count), plus one LotteryFL client's local
// training (60 epochs of 40 images). Prints a table of images per second
// (wall time) and the CPU seconds used.
//
//   bench_models_throughput [data_dir]   (default /usr/share/datasets/fashion-mnist)
#include <chrono>
#include <cstdio>
#include <ctime>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "models/data.h"
#include "models/net.h"
#include "models/trainer.h"
#include "partitioning/dataset.h"

namespace lfl {
namespace {

struct Run {
  const char* label;
  int64_t batch_size;
  int threads;
  int64_t epochs;
  int64_t images;  // per epoch
};

struct Timing {
  double wall_seconds = -1;  // negative after an error (printed)
  double cpu_seconds = 0;    // process CPU time, all threads: on a shared
                             // machine it shows the work, wall time the wait
};

// Trains a fresh net once and times it.
Timing TimeTraining(const TensorData& train, const Run& run) {
  absl::StatusOr<Net> net = MakeNet(ModelKind::kMnistCnn, NetShape{}, 1);
  if (!net.ok()) {
    std::fprintf(stderr, "%s\n", net.status().ToString().c_str());
    return {};
  }
  std::vector<int64_t> indices(run.images);
  std::iota(indices.begin(), indices.end(), 0);
  PlainSource source(**net, {});
  TrainOptions options;
  options.epochs = run.epochs;
  options.batch_size = run.batch_size;
  SetMathThreads(run.threads);
  const std::clock_t cpu_start = std::clock();
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<TrainStats> stats = Trainer::Train(**net, source, train, indices, options);
  Timing timing;
  timing.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  timing.cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
  if (!stats.ok()) {
    std::fprintf(stderr, "%s\n", stats.status().ToString().c_str());
    return {};
  }
  return timing;
}

int Main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
  absl::StatusOr<Dataset> dataset = LoadDataset(DatasetKind::kFashionMnist, dir);
  if (!dataset.ok()) {
    std::fprintf(stderr, "%s\n", dataset.status().ToString().c_str());
    return 1;
  }
  const TensorData train = ToTensorData(dataset->train, *dataset,
                                        ComputeNormalization(dataset->train, dataset->channels));
  const int64_t n = dataset->train.size();
  const Run runs[] = {
      {"epoch", 32, 1, 1, n}, {"epoch", 64, 1, 1, n},          {"epoch", 32, 2, 1, n},
      {"epoch", 64, 2, 1, n}, {"client 60x40", 32, 1, 60, 40},
  };
  std::printf("MnistCnn training, Fashion-MNIST, %u hardware threads\n",
              std::thread::hardware_concurrency());
  std::printf("%-13s %6s %8s %8s %10s %10s %10s\n", "run", "batch", "threads", "images", "wall s",
              "cpu s", "images/s");
  std::fflush(stdout);
  for (const Run& run : runs) {
    const Timing timing = TimeTraining(train, run);
    if (timing.wall_seconds < 0) return 1;
    const int64_t images = run.epochs * run.images;
    std::printf("%-13s %6lld %8d %8lld %10.3f %10.3f %10.0f\n", run.label,
                static_cast<long long>(run.batch_size), run.threads, static_cast<long long>(images),
                timing.wall_seconds, timing.cpu_seconds, images / timing.wall_seconds);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace
}  // namespace lfl

int main(int argc, char** argv) { return lfl::Main(argc, argv); }
