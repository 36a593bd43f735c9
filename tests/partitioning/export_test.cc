// ExportPartition / LoadClientFiles: what a client reads back from its directory is exactly its
// own images and labels (training + validation, then its test split), in every format; broken
// client files are refused with the file named; lotteryfl-partition --export writes the layout.
#include "partitioning/export.h"

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "partitioning/partition.h"
#include "tests/partitioning/test_files.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

Dataset MakeDataset(const std::string& name, int64_t channels, int64_t side, int64_t classes) {
  Dataset data;
  data.name = name;
  data.channels = channels;
  data.height = data.width = side;
  data.num_classes = classes;
  data.train = test::MakeSplit(40 * classes, data.image_bytes(), classes, 1);
  data.test = test::MakeSplit(20 * classes, data.image_bytes(), classes, 2);
  return data;
}

// split[indices] as a split of its own.
Split Select(const Split& split, const std::vector<int64_t>& indices, int64_t image_bytes) {
  Split out;
  for (int64_t i : indices) {
    out.labels.push_back(split.labels[i]);
    out.images.insert(out.images.end(), split.images.begin() + i * image_bytes,
                      split.images.begin() + (i + 1) * image_bytes);
  }
  return out;
}

Partition Shards(const Dataset& data, int64_t clients) {
  PartitionOptions options;
  options.clients = clients;
  options.samples_per_class = 10;
  options.test_per_client = 15;
  options.validation_fraction = 0.2;
  absl::StatusOr<Partition> partition = MakePartition(data, options);
  EXPECT_TRUE(partition.ok()) << partition.status();
  return *partition;
}

// Exports `data` and checks that every client's directory reads back as its own images.
void ExpectRoundTrip(const Dataset& data) {
  const Partition partition = Shards(data, 4);
  const std::string dir = test::MakeTempDir();
  ASSERT_TRUE(ExportPartition(data, partition, dir).ok());
  for (const ClientSplit& client : partition.clients) {
    SCOPED_TRACE(client.id);
    ASSERT_FALSE(client.validation.empty());
    absl::StatusOr<Dataset> own =
        LoadClientFiles(*ParseMode<DatasetKind>(data.name), dir + "/" + ClientDirName(client.id));
    ASSERT_TRUE(own.ok()) << own.status();
    EXPECT_EQ(own->channels, data.channels);
    EXPECT_EQ(own->height, data.height);
    EXPECT_EQ(own->width, data.width);
    std::vector<int64_t> train = client.train;
    train.insert(train.end(), client.validation.begin(), client.validation.end());
    const Split want_train = Select(data.train, train, data.image_bytes());
    const Split want_test = Select(data.test, client.test, data.image_bytes());
    EXPECT_EQ(own->train.labels, want_train.labels);
    EXPECT_EQ(own->train.images, want_train.images);
    EXPECT_EQ(own->test.labels, want_test.labels);
    EXPECT_EQ(own->test.images, want_test.images);
  }
}

TEST(ExportTest, IdxClientReadsBackItsOwnImages) {
  ExpectRoundTrip(MakeDataset("mnist", 1, 28, 10));
}

TEST(ExportTest, EmnistFilesAreTransposedAndOffsetLikeTheOriginals) {
  // letters: stored labels 1..26 and column-major images; the pattern images are not symmetric,
  // so a missing or double transposition changes the bytes read back.
  const Dataset data = MakeDataset("emnist-letters", 1, 28, 26);
  ExpectRoundTrip(data);
  const std::string dir = test::MakeTempDir();
  ASSERT_TRUE(ExportPartition(data, Shards(data, 4), dir).ok());
  const std::vector<uint8_t> labels =
      test::ReadRaw(dir + "/client-0/emnist-letters-train-labels-idx1-ubyte");
  ASSERT_GT(labels.size(), 8u);
  for (size_t i = 8; i < labels.size(); ++i) {
    EXPECT_GE(labels[i], 1);
    EXPECT_LE(labels[i], 26);
  }
}

TEST(ExportTest, CifarClientReadsBackItsOwnImages) {
  ExpectRoundTrip(MakeDataset("cifar10", 3, 32, 10));
}

TEST(ExportTest, WritesOnlyTheStandardFiles) {
  const Dataset data = MakeDataset("fashion-mnist", 1, 28, 10);
  const std::string dir = test::MakeTempDir();
  ASSERT_TRUE(ExportPartition(data, Shards(data, 2), dir).ok());
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir + "/client-1")) {
    names.push_back(entry.path().filename().string());
  }
  EXPECT_THAT(names,
              ::testing::UnorderedElementsAre("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"));
}

TEST(ExportTest, RefusesInputNoiseAndPartitionsThatDoNotFit) {
  const Dataset data = MakeDataset("mnist", 1, 28, 10);
  PartitionOptions options;
  options.scheme = PartitionScheme::kNoise;
  options.clients = 3;
  options.test_per_client = 10;
  absl::StatusOr<Partition> noisy = MakePartition(data, options);
  ASSERT_TRUE(noisy.ok()) << noisy.status();
  absl::Status s = ExportPartition(data, *noisy, test::MakeTempDir());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("noise"));

  Partition too_big = Shards(data, 2);
  too_big.clients[1].test.push_back(data.test.size());
  s = ExportPartition(data, too_big, test::MakeTempDir());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;

  // A dataset that is no known one has no standard files: refused with the choices.
  Dataset synthetic = MakeDataset("synthetic", 1, 28, 10);
  s = ExportPartition(synthetic, Shards(synthetic, 2), test::MakeTempDir());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("'synthetic'"));
  EXPECT_THAT(s.message(), HasSubstr("fashion-mnist | mnist"));
}

class LoadClientFilesTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::MakeTempDir(); }
  void Write(const std::string& stem, const Split& split, uint32_t side) {
    test::WriteMnistFiles(dir_, "", stem, split, side, side, false);
  }
  std::string dir_;
};

TEST_F(LoadClientFilesTest, MissingDirectoryNamesTheFile) {
  absl::StatusOr<Dataset> data = LoadClientFiles(DatasetKind::kFashionMnist, dir_ + "/client-9");
  EXPECT_TRUE(absl::IsNotFound(data.status())) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr(dir_ + "/client-9/train-images-idx3-ubyte"));
  data = LoadClientFiles(DatasetKind::kCifar10, dir_);
  EXPECT_TRUE(absl::IsNotFound(data.status())) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr(dir_ + "/data_batch_1.bin"));
}

TEST_F(LoadClientFilesTest, WrongImageSizeNamesTheFile) {
  Write("train", test::MakeSplit(10, 14 * 14, 10), 14);
  Write("t10k", test::MakeSplit(10, 14 * 14, 10), 14);
  absl::StatusOr<Dataset> data = LoadClientFiles(DatasetKind::kFashionMnist, dir_);
  EXPECT_TRUE(absl::IsInvalidArgument(data.status())) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("train-images-idx3-ubyte"));
  EXPECT_THAT(data.status().message(), HasSubstr("14x14"));
}

TEST_F(LoadClientFilesTest, LabelOutOfRangeNamesTheFile) {
  Write("train", test::MakeSplit(10, 28 * 28, 10), 28);
  Write("t10k", test::MakeSplit(12, 28 * 28, 12), 28);  // labels 10 and 11
  absl::StatusOr<Dataset> data = LoadClientFiles(DatasetKind::kMnist, dir_);
  EXPECT_TRUE(absl::IsDataLoss(data.status())) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("t10k-labels-idx1-ubyte"));
}

TEST_F(LoadClientFilesTest, EmptySplitsAreRefused) {
  Write("train", test::MakeSplit(0, 28 * 28, 10), 28);
  Write("t10k", test::MakeSplit(10, 28 * 28, 10), 28);
  absl::StatusOr<Dataset> data = LoadClientFiles(DatasetKind::kMnist, dir_);
  EXPECT_TRUE(absl::IsInvalidArgument(data.status())) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("train-images-idx3-ubyte"));
  Write("train", test::MakeSplit(10, 28 * 28, 10), 28);
  Write("t10k", test::MakeSplit(0, 28 * 28, 10), 28);
  data = LoadClientFiles(DatasetKind::kMnist, dir_);
  EXPECT_TRUE(absl::IsInvalidArgument(data.status())) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("t10k-images-idx3-ubyte"));
}

TEST_F(LoadClientFilesTest, WrongFormatNamesTheFile) {
  // CIFAR records where IDX files are expected: the magic is wrong.
  test::WriteFile(dir_ + "/train-images-idx3-ubyte", std::vector<uint8_t>(3073 * 2, 1));
  test::WriteFile(dir_ + "/train-labels-idx1-ubyte", test::IdxLabels({1, 2}));
  absl::StatusOr<Dataset> data = LoadClientFiles(DatasetKind::kMnist, dir_);
  EXPECT_TRUE(absl::IsDataLoss(data.status())) << data.status();
  EXPECT_THAT(data.status().message(), HasSubstr("train-images-idx3-ubyte"));
}

struct CliRun {
  int exit_code = -1;
  std::string output;
};

CliRun RunPartition(const std::string& args) {
  const std::string command = std::string(LFL_PARTITION_BIN) + " " + args + " 2>&1";
  CliRun run;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return run;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) run.output.append(buffer, n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

TEST(ExportCliTest, ExportWritesEveryClientsDirectory) {
  const std::string data_dir = test::MakeTempDir();
  test::WriteMnistFiles(data_dir, "", "train", test::MakeSplit(500, 28 * 28, 10), 28, 28, true);
  test::WriteMnistFiles(data_dir, "", "t10k", test::MakeSplit(300, 28 * 28, 10), 28, 28, true);
  const std::string out = test::MakeTempDir() + "/export";
  const CliRun run = RunPartition("--dataset mnist --data-dir " + data_dir +
                                  " --clients 3 --samples-per-class 10 --test-per-client 20"
                                  " --validation-fraction 0.2 --export " +
                                  out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr(out));
  for (int k = 0; k < 3; ++k) {
    absl::StatusOr<Dataset> own = LoadClientFiles(DatasetKind::kMnist, out + "/client-" + std::to_string(k));
    ASSERT_TRUE(own.ok()) << own.status();
    EXPECT_EQ(own->train.size(), 2 * 10 + 4);  // 2 classes x 10, + ceil(0.2 x 20) validation
    EXPECT_EQ(own->test.size(), 20);
  }
  EXPECT_FALSE(std::filesystem::exists(out + "/client-3"));

  const CliRun noisy = RunPartition("--dataset mnist --data-dir " + data_dir +
                                    " --partition noise --clients 3 --export " + out);
  EXPECT_EQ(noisy.exit_code, 2) << noisy.output;
  EXPECT_THAT(noisy.output, HasSubstr("noise"));
}

}  // namespace
}  // namespace lfl
