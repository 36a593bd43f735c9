#include "partitioning/partition.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sampler.h"

namespace lfl {
namespace {

// dirichlet/quantity redraw until min_samples holds; past this many draws
// the constraint is practically unreachable and we say so.
constexpr int kMaxRedraws = 1000;

using IndexLists = std::vector<std::vector<int64_t>>;

absl::Status CheckOptions(const Dataset& data, const PartitionOptions& o) {
  auto bad = [](auto&&... parts) { return absl::InvalidArgumentError(absl::StrCat(parts...)); };
  const PartitionScheme s = o.scheme;
  if (o.clients <= 0) return bad("clients must be positive, got ", o.clients);
  if (s == PartitionScheme::kShared && (o.min_samples < 1 || o.min_samples > data.train.size())) {
    return bad("shared: min_samples (images per client) must be in [1, ", data.train.size(), "], got ",
               o.min_samples);
  }
  if (s != PartitionScheme::kShared && o.clients > data.train.size()) {
    return bad(o.clients, " clients but only ", data.train.size(), " training images");
  }
  if (data.num_classes <= 0) return bad("dataset has num_classes ", data.num_classes);
  if (s == PartitionScheme::kShards && (o.classes_per_client < 1 || o.classes_per_client > data.num_classes)) {
    return bad("classes_per_client must be in [1, ", data.num_classes, "], got ",
               o.classes_per_client);
  }
  if (s == PartitionScheme::kShards && (o.samples_per_class < 1 || o.samples_per_class > data.train.size())) {
    return bad("samples_per_class must be in [1, ", data.train.size(), "], got ",
               o.samples_per_class);
  }
  if ((s == PartitionScheme::kDirichlet || s == PartitionScheme::kQuantity) && !(o.beta > 0.0 && std::isfinite(o.beta))) {
    return bad("beta must be positive and finite, got ", o.beta);
  }
  if (o.min_samples < 0) return bad("min_samples must be non-negative, got ", o.min_samples);
  if (!(o.noise_sigma >= 0.0 && std::isfinite(o.noise_sigma))) {
    return bad("noise_sigma must be non-negative and finite, got ", o.noise_sigma);
  }
  if (o.test_per_client < 0 || o.test_per_client > data.test.size()) {
    return bad("test_per_client must be in [0, ", data.test.size(), "], got ", o.test_per_client);
  }
  if (!(o.validation_fraction >= 0.0 && o.validation_fraction <= 1.0)) {
    return bad("validation_fraction must be in [0, 1], got ", o.validation_fraction);
  }
  return absl::OkStatus();
}

// Indices of `split` grouped by label; InvalidArgument for a label outside
// [0, num_classes).
absl::StatusOr<IndexLists> GroupByClass(const Split& split, int64_t num_classes,
                                        const char* split_name) {
  IndexLists by_class(num_classes);
  for (int64_t i = 0; i < split.size(); ++i) {
    const int64_t label = split.labels[i];
    if (label < 0 || label >= num_classes) {
      return absl::InvalidArgumentError(absl::StrCat(split_name, " label ", label, " at index ", i,
                                                     " is outside [0, ", num_classes, ")"));
    }
    by_class[label].push_back(i);
  }
  return by_class;
}

// Splits `items` at the given cut points (ascending, each in [0, size]).
IndexLists SplitAt(const std::vector<int64_t>& items, const std::vector<int64_t>& cuts) {
  IndexLists parts;
  int64_t begin = 0;
  for (int64_t end : cuts) {
    parts.emplace_back(items.begin() + begin, items.begin() + end);
    begin = end;
  }
  parts.emplace_back(items.begin() + begin, items.end());
  return parts;
}

// NIID-Bench's cut points: floor(cumsum(p) * n) for all but the last part.
std::vector<int64_t> CutPoints(const std::vector<double>& p, int64_t n) {
  std::vector<int64_t> cuts;
  double cumulative = 0.0;
  int64_t previous = 0;
  for (size_t j = 0; j + 1 < p.size(); ++j) {
    cumulative += p[j];
    previous = std::clamp(static_cast<int64_t>(cumulative * static_cast<double>(n)), previous, n);
    cuts.push_back(previous);
  }
  return cuts;
}

std::vector<int64_t> Iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Load tests only: every client draws min_samples distinct images from the whole training set,
// independently of the others, so clients share images and K may exceed the dataset's size.
IndexLists SharedTrain(int64_t n, const PartitionOptions& o, Sampler* rng) {
  IndexLists train(o.clients);
  for (auto& list : train) {
    // Floyd's algorithm: min_samples distinct indices in O(min_samples).
    std::vector<int64_t> picked;
    for (int64_t j = n - o.min_samples; j < n; ++j) {
      const int64_t t = static_cast<int64_t>(rng->UniformInt(static_cast<uint64_t>(j + 1)));
      picked.push_back(std::find(picked.begin(), picked.end(), t) == picked.end() ? t : j);
    }
    list = std::move(picked);
  }
  return train;
}

IndexLists IidTrain(int64_t n, int64_t clients, Sampler* rng) {
  std::vector<int64_t> order = Iota(n);
  rng->Shuffle(&order);
  std::vector<int64_t> cuts;
  for (int64_t j = 1; j < clients; ++j) cuts.push_back(j * n / clients);
  return SplitAt(order, cuts);
}

// For each client, the K least-used classes so far (random tie-break), so
// class usage counts never differ by more than one.
IndexLists DealClasses(int64_t clients, int64_t num_classes, int64_t k, Sampler* rng) {
  std::vector<int64_t> usage(num_classes, 0);
  IndexLists chosen(clients);
  for (auto& classes : chosen) {
    std::vector<int64_t> order = Iota(num_classes);
    rng->Shuffle(&order);
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return usage[a] < usage[b]; });
    classes.assign(order.begin(), order.begin() + k);
    for (int64_t c : classes) ++usage[c];
  }
  return chosen;
}

absl::StatusOr<IndexLists> ShardsTrain(IndexLists by_class, const PartitionOptions& o,
                                       Sampler* rng) {
  const int64_t num_classes = static_cast<int64_t>(by_class.size());
  const IndexLists chosen = DealClasses(o.clients, num_classes, o.classes_per_client, rng);
  std::vector<int64_t> needed(num_classes, 0);
  for (const auto& classes : chosen) {
    for (int64_t c : classes) needed[c] += o.samples_per_class;
  }
  for (int64_t c = 0; c < num_classes; ++c) {
    if (needed[c] > static_cast<int64_t>(by_class[c].size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("shards: class ", c, " has ", by_class[c].size(), " training images but ",
                       needed[c] / o.samples_per_class, " clients x ", o.samples_per_class,
                       " samples_per_class need ", needed[c]));
    }
  }
  for (auto& pool : by_class) rng->Shuffle(&pool);
  std::vector<int64_t> cursor(num_classes, 0);
  IndexLists train(o.clients);
  for (int64_t i = 0; i < o.clients; ++i) {
    for (int64_t c : chosen[i]) {
      const auto begin = by_class[c].begin() + cursor[c];
      train[i].insert(train[i].end(), begin, begin + o.samples_per_class);
      cursor[c] += o.samples_per_class;
    }
  }
  return train;
}

int64_t SmallestSize(const IndexLists& lists) {
  int64_t smallest = std::numeric_limits<int64_t>::max();
  for (const auto& list : lists) smallest = std::min<int64_t>(smallest, list.size());
  return smallest;
}

absl::Status Unreachable(const PartitionOptions& o) {
  return absl::ResourceExhaustedError(
      absl::StrCat(std::string(ModeName(o.scheme)), ": no draw in ", kMaxRedraws, " gave every one of ",
                   o.clients, " clients at least min_samples=", o.min_samples,
                   " images; lower min_samples or raise beta (", o.beta, ")"));
}

// One NIID-Bench label-skew draw: each class split by Dir(beta) proportions,
// skipping clients already above the mean size.
IndexLists DirichletDraw(IndexLists by_class, int64_t n, const PartitionOptions& o, Sampler* rng) {
  IndexLists train(o.clients);
  const double mean_size = static_cast<double>(n) / static_cast<double>(o.clients);
  for (auto& pool : by_class) {
    rng->Shuffle(&pool);
    std::vector<double> p = rng->Dirichlet(o.beta, o.clients);
    std::vector<double> open = p;
    double kept = 0.0;
    for (int64_t j = 0; j < o.clients; ++j) {
      if (static_cast<double>(train[j].size()) >= mean_size) open[j] = 0.0;
      kept += open[j];
    }
    if (kept > 0.0) {  // else only full clients drew any mass: keep the raw draw
      for (int64_t j = 0; j < o.clients; ++j) p[j] = open[j] / kept;
    }
    const IndexLists parts = SplitAt(pool, CutPoints(p, static_cast<int64_t>(pool.size())));
    for (int64_t j = 0; j < o.clients; ++j) {
      train[j].insert(train[j].end(), parts[j].begin(), parts[j].end());
    }
  }
  return train;
}

absl::StatusOr<IndexLists> DirichletTrain(const IndexLists& by_class, int64_t n,
                                          const PartitionOptions& o, Sampler* rng) {
  for (int attempt = 0; attempt < kMaxRedraws; ++attempt) {
    IndexLists train = DirichletDraw(by_class, n, o, rng);
    if (SmallestSize(train) >= o.min_samples) return train;
  }
  return Unreachable(o);
}

absl::StatusOr<IndexLists> QuantityTrain(int64_t n, const PartitionOptions& o, Sampler* rng) {
  std::vector<int64_t> order = Iota(n);
  rng->Shuffle(&order);
  for (int attempt = 0; attempt < kMaxRedraws; ++attempt) {
    const std::vector<int64_t> cuts = CutPoints(rng->Dirichlet(o.beta, o.clients), n);
    int64_t smallest = n, begin = 0;
    for (size_t j = 0; j <= cuts.size(); ++j) {
      const int64_t end = j < cuts.size() ? cuts[j] : n;
      smallest = std::min(smallest, end - begin);
      begin = end;
    }
    if (smallest >= o.min_samples) return SplitAt(order, cuts);
  }
  return Unreachable(o);
}

absl::StatusOr<IndexLists> TrainLists(const IndexLists& by_class, int64_t n,
                                      const PartitionOptions& o, Sampler* rng) {
  switch (o.scheme) {
    case PartitionScheme::kShards:
      return ShardsTrain(by_class, o, rng);
    case PartitionScheme::kIid:
    case PartitionScheme::kNoise:
      return IidTrain(n, o.clients, rng);
    case PartitionScheme::kShared:
      return SharedTrain(n, o, rng);
    case PartitionScheme::kDirichlet:
    case PartitionScheme::kQuantity:
      break;
  }
  if (o.min_samples > n / o.clients) {
    return absl::InvalidArgumentError(absl::StrCat(o.clients,
                                                   " clients x min_samples=", o.min_samples,
                                                   " exceeds the ", n, " training images"));
  }
  if (o.scheme == PartitionScheme::kDirichlet) return DirichletTrain(by_class, n, o, rng);
  return QuantityTrain(n, o, rng);
}

// Splits `total` over classes in proportion to `histogram` (largest
// remainder), then makes sure every class present in the histogram gets at
// least one — taken from the largest share — while total allows it.
std::vector<int64_t> Apportion(const std::vector<int64_t>& histogram, int64_t total) {
  const int64_t n = std::accumulate(histogram.begin(), histogram.end(), int64_t{0});
  std::vector<int64_t> counts(histogram.size(), 0);
  if (n == 0) return counts;
  std::vector<std::pair<int64_t, size_t>> remainders;  // (remainder, class)
  int64_t assigned = 0;
  for (size_t c = 0; c < histogram.size(); ++c) {
    counts[c] = total * histogram[c] / n;
    assigned += counts[c];
    remainders.emplace_back(total * histogram[c] % n, c);
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (int64_t r = 0; r < total - assigned; ++r) ++counts[remainders[r].second];
  for (size_t c = 0; c < histogram.size(); ++c) {
    if (histogram[c] == 0 || counts[c] > 0) continue;
    const auto largest = std::max_element(counts.begin(), counts.end());
    if (*largest <= 1) break;
    --*largest;
    counts[c] = 1;
  }
  return counts;
}

// A shuffled pool handed out in consecutive runs. A run never wraps around
// (the pool is reshuffled and restarted instead), so one run holds distinct
// items, and successive clients spread over the whole pool.
class RollingPool {
 public:
  RollingPool(std::vector<int64_t> items, Sampler* rng) : items_(std::move(items)), rng_(rng) {
    rng_->Shuffle(&items_);
  }
  int64_t size() const { return static_cast<int64_t>(items_.size()); }

  // Appends k <= size() distinct items to *out.
  void Take(int64_t k, std::vector<int64_t>* out) {
    if (cursor_ + k > size()) {
      rng_->Shuffle(&items_);
      cursor_ = 0;
    }
    out->insert(out->end(), items_.begin() + cursor_, items_.begin() + cursor_ + k);
    cursor_ += k;
  }

 private:
  std::vector<int64_t> items_;
  Sampler* rng_;
  int64_t cursor_ = 0;
};

std::vector<RollingPool> MakePools(IndexLists by_class, Sampler* rng) {
  std::vector<RollingPool> pools;
  for (auto& items : by_class) pools.emplace_back(std::move(items), rng);
  return pools;
}

// Each client's test split: test_per_client images in its training
// proportions. InvalidArgument if the test set lacks images of a class.
absl::Status DrawTest(const Dataset& data, const IndexLists& test_by_class,
                      const PartitionOptions& o, Sampler* rng, Partition* partition) {
  std::vector<RollingPool> pools = MakePools(test_by_class, rng);
  for (ClientSplit& client : partition->clients) {
    const std::vector<int64_t> counts =
        Apportion(LabelHistogram(data.train, client.train, data.num_classes), o.test_per_client);
    for (size_t c = 0; c < counts.size(); ++c) {
      if (counts[c] > pools[c].size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "client ", client.id, " needs ", counts[c], " test images of class ", c,
            " (test_per_client=", o.test_per_client, ") but the test set has ", pools[c].size()));
      }
      if (counts[c] > 0) pools[c].Take(counts[c], &client.test);
    }
  }
  return absl::OkStatus();
}

// Each client's validation slice, from training images no client trains on.
void DrawValidation(const Dataset& data, const PartitionOptions& o, Sampler* rng,
                    Partition* partition) {
  std::vector<bool> used(data.train.size(), false);
  for (const ClientSplit& client : partition->clients) {
    for (int64_t i : client.train) used[i] = true;
  }
  IndexLists unused(data.num_classes);
  for (int64_t i = 0; i < data.train.size(); ++i) {
    if (!used[i]) unused[data.train.labels[i]].push_back(i);
  }
  std::vector<RollingPool> pools = MakePools(std::move(unused), rng);
  for (ClientSplit& client : partition->clients) {
    const auto size = static_cast<int64_t>(
        std::ceil(o.validation_fraction * static_cast<double>(client.train.size())));
    const std::vector<int64_t> counts =
        Apportion(LabelHistogram(data.train, client.train, data.num_classes), size);
    for (size_t c = 0; c < counts.size(); ++c) {
      const int64_t k = std::min(counts[c], pools[c].size());
      if (k > 0) pools[c].Take(k, &client.validation);
    }
  }
}

// validation_source own: the tail of each client's own training list becomes its validation
// slice (at least one image stays for training).
void CarveValidation(const PartitionOptions& o, Partition* partition) {
  for (ClientSplit& client : partition->clients) {
    const auto n = static_cast<int64_t>(client.train.size());
    const int64_t k = std::min<int64_t>(
        n - 1, static_cast<int64_t>(std::ceil(o.validation_fraction * static_cast<double>(n) - 1e-9)));
    if (k <= 0) continue;
    client.validation.assign(client.train.end() - k, client.train.end());
    client.train.resize(n - k);
  }
}

}  // namespace

absl::StatusOr<Partition> MakePartition(const Dataset& data, const PartitionOptions& options) {
  if (absl::Status s = CheckOptions(data, options); !s.ok()) return s;
  absl::StatusOr<IndexLists> train_by_class = GroupByClass(data.train, data.num_classes, "train");
  if (!train_by_class.ok()) return train_by_class.status();
  absl::StatusOr<IndexLists> test_by_class = GroupByClass(data.test, data.num_classes, "test");
  if (!test_by_class.ok()) return test_by_class.status();

  Sampler rng(options.seed);
  absl::StatusOr<IndexLists> train = TrainLists(*train_by_class, data.train.size(), options, &rng);
  if (!train.ok()) return train.status();

  Partition partition{data.name, std::string(ModeName(options.scheme)), options.seed, {}};
  for (int64_t i = 0; i < options.clients; ++i) {
    ClientSplit& client = partition.clients.emplace_back();
    client.id = i;
    client.train = std::move((*train)[i]);
    if (options.scheme == PartitionScheme::kNoise && options.clients > 1) {
      client.noise_sigma = static_cast<float>(options.noise_sigma * static_cast<double>(i) /
                                              static_cast<double>(options.clients - 1));
    }
  }
  if (absl::Status s = DrawTest(data, *test_by_class, options, &rng, &partition); !s.ok()) {
    return s;
  }
  if (options.validation_source == ValidationSource::kOwn) {
    CarveValidation(options, &partition);
  } else {
    DrawValidation(data, options, &rng, &partition);
  }
  for (ClientSplit& client : partition.clients) {
    for (auto* list : {&client.train, &client.validation, &client.test}) {
      std::sort(list->begin(), list->end());
    }
  }
  return partition;
}

std::vector<int64_t> LabelHistogram(const Split& split, const std::vector<int64_t>& indices,
                                    int64_t num_classes) {
  std::vector<int64_t> histogram(std::max<int64_t>(num_classes, 0), 0);
  for (int64_t i : indices) {
    if (i < 0 || i >= split.size()) continue;
    const int64_t label = split.labels[i];
    if (label >= 0 && label < num_classes) ++histogram[label];
  }
  return histogram;
}

absl::Status CheckPartitionFits(const Partition& partition, const Dataset& data) {
  if (partition.dataset != data.name) {
    return absl::InvalidArgumentError(
        absl::StrCat("partition is for dataset '", partition.dataset, "', not '", data.name, "'"));
  }
  for (const ClientSplit& client : partition.clients) {
    const std::pair<const std::vector<int64_t>*, const Split*> lists[] = {
        {&client.train, &data.train},
        {&client.validation, &data.train},
        {&client.test, &data.test}};
    for (const auto& [list, split] : lists) {
      for (int64_t i : *list) {
        if (i < 0 || i >= split->size()) {
          return absl::InvalidArgumentError(absl::StrCat("client ", client.id, ": index ", i,
                                                         " is outside the split of ", split->size(),
                                                         " images"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace lfl
