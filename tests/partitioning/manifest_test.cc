#include <dirent.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "partitioning/partition.h"
#include "tests/partitioning/test_files.h"

namespace lfl {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Partition SamplePartition() {
  Partition partition;
  partition.dataset = "fashion-mnist";
  partition.scheme = "noise";
  partition.seed = 18446744073709551615u;  // the largest seed must survive the round trip
  partition.clients = {
      ClientSplit{0, {3, 1, 4}, {15}, {9, 2}, 0.0f},
      ClientSplit{1, {5, 92}, {}, {6, 5, 3}, 0.1f},
      ClientSplit{2, {}, {}, {}, 1.0f / 3.0f},
  };
  return partition;
}

void ExpectSamePartition(const Partition& a, const Partition& b) {
  EXPECT_EQ(a.dataset, b.dataset);
  EXPECT_EQ(a.scheme, b.scheme);
  EXPECT_EQ(a.seed, b.seed);
  ASSERT_EQ(a.clients.size(), b.clients.size());
  for (size_t i = 0; i < a.clients.size(); ++i) {
    EXPECT_EQ(a.clients[i].id, b.clients[i].id);
    EXPECT_EQ(a.clients[i].train, b.clients[i].train);
    EXPECT_EQ(a.clients[i].validation, b.clients[i].validation);
    EXPECT_EQ(a.clients[i].test, b.clients[i].test);
    EXPECT_EQ(a.clients[i].noise_sigma, b.clients[i].noise_sigma);  // bit-exact
  }
}

TEST(ManifestTest, JsonRoundTripIsExact) {
  const Partition partition = SamplePartition();
  absl::StatusOr<Partition> parsed = PartitionFromJson(PartitionToJson(partition));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ExpectSamePartition(partition, *parsed);
}

TEST(ManifestTest, JsonHasTheDocumentedShape) {
  const std::string json = PartitionToJson(SamplePartition());
  EXPECT_THAT(json, HasSubstr("\"dataset\":\"fashion-mnist\""));
  EXPECT_THAT(json, HasSubstr("{\"id\":0,\"train\":[3,1,4],\"validation\":[15],\"test\":[9,2]"));
  EXPECT_THAT(json, HasSubstr("\"noise_sigma\":0.1}"));
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = opendir(dir.c_str());
  while (dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(d);
  return names;
}

TEST(ManifestTest, FileRoundTripLeavesNoTemporaryFile) {
  const std::string dir = test::MakeTempDir();
  const std::string path = dir + "/partition.json";
  ASSERT_TRUE(WritePartition(SamplePartition(), path).ok());
  ASSERT_TRUE(WritePartition(SamplePartition(), path).ok());  // replaces
  absl::StatusOr<Partition> read = ReadPartition(path);
  ASSERT_TRUE(read.ok()) << read.status();
  ExpectSamePartition(SamplePartition(), *read);
  EXPECT_THAT(ListDir(dir), ElementsAre("partition.json"));
}

TEST(ManifestTest, UnwritableDirectoryIsAnError) {
  EXPECT_FALSE(WritePartition(SamplePartition(), "/nonexistent/lfl/p.json").ok());
}

TEST(ManifestTest, MissingFileIsNotFoundNamingIt) {
  const absl::Status status = ReadPartition("/nonexistent/lfl/p.json").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/lfl/p.json"));
}

TEST(ManifestTest, CorruptManifestsAreRefused) {
  const std::string good = PartitionToJson(SamplePartition());
  const auto replaced = [&](const std::string& from, const std::string& to) {
    std::string text = good;
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return text.replace(at, from.size(), to);
  };
  const std::string corrupt[] = {
      "",
      "[]",
      good.substr(0, good.size() / 2),
      replaced("\"dataset\":\"fashion-mnist\",", ""),
      replaced("\"seed\":18446744073709551615", "\"seed\":-1"),
      replaced("\"clients\":[", "\"clients\":{\"x\":["),
      replaced("\"train\":[3,1,4]", "\"train\":[3,-1,4]"),
      replaced("\"train\":[3,1,4]", "\"train\":[3,1.5,4]"),
      replaced("\"train\":[3,1,4]", "\"train\":\"3,1,4\""),
      replaced("\"train\":[3,1,4]", "\"train\":[3,1,5]"),  // 5 is also client 1's
      replaced(",\"validation\":[15]", ""),
      replaced("{\"id\":1,", "{\"id\":7,"),
      replaced("\"noise_sigma\":0.1", "\"noise_sigma\":-0.1"),
      replaced("\"noise_sigma\":0.1", "\"noise_sigma\":\"high\""),
  };
  for (const std::string& text : corrupt) {
    const absl::Status status = PartitionFromJson(text).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << text;
  }
}

TEST(ManifestTest, CorruptFileErrorNamesTheFile) {
  const std::string dir = test::MakeTempDir();
  const std::string text = PartitionToJson(SamplePartition());
  test::WriteFile(dir + "/cut.json", std::vector<uint8_t>(text.begin(), text.begin() + 40));
  const absl::Status status = ReadPartition(dir + "/cut.json").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/cut.json"));
}

}  // namespace
}  // namespace lfl
