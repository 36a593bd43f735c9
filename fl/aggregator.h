// Aggregators: how a round's updates combine into the next global model.
//
// The coordinator folds each accepted update in as it arrives (Add), into one of a few shards
// that it merges when the round closes (Merge), then asks for the model (Finish). Every
// aggregator gives the same result whatever the arrival order and the grouping of Merges,
// which is what keeps runs reproducible under any thread scheduling.
//
// Masks: an update keeps some elements of each prunable tensor (its ticket); the elements it
// does not keep carry no value and must not count. Each aggregator says what an element kept
// by no update becomes (every aggregator here: its previous value).
//
// Registered by name (config/modes/run_modes.h AggregatorKind, --aggregator): MakeAggregator.
// Torch-free.
#ifndef LFL_FL_AGGREGATOR_H_
#define LFL_FL_AGGREGATOR_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/modes/run_modes.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl {

// One accepted update, as the coordinator hands it to an aggregator.
struct ClientUpdate {
  int64_t client_id = 0;
  const TensorSet* values = nullptr;  // dense, the layout's layout (values where dropped: ignored)
  const Mask* mask = nullptr;         // the elements the client keeps (nullptr: every element)
  int64_t weight = 1;                 // 1 <= weight <= MaskedMeanAccumulator::kMaxWeight
  // The point the client started training from (the served θg ⊙ m, or θ0 ⊙ m' after a LotteryFL
  // rewind); used by ClippedAggregator. nullptr: not known.
  const TensorSet* start = nullptr;
};

class Aggregator {
 public:
  virtual ~Aggregator() = default;
  virtual std::string_view name() const = 0;
  // Folds one update in. Validates layout, mask, weight and finiteness before it changes
  // anything: on error the aggregator is unchanged.
  virtual absl::Status Add(const ClientUpdate& update) = 0;
  // Folds in everything `other` (an aggregator of the same kind and layout) holds.
  // InvalidArgument for another kind or layout; unchanged on error.
  virtual absl::Status Merge(const Aggregator& other) = 0;
  // The aggregate. `previous` (the model the round served, with values) gives the value of
  // every element no update keeps.
  virtual absl::StatusOr<TensorSet> Finish(const TensorSet& previous) const = 0;
  // Updates folded in, including those brought in by Merge.
  virtual int64_t updates() const = 0;
  // True when the state is a fixed-size sum (O(model), whatever the number of updates), so
  // partial aggregates can be merged exactly across servers; false for order statistics,
  // which must hold every update's values.
  virtual bool decomposable() const = 0;
};

// Options of the registered aggregators (RunConfig's aggregator-* keys).
struct AggregatorOptions {
  // keeper-trimmed-mean: the share of an element's keepers cut from each end, in [0, 0.5).
  double trim_fraction = 0.2;
  // keeper-median, keeper-trimmed-mean: an element kept by fewer updates than this takes the
  // masked mean over its keepers instead (fl/keeper_median.h says why). >= 1; 3 is the fewest
  // keepers whose median differs from their mean.
  int64_t min_keepers = 3;
};

// The aggregator registered under `kind` on `layout` (names, shapes, prunable flags; values
// unused). InvalidArgument for a kind without an implementation.
absl::StatusOr<std::unique_ptr<Aggregator>> MakeAggregator(AggregatorKind kind, const TensorSet& layout,
                                                           const AggregatorOptions& options = {});

// masked-mean: per element sum(w·x)/sum(w) over the updates that keep it, in exact fixed point
// (fl/accumulator.h); with full masks, FedAvg's weighted mean. Decomposable.
std::unique_ptr<Aggregator> MakeMaskedMean(const TensorSet& layout);
// The order statistics, each O(updates × model) and not decomposable, have their own headers:
// keeper-median (fl/keeper_median.h), keeper-trimmed-mean (fl/keeper_trimmed_mean.h) and the
// ablation dense-median (fl/dense_median.h).

// Norm clipping around any aggregator (fl/clipping.h): an update farther than `bound` from
// its start point is scaled back towards it, then passed on. The round's bound is fixed when
// the aggregator is made. It records each update's distance (before clipping) by client id,
// so the adaptive bound's history can be fed in client-id order, whatever the arrival order.
class ClippedAggregator : public Aggregator {
 public:
  ClippedAggregator(std::unique_ptr<Aggregator> inner, double bound);

  std::string_view name() const override { return inner_->name(); }
  // InvalidArgument when the update has no start point or the start's layout differs.
  absl::Status Add(const ClientUpdate& update) override;
  absl::Status Merge(const Aggregator& other) override;
  absl::StatusOr<TensorSet> Finish(const TensorSet& previous) const override { return inner_->Finish(previous); }
  int64_t updates() const override { return inner_->updates(); }
  bool decomposable() const override { return inner_->decomposable(); }

  double bound() const { return bound_; }
  // Per client: the update's distance to its start point before clipping.
  const std::map<int64_t, double>& distances() const { return distances_; }
  int64_t clipped() const { return clipped_; }

 private:
  std::unique_ptr<Aggregator> inner_;
  double bound_;
  std::map<int64_t, double> distances_;
  int64_t clipped_ = 0;
};

}  // namespace lfl

#endif  // LFL_FL_AGGREGATOR_H_
