// bench_bsq_centralized: the BSQ sanity check of DESIGN §1, centralized.
//
// MnistCnn on Fashion-MNIST (all 60k training images, accuracy on the 10k
// test images). As in the BSQ paper, quantization starts from a pretrained
// model: a shared fp32 warm-up of --pretrain-epochs, then each method trains
// --epochs more from that same checkpoint:
//   fp32        PlainSource
//   bsq         BsqSource (mixed precision, group lasso on bit planes)
//   uniform-8   UniformQuantSource, 8 bits (quantization-aware training)
//   uniform-2   UniformQuantSource, 2 bits
// Prints accuracy, mean bits (weighted by parameter count) and bits per
// layer. With --check the exit status says whether BSQ met the acceptance
// bar: <= 3 mean bits, within 1.5 points of fp32, above uniform 2-bit.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/data.h"
#include "models/net.h"
#include "models/trainer.h"
#include "partitioning/dataset.h"
#include "quant/bsq/bsq.h"

namespace lfl {
namespace {

struct BenchOptions {
  std::string data_dir;         // empty: /usr/share/datasets/fashion-mnist
  int64_t pretrain_epochs = 2;  // shared fp32 warm-up
  double pretrain_lr = 0.05;    // a faster warm-up leaves less for the methods to catch up
  int64_t epochs = 1;           // per method, from the warm-up checkpoint
  int64_t train_limit = 0;      // use only the first N training images (0 = all)
  TrainOptions train;           // lr, momentum, batch for fp32 and uniform
  double bsq_lr = 0.1;          // SGD lr on the bit planes: a bit moves W by only
                                // s·2^b/(2^n−1), so BSQ needs a larger lr than fp32
  BsqOptions bsq;
  int threads = 2;
  uint64_t seed = 1;
  std::string warmup_cache;  // reuse/store the warm-up weights here ("" = no cache)
  std::vector<std::string> methods = {"fp32", "bsq", "uniform-8", "uniform-2"};
  int64_t finetune_images = 16000;  // BSQ: last 500 steps of the epoch at the learned bits
  bool check = false;
};

struct Row {
  std::string method;
  double accuracy = 0;
  double mean_bits = 0;
  std::vector<int> bits;
  double seconds = 0;
};

struct Setup {
  Dataset dataset;
  TensorData train, test;
  std::vector<int64_t> train_indices;
};

absl::StatusOr<Setup> LoadData(const BenchOptions& options) {
  absl::StatusOr<Dataset> dataset = LoadDataset(DatasetKind::kFashionMnist, options.data_dir);
  if (!dataset.ok()) return dataset.status();
  Setup setup{*std::move(dataset), {}, {}, {}};
  const Normalization norm = ComputeNormalization(setup.dataset.train, setup.dataset.channels);
  setup.train = ToTensorData(setup.dataset.train, setup.dataset, norm);
  setup.test = ToTensorData(setup.dataset.test, setup.dataset, norm);
  int64_t n = setup.dataset.train.size();
  if (options.train_limit > 0) n = std::min(n, options.train_limit);
  setup.train_indices.resize(n);
  std::iota(setup.train_indices.begin(), setup.train_indices.end(), 0);
  return setup;
}

NetShape ShapeOf(const Dataset& d) {
  return NetShape{d.channels, d.height, d.width, d.num_classes};
}

absl::StatusOr<Net> NetFrom(const Setup& setup, const TensorSet& weights, uint64_t seed) {
  absl::StatusOr<Net> net = MakeNet(ModelKind::kMnistCnn, ShapeOf(setup.dataset), seed);
  if (!net.ok()) return net.status();
  if (absl::Status s = LoadTensorSet(weights, net->get()); !s.ok()) return s;
  return net;
}

template <typename Source>
void DescribeQuantized(const ParameterSource& source, Row& row) {
  const auto& quantized = static_cast<const Source&>(source);
  row.bits = quantized.Bits();
  row.mean_bits = MeanBits(quantized.Export());
}

// One method: a fresh net from `start`, `make_source` builds its parameter
// source, `describe` reads bits off the source after training.
struct Method {
  std::string name;
  double lr;
  std::function<std::unique_ptr<ParameterSource>(NetImpl&)> make_source;
  std::function<void(const ParameterSource&, Row&)> describe;
  // Like federation (runtime/local_update.cc), the last `finetune_images` of the epoch are
  // quantization-aware fine-tuning at the per-layer bits BSQ chose, in weight space at --lr. Unlike
  // federation it continues from the search's weights (there is no separate fp32 ticket here: the
  // one-epoch budget is the same for every method).
  int64_t finetune_images = 0;
};

absl::StatusOr<Row> Run(const Method& method, const Setup& setup, const TensorSet& start,
                        const BenchOptions& options) {
  absl::StatusOr<Net> net = NetFrom(setup, start, options.seed);
  if (!net.ok()) return net.status();
  std::unique_ptr<ParameterSource> source = method.make_source(**net);
  TrainOptions train = options.train;
  train.epochs = options.epochs;
  train.lr = method.lr;
  std::vector<int64_t> search = setup.train_indices, finetune;
  const int64_t n = static_cast<int64_t>(search.size());
  if (method.finetune_images > 0 && options.epochs == 1 && method.finetune_images < n) {
    finetune.assign(search.end() - method.finetune_images, search.end());
    search.resize(static_cast<size_t>(n - method.finetune_images));
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (auto stats = Trainer::Train(**net, *source, setup.train, search, train); !stats.ok()) {
    return stats.status();
  }
  Row row{method.name};
  if (!finetune.empty()) {
    Row searched;
    method.describe(*source, searched);
    UniformQuantSource fixed(**net, {}, searched.bits);
    train.lr = options.train.lr;
    if (auto stats = Trainer::Train(**net, fixed, setup.train, finetune, train); !stats.ok()) {
      return stats.status();
    }
    source = std::make_unique<UniformQuantSource>(std::move(fixed));
  }
  row.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  absl::StatusOr<double> accuracy = Trainer::Evaluate(**net, setup.test, {});
  if (!accuracy.ok()) return accuracy.status();
  row.accuracy = *accuracy;
  if (finetune.empty()) {
    method.describe(*source, row);
  } else {
    DescribeQuantized<UniformQuantSource>(*source, row);
  }
  return row;
}

// Forwards to a BsqSource and prints its bits per layer after every
// re-quantization, to watch the precision settle.
class TracingBsqSource : public ParameterSource {
 public:
  TracingBsqSource(NetImpl& net, const BsqOptions& options) : inner_(net, {}, options) {}
  void Begin(int64_t total_steps) override { inner_.Begin(total_steps); }
  std::vector<torch::Tensor> Trainable() override { return inner_.Trainable(); }
  std::vector<torch::Tensor> EffectiveWeights() override { return inner_.EffectiveWeights(); }
  torch::Tensor Penalty() override { return inner_.Penalty(); }
  bool AfterStep(int64_t step) override {
    const bool changed = inner_.AfterStep(step);
    if (changed) {
      std::string bits;
      for (int b : inner_.Bits()) bits += " " + std::to_string(b);
      std::printf("  step %lld bits%s\n", static_cast<long long>(step + 1), bits.c_str());
      std::fflush(stdout);
    }
    return changed;
  }
  void AfterBackward() override { inner_.AfterBackward(); }
  void Finish() override { inner_.Finish(); }
  const BsqSource& inner() const { return inner_; }

 private:
  BsqSource inner_;
};

std::vector<Method> Methods(const BenchOptions& options) {
  auto uniform = [&options](int bits) {
    return Method{"uniform-" + std::to_string(bits), options.train.lr,
                  [bits](NetImpl& net) {
                    return std::make_unique<UniformQuantSource>(net, std::vector<torch::Tensor>{},
                                                                bits);
                  },
                  DescribeQuantized<UniformQuantSource>};
  };
  return {
      Method{"fp32", options.train.lr,
             [](NetImpl& net) {
               return std::make_unique<PlainSource>(net, std::vector<torch::Tensor>{});
             },
             [](const ParameterSource&, Row& row) {
               row.bits = std::vector<int>(4, 32);
               row.mean_bits = 32;
             }},
      Method{
          "bsq", options.bsq_lr,
          [&options](NetImpl& net) { return std::make_unique<TracingBsqSource>(net, options.bsq); },
          [&options](const ParameterSource& source, Row& row) {
            const BsqSource& bsq = static_cast<const TracingBsqSource&>(source).inner();
            row.bits = bsq.Bits();
            row.mean_bits = MeanBits(bsq.Export());
          },
          options.finetune_images},
      uniform(8),
      uniform(2),
  };
}

void PrintRow(const Row& row) {
  std::string bits;
  for (int b : row.bits) bits += (bits.empty() ? "" : "/") + std::to_string(b);
  std::printf("%-10s %8.2f%% %10.2f   %-12s %7.1fs\n", row.method.c_str(), 100 * row.accuracy,
              row.mean_bits, bits.c_str(), row.seconds);
  std::fflush(stdout);
}

// The acceptance bar of the BSQ sanity check; prints why it failed.
bool MeetsBar(const std::vector<Row>& rows) {
  const Row &fp32 = rows[0], &bsq = rows[1], &u2 = rows[3];
  bool ok = true;
  if (bsq.mean_bits > 3.0) ok = false, std::printf("FAIL: BSQ mean bits %.2f > 3\n", bsq.mean_bits);
  if (100 * (fp32.accuracy - bsq.accuracy) > 1.5) {
    ok = false, std::printf("FAIL: BSQ more than 1.5 points below fp32\n");
  }
  if (bsq.accuracy <= u2.accuracy) ok = false, std::printf("FAIL: BSQ not above uniform 2-bit\n");
  std::printf("%s\n", ok ? "PASS: BSQ <= 3 mean bits, within 1.5 points of fp32, above uniform-2"
                         : "acceptance bar not met");
  return ok;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in) return absl::NotFoundError("cannot read " + path);
  return bytes.str();
}

// The shared fp32 warm-up: read from --warmup-cache when that file exists,
// otherwise trained (and stored there when a path is given).
absl::StatusOr<TensorSet> WarmUp(const Setup& setup, const BenchOptions& options) {
  absl::StatusOr<Net> net = MakeNet(ModelKind::kMnistCnn, ShapeOf(setup.dataset), options.seed);
  if (!net.ok()) return net.status();
  if (!options.warmup_cache.empty() && std::filesystem::exists(options.warmup_cache)) {
    absl::StatusOr<std::string> bytes = ReadFile(options.warmup_cache);
    if (!bytes.ok()) return bytes.status();
    absl::StatusOr<TensorSet> cached = DeserializeTensorSet(*bytes);
    if (!cached.ok()) return cached.status();
    if (absl::Status s = LoadTensorSet(*cached, net->get()); !s.ok()) return s;
  } else {
    PlainSource source(**net, {});
    TrainOptions train = options.train;
    train.epochs = options.pretrain_epochs;
    train.lr = options.pretrain_lr;
    if (auto s = Trainer::Train(**net, source, setup.train, setup.train_indices, train); !s.ok()) {
      return s.status();
    }
    if (!options.warmup_cache.empty()) {
      std::ofstream(options.warmup_cache, std::ios::binary)
          << SerializeTensorSet(ToTensorSet(**net));
    }
  }
  absl::StatusOr<double> accuracy = Trainer::Evaluate(**net, setup.test, {});
  if (!accuracy.ok()) return accuracy.status();
  std::printf("MnistCnn / Fashion-MNIST: %zu train images, fp32 warm-up %lld epochs -> %.2f%%\n",
              setup.train_indices.size(), static_cast<long long>(options.pretrain_epochs),
              100 * *accuracy);
  return ToTensorSet(**net);
}

int RunBench(const BenchOptions& options) {
  SetMathThreads(options.threads);
  absl::StatusOr<Setup> setup = LoadData(options);
  if (!setup.ok()) {
    std::fprintf(stderr, "loading fashion-mnist: %s\n", setup.status().ToString().c_str());
    return 2;
  }
  absl::StatusOr<TensorSet> start = WarmUp(*setup, options);
  if (!start.ok())
    return std::fprintf(stderr, "warm-up: %s\n", start.status().ToString().c_str()), 2;
  std::printf(
      "then %lld epochs each; bsq alpha %g, lr %g, interval %lld, finetune %lld steps on the bit "
      "planes + %lld images at the learned bits\n",
      static_cast<long long>(options.epochs), options.bsq.alpha, options.bsq_lr,
      static_cast<long long>(options.bsq.interval), static_cast<long long>(options.bsq.finetune_steps),
      static_cast<long long>(options.finetune_images));
  std::printf("%-10s %9s %10s   %-12s %8s\n", "method", "accuracy", "mean bits", "bits/layer",
              "time");
  std::fflush(stdout);
  std::vector<Row> rows;
  for (const Method& method : Methods(options)) {
    if (std::find(options.methods.begin(), options.methods.end(), method.name) ==
        options.methods.end()) {
      continue;
    }
    absl::StatusOr<Row> row = Run(method, *setup, *start, options);
    if (!row.ok()) {
      return std::fprintf(stderr, "%s: %s\n", method.name.c_str(), row.status().ToString().c_str()),
             2;
    }
    PrintRow(*row);
    rows.push_back(*std::move(row));
  }
  if (rows.size() != 4) return 0;  // the bar needs all four methods
  const bool ok = MeetsBar(rows);
  return options.check && !ok ? 1 : 0;
}

}  // namespace
}  // namespace lfl

int main(int argc, char** argv) {
  lfl::BenchOptions options;
  CLI::App app{"BSQ vs fp32 and uniform k-bit on MnistCnn / Fashion-MNIST (centralized)"};
  app.add_option("--data-dir", options.data_dir, "Fashion-MNIST directory (default: Debian's)");
  app.add_option("--pretrain-epochs", options.pretrain_epochs, "shared fp32 warm-up epochs");
  app.add_option("--pretrain-lr", options.pretrain_lr, "SGD lr of the warm-up");
  app.add_option("--epochs", options.epochs, "epochs per method after the warm-up");
  app.add_option("--train-limit", options.train_limit, "use the first N training images (0 = all)");
  app.add_option("--lr", options.train.lr, "SGD lr for warm-up, fp32 and uniform");
  app.add_option("--momentum", options.train.momentum, "SGD momentum");
  app.add_option("--batch-size", options.train.batch_size, "minibatch size");
  app.add_option("--bsq-lr", options.bsq_lr, "SGD lr on the BSQ bit planes");
  app.add_option("--alpha", options.bsq.alpha, "BSQ group-lasso strength");
  app.add_option("--interval", options.bsq.interval, "BSQ steps between re-quantizations");
  app.add_option("--finetune-steps", options.bsq.finetune_steps,
                 "BSQ final fixed-scheme steps on the bit planes (paper style)");
  app.add_option("--finetune-images", options.finetune_images,
                 "BSQ: images at the end of the epoch trained at the learned bits in weight space "
                 "(quantization-aware, at --lr), as in federation; 0 = off");
  app.add_flag("!--fixed-scale", options.bsq.train_scale, "keep BSQ scales at max|W|");
  app.add_option("--scale-grad-gain", options.bsq.scale_grad_gain, "BSQ scale gradient gain");
  app.add_option("--threads", options.threads, "torch/OpenBLAS threads");
  app.add_option("--seed", options.seed, "model init and shuffling seed");
  app.add_option("--warmup-cache", options.warmup_cache,
                 "file to reuse (or store) the warm-up weights; must match the other flags");
  app.add_option("--methods", options.methods, "subset of fp32, bsq, uniform-8, uniform-2");
  app.add_flag("--check", options.check, "exit 1 unless BSQ meets the acceptance bar");
  CLI11_PARSE(app, argc, argv);
  // With the weight-space fine-tune the bit planes need none of their own (as in federation).
  if (options.finetune_images > 0 && app.count("--finetune-steps") == 0) options.bsq.finetune_steps = 0;
  options.train.seed = options.seed;
  return lfl::RunBench(options);
}
