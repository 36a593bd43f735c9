// Update clipping: the server's default defense against poisoned updates.
//
// An update w is measured by its L2 distance to the point its client started training from
// (the served θg ⊙ m, or θ0 ⊙ m' after a LotteryFL rewind), over the elements it keeps
// (biases included). An update farther than the round's bound B is scaled back towards that
// origin before it is folded in:
//
//   w' = origin + (w − origin) · min(1, B / ‖w − origin‖)
//
// so one client moves the global model by at most its weight share of B. B adapts to the run
// (AdaptiveClipBound): a multiple of the median of recently accepted (clipped) distances, fixed
// when a round opens so that every update of the round sees the same bound whatever the
// arrival order (folding is streaming). Until there is history, B is a fraction of the global
// model's own norm. Torch-free.

#ifndef LFL_FL_CLIPPING_H_
#define LFL_FL_CLIPPING_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "fl/mask.h"
#include "fl/tensor_set.h"

namespace lfl {

// L2 distance between `values` and `origin` over the elements `kept` keeps (nullptr: every
// element). Requires equal layouts (callers pass decoded updates, whose layout the decoder
// checked; tensors of different sizes are compared over the shorter). Sums in double.
double UpdateDistance(const TensorSet& values, const TensorSet& origin, const Mask* kept);

// L2 norm of every element of `values`.
double ModelNorm(const TensorSet& values);

// min(1, bound / distance); 1 when distance <= bound, when bound is +inf, or when distance is 0.
// bound <= 0 with a positive distance gives 0 (the update collapses to its origin).
double ClipScale(double distance, double bound);

// values ← origin + (values − origin) · scale on the kept elements (dropped ones are left as
// they are). scale == 1 leaves `values` untouched, bit for bit. InvalidArgument when the
// layouts differ or scale is not in [0, 1].
absl::Status ClipTowards(const TensorSet& origin, const Mask* kept, double scale,
                         TensorSet* values);

struct ClipOptions {
  // B = multiplier × median of the window; <= 0 disables clipping (B = +inf).
  double multiplier = 4;
  // How many of the most recently accepted distances the median is taken over.
  size_t window = 64;
  // Accepted distances needed before the median is trusted; until then B is
  // initial_fraction × ‖θg‖ (the norm of the global model the round serves).
  size_t min_history = 2;
  double initial_fraction = 0.75;
};

// The adaptive bound. Not thread-safe (the coordinator holds it under its lock). Deterministic:
// the bound depends only on the distances added and their order, and the coordinator adds a
// round's distances in client-id order when the round closes.
class AdaptiveClipBound {
 public:
  explicit AdaptiveClipBound(ClipOptions options = {}) : options_(options) {}

  // The bound for a round that serves a global model of norm `global_norm`. +inf when clipping
  // is disabled, or when there is no history and global_norm is 0 (no scale to go by).
  double Bound(double global_norm) const;
  // Records an accepted update's distance after clipping (non-finite or negative: ignored).
  void Add(double distance);
  // The median of the window (the mean of the two middle values for an even count); 0 when empty.
  double Median() const;
  size_t history() const { return window_.size(); }
  const ClipOptions& options() const { return options_; }

 private:
  ClipOptions options_;
  std::deque<double> window_;
};

}  // namespace lfl

#endif  // LFL_FL_CLIPPING_H_
