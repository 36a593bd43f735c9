#include "partitioning/partition.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

// A dataset of 1×1 images with `per_class` training and `test_per_class`
// test images of every class, labels interleaved.
Dataset SyntheticDataset(int64_t classes, int64_t per_class, int64_t test_per_class) {
  Dataset data;
  data.name = "synthetic";
  data.height = data.width = 1;
  data.num_classes = classes;
  for (int64_t i = 0; i < classes * per_class; ++i) data.train.labels.push_back(i % classes);
  for (int64_t i = 0; i < classes * test_per_class; ++i) data.test.labels.push_back(i % classes);
  data.train.images.assign(data.train.labels.size(), 0);
  data.test.images.assign(data.test.labels.size(), 0);
  return data;
}

// Options for the scheme named `scheme` (a valid name: ParseMode refuses the others).
PartitionOptions Options(const std::string& scheme, int64_t clients) {
  PartitionOptions options;
  options.scheme = *ParseMode<PartitionScheme>(scheme);
  options.clients = clients;
  options.test_per_client = 50;
  return options;
}

Partition MakeOrDie(const Dataset& data, const PartitionOptions& options) {
  absl::StatusOr<Partition> partition = MakePartition(data, options);
  EXPECT_TRUE(partition.ok()) << partition.status();
  return partition.ok() ? *std::move(partition) : Partition{};
}

std::set<int64_t> LabelSet(const std::vector<int64_t>& histogram) {
  std::set<int64_t> labels;
  for (size_t c = 0; c < histogram.size(); ++c) {
    if (histogram[c] > 0) labels.insert(static_cast<int64_t>(c));
  }
  return labels;
}

// Every training index appears at most once across all clients; returns how
// many are used.
int64_t ExpectTrainDisjoint(const Dataset& data, const Partition& partition) {
  std::vector<int> uses(data.train.size(), 0);
  int64_t used = 0;
  for (const ClientSplit& client : partition.clients) {
    for (int64_t i : client.train) {
      EXPECT_EQ(++uses[i], 1) << "training index " << i << " used twice";
      ++used;
    }
  }
  return used;
}

void ExpectNoDuplicates(const std::vector<int64_t>& list) {
  EXPECT_EQ(std::set<int64_t>(list.begin(), list.end()).size(), list.size());
}

// Total variation distance between two label histograms.
double Distance(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const double na = std::accumulate(a.begin(), a.end(), 0.0);
  const double nb = std::accumulate(b.begin(), b.end(), 0.0);
  double distance = 0.0;
  for (size_t c = 0; c < a.size(); ++c) distance += std::abs(a[c] / na - b[c] / nb);
  return distance / 2;
}

TEST(ShardsTest, EveryClientGetsExactlyKClassesWithSImagesEach) {
  const Dataset data = SyntheticDataset(10, 100, 60);
  PartitionOptions options = Options("shards", 23);
  options.classes_per_client = 3;
  options.samples_per_class = 7;
  const Partition partition = MakeOrDie(data, options);
  ASSERT_EQ(partition.clients.size(), 23u);
  std::vector<int64_t> usage(10, 0);
  for (const ClientSplit& client : partition.clients) {
    const std::vector<int64_t> histogram = LabelHistogram(data.train, client.train, 10);
    EXPECT_EQ(LabelSet(histogram).size(), 3u) << "client " << client.id;
    for (int64_t c = 0; c < 10; ++c) {
      EXPECT_TRUE(histogram[c] == 0 || histogram[c] == 7) << "client " << client.id;
      usage[c] += histogram[c] > 0;
    }
    EXPECT_EQ(client.train.size(), 21u);
  }
  EXPECT_EQ(ExpectTrainDisjoint(data, partition), 23 * 21);
  const auto [least, most] = std::minmax_element(usage.begin(), usage.end());
  EXPECT_LE(*most - *least, 1) << "classes are not dealt evenly";
}

TEST(ShardsTest, NotEnoughImagesOfAClassIsAClearError) {
  const Dataset data = SyntheticDataset(10, 100, 60);
  PartitionOptions options = Options("shards", 100);
  options.samples_per_class = 20;  // 100 clients × 2 × 20 / 10 classes = 400 > 100 per class
  const absl::Status status = MakePartition(data, options).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("class"));
}

TEST(ShardsTest, TestSplitHasTheTrainingLabelsInTheirProportions) {
  const Dataset data = SyntheticDataset(10, 100, 60);
  PartitionOptions options = Options("shards", 10);
  options.test_per_client = 50;
  const Partition partition = MakeOrDie(data, options);
  for (const ClientSplit& client : partition.clients) {
    const std::vector<int64_t> train = LabelHistogram(data.train, client.train, 10);
    const std::vector<int64_t> test = LabelHistogram(data.test, client.test, 10);
    EXPECT_EQ(client.test.size(), 50u);
    EXPECT_EQ(LabelSet(test), LabelSet(train)) << "client " << client.id;
    for (int64_t c = 0; c < 10; ++c) EXPECT_EQ(test[c], train[c] > 0 ? 25 : 0);
    ExpectNoDuplicates(client.test);
  }
}

TEST(ShardsTest, ValidationComesFromImagesNoClientTrainsOn) {
  const Dataset data = SyntheticDataset(10, 100, 60);
  PartitionOptions options = Options("shards", 15);
  options.samples_per_class = 11;
  options.validation_fraction = 0.2;
  const Partition partition = MakeOrDie(data, options);
  std::set<int64_t> trained;
  for (const ClientSplit& client : partition.clients) {
    trained.insert(client.train.begin(), client.train.end());
  }
  for (const ClientSplit& client : partition.clients) {
    EXPECT_EQ(client.validation.size(), 5u);  // ceil(0.2 × 22)
    ExpectNoDuplicates(client.validation);
    for (int64_t i : client.validation) EXPECT_EQ(trained.count(i), 0u) << i;
    EXPECT_EQ(LabelSet(LabelHistogram(data.train, client.validation, 10)),
              LabelSet(LabelHistogram(data.train, client.train, 10)));
  }
}

TEST(IidTest, SplitsTheWholeTrainingSetEvenly) {
  const Dataset data = SyntheticDataset(10, 101, 60);
  const Partition partition = MakeOrDie(data, Options("iid", 7));
  EXPECT_EQ(ExpectTrainDisjoint(data, partition), data.train.size());
  for (const ClientSplit& client : partition.clients) {
    EXPECT_NEAR(static_cast<double>(client.train.size()), 1010.0 / 7, 1.0);
    EXPECT_TRUE(client.validation.empty()) << "no image is left for validation";
    EXPECT_EQ(client.noise_sigma, 0.0f);
  }
}

TEST(NoiseTest, SigmaGrowsLinearlyToNoiseSigma) {
  const Dataset data = SyntheticDataset(10, 50, 60);
  PartitionOptions options = Options("noise", 5);
  options.noise_sigma = 0.4;
  const Partition partition = MakeOrDie(data, options);
  EXPECT_EQ(ExpectTrainDisjoint(data, partition), data.train.size());
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_FLOAT_EQ(partition.clients[i].noise_sigma, 0.4f * i / 4) << i;
  }
}

TEST(DirichletTest, UsesEveryImageOnceAndHoldsTheMinimum) {
  const Dataset data = SyntheticDataset(10, 200, 60);
  PartitionOptions options = Options("dirichlet", 20);
  options.beta = 0.5;
  options.min_samples = 15;
  const Partition partition = MakeOrDie(data, options);
  EXPECT_EQ(ExpectTrainDisjoint(data, partition), data.train.size());
  for (const ClientSplit& client : partition.clients) {
    EXPECT_GE(client.train.size(), 15u) << "client " << client.id;
  }
}

// Mean over clients of the largest class share: 1/classes for balanced labels,
// 1 when every client holds one class.
double MeanDominantShare(const Dataset& data, const Partition& partition) {
  double sum = 0.0;
  for (const ClientSplit& client : partition.clients) {
    const std::vector<int64_t> h = LabelHistogram(data.train, client.train, data.num_classes);
    sum += static_cast<double>(*std::max_element(h.begin(), h.end())) / client.train.size();
  }
  return sum / partition.clients.size();
}

TEST(DirichletTest, SmallBetaSkewsLabelsAndLargeBetaDoesNot) {
  const Dataset data = SyntheticDataset(10, 300, 60);
  PartitionOptions options = Options("dirichlet", 10);
  options.beta = 0.1;
  const double skewed = MeanDominantShare(data, MakeOrDie(data, options));
  options.beta = 1000.0;
  const double balanced = MeanDominantShare(data, MakeOrDie(data, options));
  EXPECT_GT(skewed, 0.4);
  EXPECT_LT(balanced, 0.2);
}

TEST(DirichletTest, TestSplitFollowsTrainingProportions) {
  const Dataset data = SyntheticDataset(10, 300, 200);
  PartitionOptions options = Options("dirichlet", 10);
  options.test_per_client = 200;
  const Partition partition = MakeOrDie(data, options);
  for (const ClientSplit& client : partition.clients) {
    const std::vector<int64_t> train = LabelHistogram(data.train, client.train, 10);
    const std::vector<int64_t> test = LabelHistogram(data.test, client.test, 10);
    EXPECT_EQ(client.test.size(), 200u);
    ExpectNoDuplicates(client.test);
    EXPECT_EQ(LabelSet(test), LabelSet(train)) << "client " << client.id;
    EXPECT_LT(Distance(train, test), 0.05) << "client " << client.id;
  }
}

TEST(DirichletTest, UnreachableMinimumIsReportedNotLoopedOn) {
  const Dataset data = SyntheticDataset(10, 100, 60);
  PartitionOptions options = Options("dirichlet", 10);
  options.beta = 0.1;
  options.min_samples = 100;  // needs a perfectly even split
  EXPECT_EQ(MakePartition(data, options).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(QuantityTest, SizesVaryAddUpAndHoldTheMinimum) {
  const Dataset data = SyntheticDataset(10, 200, 60);
  PartitionOptions options = Options("quantity", 12);
  options.beta = 0.5;
  options.min_samples = 20;
  const Partition partition = MakeOrDie(data, options);
  EXPECT_EQ(ExpectTrainDisjoint(data, partition), data.train.size());
  std::set<size_t> sizes;
  for (const ClientSplit& client : partition.clients) {
    EXPECT_GE(client.train.size(), 20u);
    sizes.insert(client.train.size());
  }
  EXPECT_GT(sizes.size(), 6u) << "client sizes should be skewed";
}

TEST(MakePartitionTest, SameSeedSameManifestDifferentSeedDifferent) {
  const Dataset data = SyntheticDataset(10, 100, 60);
  for (const char* scheme : {"iid", "shards", "dirichlet", "quantity", "noise"}) {
    PartitionOptions options = Options(scheme, 8);
    options.min_samples = 5;
    const std::string first = PartitionToJson(MakeOrDie(data, options));
    EXPECT_EQ(PartitionToJson(MakeOrDie(data, options)), first) << scheme;
    options.seed = 2;
    EXPECT_NE(PartitionToJson(MakeOrDie(data, options)), first) << scheme;
  }
}

TEST(MakePartitionTest, BadOptionsAreInvalidArgument) {
  const Dataset data = SyntheticDataset(10, 100, 60);
  const auto with = [](auto change) {
    PartitionOptions options;
    change(options);
    return options;
  };
  const PartitionOptions bad[] = {
      with([](PartitionOptions& o) { o.clients = 0; }),
      with([](PartitionOptions& o) { o.classes_per_client = 0; }),
      with([](PartitionOptions& o) { o.classes_per_client = 11; }),
      with([](PartitionOptions& o) { o.samples_per_class = 0; }),
      with([](PartitionOptions& o) { o.scheme = PartitionScheme::kDirichlet, o.beta = 0.0; }),
      with([](PartitionOptions& o) { o.scheme = PartitionScheme::kQuantity, o.beta = -1.0; }),
      with([](PartitionOptions& o) { o.scheme = PartitionScheme::kDirichlet, o.min_samples = 200; }),
      with([](PartitionOptions& o) { o.scheme = PartitionScheme::kIid, o.clients = 2000; }),
      with([](PartitionOptions& o) { o.noise_sigma = -0.1; }),
      with([](PartitionOptions& o) { o.test_per_client = -1; }),
      with([](PartitionOptions& o) { o.test_per_client = 200; }),  // 100 a class, 60 exist
      with([](PartitionOptions& o) { o.test_per_client = 601; }),  // > the whole test set
      with([](PartitionOptions& o) { o.samples_per_class = int64_t{1} << 62; }),
      with([](PartitionOptions& o) { o.scheme = PartitionScheme::kQuantity, o.clients = int64_t{1} << 62; }),
      with([](PartitionOptions& o) { o.validation_fraction = 1.5; }),
  };
  for (const PartitionOptions& options : bad) {
    const absl::Status status = MakePartition(data, options).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << ModeName(options.scheme) << " clients=" << options.clients << ": " << status;
  }
}

TEST(MakePartitionTest, LabelsOutsideTheClassesAreRefused) {
  Dataset data = SyntheticDataset(10, 10, 10);
  data.train.labels[5] = 10;
  EXPECT_EQ(MakePartition(data, Options("iid", 2)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MakePartitionTest, ThousandClientsOverSixtyThousandImagesIsFast) {
  const Dataset data = SyntheticDataset(10, 6000, 1000);
  for (const char* scheme : {"shards", "iid", "quantity"}) {
    PartitionOptions options = Options(scheme, 1000);
    options.test_per_client = 200;
    options.min_samples = 0;  // a draw where all 1000 Dir(0.5) sizes reach 1 is too rare
    const auto start = std::chrono::steady_clock::now();
    const Partition partition = MakeOrDie(data, options);
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(partition.clients.size(), 1000u);
    EXPECT_LT(elapsed.count(), 1.0) << scheme;
  }
}

TEST(CheckPartitionFitsTest, RefusesIndicesOutsideTheDataset) {
  const Dataset data = SyntheticDataset(10, 20, 10);
  Partition partition = MakeOrDie(data, Options("iid", 4));
  EXPECT_TRUE(CheckPartitionFits(partition, data).ok());
  partition.clients[2].test.push_back(data.test.size());
  EXPECT_EQ(CheckPartitionFits(partition, data).code(), absl::StatusCode::kInvalidArgument);
  Dataset other = data;
  other.name = "mnist";
  partition.clients[2].test.pop_back();
  EXPECT_EQ(CheckPartitionFits(partition, other).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SharedTest, MoreClientsThanImagesEachWithDistinctImages) {
  const Dataset data = SyntheticDataset(4, 10, 20);  // 40 training images
  PartitionOptions o;
  o.scheme = PartitionScheme::kShared;
  o.clients = 500;
  o.min_samples = 6;
  o.test_per_client = 4;
  o.seed = 3;
  absl::StatusOr<Partition> p = MakePartition(data, o);
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->clients.size(), 500u);
  std::set<std::vector<int64_t>> distinct;
  for (const ClientSplit& c : p->clients) {
    ASSERT_EQ(c.train.size(), 6u);
    ExpectNoDuplicates(c.train);
    for (int64_t i : c.train) EXPECT_TRUE(i >= 0 && i < 40);
    EXPECT_EQ(c.test.size(), 4u);
    distinct.insert(c.train);
  }
  EXPECT_GT(distinct.size(), 400u) << "clients draw independently";
  absl::StatusOr<Partition> again = MakePartition(data, o);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->clients[123].train, p->clients[123].train) << "seeded";
  o.min_samples = 41;
  EXPECT_TRUE(absl::IsInvalidArgument(MakePartition(data, o).status()));
}

// Validation only from images no client trains on: a slice of ceil(0.2 x 6) = 2 per client
// while such images remain, none once the clients' draws cover the training set.
TEST(SharedTest, ValidationFromImagesNoClientTrainsOnEmptyOnceAllAreUsed) {
  const Dataset data = SyntheticDataset(4, 250, 20);  // 1,000 training images
  PartitionOptions o;
  o.scheme = PartitionScheme::kShared;
  o.min_samples = 6;
  o.test_per_client = 4;
  o.validation_fraction = 0.2;
  for (const int64_t clients : {10, 5000}) {
    o.clients = clients;
    absl::StatusOr<Partition> p = MakePartition(data, o);
    ASSERT_TRUE(p.ok()) << p.status();
    std::set<int64_t> trained;
    for (const ClientSplit& c : p->clients) trained.insert(c.train.begin(), c.train.end());
    int64_t validation = 0;
    for (const ClientSplit& c : p->clients) {
      for (int64_t i : c.validation) EXPECT_EQ(trained.count(i), 0u) << "client " << c.id << " image " << i;
      validation += static_cast<int64_t>(c.validation.size());
    }
    if (clients == 10) {
      EXPECT_EQ(validation, 2 * clients) << "950+ unused images: every client gets its 2";
    } else {
      ASSERT_EQ(trained.size(), 1000u) << "5,000 x 6 draws from 1,000 images use every one";
      EXPECT_EQ(validation, 0);
    }
  }
}

}  // namespace
}  // namespace lfl
