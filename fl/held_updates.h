// HeldUpdates: every update of a round, held whole — the state of the order-statistic
// aggregators (keeper-median, keeper-trimmed-mean, dense-median; fl/aggregator.h).
//
// A median or a trimmed mean is not a sum: it needs every update's value at every element, so
// the state is O(updates × model) (4 bytes per element per update, plus its mask) instead of
// masked-mean's O(model). It cannot be split into partial sums either, so an edge tier cannot
// pre-aggregate it; aggregators built on it report decomposable() == false.
//
// Determinism: Finish() hands each element's values to the rule sorted by value, ties by client
// id, then weight — a total order on what was added — so the result depends only on the set of
// updates, never on the arrival order or on how Merge()s grouped them. Zeros are stored as +0,
// so -0 and +0 do not make two orders of the same values.
//
// Not thread-safe: serialize Add/Merge, or give each thread its own and Merge them. Torch-free.
#ifndef LFL_FL_HELD_UPDATES_H_
#define LFL_FL_HELD_UPDATES_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fl/aggregator.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl {

// One update's value at one element.
struct HeldValue {
  float value = 0;
  int64_t client_id = 0;
  int64_t weight = 1;
};

class HeldUpdates {
 public:
  // `layout` fixes names, shapes and prunable flags; its values are not used.
  explicit HeldUpdates(const TensorSet& layout);

  // Holds one update. Checks exactly what MaskedMeanAccumulator::Add checks — values present
  // with the layout, the mask matches it, 1 <= weight <= kMaxWeight, every value finite and
  // |x| <= kMaxAbsValue, total weight <= kMaxTotalWeight — before holding anything: on error
  // (InvalidArgument, ResourceExhausted for the total weight) nothing changes.
  absl::Status Add(const ClientUpdate& update);
  // Holds everything `other` holds (shared, not copied: held updates never change).
  // InvalidArgument for another layout, ResourceExhausted past kMaxTotalWeight; unchanged on
  // error.
  absl::Status Merge(const HeldUpdates& other);

  int64_t updates() const { return static_cast<int64_t>(held_.size()); }

  // Per element of `previous`'s layout (which must be this layout, with values): the values
  // of the updates that keep it, sorted (see above), given to `rule`, whose result becomes the
  // element; an element kept by no update keeps `previous`'s value (`rule` is not called).
  absl::StatusOr<TensorSet> Finish(
      const TensorSet& previous,
      absl::FunctionRef<float(const std::vector<HeldValue>& keepers)> rule) const;

 private:
  struct Held {
    int64_t client_id;
    int64_t weight;
    std::vector<std::vector<float>> values;  // per tensor, dense
    std::optional<Mask> mask;                // nullopt: keeps every element
  };

  TensorSet layout_;  // values empty
  std::vector<std::shared_ptr<const Held>> held_;
  int64_t total_weight_ = 0;
};

// sum(w·x) / sum(w) over [begin, end) (not empty), in MaskedMeanAccumulator's exact fixed point
// (2^60 scale, __int128 sums, integer quotient plus remainder): bit-identical to what
// masked-mean gives for the same keepers. The caller keeps sum(w) <= kMaxTotalWeight.
float ExactWeightedMean(std::vector<HeldValue>::const_iterator begin,
                        std::vector<HeldValue>::const_iterator end);

// The median of sorted values (not empty): the middle one, or the mean of the two middle ones
// (computed in double, rounded once to float).
float MedianOfSorted(const std::vector<float>& sorted);

}  // namespace lfl

#endif  // LFL_FL_HELD_UPDATES_H_
