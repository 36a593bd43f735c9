// dense-median: the ablation of keeper-median — per element, the coordinate-wise median over
// ALL updates of the round, counting an update that does not keep the element as value 0.
//
// This is what Flower's FedMedian computes over masked updates (θ ⊙ m, dropped weights sent as
// zeros): a weight that 2 of 10 clients keep gets the median of eight 0s and two values, 0.
// Under LotteryFL's personalized tickets it therefore zeroes most of what only a few tickets
// keep; keeper-median (fl/keeper_median.h) is the version that respects the masks.
//
// Unweighted, like keeper-median; even counts take the mean of the two middle values.
// AggregatorOptions are not used (no few-keepers rule: the zeros are the point). An element
// kept by no update keeps its previous value, as with masked-mean.
//
// State: every update's values (fl/held_updates.h), O(updates × model) memory;
// decomposable() is false, so an edge tier cannot merge it as sums. Deterministic whatever the
// arrival order or the grouping of Merge()s. Add validates like MaskedMeanAccumulator::Add and
// leaves the aggregator unchanged on error; Merge refuses another kind or another layout with
// InvalidArgument. Torch-free.
#ifndef LFL_FL_DENSE_MEDIAN_H_
#define LFL_FL_DENSE_MEDIAN_H_

#include <memory>

#include "fl/aggregator.h"
#include "fl/tensor_set.h"

namespace lfl {

std::unique_ptr<Aggregator> MakeDenseMedian(const TensorSet& layout);

}  // namespace lfl

#endif  // LFL_FL_DENSE_MEDIAN_H_
