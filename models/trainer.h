// The one training loop (used by the client, the simulator and the tests) and
// evaluation.
#ifndef LFL_MODELS_TRAINER_H_
#define LFL_MODELS_TRAINER_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/data.h"
#include "models/net.h"

namespace lfl {

struct TrainOptions {
  int64_t epochs = 1;       // local epochs; 0 trains nothing
  int64_t batch_size = 32;  // LotteryFL reference default
  double lr = 0.01;         // SGD learning rate (reference default)
  double momentum = 0.5;    // SGD momentum (reference default), in [0, 1)
  uint64_t seed = 0;        // shuffling, dropout and noise; the caller derives it
                            // from (run seed, client, round)
  float noise_sigma = 0.f;  // stddev of Gaussian feature-skew noise added to the
                            // normalized inputs (noise partition); 0 = none
  // FedProx's proximal term: (proximal_mu / 2) · Σ_i ‖w_i − proximal_anchor[i]‖² is added to
  // each step's loss, w the weights the forward pass uses (the source's EffectiveWeights), so
  // SGD also pulls them towards the anchor by proximal_mu · (w − anchor). Finite, >= 0;
  // 0 = no term, and no extra work: the run is bit-identical to one without these fields.
  double proximal_mu = 0;
  // One tensor per parameter (parameters() order and shapes), detached; required when
  // proximal_mu > 0, ignored otherwise. Zeros where a mask prunes keep the term to the kept
  // weights (the pruned ones are zero too, and their gradients are masked anyway).
  std::vector<torch::Tensor> proximal_anchor;
};

struct TrainStats {
  int64_t steps = 0;     // optimizer steps taken
  int64_t samples = 0;   // images seen, counting every epoch
  double mean_loss = 0;  // mean task loss (without penalty or proximal term) over the steps
};

// What the optimizer trains and how it maps onto the net's weights. The plain
// source trains the net's own parameters; BSQ (quant/bsq) supplies bit-plane
// tensors instead. The Trainer calls, in order: Begin, then per step
// EffectiveWeights, Penalty, backward, AfterBackward, the SGD update of
// Trainable(), AfterStep; and Finish once at the end. A source may throw
// c10::Error (e.g. TORCH_CHECK); the Trainer turns it into a status.
class ParameterSource {
 public:
  virtual ~ParameterSource() = default;
  // Called once before the first step with the number of steps to come.
  virtual void Begin(int64_t total_steps) {}
  // The leaves the optimizer steps (requires_grad). Fetched at the start and
  // again whenever AfterStep returns true.
  virtual std::vector<torch::Tensor> Trainable() = 0;
  // The weights the forward pass uses, in parameters() order and shapes;
  // differentiable with respect to Trainable().
  virtual std::vector<torch::Tensor> EffectiveWeights() = 0;
  // A regularizer added to the loss when defined.
  virtual torch::Tensor Penalty() { return {}; }
  // After backward, before the update: e.g. mask gradients.
  virtual void AfterBackward() {}
  // After the update of step `step` (0-based): e.g. clip or requantize.
  // Returns true when Trainable() changed; the momentum buffers are then reset.
  virtual bool AfterStep(int64_t step) { return false; }
  // Writes the final weights into the net.
  virtual void Finish() {}
};

// Trains the net's own parameters. masks[i] has the shape of parameters()[i]
// and holds 0/1 (any dtype; converted to float), or is an undefined tensor for
// "no mask"; an empty vector means no masks at all. Pruned weights stay
// exactly zero: they are zeroed at Begin, their gradients are masked (so the
// momentum buffers stay zero there too), and the weights are multiplied by the
// mask after every step. A mask count or shape that does not match makes
// Train return InvalidArgument. Borrows `net`, which must outlive the source.
class PlainSource : public ParameterSource {
 public:
  PlainSource(NetImpl& net, std::vector<torch::Tensor> masks);

  void Begin(int64_t total_steps) override;
  std::vector<torch::Tensor> Trainable() override;
  std::vector<torch::Tensor> EffectiveWeights() override;
  void AfterBackward() override;
  bool AfterStep(int64_t step) override;

 private:
  void ApplyMasks();

  std::vector<torch::Tensor> params_;
  std::vector<torch::Tensor> masks_;
};

class Trainer {
 public:
  // Runs options.epochs epochs of minibatch SGD with momentum
  // (buf = momentum * buf + grad; p -= lr * buf) on the cross-entropy loss
  // over data[indices], reshuffled each epoch by the portable Sampler(seed)
  // (common/sampler.h: the same order with any standard library); the last
  // batch may be short. Dropout and noise draw from a torch generator
  // seeded from `seed`, so the result depends only on the inputs, whatever
  // thread runs it. With options.proximal_mu > 0 the loss also carries the
  // proximal term towards options.proximal_anchor. InvalidArgument for bad
  // options (an anchor that does not match the net included), empty or
  // out-of-range indices, or weights that do not match the net; InternalError
  // for torch failures.
  static absl::StatusOr<TrainStats> Train(NetImpl& net, ParameterSource& source,
                                          const TensorData& data,
                                          const std::vector<int64_t>& indices,
                                          const TrainOptions& options);

  // Top-1 accuracy in [0, 1] of the net's own parameters on data[indices]
  // (empty = the whole split), in eval mode, batches of 1000. With
  // noise_sigma > 0 the inputs get Gaussian noise drawn from `seed`.
  // InvalidArgument when there is nothing to evaluate or an index is out of
  // range.
  static absl::StatusOr<double> Evaluate(NetImpl& net, const TensorData& data,
                                         const std::vector<int64_t>& indices,
                                         float noise_sigma = 0.f, uint64_t seed = 0);
};

// Pins torch's intra-op threads, its inter-op threads (only possible before
// any inter-op work; later calls leave that pool as it is) and OpenBLAS (when
// the process has it loaded) to `threads` (values below 1 count as 1). Call
// at process start, before starting worker threads: torch applies the
// intra-op setting to each thread on its first parallel operation.
void SetMathThreads(int threads);

}  // namespace lfl

#endif  // LFL_MODELS_TRAINER_H_
