// validation_source = own: the LotteryFL reference's split, where a client's validation slice is
// carved from its own training images (which it then does not train on).
#include <algorithm>
#include <set>
#include <vector>

#include "gtest/gtest.h"
#include "config/run_config.h"
#include "partitioning/partition.h"

namespace lfl {
namespace {

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

PartitionOptions Shards(const std::string& source, double fraction) {
  PartitionOptions o;
  o.scheme = PartitionScheme::kShards;
  o.clients = 8;
  o.classes_per_client = 2;
  o.samples_per_class = 20;
  o.test_per_client = 40;
  o.validation_fraction = fraction;
  o.validation_source = *ParseMode<ValidationSource>(source);
  o.seed = 11;
  return o;
}

TEST(ValidationSourceTest, OwnCarvesTheTailOfTheClientsLastClassAndKeepsTheRestForTraining) {
  const Dataset data = SyntheticDataset(10, 100, 50);
  absl::StatusOr<Partition> unused = MakePartition(data, Shards("unused", 0.1));
  absl::StatusOr<Partition> own = MakePartition(data, Shards("own", 0.1));
  ASSERT_TRUE(unused.ok()) << unused.status();
  ASSERT_TRUE(own.ok()) << own.status();
  ASSERT_EQ(own->clients.size(), unused->clients.size());
  for (size_t i = 0; i < own->clients.size(); ++i) {
    const ClientSplit& a = unused->clients[i];
    const ClientSplit& b = own->clients[i];
    // The reference's 36 of 40: 4 images move from training to validation.
    EXPECT_EQ(a.train.size(), 40u);
    EXPECT_EQ(b.train.size(), 36u);
    ASSERT_EQ(b.validation.size(), 4u);
    std::vector<int64_t> all = b.train;
    all.insert(all.end(), b.validation.begin(), b.validation.end());
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, a.train) << "client " << i << ": train + validation must be its own 40 images";
    const std::set<int64_t> train(b.train.begin(), b.train.end());
    std::set<int64_t> labels;
    for (int64_t v : b.validation) {
      EXPECT_EQ(train.count(v), 0u) << "a validation image is trained on";
      labels.insert(data.train.labels[v]);
    }
    EXPECT_EQ(labels.size(), 1u)
        << "the carved images come from one class (the client's last shard)";
    // The test split follows all 40 images' proportions, so it is the same as with unused.
    EXPECT_EQ(b.test, a.test);
  }
}

// The source is an enum (config/modes/run_modes.h): an unknown name is refused where it is parsed.
TEST(ValidationSourceTest, UnknownSourceIsRefused) {
  absl::StatusOr<ValidationSource> bad = ParseMode<ValidationSource>("test");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("unused | own"), std::string::npos) << bad.status();
  EXPECT_FALSE(RunConfigFromToml("validation-source = \"test\"\n").ok());
}

}  // namespace
}  // namespace lfl
