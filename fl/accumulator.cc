#include "fl/accumulator.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

// Fixed-point scale 2^60 and its inverse; multiplying by a power of two is exact.
constexpr double kScale = 0x1p60;
constexpr double kInverseScale = 0x1p-60;

}  // namespace

absl::Status CheckAggregationBounds(const TensorSet& values) {
  for (const NamedTensor& t : values.tensors) {
    for (size_t i = 0; i < t.values.size(); ++i) {
      float x = t.values[i];
      if (!std::isfinite(x)) {
        return absl::InvalidArgumentError(
            absl::StrCat(t.name, "[", i, "] is not finite (", x, ")"));
      }
      if (std::fabs(x) > MaskedMeanAccumulator::kMaxAbsValue) {
        return absl::InvalidArgumentError(
            absl::StrCat(t.name, "[", i, "] = ", x, " exceeds the aggregation bound 2^30"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckAggregationWeight(int64_t total, int64_t add) {
  if (add > MaskedMeanAccumulator::kMaxTotalWeight - total) {
    return absl::ResourceExhaustedError(
        absl::StrCat("total aggregation weight would exceed 2^36 (", total, " + ", add, ")"));
  }
  return absl::OkStatus();
}


MaskedMeanAccumulator::MaskedMeanAccumulator(const TensorSet& layout) {
  for (const NamedTensor& t : layout.tensors) {
    layout_.tensors.push_back({t.name, t.shape, {}, t.prunable});
    sums_.emplace_back(t.numel(), 0);
    weights_.emplace_back(t.numel(), 0);
  }
}

absl::Status MaskedMeanAccumulator::CheckUpdate(const TensorSet& values, const Mask* mask,
                                                int64_t weight) const {
  if (weight < 1 || weight > kMaxWeight) {
    return absl::InvalidArgumentError(absl::StrCat("update weight ", weight, " outside [1, 2^31]"));
  }
  if (absl::Status s = values.CheckLayout(layout_); !s.ok()) return s;
  if (mask != nullptr) {
    if (absl::Status s = mask->CheckMatches(layout_); !s.ok()) return s;
  }
  if (absl::Status s = CheckAggregationBounds(values); !s.ok()) return s;
  return CheckAggregationWeight(total_weight_, weight);
}

absl::Status MaskedMeanAccumulator::Add(const TensorSet& values, const Mask* mask, int64_t weight) {
  if (absl::Status s = CheckUpdate(values, mask, weight); !s.ok()) return s;
  for (size_t t = 0; t < sums_.size(); ++t) {
    const std::vector<float>& x = values.tensors[t].values;
    bool masked = mask != nullptr && mask->prunable(t);
    for (size_t i = 0; i < x.size(); ++i) {
      if (masked && !mask->Get(t, static_cast<int64_t>(i))) continue;
      Int128 fixed = static_cast<Int128>(std::round(double{x[i]} * kScale));
      sums_[t][i] += fixed * weight;
      weights_[t][i] += weight;
    }
  }
  ++updates_;
  total_weight_ += weight;
  return absl::OkStatus();
}

absl::Status MaskedMeanAccumulator::Merge(const MaskedMeanAccumulator& other) {
  if (!layout_.SameLayout(other.layout_)) {
    return absl::InvalidArgumentError("cannot merge accumulators with different layouts");
  }
  if (absl::Status s = CheckAggregationWeight(total_weight_, other.total_weight_); !s.ok()) return s;
  for (size_t t = 0; t < sums_.size(); ++t) {
    for (size_t i = 0; i < sums_[t].size(); ++i) {
      sums_[t][i] += other.sums_[t][i];
      weights_[t][i] += other.weights_[t][i];
    }
  }
  updates_ += other.updates_;
  total_weight_ += other.total_weight_;
  return absl::OkStatus();
}

absl::StatusOr<TensorSet> MaskedMeanAccumulator::Finish(const TensorSet& previous) const {
  if (absl::Status s = previous.CheckLayout(layout_); !s.ok()) return s;
  TensorSet out = previous;
  for (size_t t = 0; t < sums_.size(); ++t) {
    std::vector<float>& v = out.tensors[t].values;
    for (size_t i = 0; i < v.size(); ++i) {
      int64_t w = weights_[t][i];
      if (w == 0) continue;
      // Integer quotient plus remainder: a mean of equal values is reproduced exactly.
      Int128 q = sums_[t][i] / w;
      Int128 r = sums_[t][i] % w;
      double mean = static_cast<double>(q) + static_cast<double>(r) / static_cast<double>(w);
      v[i] = static_cast<float>(mean * kInverseScale);
    }
  }
  return out;
}

}  // namespace lfl
