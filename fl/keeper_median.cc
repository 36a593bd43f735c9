#include "fl/keeper_median.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fl/held_updates.h"

namespace lfl {
namespace {

class KeeperMedian : public Aggregator {
 public:
  KeeperMedian(const TensorSet& layout, int64_t min_keepers)
      : held_(layout), min_keepers_(min_keepers) {}

  std::string_view name() const override { return "keeper-median"; }
  absl::Status Add(const ClientUpdate& update) override { return held_.Add(update); }
  absl::Status Merge(const Aggregator& other) override {
    const auto* same = dynamic_cast<const KeeperMedian*>(&other);
    if (same == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot merge ", std::string(other.name()), " into keeper-median"));
    }
    if (same->min_keepers_ != min_keepers_) {
      return absl::InvalidArgumentError("cannot merge keeper-medians with different min_keepers");
    }
    return held_.Merge(same->held_);
  }
  absl::StatusOr<TensorSet> Finish(const TensorSet& previous) const override {
    std::vector<float> sorted;
    return held_.Finish(previous, [&](const std::vector<HeldValue>& keepers) {
      if (static_cast<int64_t>(keepers.size()) < min_keepers_)
        return ExactWeightedMean(keepers.begin(), keepers.end());
      sorted.clear();
      for (const HeldValue& k : keepers) sorted.push_back(k.value);
      return MedianOfSorted(sorted);
    });
  }
  int64_t updates() const override { return held_.updates(); }
  bool decomposable() const override { return false; }

 private:
  HeldUpdates held_;
  int64_t min_keepers_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Aggregator>> MakeKeeperMedian(const TensorSet& layout,
                                                             const AggregatorOptions& options) {
  if (options.min_keepers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("keeper-median: min_keepers ", options.min_keepers, " < 1"));
  }
  return std::make_unique<KeeperMedian>(layout, options.min_keepers);
}

}  // namespace lfl
