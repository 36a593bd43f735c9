#include "partitioning/dataset.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/partitioning/test_files.h"

namespace lfl {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr uint32_t kSide = 28;
constexpr int64_t kImageBytes = kSide * kSide;

TEST(ReadMaybeGzipTest, PlainAndGzipGiveTheSameBytes) {
  const std::string dir = test::MakeTempDir();
  const std::vector<uint8_t> bytes = test::PatternImages(3, 5000);
  test::WriteFile(dir + "/plain", bytes);
  test::WriteGzip(dir + "/packed.gz", bytes);
  EXPECT_THAT(*ReadMaybeGzip(dir + "/plain"), ElementsAreArray(bytes));
  EXPECT_THAT(*ReadMaybeGzip(dir + "/packed.gz"), ElementsAreArray(bytes));
}

TEST(ReadMaybeGzipTest, TruncatedGzipIsAnErrorNamingTheFile) {
  const std::string dir = test::MakeTempDir();
  test::WriteGzip(dir + "/whole.gz", test::PatternImages(10, kImageBytes));
  std::vector<uint8_t> compressed = test::ReadRaw(dir + "/whole.gz");
  compressed.resize(compressed.size() / 2);
  test::WriteFile(dir + "/cut.gz", compressed);
  absl::StatusOr<std::vector<uint8_t>> read = ReadMaybeGzip(dir + "/cut.gz");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(read.status().message(), HasSubstr(dir + "/cut.gz"));
}

TEST(ReadMaybeGzipTest, MissingFileIsNotFound) {
  absl::StatusOr<std::vector<uint8_t>> read = ReadMaybeGzip("/nonexistent/lfl/file");
  EXPECT_EQ(read.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(read.status().message(), HasSubstr("/nonexistent/lfl/file"));
}

TEST(ReadIdxTest, ReadsImagesAndLabels) {
  const std::string dir = test::MakeTempDir();
  const Split expected = test::MakeSplit(5, 4 * 3, 10);
  test::WriteFile(dir + "/images", test::IdxImages(expected.images, 4, 3));
  test::WriteGzip(dir + "/labels.gz", test::IdxLabels(expected.labels));
  Split split;
  int64_t height = 0, width = 0;
  ASSERT_TRUE(ReadIdxImages(dir + "/images", &split, &height, &width).ok());
  ASSERT_TRUE(ReadIdxLabels(dir + "/labels.gz", &split).ok());
  EXPECT_EQ(height, 4);
  EXPECT_EQ(width, 3);
  EXPECT_THAT(split.images, ElementsAreArray(expected.images));
  EXPECT_THAT(split.labels, ElementsAreArray(expected.labels));
}

TEST(ReadIdxTest, TruncatedImagesAreAnErrorNamingTheFile) {
  const std::string dir = test::MakeTempDir();
  std::vector<uint8_t> file = test::IdxImages(test::PatternImages(4, kImageBytes), kSide, kSide);
  file.pop_back();
  test::WriteFile(dir + "/images", file);
  Split split;
  int64_t height = 0, width = 0;
  const absl::Status status = ReadIdxImages(dir + "/images", &split, &height, &width);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(dir + "/images"), HasSubstr("truncated")));
}

TEST(ReadIdxTest, TruncatedHeaderIsAnError) {
  const std::string dir = test::MakeTempDir();
  test::WriteFile(dir + "/labels", {0, 0, 8, 1, 0});
  Split split;
  const absl::Status status = ReadIdxLabels(dir + "/labels", &split);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/labels"));
}

TEST(ReadIdxTest, WrongMagicIsAnError) {
  const std::string dir = test::MakeTempDir();
  // A label file where an image file is expected.
  test::WriteFile(dir + "/images", test::IdxLabels(test::CyclingLabels(20, 10)));
  Split split;
  int64_t height = 0, width = 0;
  const absl::Status status = ReadIdxImages(dir + "/images", &split, &height, &width);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), AllOf(HasSubstr(dir + "/images"), HasSubstr("magic")));
}

TEST(ReadIdxTest, TrailingBytesAreAnError) {
  const std::string dir = test::MakeTempDir();
  std::vector<uint8_t> file = test::IdxLabels({1, 2, 3});
  file.push_back(4);
  test::WriteFile(dir + "/labels", file);
  Split split;
  EXPECT_EQ(ReadIdxLabels(dir + "/labels", &split).code(), absl::StatusCode::kDataLoss);
}

TEST(LoadDatasetTest, LoadsMnistFromPlainAndGzipFiles) {
  const std::string dir = test::MakeTempDir();
  const Split train = test::MakeSplit(30, kImageBytes, 10, 1);
  const Split test_split = test::MakeSplit(12, kImageBytes, 10, 2);
  test::WriteMnistFiles(dir, "", "train", train, kSide, kSide, /*gzip=*/false);
  test::WriteMnistFiles(dir, "", "t10k", test_split, kSide, kSide, /*gzip=*/true);
  absl::StatusOr<Dataset> data = LoadDataset(DatasetKind::kMnist, dir);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->name, "mnist");
  EXPECT_EQ(data->num_classes, 10);
  EXPECT_EQ(data->image_bytes(), kImageBytes);
  EXPECT_THAT(data->train.images, ElementsAreArray(train.images));
  EXPECT_THAT(data->train.labels, ElementsAreArray(train.labels));
  EXPECT_THAT(data->test.images, ElementsAreArray(test_split.images));
  EXPECT_THAT(data->test.labels, ElementsAreArray(test_split.labels));
}

TEST(LoadDatasetTest, ImageAndLabelCountMismatchNamesBothFiles) {
  const std::string dir = test::MakeTempDir();
  Split train = test::MakeSplit(6, kImageBytes, 10);
  train.labels.pop_back();
  test::WriteMnistFiles(dir, "", "train", train, kSide, kSide, false);
  test::WriteMnistFiles(dir, "", "t10k", test::MakeSplit(4, kImageBytes, 10), kSide, kSide, false);
  const absl::Status status = LoadDataset(DatasetKind::kFashionMnist, dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("train-images-idx3-ubyte"), HasSubstr("train-labels-idx1-ubyte")));
}

TEST(LoadDatasetTest, LabelOutOfRangeNamesTheLabelFile) {
  const std::string dir = test::MakeTempDir();
  Split train = test::MakeSplit(6, kImageBytes, 10);
  train.labels[3] = 10;
  test::WriteMnistFiles(dir, "", "train", train, kSide, kSide, false);
  test::WriteMnistFiles(dir, "", "t10k", test::MakeSplit(4, kImageBytes, 10), kSide, kSide, false);
  const absl::Status status = LoadDataset(DatasetKind::kMnist, dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("train-labels-idx1-ubyte"), HasSubstr("10")));
}

TEST(LoadDatasetTest, MissingFileIsNotFoundNamingIt) {
  const std::string dir = test::MakeTempDir();
  test::WriteMnistFiles(dir, "", "train", test::MakeSplit(6, kImageBytes, 10), kSide, kSide, false);
  const absl::Status status = LoadDataset(DatasetKind::kMnist, dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/t10k-images-idx3-ubyte"));
}

TEST(LoadDatasetTest, TestImagesOfAnotherSizeAreRefused) {
  const std::string dir = test::MakeTempDir();
  test::WriteMnistFiles(dir, "", "train", test::MakeSplit(6, kImageBytes, 10), kSide, kSide, false);
  test::WriteMnistFiles(dir, "", "t10k", test::MakeSplit(4, 16, 10), 4, 4, false);
  EXPECT_EQ(LoadDataset(DatasetKind::kMnist, dir).status().code(), absl::StatusCode::kDataLoss);
}

// A dataset is a DatasetKind, parsed once from its name: an unknown name is refused there with
// every choice listed, and every kind's name loads back as that kind.
TEST(LoadDatasetTest, UnknownNameIsInvalidArgument) {
  const absl::Status status = ParseMode<DatasetKind>("imagenet").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("imagenet"));
  EXPECT_THAT(status.message(),
              HasSubstr("fashion-mnist | mnist | emnist-balanced | emnist-byclass | emnist-bymerge | "
                        "emnist-letters | emnist-digits | emnist-mnist | cifar10"));
  for (const auto& [name, kind] : ModeNames<DatasetKind>()) EXPECT_EQ(*ParseMode<DatasetKind>(name), kind);
}

TEST(LoadDatasetTest, DefaultDirectories) {
  EXPECT_EQ(DefaultDataDir(DatasetKind::kFashionMnist), "/usr/share/datasets/fashion-mnist");
  EXPECT_EQ(DefaultDataDir(DatasetKind::kCifar10), "data/cifar10");
}

// EMNIST stores each image column-major; the reader must hand out row-major.
std::vector<uint8_t> Transposed(const std::vector<uint8_t>& images) {
  std::vector<uint8_t> out(images.size());
  for (size_t base = 0; base < images.size(); base += kImageBytes) {
    for (uint32_t r = 0; r < kSide; ++r) {
      for (uint32_t c = 0; c < kSide; ++c) out[base + c * kSide + r] = images[base + r * kSide + c];
    }
  }
  return out;
}

TEST(LoadDatasetTest, EmnistImagesAreTransposedBack) {
  const std::string dir = test::MakeTempDir();
  const Split train = test::MakeSplit(8, kImageBytes, 47, 3);
  const Split test_split = test::MakeSplit(5, kImageBytes, 47, 4);
  for (const auto& [stem, split] : {std::pair("train", &train), std::pair("test", &test_split)}) {
    const Split stored{Transposed(split->images), split->labels};
    test::WriteMnistFiles(dir, "emnist-balanced-", stem, stored, kSide, kSide, true);
  }
  absl::StatusOr<Dataset> data = LoadDataset(DatasetKind::kEmnistBalanced, dir);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 47);
  EXPECT_THAT(data->train.images, ElementsAreArray(train.images));
  EXPECT_THAT(data->test.images, ElementsAreArray(test_split.images));
}

TEST(LoadDatasetTest, EmnistLettersLabelsShiftToZeroBased) {
  const std::string dir = test::MakeTempDir();
  const std::vector<int64_t> stored = test::CyclingLabels(52, 26, /*offset=*/1);  // 1..26
  test::WriteMnistFiles(dir, "emnist-letters-", "train",
                        Split{test::PatternImages(52, kImageBytes), stored}, kSide, kSide, false);
  test::WriteMnistFiles(dir, "emnist-letters-", "test",
                        Split{test::PatternImages(26, kImageBytes), test::CyclingLabels(26, 26, 1)},
                        kSide, kSide, false);
  absl::StatusOr<Dataset> data = LoadDataset(DatasetKind::kEmnistLetters, dir);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->num_classes, 26);
  EXPECT_THAT(data->train.labels, ElementsAreArray(test::CyclingLabels(52, 26)));
}

TEST(LoadDatasetTest, EmnistLettersLabelZeroIsRefused) {
  const std::string dir = test::MakeTempDir();
  const Split zero_based = test::MakeSplit(26, kImageBytes, 26);  // contains label 0
  test::WriteMnistFiles(dir, "emnist-letters-", "train", zero_based, kSide, kSide, false);
  test::WriteMnistFiles(dir, "emnist-letters-", "test", zero_based, kSide, kSide, false);
  const absl::Status status = LoadDataset(DatasetKind::kEmnistLetters, dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("emnist-letters-train-labels-idx1-ubyte"));
}

constexpr int64_t kCifarImage = 3 * 32 * 32;

std::vector<uint8_t> CifarBatch(const Split& split) {
  std::vector<uint8_t> out;
  for (int64_t i = 0; i < split.size(); ++i) {
    out.push_back(static_cast<uint8_t>(split.labels[i]));
    const auto image = split.images.begin() + i * kCifarImage;
    out.insert(out.end(), image, image + kCifarImage);
  }
  return out;
}

TEST(LoadDatasetTest, Cifar10ConcatenatesTheFiveBatches) {
  const std::string dir = test::MakeTempDir();
  Split expected_train;
  for (int b = 1; b <= 5; ++b) {
    const Split batch = test::MakeSplit(3, kCifarImage, 10, b);
    test::WriteFile(dir + "/data_batch_" + std::to_string(b) + ".bin", CifarBatch(batch));
    expected_train.images.insert(expected_train.images.end(), batch.images.begin(),
                                 batch.images.end());
    expected_train.labels.insert(expected_train.labels.end(), batch.labels.begin(),
                                 batch.labels.end());
  }
  const Split test_split = test::MakeSplit(2, kCifarImage, 10, 9);
  test::WriteFile(dir + "/test_batch.bin", CifarBatch(test_split));
  absl::StatusOr<Dataset> data = LoadDataset(DatasetKind::kCifar10, dir);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->channels, 3);
  EXPECT_EQ(data->image_bytes(), kCifarImage);
  EXPECT_THAT(data->train.images, ElementsAreArray(expected_train.images));
  EXPECT_THAT(data->train.labels, ElementsAreArray(expected_train.labels));
  EXPECT_THAT(data->test.labels, ElementsAreArray(test_split.labels));
}

TEST(ReadCifar10BatchTest, TruncatedBatchIsAnErrorNamingTheFile) {
  const std::string dir = test::MakeTempDir();
  std::vector<uint8_t> batch = CifarBatch(test::MakeSplit(2, kCifarImage, 10));
  batch.resize(batch.size() - 100);
  test::WriteFile(dir + "/data_batch_1.bin", batch);
  Split split;
  const absl::Status status = ReadCifar10Batch(dir + "/data_batch_1.bin", &split);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/data_batch_1.bin"));
}

TEST(ReadCifar10BatchTest, LabelOutOfRangeIsAnError) {
  const std::string dir = test::MakeTempDir();
  Split records = test::MakeSplit(2, kCifarImage, 10);
  records.labels[1] = 10;
  test::WriteFile(dir + "/test_batch.bin", CifarBatch(records));
  Split split;
  const absl::Status status = ReadCifar10Batch(dir + "/test_batch.bin", &split);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(status.message(), HasSubstr("test_batch.bin"));
}

// A dataset without its files: the message names every missing file, what the files are, the
// --data-dir flag and lotteryfl-partition --export as the other source, before reading any.
TEST(LoadDatasetTest, Cifar10WithoutFilesNamesEveryExpectedFileAndTheFlag) {
  const std::string dir = test::MakeTempDir();
  const absl::Status status = LoadDataset(DatasetKind::kCifar10, dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  for (const char* file : {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                           "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"}) {
    EXPECT_THAT(status.message(), HasSubstr(dir + "/" + file)) << file;
  }
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("6 of its 6 files missing"), HasSubstr("binary version of CIFAR-10"),
                    HasSubstr("cifar-10-batches-bin"), HasSubstr("--data-dir"),
                    HasSubstr("(now " + dir + ")"), HasSubstr("lotteryfl-partition --export DIR"),
                    HasSubstr("lotteryfl-client --local-data DIR")));
}

TEST(LoadDatasetTest, Cifar10NamesOnlyTheMissingFiles) {
  const std::string dir = test::MakeTempDir();
  for (int b = 1; b <= 3; ++b) {
    test::WriteFile(dir + "/data_batch_" + std::to_string(b) + ".bin",
                    CifarBatch(test::MakeSplit(1, kCifarImage, 10, b)));
  }
  const absl::Status status = LoadDataset(DatasetKind::kCifar10, dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("3 of its 6 files missing: " + dir + "/data_batch_4.bin, " + dir +
                              "/data_batch_5.bin, " + dir + "/test_batch.bin."),
                    Not(HasSubstr(dir + "/data_batch_1.bin"))));
}

TEST(LoadDatasetTest, Cifar10DefaultDirectoryIsNamedAsTheDefault) {
  const absl::Status status = LoadDataset(DatasetKind::kCifar10).status();
  if (status.ok()) GTEST_SKIP() << "data/cifar10 exists in the working directory";
  EXPECT_THAT(status.message(), AllOf(HasSubstr("data/cifar10/data_batch_1.bin"),
                                      HasSubstr("--data-dir"), HasSubstr("(default data/cifar10")));
}

TEST(LoadDatasetTest, EmnistWithoutFilesNamesTheFilesAsTheReaderExpectsThem) {
  const std::string dir = test::MakeTempDir();
  // The training pair present (gzip-compressed, as EMNIST ships it), the test pair not.
  test::WriteMnistFiles(dir, "emnist-letters-", "train", test::MakeSplit(2, kImageBytes, 26, 1),
                        kSide, kSide, true);
  const absl::Status status = LoadDataset(DatasetKind::kEmnistLetters, dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("2 of its 4 files missing: " + dir +
                              "/emnist-letters-test-images-idx3-ubyte[.gz], " + dir +
                              "/emnist-letters-test-labels-idx1-ubyte[.gz]."),
                    Not(HasSubstr("train-images")),
                    HasSubstr("emnist-letters-{train,test}-{images-idx3,labels-idx1}-ubyte.gz"),
                    HasSubstr("--data-dir"), HasSubstr("lotteryfl-partition --export DIR")));
}

}  // namespace
}  // namespace lfl
