#include "fl/aggregator.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "fl/accumulator.h"
#include "fl/clipping.h"
#include "fl/dense_median.h"
#include "fl/keeper_median.h"
#include "fl/keeper_trimmed_mean.h"

namespace lfl {
namespace {

class MaskedMean : public Aggregator {
 public:
  explicit MaskedMean(const TensorSet& layout) : acc_(layout) {}
  std::string_view name() const override { return "masked-mean"; }
  absl::Status Add(const ClientUpdate& u) override {
    if (u.values == nullptr) return absl::InvalidArgumentError("an update needs its values");
    return acc_.Add(*u.values, u.mask, u.weight);
  }
  absl::Status Merge(const Aggregator& other) override {
    const auto* same = dynamic_cast<const MaskedMean*>(&other);
    if (same == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("cannot merge ", std::string(other.name()), " into masked-mean"));
    }
    return acc_.Merge(same->acc_);
  }
  absl::StatusOr<TensorSet> Finish(const TensorSet& previous) const override { return acc_.Finish(previous); }
  int64_t updates() const override { return acc_.updates(); }
  bool decomposable() const override { return true; }

 private:
  MaskedMeanAccumulator acc_;
};

}  // namespace

std::unique_ptr<Aggregator> MakeMaskedMean(const TensorSet& layout) { return std::make_unique<MaskedMean>(layout); }

absl::StatusOr<std::unique_ptr<Aggregator>> MakeAggregator(AggregatorKind kind, const TensorSet& layout,
                                                           const AggregatorOptions& options) {
  switch (kind) {
    case AggregatorKind::kMaskedMean:
      return MakeMaskedMean(layout);
    case AggregatorKind::kKeeperMedian:
      return MakeKeeperMedian(layout, options);
    case AggregatorKind::kKeeperTrimmedMean:
      return MakeKeeperTrimmedMean(layout, options);
    case AggregatorKind::kDenseMedian:
      return MakeDenseMedian(layout);
  }
  return absl::InvalidArgumentError(absl::StrCat("no aggregator registered as ", std::string(ModeName(kind))));
}

ClippedAggregator::ClippedAggregator(std::unique_ptr<Aggregator> inner, double bound)
    : inner_(std::move(inner)), bound_(bound) {}

absl::Status ClippedAggregator::Add(const ClientUpdate& update) {
  if (update.start == nullptr || update.values == nullptr) {
    return absl::InvalidArgumentError("a clipped update needs its values and its start point");
  }
  if (absl::Status s = update.start->CheckLayout(*update.values); !s.ok()) return s;
  const double distance = UpdateDistance(*update.values, *update.start, update.mask);
  const double scale = ClipScale(distance, bound_);
  absl::Status added;
  if (scale < 1) {
    TensorSet clipped = *update.values;
    if (absl::Status s = ClipTowards(*update.start, update.mask, scale, &clipped); !s.ok()) return s;
    ClientUpdate inner = update;
    inner.values = &clipped;
    added = inner_->Add(inner);
  } else {
    added = inner_->Add(update);
  }
  if (!added.ok()) return added;
  distances_[update.client_id] = distance;
  if (scale < 1) ++clipped_;
  return absl::OkStatus();
}

absl::Status ClippedAggregator::Merge(const Aggregator& other) {
  const auto* same = dynamic_cast<const ClippedAggregator*>(&other);
  if (same == nullptr) return absl::InvalidArgumentError("a clipped aggregator merges only clipped aggregators");
  if (absl::Status s = inner_->Merge(*same->inner_); !s.ok()) return s;
  for (const auto& [id, d] : same->distances_) distances_[id] = d;
  clipped_ += same->clipped_;
  return absl::OkStatus();
}

}  // namespace lfl
