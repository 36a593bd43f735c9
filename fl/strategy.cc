#include "fl/strategy.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

class FedAvgStrategy : public Strategy {
 public:
  std::string_view name() const override { return "fedavg"; }
  bool uses_masks() const override { return false; }
  bool weight_by_samples() const override { return true; }
};

class LotteryFlStrategy : public Strategy {
 public:
  explicit LotteryFlStrategy(bool weight_by_samples) : weight_by_samples_(weight_by_samples) {}
  std::string_view name() const override { return "lotteryfl"; }
  bool uses_masks() const override { return true; }
  bool weight_by_samples() const override { return weight_by_samples_; }

 private:
  bool weight_by_samples_;
};

}  // namespace

std::unique_ptr<MaskedMeanAccumulator> Strategy::NewRound(const TensorSet& global) const {
  return std::make_unique<MaskedMeanAccumulator>(global);
}

std::unique_ptr<Strategy> MakeFedAvg() { return std::make_unique<FedAvgStrategy>(); }

std::unique_ptr<Strategy> MakeLotteryFl(bool weight_by_samples) {
  return std::make_unique<LotteryFlStrategy>(weight_by_samples);
}

absl::StatusOr<std::unique_ptr<Strategy>> MakeStrategy(std::string_view name) {
  if (name == "fedavg") return MakeFedAvg();
  if (name == "lotteryfl") return MakeLotteryFl();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown strategy \"", std::string(name), "\" (expected fedavg or lotteryfl)"));
}

}  // namespace lfl
