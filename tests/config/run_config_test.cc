#include "config/run_config.h"

#include <CLI/CLI.hpp>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

TEST(RunConfigTest, TomlRoundTripKeepsEveryField) {
  RunConfig c;
  c.dataset = DatasetKind::kCifar10;
  c.partition = PartitionScheme::kDirichlet;
  c.local_epochs = 60;
  c.lr = 0.0123456789;
  c.weighted = false;
  c.seed = 42;
  c.out = "runs/with \"quotes\"";
  absl::StatusOr<RunConfig> back = RunConfigFromToml(RunConfigToToml(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(RunConfigToToml(*back), RunConfigToToml(c));
  EXPECT_EQ(back->lr, c.lr);
  EXPECT_EQ(back->out, c.out);
  EXPECT_DOUBLE_EQ(back->EffectiveTargetDensity(), 0.5);
}

TEST(RunConfigTest, UnknownKeyIsAnError) {
  EXPECT_FALSE(RunConfigFromToml("no-such-key = 3\n").ok());
}

TEST(RunConfigTest, TomlStringsRoundTripQuotesBackslashesAndNewlines) {
  for (const std::string& tricky :
       {std::string("runs/with \"quotes\""), std::string("C:\\runs\\a\\"), std::string("two\nlines\r\n"),
        std::string("tab\there, ''' triple ''' and \"\"\" quotes"), std::string("\x01 control \x7f"),
        std::string("unicode: \xce\xb8\xe2\x8a\x99m")}) {
    RunConfig c;
    c.out = tricky;
    c.data_dir = tricky + "/data";
    const std::string toml = RunConfigToToml(c);
    absl::StatusOr<RunConfig> back = RunConfigFromToml(toml);
    ASSERT_TRUE(back.ok()) << back.status() << "\n" << toml;
    EXPECT_EQ(back->out, tricky) << toml;
    EXPECT_EQ(back->data_dir, tricky + "/data") << toml;
  }
}

TEST(RunConfigTest, TomlNumbersRoundTripExactly) {
  RunConfig c;
  c.lr = 1.0 / 3.0;
  c.beta = 1e-300;
  c.target_density = -1;
  c.bsq_alpha = 0;
  c.seed = std::numeric_limits<uint64_t>::max();  // above int64: written as a decimal string
  c.rounds = std::numeric_limits<int64_t>::max();
  absl::StatusOr<RunConfig> back = RunConfigFromToml(RunConfigToToml(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->lr, c.lr);
  EXPECT_EQ(back->beta, c.beta);
  EXPECT_EQ(back->target_density, -1);
  EXPECT_EQ(back->seed, c.seed);
  EXPECT_EQ(back->rounds, c.rounds);
}

TEST(RunConfigTest, TomlValuesOfTheWrongTypeAreErrors) {
  EXPECT_TRUE(RunConfigFromToml("rounds = 3\nlr = 1\n").ok()) << "an integer is a valid double";
  EXPECT_FALSE(RunConfigFromToml("rounds = 2.5\n").ok());
  EXPECT_FALSE(RunConfigFromToml("rounds = \"3\"\n").ok());
  EXPECT_FALSE(RunConfigFromToml("weighted = 1\n").ok());
  EXPECT_FALSE(RunConfigFromToml("dataset = 3\n").ok());
  EXPECT_FALSE(RunConfigFromToml("seed = -1\n").ok());
  EXPECT_FALSE(RunConfigFromToml("[table]\nrounds = 3\n").ok());
  EXPECT_FALSE(RunConfigFromToml("rounds = 3\nrounds = 4\n").ok()) << "duplicate keys";
  EXPECT_FALSE(RunConfigFromToml("out = \"unterminated\n").ok());
  EXPECT_FALSE(RunConfigFromToml("rounds = 0\n").ok()) << "validated like flags";
}

TEST(RunConfigTest, FlagsOverrideDefaults) {
  RunConfig c;
  CLI::App app;
  AddRunConfigFlags(app, c);
  std::vector<std::string> args = {"--rounds", "7", "--algorithm", "lotteryfl"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(c.rounds, 7);
  EXPECT_EQ(c.algorithm, Algorithm::kLotteryFl);
}

TEST(RunConfigTest, ModesAreParsedOnceAndUnknownNamesRefused) {
  RunConfig c;
  CLI::App app;
  AddRunConfigFlags(app, c);
  std::vector<std::string> args = {"--quant", "int3"};
  std::reverse(args.begin(), args.end());
  try {
    app.parse(args);
    ADD_FAILURE() << "--quant int3 was accepted";
  } catch (const CLI::ParseError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("none | uniform8 | uniform4 | uniform2 | bsq"));
  }
  absl::StatusOr<RunConfig> toml = RunConfigFromToml("quant = \"int3\"\n");
  ASSERT_FALSE(toml.ok());
  EXPECT_THAT(toml.status().message(), ::testing::HasSubstr("'quant'"));
  // Names round-trip through TOML.
  c.quant = QuantMode::kBsq;
  c.client_data = ClientDataSource::kLocal;
  absl::StatusOr<RunConfig> back = RunConfigFromToml(RunConfigToToml(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->quant, QuantMode::kBsq);
  EXPECT_EQ(back->client_data, ClientDataSource::kLocal);
  EXPECT_EQ(ModeName(Algorithm::kFedAvg), "fedavg");
}

// The dataset and the partition scheme are closed sets too: parsed once from the flag or the
// key, unknown names refused with the choices, and written back under the same names.
TEST(RunConfigTest, DatasetAndPartitionAreModes) {
  for (const auto& [flag, bad, choices] :
       {std::tuple("--dataset", "imagenet", "fashion-mnist | mnist | emnist-balanced"),
        std::tuple("--partition", "pathological", "iid | shards | dirichlet | quantity | noise | shared")}) {
    RunConfig c;
    CLI::App app;
    AddRunConfigFlags(app, c);
    std::vector<std::string> args = {flag, bad};
    std::reverse(args.begin(), args.end());
    try {
      app.parse(args);
      ADD_FAILURE() << flag << " " << bad << " was accepted";
    } catch (const CLI::ParseError& e) {
      EXPECT_THAT(e.what(), ::testing::HasSubstr(choices));
      EXPECT_THAT(e.what(), ::testing::HasSubstr(bad));
    }
  }
  absl::StatusOr<RunConfig> toml = RunConfigFromToml("partition = \"pathological\"\n");
  ASSERT_FALSE(toml.ok());
  EXPECT_THAT(toml.status().message(), ::testing::HasSubstr("'partition'"));
  EXPECT_THAT(toml.status().message(), ::testing::HasSubstr("iid | shards"));
  EXPECT_FALSE(RunConfigFromToml("dataset = \"emnist-nope\"\n").ok());

  RunConfig c;
  CLI::App app;
  AddRunConfigFlags(app, c);
  std::vector<std::string> args = {"--dataset", "emnist-letters", "--partition", "quantity"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(c.dataset, DatasetKind::kEmnistLetters);
  EXPECT_EQ(c.partition, PartitionScheme::kQuantity);
  EXPECT_TRUE(IsEmnist(c.dataset));
  EXPECT_FALSE(IsEmnist(DatasetKind::kMnist));
  // The files keep the names: TOML and JSON (summary.json) say "emnist-letters", "quantity".
  EXPECT_THAT(RunConfigToToml(c), ::testing::ContainsRegex("dataset = .emnist-letters."));
  EXPECT_THAT(RunConfigToToml(c), ::testing::ContainsRegex("partition = .quantity."));
  EXPECT_THAT(RunConfigToJson(c), ::testing::HasSubstr("\"dataset\":\"emnist-letters\""));
  EXPECT_THAT(RunConfigToJson(c), ::testing::HasSubstr("\"partition\":\"quantity\""));
  for (const auto& [name, kind] : ModeNames<DatasetKind>()) {
    absl::StatusOr<RunConfig> back = RunConfigFromToml(absl::StrCat("dataset = \"", std::string(name), "\"\n"));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->dataset, kind);
  }
}

TEST(RunConfigTest, ValidationNamesTheFlag) {
  RunConfig c;
  c.fraction = 1.5;
  absl::Status s = ValidateRunConfig(c);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("--fraction"), std::string::npos);
  c.fraction = 0.5;
  c.quant = QuantMode::kBsq;
  EXPECT_TRUE(ValidateRunConfig(c).ok());
  for (double bad : {-0.1, 1.5, std::nan("")}) {
    c.bsq_guard = bad;
    EXPECT_NE(ValidateRunConfig(c).message().find("--bsq-guard"), std::string::npos) << bad;
  }
  c.bsq_guard = 0.05;
  for (int64_t bad : {-1, 9}) {
    c.bsq_min_bits = bad;
    EXPECT_NE(ValidateRunConfig(c).message().find("--bsq-min-bits"), std::string::npos) << bad;
  }
  c.bsq_min_bits = 8;
  EXPECT_TRUE(ValidateRunConfig(c).ok());
}

TEST(RunConfigTest, AggregatorOptionsAreParsedAndValidated) {
  RunConfig c;
  CLI::App app;
  AddRunConfigFlags(app, c);
  std::vector<std::string> args = {"--aggregator", "keeper-median", "--aggregator-min-keepers", "5"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(c.aggregator, AggregatorKind::kKeeperMedian);
  EXPECT_EQ(c.aggregator_min_keepers, 5);
  EXPECT_TRUE(ValidateRunConfig(c).ok());
  c.aggregator_min_keepers = 0;
  EXPECT_THAT(std::string(ValidateRunConfig(c).message()), ::testing::HasSubstr("--aggregator-min-keepers"));
  c.aggregator_min_keepers = 1;
  c.aggregator = AggregatorKind::kKeeperTrimmedMean;
  for (double ok : {0.0, 0.2, 0.49}) {
    c.aggregator_trim = ok;
    EXPECT_TRUE(ValidateRunConfig(c).ok()) << ok;
  }
  for (double bad : {-0.1, 0.5, std::nan("")}) {
    c.aggregator_trim = bad;
    EXPECT_THAT(std::string(ValidateRunConfig(c).message()), ::testing::HasSubstr("--aggregator-trim")) << bad;
  }
  c.aggregator_trim = 0.2;
  for (std::string name : {"masked-mean", "keeper-median", "keeper-trimmed-mean", "dense-median"}) {
    absl::StatusOr<RunConfig> back = RunConfigFromToml("aggregator = \"" + name + "\"\n");
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(ModeName(back->aggregator), name);
  }
}

TEST(RunConfigTest, FedProxParsesFromFlagsAndToml) {
  RunConfig c;
  EXPECT_EQ(c.proximal_mu, 0.01);
  CLI::App app;
  AddRunConfigFlags(app, c);
  std::vector<std::string> args = {"--algorithm", "fedprox", "--proximal-mu", "0.5"};
  std::reverse(args.begin(), args.end());
  app.parse(args);
  EXPECT_EQ(c.algorithm, Algorithm::kFedProx);
  EXPECT_EQ(c.proximal_mu, 0.5);
  EXPECT_EQ(ModeName(Algorithm::kFedProx), "fedprox");
  EXPECT_TRUE(TrainsTickets(Algorithm::kFedProx));
  absl::StatusOr<RunConfig> back = RunConfigFromToml(RunConfigToToml(c));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->algorithm, Algorithm::kFedProx);
  EXPECT_EQ(back->proximal_mu, 0.5);
  absl::StatusOr<RunConfig> toml = RunConfigFromToml("algorithm = \"fedprox\"\nproximal-mu = 2\n");
  ASSERT_TRUE(toml.ok()) << toml.status();
  EXPECT_EQ(toml->proximal_mu, 2.0);
}

TEST(RunConfigTest, ProximalMuMustBeFiniteAndNonNegative) {
  RunConfig c;
  c.algorithm = Algorithm::kFedProx;
  for (double good : {0.0, 0.01, 10.0}) {
    c.proximal_mu = good;
    EXPECT_TRUE(ValidateRunConfig(c).ok()) << good;
  }
  for (double bad : {-0.01, std::nan(""), std::numeric_limits<double>::infinity()}) {
    c.proximal_mu = bad;
    absl::Status s = ValidateRunConfig(c);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(s.message(), ::testing::HasSubstr("--proximal-mu")) << bad;
  }
  EXPECT_FALSE(RunConfigFromToml("proximal-mu = -1\n").ok()) << "validated like flags";
}

TEST(RunConfigTest, ParsesIdRanges) {
  auto ids = ParseIdRanges("0-2,5,4");
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(*ids, (std::vector<int64_t>{0, 1, 2, 4, 5}));
  EXPECT_FALSE(ParseIdRanges("5-2").ok());
  EXPECT_FALSE(ParseIdRanges("a-b").ok());
  EXPECT_FALSE(ParseIdRanges("").ok());
}

}  // namespace
}  // namespace lfl
