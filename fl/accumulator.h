// Exact, order-independent, streaming masked mean — the server's aggregation primitive.
#ifndef LFL_FL_ACCUMULATOR_H_
#define LFL_FL_ACCUMULATOR_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl {

// Folds client updates in as they arrive; memory O(model) (24 bytes per element), not
// O(clients × model). Each value is converted to fixed point (scaled by 2^60, rounded to the
// nearest integer per element — exact for |x| >= 2^-37) and summed in __int128, so the sums, and
// therefore Finish(), are bit-identical whatever the arrival order or the grouping of Merge()s.
// That is what makes runs reproducible under any thread scheduling.
//
// Per element the result is sum(w·x) / sum(w) over the updates whose mask keeps that element;
// an element kept by no update keeps its previous value. With full masks (FedAvg) every element
// is the weighted mean over all updates.
//
// Not thread-safe: serialize Add/Merge calls, or give each thread its own accumulator and
// Merge them (hierarchical aggregation works the same way across servers).
class MaskedMeanAccumulator {
 public:
  // Limits that keep every sum exact: |x| * 2^60 * total weight < 2^127.
  static constexpr double kMaxAbsValue = 1073741824.0;          // 2^30, per value
  static constexpr int64_t kMaxWeight = int64_t{1} << 31;       // per update
  static constexpr int64_t kMaxTotalWeight = int64_t{1} << 36;  // over all folded updates

  // `layout` fixes names, shapes and prunable flags; its values are not used.
  explicit MaskedMeanAccumulator(const TensorSet& layout);

  // Folds one update in. `values`: dense, with `layout`'s layout (values at dropped elements are
  // ignored); `mask`: the elements this client keeps (nullptr = all); 1 <= weight <= kMaxWeight
  // (a sample count, or 1 for an unweighted mean). Validates layout, mask, weight, finiteness
  // and |x| <= kMaxAbsValue before touching any sum: on error (InvalidArgument, or
  // ResourceExhausted past kMaxTotalWeight) the accumulator is unchanged.
  absl::Status Add(const TensorSet& values, const Mask* mask, int64_t weight);

  // Adds another accumulator's sums, weights and update count. InvalidArgument for a different
  // layout, ResourceExhausted past kMaxTotalWeight; unchanged on error.
  absl::Status Merge(const MaskedMeanAccumulator& other);

  // Number of updates folded in (including those brought in by Merge).
  int64_t updates() const { return updates_; }
  // Sum of the weights of those updates.
  int64_t total_weight() const { return total_weight_; }

  // The aggregate: per element sum(w·x)/sum(w) over contributors that keep it, rounded to
  // float; elements with no contributor take `previous`'s value. InvalidArgument when
  // `previous` does not have the layout (with values).
  absl::StatusOr<TensorSet> Finish(const TensorSet& previous) const;

 private:
  __extension__ using Int128 = __int128;

  absl::Status CheckUpdate(const TensorSet& values, const Mask* mask, int64_t weight) const;

  TensorSet layout_;                           // values empty
  std::vector<std::vector<Int128>> sums_;      // per tensor, per element: sum(w · x · 2^60)
  std::vector<std::vector<int64_t>> weights_;  // per tensor, per element: sum(w) of keepers
  int64_t updates_ = 0;
  int64_t total_weight_ = 0;
};

// The checks every aggregator makes before it holds an update (fl/aggregator.h): each value
// finite and within kMaxAbsValue, and the total weight within kMaxTotalWeight after `add`.
absl::Status CheckAggregationBounds(const TensorSet& values);
absl::Status CheckAggregationWeight(int64_t total, int64_t add);

}  // namespace lfl

#endif  // LFL_FL_ACCUMULATOR_H_
