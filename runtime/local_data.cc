#include "runtime/local_data.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sampler.h"
#include "common/seed.h"
#include "partitioning/export.h"

namespace lfl {
namespace {

// Salt of the validation draw's seed, so it shares no stream with training's MixSeed(seed, id,
// ...).
constexpr uint64_t kValidationSalt = 0x76616c69;  // "vali"

// The directory of client `id`: dir/client-<id>, or dir itself for a lone client whose
// subdirectory does not exist.
std::string ClientDir(const std::string& dir, int64_t id, bool only_client) {
  const std::string sub = absl::StrCat(dir, "/", ClientDirName(id));
  std::error_code error;
  if (only_client && !std::filesystem::is_directory(sub, error)) return dir;
  return sub;
}

// Appends `from` to `to`.
void Append(const Split& from, Split* to) {
  to->images.insert(to->images.end(), from.images.begin(), from.images.end());
  to->labels.insert(to->labels.end(), from.labels.begin(), from.labels.end());
}

// Indices [offset, offset + n) split into training and the seeded validation slice.
void SplitTraining(int64_t offset, int64_t n, double fraction, uint64_t seed, ClientSplit* split) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[i] = offset + i;
  Sampler sampler(seed);
  sampler.Shuffle(&order);
  const int64_t v = LocalValidationSize(n, fraction);
  split->validation.assign(order.begin(), order.begin() + v);
  split->train.assign(order.begin() + v, order.end());
  std::sort(split->validation.begin(), split->validation.end());
  std::sort(split->train.begin(), split->train.end());
}

}  // namespace

int64_t LocalValidationSize(int64_t n, double validation_fraction) {
  if (n <= 1 || !(validation_fraction > 0)) return 0;
  const int64_t kept = std::llround(static_cast<double>(n) / (1.0 + validation_fraction));
  return std::clamp<int64_t>(n - kept, 0, n - 1);  // at least one training image stays
}

absl::StatusOr<std::shared_ptr<const RunData>> LoadLocalRunData(
    const RunConfig& config, const std::string& dir, const std::vector<int64_t>& client_ids) {
  if (config.client_data != ClientDataSource::kLocal) {
    return absl::FailedPreconditionError(
        absl::StrCat("the run uses client-data '", std::string(ModeName(config.client_data)),
                     "': its clients take their slice of the server's partition, not local files"));
  }
  if (client_ids.empty()) return absl::InvalidArgumentError("no client ids to load local data for");
  const std::set<int64_t> ids(client_ids.begin(), client_ids.end());
  if (*ids.begin() < 0 || *ids.rbegin() >= config.clients) {
    return absl::InvalidArgumentError(
        absl::StrCat("client id ", *ids.begin() < 0 ? *ids.begin() : *ids.rbegin(),
                     " is outside the run's clients [0, ", config.clients, ")"));
  }
  const Normalization norm = FixedNormalization(config.dataset);
  if (absl::Status s = PrepareRunModel(config); !s.ok()) return s;

  Dataset all;
  auto data = std::make_shared<RunData>();
  data->config = config;
  data->partition.dataset = std::string(ModeName(config.dataset));
  data->partition.scheme = "local";  // a record, not a PartitionScheme: no scheme made these splits
  data->partition.seed = config.seed;
  data->partition.clients.resize(static_cast<size_t>(config.clients));
  for (int64_t k = 0; k < config.clients; ++k) data->partition.clients[k].id = k;
  for (int64_t id : ids) {
    const std::string client_dir = ClientDir(dir, id, ids.size() == 1);
    absl::StatusOr<Dataset> own = LoadClientFiles(config.dataset, client_dir);
    if (!own.ok()) {
      return absl::Status(own.status().code(),
                          absl::StrCat("client ", id, ": ", own.status().message()));
    }
    if (all.train.size() == 0 && all.test.size() == 0) {
      all.name = own->name;
      all.channels = own->channels;
      all.height = own->height;
      all.width = own->width;
      all.num_classes = own->num_classes;
    }
    ClientSplit& split = data->partition.clients[id];
    SplitTraining(all.train.size(), own->train.size(), config.validation_fraction,
                  MixSeed(config.seed, static_cast<uint64_t>(id), kValidationSalt), &split);
    for (int64_t i = 0; i < own->test.size(); ++i) split.test.push_back(all.test.size() + i);
    Append(own->train, &all.train);
    Append(own->test, &all.test);
  }
  data->shape = {all.channels, all.height, all.width, all.num_classes};
  data->num_classes = all.num_classes;
  data->model = RunModelName(config);
  data->train = ToTensorData(all.train, all, norm);
  data->test = ToTensorData(all.test, all, norm);
  absl::StatusOr<Net> net = MakeNamedNet(data->model, data->shape, config.seed);
  if (!net.ok()) {
    return absl::Status(net.status().code(), absl::StrCat("--model: ", net.status().message()));
  }
  data->theta0 = ToTensorSet(**net);
  return std::shared_ptr<const RunData>(std::move(data));
}

}  // namespace lfl
