#include "fl/clipping.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace lfl {

double UpdateDistance(const TensorSet& values, const TensorSet& origin, const Mask* kept) {
  double sq = 0;
  const size_t tensors = std::min(values.size(), origin.size());
  for (size_t t = 0; t < tensors; ++t) {
    const std::vector<float>& v = values.tensors[t].values;
    const std::vector<float>& o = origin.tensors[t].values;
    const size_t n = std::min(v.size(), o.size());
    const bool all = kept == nullptr || t >= kept->num_tensors() || !kept->prunable(t);
    for (size_t i = 0; i < n; ++i) {
      if (!all && !kept->Get(t, static_cast<int64_t>(i))) continue;
      const double d = static_cast<double>(v[i]) - static_cast<double>(o[i]);
      sq += d * d;
    }
  }
  return std::sqrt(sq);
}

double ModelNorm(const TensorSet& values) {
  double sq = 0;
  for (const NamedTensor& t : values.tensors) {
    for (float x : t.values) sq += static_cast<double>(x) * static_cast<double>(x);
  }
  return std::sqrt(sq);
}

double ClipScale(double distance, double bound) {
  if (!(distance > bound)) return 1;  // also a NaN distance: the decoder refuses non-finite values
  if (!(bound > 0)) return 0;
  return bound / distance;
}

absl::Status ClipTowards(const TensorSet& origin, const Mask* kept, double scale,
                         TensorSet* values) {
  if (!(scale >= 0 && scale <= 1))
    return absl::InvalidArgumentError(absl::StrCat("clip scale ", scale, " not in [0, 1]"));
  if (!values->SameLayout(origin))
    return absl::InvalidArgumentError("clipping: the update and its origin differ in layout");
  if (scale == 1) return absl::OkStatus();
  for (size_t t = 0; t < values->size(); ++t) {
    std::vector<float>& v = values->tensors[t].values;
    const std::vector<float>& o = origin.tensors[t].values;
    if (v.size() != o.size()) return absl::InvalidArgumentError("clipping: tensor sizes differ");
    const bool all = kept == nullptr || t >= kept->num_tensors() || !kept->prunable(t);
    for (size_t i = 0; i < v.size(); ++i) {
      if (!all && !kept->Get(t, static_cast<int64_t>(i))) continue;
      const double o_i = static_cast<double>(o[i]);
      v[i] = static_cast<float>(o_i + (static_cast<double>(v[i]) - o_i) * scale);
    }
  }
  return absl::OkStatus();
}

double AdaptiveClipBound::Bound(double global_norm) const {
  constexpr double kNone = std::numeric_limits<double>::infinity();
  if (!(options_.multiplier > 0)) return kNone;
  if (window_.size() < std::max<size_t>(1, options_.min_history)) {
    return global_norm > 0 && options_.initial_fraction > 0
               ? options_.initial_fraction * global_norm
               : kNone;
  }
  return options_.multiplier * Median();
}

void AdaptiveClipBound::Add(double distance) {
  if (!std::isfinite(distance) || distance < 0) return;
  window_.push_back(distance);
  while (window_.size() > std::max<size_t>(1, options_.window)) window_.pop_front();
}

double AdaptiveClipBound::Median() const {
  if (window_.empty()) return 0;
  std::vector<double> sorted(window_.begin(), window_.end());
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

}  // namespace lfl
