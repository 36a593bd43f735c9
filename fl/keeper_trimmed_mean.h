// keeper-trimmed-mean: per element, over the updates that KEEP that element sorted by value
// (ties by client id), drop floor(trim_fraction · k) of the k keepers from each end and take
// the weighted mean (weights: the updates' weights) of the rest.
//
// AggregatorOptions::trim_fraction (--aggregator-trim, default 0.2) is in [0, 0.5), so at least
// one keeper survives; 0 gives masked-mean bit for bit. The survivors' mean is computed in
// masked-mean's exact fixed point (fl/held_updates.h ExactWeightedMean). With 0.2, elements of
// fewer than 5 keepers lose nobody.
//
// Few keepers (AggregatorOptions::min_keepers, --aggregator-min-keepers, default 3): an element
// kept by fewer updates takes the masked mean over all its keepers, untrimmed — the same rule,
// and the same reason, as keeper-median (fl/keeper_median.h): trimming one or two values would
// leave one value or none, and keeping the previous value would freeze the weights only a few
// tickets keep. An element kept by no update keeps its previous value, as with masked-mean.
//
// State: every update's values (fl/held_updates.h), O(updates × model) memory;
// decomposable() is false, so an edge tier cannot merge it as sums. Deterministic whatever the
// arrival order or the grouping of Merge()s (which keepers are cut is fixed by value, then
// client id). Add validates like MaskedMeanAccumulator::Add and leaves the aggregator
// unchanged on error; Merge refuses another kind, another layout or other options with
// InvalidArgument. Torch-free.
#ifndef LFL_FL_KEEPER_TRIMMED_MEAN_H_
#define LFL_FL_KEEPER_TRIMMED_MEAN_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fl/aggregator.h"
#include "fl/tensor_set.h"

namespace lfl {

// InvalidArgument when options.trim_fraction is outside [0, 0.5) or options.min_keepers < 1.
absl::StatusOr<std::unique_ptr<Aggregator>> MakeKeeperTrimmedMean(const TensorSet& layout,
                                                                  const AggregatorOptions& options);

}  // namespace lfl

#endif  // LFL_FL_KEEPER_TRIMMED_MEAN_H_
