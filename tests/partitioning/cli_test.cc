// Runs the lotteryfl-partition binary: flags, exit codes, manifest on disk.
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "partitioning/partition.h"
#include "tests/partitioning/test_files.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

struct CliRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr
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

// A 10-class MNIST-format dataset with 50 training and 30 test images a class.
std::string WriteSmallMnist() {
  const std::string dir = test::MakeTempDir();
  test::WriteMnistFiles(dir, "", "train", test::MakeSplit(500, 28 * 28, 10), 28, 28, true);
  test::WriteMnistFiles(dir, "", "t10k", test::MakeSplit(300, 28 * 28, 10), 28, 28, true);
  return dir;
}

TEST(PartitionCliTest, HelpExplainsTheFlags) {
  const CliRun run = RunPartition("--help");
  EXPECT_EQ(run.exit_code, 0);
  for (const char* flag : {"--dataset", "--data-dir", "--partition", "--clients",
                           "--classes-per-client", "--samples-per-class", "--beta", "--min-samples",
                           "--noise-sigma", "--test-per-client", "--seed", "--out"}) {
    EXPECT_THAT(run.output, HasSubstr(flag));
  }
}

TEST(PartitionCliTest, WritesTheManifestAndPrintsTheTable) {
  const std::string dir = WriteSmallMnist();
  const std::string out = dir + "/p.json";
  const CliRun run = RunPartition("--dataset mnist --data-dir " + dir +
                                  " --partition shards --clients 5 --classes-per-client 2"
                                  " --samples-per-class 10 --test-per-client 20 --seed 3 --out " +
                                  out);
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("classes/client:"));
  absl::StatusOr<Partition> partition = ReadPartition(out);
  ASSERT_TRUE(partition.ok()) << partition.status();
  EXPECT_EQ(partition->dataset, "mnist");
  EXPECT_EQ(partition->seed, 3u);
  ASSERT_EQ(partition->clients.size(), 5u);
  for (const ClientSplit& client : partition->clients) EXPECT_EQ(client.train.size(), 20u);
}

TEST(PartitionCliTest, BadInputExitsWithTwo) {
  const std::string dir = WriteSmallMnist();
  const std::string data = "--dataset mnist --data-dir " + dir;
  const std::string bad[] = {
      "--no-such-flag",
      data + " --clients 0",
      data + " --clients ten",
      data + " --partition pathological",
      data + " --partition dirichlet --beta 0",
      data + " --classes-per-client 11",
      data + " --clients 100",  // 100 × 2 × 20 images exceed 50 a class
      "--dataset mnist --data-dir " + dir + "/missing",
  };
  for (const std::string& args : bad) {
    const CliRun run = RunPartition(args);
    EXPECT_EQ(run.exit_code, 2) << args << "\n" << run.output;
    EXPECT_FALSE(run.output.empty()) << args;
  }
}

TEST(PartitionCliTest, UnknownNamesListTheChoices) {
  CliRun run = RunPartition("--dataset imagenet");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("imagenet"));
  EXPECT_THAT(run.output, HasSubstr("fashion-mnist | mnist | emnist-balanced"));
  run = RunPartition("--partition pathological");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("iid | shards | dirichlet | quantity | noise | shared"));
  run = RunPartition("--partition shared");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("load tests"));
}

TEST(PartitionCliTest, MissingDataNamesTheFile) {
  const CliRun run = RunPartition("--dataset mnist --data-dir /nonexistent/lfl");
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("/nonexistent/lfl/train-images-idx3-ubyte"));
}

}  // namespace
}  // namespace lfl
