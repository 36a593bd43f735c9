// keeper-median: per element, the median over the updates that KEEP that element.
//
// Unweighted: every keeper counts once, whatever its weight (a sample count does not buy a
// larger share of an order statistic). With an even number of keepers the element is the mean
// of the two middle values.
//
// Few keepers (AggregatorOptions::min_keepers, --aggregator-min-keepers, default 3): an element
// kept by fewer updates takes the masked mean over the keepers there are (weighted,
// bit-identical to masked-mean), not its previous value. Under LotteryFL's personalized tickets
// many weights are kept by one or two of a round's clients; keeping the previous value would
// freeze exactly those weights for good, while a median of one or two values is their mean
// anyway, so the mean loses nothing a median of so few could have defended. An element kept by
// no update keeps its previous value, as with masked-mean.
//
// State: every update's values (fl/held_updates.h), O(updates × model) memory;
// decomposable() is false, so an edge tier cannot merge it as sums. Deterministic: the result
// depends only on the set of updates (values sorted, ties by client id), whatever the arrival
// order or the grouping of Merge()s. Add validates like MaskedMeanAccumulator::Add and leaves
// the aggregator unchanged on error; Merge refuses another kind, another layout or another
// min_keepers with InvalidArgument. Torch-free.
#ifndef LFL_FL_KEEPER_MEDIAN_H_
#define LFL_FL_KEEPER_MEDIAN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fl/aggregator.h"
#include "fl/tensor_set.h"

namespace lfl {

// InvalidArgument when options.min_keepers < 1.
absl::StatusOr<std::unique_ptr<Aggregator>> MakeKeeperMedian(const TensorSet& layout,
                                                             const AggregatorOptions& options);

}  // namespace lfl

#endif  // LFL_FL_KEEPER_MEDIAN_H_
