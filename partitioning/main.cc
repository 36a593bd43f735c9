// lotteryfl-partition: splits a dataset across federated clients, prints
// the per-client table and a summary, writes the partition manifest and, with
// --export DIR, each client's own dataset files (partitioning/export.h).
//
// Exit codes: 0 success, 2 bad input (flags, dataset files, options the data
// cannot satisfy or that cannot be exported), 1 the manifest or an exported
// file could not be written.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "partitioning/dataset.h"
#include "partitioning/export.h"
#include "partitioning/partition.h"

namespace {

constexpr int kBadInput = 2;
constexpr int kWriteFailed = 1;

struct Flags {
  lfl::DatasetKind dataset = lfl::DatasetKind::kFashionMnist;
  std::string data_dir;
  std::string out;
  std::string export_dir;
  lfl::PartitionOptions options;
};

// `flag` sets *mode from its name, parsed here once (config/modes/run_modes.h); an unknown name is a
// usage error listing the choices. `allowed`, when given, refuses a valid mode with its reason.
template <typename Mode>
CLI::Option* AddModeOption(CLI::App& app, const std::string& flag, Mode* mode, const std::string& help,
                           std::string (*allowed)(Mode) = nullptr) {
  return app
      .add_option_function<std::string>(
          flag,
          [flag, mode, allowed](const std::string& text) {
            absl::StatusOr<Mode> parsed = lfl::ParseMode<Mode>(text);
            if (!parsed.ok()) throw CLI::ValidationError(flag, std::string(parsed.status().message()));
            if (allowed != nullptr) {
              if (std::string why = allowed(*parsed); !why.empty()) throw CLI::ValidationError(flag, why);
            }
            *mode = *parsed;
          },
          help)
      ->default_str(std::string(lfl::ModeName(*mode)));
}

// shared is for the load tests of lotteryfl-sim and lotteryfl-server: its clients share images,
// so its manifests do not load back (PartitionFromJson) and it has no use here.
std::string PartitionHere(lfl::PartitionScheme scheme) {
  if (scheme != lfl::PartitionScheme::kShared) return "";
  return "shared (clients share images) is for load tests of lotteryfl-sim / lotteryfl-server; its manifests "
         "do not load back";
}

void AddFlags(CLI::App& app, Flags& f) {
  lfl::PartitionOptions& o = f.options;
  AddModeOption(app, "--dataset", &f.dataset,
                "fashion-mnist | mnist | emnist-{balanced,byclass,bymerge,letters,digits,mnist} | cifar10");
  app.add_option("--data-dir", f.data_dir,
                 "directory of the dataset files (default: /usr/share/datasets/fashion-mnist for "
                 "fashion-mnist, data/<dataset> otherwise)");
  AddModeOption(app, "--partition", &o.scheme,
                "iid | shards (K labels x S images per client) | dirichlet (label skew, beta) | "
                "quantity (size skew, beta) | noise (iid + per-client input noise)",
                &PartitionHere);
  app.add_option("--clients", o.clients, "number of clients")->capture_default_str();
  app.add_option("--classes-per-client", o.classes_per_client, "shards: labels per client (K)")
      ->capture_default_str();
  app.add_option("--samples-per-class", o.samples_per_class,
                 "shards: training images per chosen label (S)")
      ->capture_default_str();
  app.add_option("--beta", o.beta, "dirichlet/quantity: concentration; smaller = more skewed")
      ->capture_default_str();
  app.add_option("--min-samples", o.min_samples,
                 "dirichlet/quantity: redraw until every client has this many training images")
      ->capture_default_str();
  app.add_option("--noise-sigma", o.noise_sigma,
                 "noise: client i gets Gaussian input noise sigma*i/(clients-1)")
      ->capture_default_str();
  app.add_option("--test-per-client", o.test_per_client,
                 "local test images per client, in its training label proportions")
      ->capture_default_str();
  app.add_option("--validation-fraction", o.validation_fraction,
                 "validation slice = ceil(fraction * train size) from images no client trains on")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed; same seed, same manifest")->capture_default_str();
  app.add_option("--out", f.out, "write the partition manifest (JSON) here");
  app.add_option("--export", f.export_dir,
                 "write each client's own data as dataset files, DIR/client-<k>/ (training images "
                 "followed by its validation images; its local test images), for a run with "
                 "--client-data local (lotteryfl-client --local-data DIR; docs/local-data.md)");
}

std::string HistogramText(const std::vector<int64_t>& histogram) {
  std::string text;
  for (size_t c = 0; c < histogram.size(); ++c) {
    if (histogram[c] > 0) absl::StrAppend(&text, text.empty() ? "" : " ", c, ":", histogram[c]);
  }
  return text;
}

// "mean 40.0  min 40  max 40" of a per-client quantity.
std::string StatsText(const std::vector<int64_t>& values) {
  int64_t total = 0;
  for (int64_t v : values) total += v;
  const auto [min, max] = std::minmax_element(values.begin(), values.end());
  char buffer[128];
  std::snprintf(buffer, sizeof(buffer), "total %lld  mean %.1f  min %lld  max %lld",
                static_cast<long long>(total),
                static_cast<double>(total) / static_cast<double>(values.size()),
                static_cast<long long>(*min), static_cast<long long>(*max));
  return buffer;
}

void PrintReport(const lfl::Dataset& data, const lfl::Partition& partition) {
  std::printf("%6s %7s %6s %6s %7s  %s\n", "client", "train", "valid", "test", "noise",
              "train labels (class:count)");
  std::vector<int64_t> train, validation, test, classes;
  for (const lfl::ClientSplit& client : partition.clients) {
    const std::vector<int64_t> histogram =
        lfl::LabelHistogram(data.train, client.train, data.num_classes);
    std::printf("%6lld %7zu %6zu %6zu %7.3f  %s\n", static_cast<long long>(client.id),
                client.train.size(), client.validation.size(), client.test.size(),
                client.noise_sigma, HistogramText(histogram).c_str());
    train.push_back(client.train.size());
    validation.push_back(client.validation.size());
    test.push_back(client.test.size());
    classes.push_back(
        std::count_if(histogram.begin(), histogram.end(), [](int64_t n) { return n > 0; }));
  }
  std::printf("\n%s, scheme %s, seed %llu, %zu clients (training set %lld images)\n",
              partition.dataset.c_str(), partition.scheme.c_str(),
              static_cast<unsigned long long>(partition.seed), partition.clients.size(),
              static_cast<long long>(data.train.size()));
  std::printf("train:             %s\n", StatsText(train).c_str());
  std::printf("validation:        %s\n", StatsText(validation).c_str());
  std::printf("test:              %s\n", StatsText(test).c_str());
  std::printf("classes/client:    %s\n", StatsText(classes).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Split a dataset across federated clients and write the partition manifest."};
  Flags flags;
  AddFlags(app, flags);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kBadInput;
  }

  absl::StatusOr<lfl::Dataset> data = lfl::LoadDataset(flags.dataset, flags.data_dir);
  if (!data.ok()) {
    std::fprintf(stderr, "error: %s\n", data.status().ToString().c_str());
    return kBadInput;
  }
  absl::StatusOr<lfl::Partition> partition = lfl::MakePartition(*data, flags.options);
  if (!partition.ok()) {
    std::fprintf(stderr, "error: %s\n", partition.status().ToString().c_str());
    return kBadInput;
  }
  PrintReport(*data, *partition);
  if (!flags.out.empty()) {
    if (absl::Status s = lfl::WritePartition(*partition, flags.out); !s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
      return kWriteFailed;
    }
    std::printf("wrote %s\n", flags.out.c_str());
  }
  if (!flags.export_dir.empty()) {
    if (absl::Status s = lfl::ExportPartition(*data, *partition, flags.export_dir); !s.ok()) {
      std::fprintf(stderr, "error: --export: %s\n", s.ToString().c_str());
      return absl::IsInvalidArgument(s) ? kBadInput : kWriteFailed;
    }
    std::printf("exported %zu client directories to %s\n", partition->clients.size(),
                flags.export_dir.c_str());
  }
  return 0;
}
