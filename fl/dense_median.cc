#include "fl/dense_median.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fl/held_updates.h"

namespace lfl {
namespace {

class DenseMedian : public Aggregator {
 public:
  explicit DenseMedian(const TensorSet& layout) : held_(layout) {}

  std::string_view name() const override { return "dense-median"; }
  absl::Status Add(const ClientUpdate& update) override { return held_.Add(update); }
  absl::Status Merge(const Aggregator& other) override {
    const auto* same = dynamic_cast<const DenseMedian*>(&other);
    if (same == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot merge ", std::string(other.name()), " into dense-median"));
    }
    return held_.Merge(same->held_);
  }
  absl::StatusOr<TensorSet> Finish(const TensorSet& previous) const override {
    const auto n = static_cast<size_t>(held_.updates());
    std::vector<float> all;
    return held_.Finish(previous, [&](const std::vector<HeldValue>& keepers) {
      all.assign(n - keepers.size(), 0.0f);  // the updates that dropped the element
      for (const HeldValue& k : keepers) all.push_back(k.value);
      std::sort(all.begin(), all.end());
      return MedianOfSorted(all);
    });
  }
  int64_t updates() const override { return held_.updates(); }
  bool decomposable() const override { return false; }

 private:
  HeldUpdates held_;
};

}  // namespace

std::unique_ptr<Aggregator> MakeDenseMedian(const TensorSet& layout) {
  return std::make_unique<DenseMedian>(layout);
}

}  // namespace lfl
