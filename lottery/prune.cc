#include "lottery/prune.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

absl::Status CheckOptions(const PruneOptions& o) {
  if (!(o.rate >= 0.0 && o.rate <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("prune rate ", o.rate, " outside [0, 1]"));
  }
  if (!(o.target_density >= 0.0 && o.target_density <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("target density ", o.target_density, " outside [0, 1]"));
  }
  return absl::OkStatus();
}

// Every tensor must hold numel() values (a layout-only set cannot be pruned by or rewound to).
absl::Status CheckHasValues(const TensorSet& set, absl::string_view what) {
  for (const NamedTensor& t : set.tensors) {
    if (static_cast<int64_t>(t.values.size()) != t.numel()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " tensor ", t.name, " has ", t.values.size(), " values, expected ", t.numel()));
    }
  }
  return absl::OkStatus();
}

// How many of a layer's `kept` elements one step drops.
int64_t DropCount(int64_t kept, int64_t numel, const PruneOptions& o) {
  auto min_kept =
      static_cast<int64_t>(std::ceil(o.target_density * static_cast<double>(numel) - 1e-9));
  int64_t drop = std::llround(o.rate * static_cast<double>(kept));
  return std::max<int64_t>(0, std::min(drop, kept - min_kept));
}

// Drops `drop` kept elements of tensor `t` with the smallest |w|, lower index first on ties.
void PruneLayer(const std::vector<float>& w, size_t t, int64_t drop, Mask* mask) {
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < mask->numel(t); ++i) {
    if (mask->Get(t, i)) kept.push_back(i);
  }
  auto smaller = [&w](int64_t a, int64_t b) {
    float ma = std::fabs(w[a]), mb = std::fabs(w[b]);
    return ma < mb || (ma == mb && a < b);
  };
  std::nth_element(kept.begin(), kept.begin() + drop, kept.end(), smaller);
  for (int64_t j = 0; j < drop; ++j) mask->Set(t, kept[j], false);
}

}  // namespace

bool DecidePrune(double validation_accuracy, double accuracy_threshold, double density,
                 const PruneOptions& options) {
  return validation_accuracy >= accuracy_threshold && density > options.target_density;
}

absl::StatusOr<bool> PruneByMagnitude(const TensorSet& weights, const PruneOptions& options,
                                      Mask* mask) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  if (absl::Status s = mask->CheckMatches(weights); !s.ok()) return s;
  if (absl::Status s = CheckHasValues(weights, "weights"); !s.ok()) return s;
  if (absl::Status s = weights.CheckFinite(); !s.ok()) return s;
  bool changed = false;
  for (size_t t = 0; t < mask->num_tensors(); ++t) {
    if (!mask->prunable(t)) continue;
    int64_t drop = DropCount(mask->Kept(t), mask->numel(t), options);
    if (drop == 0) continue;
    PruneLayer(weights.tensors[t].values, t, drop, mask);
    changed = true;
  }
  return changed;
}

absl::StatusOr<TensorSet> Rewind(const TensorSet& theta0, const TensorSet& current,
                                 const Mask& mask) {
  if (absl::Status s = current.CheckLayout(theta0); !s.ok()) return s;
  if (absl::Status s = CheckHasValues(theta0, "theta0"); !s.ok()) return s;
  if (absl::Status s = mask.CheckMatches(theta0); !s.ok()) return s;
  TensorSet out = theta0;
  mask.ApplyTo(&out);
  return out;
}

}  // namespace lfl
