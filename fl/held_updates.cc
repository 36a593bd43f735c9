#include "fl/held_updates.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "fl/accumulator.h"

namespace lfl {
namespace {

// MaskedMeanAccumulator's fixed point (fl/accumulator.cc): scale 2^60, exact power-of-two
// multiplications.
constexpr double kScale = 0x1p60;
constexpr double kInverseScale = 0x1p-60;

bool Before(const HeldValue& a, const HeldValue& b) {
  return std::tie(a.value, a.client_id, a.weight) < std::tie(b.value, b.client_id, b.weight);
}

}  // namespace

HeldUpdates::HeldUpdates(const TensorSet& layout) {
  for (const NamedTensor& t : layout.tensors)
    layout_.tensors.push_back({t.name, t.shape, {}, t.prunable});
}

absl::Status HeldUpdates::Add(const ClientUpdate& update) {
  if (update.values == nullptr) return absl::InvalidArgumentError("an update needs its values");
  if (update.weight < 1 || update.weight > MaskedMeanAccumulator::kMaxWeight) {
    return absl::InvalidArgumentError(
        absl::StrCat("update weight ", update.weight, " outside [1, 2^31]"));
  }
  if (absl::Status s = update.values->CheckLayout(layout_); !s.ok()) return s;
  if (update.mask != nullptr) {
    if (absl::Status s = update.mask->CheckMatches(layout_); !s.ok()) return s;
  }
  if (absl::Status s = CheckAggregationBounds(*update.values); !s.ok()) return s;
  if (absl::Status s = CheckAggregationWeight(total_weight_, update.weight); !s.ok()) return s;

  auto held = std::make_shared<Held>();
  held->client_id = update.client_id;
  held->weight = update.weight;
  for (const NamedTensor& t : update.values->tensors) {
    std::vector<float>& v = held->values.emplace_back(t.values);
    for (float& x : v) {
      if (x == 0.0f) x = 0.0f;  // -0 -> +0
    }
  }
  if (update.mask != nullptr) held->mask = *update.mask;
  held_.push_back(std::move(held));
  total_weight_ += update.weight;
  return absl::OkStatus();
}

absl::Status HeldUpdates::Merge(const HeldUpdates& other) {
  if (!layout_.SameLayout(other.layout_)) {
    return absl::InvalidArgumentError("cannot merge held updates with different layouts");
  }
  if (absl::Status s = CheckAggregationWeight(total_weight_, other.total_weight_); !s.ok()) return s;
  const std::vector<std::shared_ptr<const Held>> theirs = other.held_;  // `other` may be *this
  held_.insert(held_.end(), theirs.begin(), theirs.end());
  total_weight_ += other.total_weight_;
  return absl::OkStatus();
}

absl::StatusOr<TensorSet> HeldUpdates::Finish(
    const TensorSet& previous,
    absl::FunctionRef<float(const std::vector<HeldValue>& keepers)> rule) const {
  if (absl::Status s = previous.CheckLayout(layout_); !s.ok()) return s;
  TensorSet out = previous;
  std::vector<HeldValue> keepers;
  keepers.reserve(held_.size());
  for (size_t t = 0; t < out.tensors.size(); ++t) {
    std::vector<float>& v = out.tensors[t].values;
    for (size_t i = 0; i < v.size(); ++i) {
      keepers.clear();
      for (const std::shared_ptr<const Held>& h : held_) {
        if (h->mask.has_value() && !h->mask->Get(t, static_cast<int64_t>(i))) continue;
        keepers.push_back({h->values[t][i], h->client_id, h->weight});
      }
      if (keepers.empty()) continue;
      std::sort(keepers.begin(), keepers.end(), Before);
      v[i] = rule(keepers);
    }
  }
  return out;
}

float ExactWeightedMean(std::vector<HeldValue>::const_iterator begin,
                        std::vector<HeldValue>::const_iterator end) {
  __extension__ using Int128 = __int128;
  Int128 sum = 0;
  int64_t weight = 0;
  for (auto it = begin; it != end; ++it) {
    sum += static_cast<Int128>(std::round(double{it->value} * kScale)) * it->weight;
    weight += it->weight;
  }
  const Int128 q = sum / weight;
  const Int128 r = sum % weight;
  const double mean = static_cast<double>(q) + static_cast<double>(r) / static_cast<double>(weight);
  return static_cast<float>(mean * kInverseScale);
}

float MedianOfSorted(const std::vector<float>& sorted) {
  const size_t n = sorted.size();
  if (n % 2 == 1) return sorted[n / 2];
  return static_cast<float>((double{sorted[n / 2 - 1]} + double{sorted[n / 2]}) / 2);
}

}  // namespace lfl
