#include "fl/keeper_trimmed_mean.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fl/held_updates.h"

namespace lfl {
namespace {

class KeeperTrimmedMean : public Aggregator {
 public:
  KeeperTrimmedMean(const TensorSet& layout, const AggregatorOptions& options)
      : held_(layout), trim_fraction_(options.trim_fraction), min_keepers_(options.min_keepers) {}

  std::string_view name() const override { return "keeper-trimmed-mean"; }
  absl::Status Add(const ClientUpdate& update) override { return held_.Add(update); }
  absl::Status Merge(const Aggregator& other) override {
    const auto* same = dynamic_cast<const KeeperTrimmedMean*>(&other);
    if (same == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot merge ", std::string(other.name()), " into keeper-trimmed-mean"));
    }
    if (same->trim_fraction_ != trim_fraction_ || same->min_keepers_ != min_keepers_) {
      return absl::InvalidArgumentError("cannot merge keeper-trimmed-means with different options");
    }
    return held_.Merge(same->held_);
  }
  absl::StatusOr<TensorSet> Finish(const TensorSet& previous) const override {
    return held_.Finish(previous, [&](const std::vector<HeldValue>& keepers) {
      const int64_t k = static_cast<int64_t>(keepers.size());
      const int64_t cut = k < min_keepers_ ? 0 : Cut(k);
      return ExactWeightedMean(keepers.begin() + cut, keepers.end() - cut);
    });
  }
  int64_t updates() const override { return held_.updates(); }
  bool decomposable() const override { return false; }

 private:
  // floor(trim_fraction · k); the product is nudged up by 1e-9 first, so that a share that is
  // an integer on paper is not lost to double rounding (0.29 · 100 is 28.999999999999996).
  // At most (k - 1) / 2, so one keeper survives even for a trim_fraction just below 0.5.
  int64_t Cut(int64_t k) const {
    const auto cut = static_cast<int64_t>(std::floor(trim_fraction_ * static_cast<double>(k) + 1e-9));
    return std::min(cut, (k - 1) / 2);
  }

  HeldUpdates held_;
  double trim_fraction_;
  int64_t min_keepers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Aggregator>> MakeKeeperTrimmedMean(
    const TensorSet& layout, const AggregatorOptions& options) {
  if (!(options.trim_fraction >= 0 && options.trim_fraction < 0.5)) {
    return absl::InvalidArgumentError(absl::StrCat("keeper-trimmed-mean: trim_fraction ",
                                                   options.trim_fraction, " outside [0, 0.5)"));
  }
  if (options.min_keepers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("keeper-trimmed-mean: min_keepers ", options.min_keepers, " < 1"));
  }
  return std::make_unique<KeeperTrimmedMean>(layout, options);
}

}  // namespace lfl
