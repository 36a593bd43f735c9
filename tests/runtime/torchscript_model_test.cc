// --model torchscript:FILE: a TorchScript file written here from C++ (torch::jit::Module::define
// + save; no Python) becomes a run's model: its layout and prunable tensors, θ0 from the seed for
// weights and biases but the file's own value for other parameters, a LotteryFL update that
// prunes and trains it (fp32 and BSQ), and clear errors for a missing or broken file.
#include <gtest/gtest.h>
#include <torch/script.h>

#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "models/torchscript_net.h"
#include "runtime/local_update.h"
#include "runtime/run_data.h"
#include "tests/partitioning/test_files.h"

namespace lfl {
namespace {

using ::testing::HasSubstr;

// A 784-16-10 MLP with a learned output scale (a 1-D parameter that is neither weight nor bias).
std::string WriteTinyScript(const std::string& dir) {
  torch::jit::Module fc1("fc1"), fc2("fc2"), net("TinyMlp");
  fc1.register_parameter("weight", torch::zeros({16, 784}), false);
  fc1.register_parameter("bias", torch::zeros({16}), false);
  fc2.register_parameter("weight", torch::zeros({10, 16}), false);
  fc2.register_parameter("bias", torch::zeros({10}), false);
  net.register_module("fc1", fc1);
  net.register_module("fc2", fc2);
  net.register_parameter("scale", torch::full({1}, 2.0), false);
  net.define(R"(
def forward(self, x):
    h = torch.relu(torch.matmul(torch.flatten(x, 1), self.fc1.weight.t()) + self.fc1.bias)
    return (torch.matmul(h, self.fc2.weight.t()) + self.fc2.bias) * self.scale
)");
  const std::string path = dir + "/tiny.pt";
  net.save(path);
  return path;
}

// Class-dependent pixels (a bright band per label) so that the MLP can learn them.
std::string WriteDataset() {
  const std::string dir = test::MakeTempDir();
  for (const auto& [stem, count] : {std::pair<std::string, int64_t>("train", 400), {"t10k", 200}}) {
    Split split = test::MakeSplit(count, 28 * 28, 10);
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t p = 0; p < 28 * 28; ++p) {
        split.images[i * 28 * 28 + p] =
            p / 78 == split.labels[i] ? 255 : split.images[i * 28 * 28 + p] / 4;
      }
    }
    test::WriteMnistFiles(dir, "", stem, split, 28, 28, false);
  }
  return dir;
}

class TorchScriptModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::MakeTempDir();
    model_ = "torchscript:" + WriteTinyScript(dir_);
  }
  std::string dir_, model_;
};

TEST_F(TorchScriptModelTest, LayoutPrunableTensorsAndTheta0) {
  ASSERT_TRUE(RegisterTorchScriptModel(model_).ok());
  ASSERT_TRUE(RegisterTorchScriptModel(model_).ok()) << "registering again is a no-op";
  absl::StatusOr<Net> a = MakeNamedNet(model_, NetShape{}, 3);
  ASSERT_TRUE(a.ok()) << a.status();
  const TensorSet set = ToTensorSet(**a);
  std::vector<std::string> names;
  for (const auto& t : set.tensors) names.push_back(t.name + (t.prunable ? " prunable" : ""));
  EXPECT_THAT(names, ::testing::ElementsAre("scale", "fc1.weight prunable", "fc1.bias",
                                            "fc2.weight prunable", "fc2.bias"));
  EXPECT_EQ(set.tensors[0].values, std::vector<float>{2.0f}) << "not a weight: the file's value";
  const TensorSet same = ToTensorSet(**MakeNamedNet(model_, NetShape{}, 3));
  const TensorSet other = ToTensorSet(**MakeNamedNet(model_, NetShape{}, 4));
  for (size_t t = 1; t < set.size(); ++t) {
    EXPECT_EQ(set.tensors[t].values, same.tensors[t].values) << set.tensors[t].name;
    EXPECT_NE(set.tensors[t].values, other.tensors[t].values) << set.tensors[t].name;
  }
  // Two nets do not share tensors: training one leaves the other as it was.
  {
    torch::NoGradGuard no_grad;
    (*a)->parameters()[1].add_(1.0);
  }
  EXPECT_EQ(ToTensorSet(**MakeNamedNet(model_, NetShape{}, 3)).tensors[1].values,
            same.tensors[1].values);
  // The forward pass uses the view's tensors: changing one changes the logits.
  const torch::Tensor x = torch::ones({2, 1, 28, 28});
  const torch::Tensor before = (*a)->forward(x);
  {
    torch::NoGradGuard no_grad;
    (*a)->parameters()[0].fill_(0.0);
  }
  EXPECT_TRUE(torch::equal((*a)->forward(x), torch::zeros({2, 10})));
  EXPECT_FALSE(torch::equal(before, torch::zeros({2, 10})));
}

TEST_F(TorchScriptModelTest, ALotteryFLUpdatePrunesAndTrainsTheScript) {
  RunConfig config;
  config.dataset = DatasetKind::kMnist;
  config.data_dir = WriteDataset();
  config.model = model_;
  config.clients = 4;
  config.samples_per_class = 20;
  config.test_per_client = 20;
  config.algorithm = Algorithm::kLotteryFl;
  config.accuracy_threshold = 0;  // the gate allows: the first update prunes
  config.local_epochs = 10;
  config.batch_size = 8;
  config.lr = 0.05;
  config.seed = 2;
  absl::StatusOr<std::shared_ptr<const RunData>> data = LoadRunData(config);
  ASSERT_TRUE(data.ok()) << data.status();
  DecodedModel downlink;
  downlink.values = (*data)->theta0;
  downlink.mask = Mask::Full(downlink.values);
  absl::StatusOr<Net> theta0 = NewNet(**data);
  ASSERT_TRUE(theta0.ok());
  const ClientSplit& split = (*data)->partition.clients[1];
  const double untrained = *Trainer::Evaluate(**theta0, (*data)->test, split.test);
  absl::StatusOr<LocalResult> result = RunLocalUpdate(**data, 1, 1, 0, downlink, 0);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->step.mask_changed);
  EXPECT_LT(result->step.mask.Density(), 0.85);
  EXPECT_GT(result->step.local_accuracy, 0.9) << "untrained: " << untrained;
  EXPECT_LT(untrained, 0.7);

  // BSQ trains substituted weights (bit planes) through the script's forward pass.
  config.quant = QuantMode::kBsq;
  data = LoadRunData(config);
  ASSERT_TRUE(data.ok()) << data.status();
  result = RunLocalUpdate(**data, 1, 1, 0, downlink, 0);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_GT(result->step.local_accuracy, 0.9);
  ASSERT_EQ(result->step.update.layer_bits.size(), 2u);
  for (int bits : result->step.update.layer_bits) EXPECT_LE(bits, 8);
}

TEST_F(TorchScriptModelTest, MissingOrBrokenFilesAreRefusedWithTheirPath) {
  absl::Status s = RegisterTorchScriptModel("torchscript:" + dir_ + "/none.pt");
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr(dir_ + "/none.pt"));
  std::ofstream(dir_ + "/junk.pt") << "not a zip archive";
  s = RegisterTorchScriptModel("torchscript:" + dir_ + "/junk.pt");
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr(dir_ + "/junk.pt"));
  RunConfig config;
  config.model = "torchscript:" + dir_ + "/none.pt";
  s = LoadRunData(config).status();
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("--model: " + dir_ + "/none.pt"));
  // The wrong output size for the dataset: MakeNamedNet's check.
  ASSERT_TRUE(RegisterTorchScriptModel(model_).ok());
  absl::Status shape = MakeNamedNet(model_, NetShape{1, 28, 28, 47}, 1).status();
  EXPECT_TRUE(absl::IsInvalidArgument(shape)) << shape;
}

}  // namespace
}  // namespace lfl
