// BSQ: bit-level sparsity quantization (Yang et al., ICLR 2021,
// arXiv 2102.10462) as a models/ ParameterSource, plus the uniform k-bit
// quantization-aware baseline. See DESIGN.md §1 "BSQ".
//
// Every prunable weight (conv/linear weight, dim >= 2) of layer l with n_l
// magnitude bits is held as trainable bit tensors p, q ∈ [0, 2]^{n_l × numel}
// (positive and negative part; row b is bit b, row 0 the LSB) and a fixed
// per-layer fp32 scale s_l:
//     W = s_l · round(Σ_b (p_b − q_b)·2^b) / (2^n_l − 1).
// The forward pass uses the rounded value, backward the continuous one
// (straight-through). The loss gets the bit-plane group lasso
//     α · Σ_l (#kept_l · n_l / #kept_total) · Σ_b ‖[p_b; q_b]‖₂,
// bits are clipped to [0, 2] after every step and re-quantized every
// `interval` steps (bit_planes.h: carries, then all-zero MSB/LSB planes
// dropped, so a layer's precision rises or falls; it may reach 0 bits).
//
// s_l starts at max|W| over the kept weights (DESIGN). As in the authors'
// code (github.com/yanghr/BSQ, models/cifar/bit.py) it is trained along with
// the bits by default (BsqOptions::train_scale): the group lasso shrinks every
// plane, and a trained scale absorbs that uniform shrinkage instead of the
// task loss having to fight it plane by plane. Re-quantization rescales it
// so that values stay when planes are added or dropped.
//
// Deviations from the paper, on purpose:
//  - #params_l counts the kept weights of the client's ticket, not all.
//  - during the final `finetune_steps` the rounded value is clamped to the
//    layer's current range, so the scheme is truly fixed (no carries).
#ifndef LFL_QUANT_BSQ_BSQ_H_
#define LFL_QUANT_BSQ_BSQ_H_

#include <torch/torch.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "models/net.h"
#include "models/trainer.h"
#include "quant/bsq/bit_planes.h"

namespace lfl {

struct BsqOptions {
  // Group-lasso strength. Bits move by about lr·α·(#kept_l·n_l/#kept_total)
  // per step, so α·lr is what matters. Tuned on MnistCnn / Fashion-MNIST
  // (bench/bsq: 1 epoch of 1875 steps, lr 0.1 on the bits, momentum 0.5,
  // batch 32): α·lr = 0.0125 ends at 8/5/2/8 bits (2.90 mean); 0.011 at
  // 3.63, 0.014 at 1.9.
  double alpha = 0.125;
  // Steps between re-quantizations (the paper re-quantizes every few epochs).
  // In federation, where local training is tens of steps, this is scaled to
  // the local step count and finetune_steps is 0 (runtime/local_update.cc
  // fine-tunes in weight space instead).
  int64_t interval = 500;
  // Bits every layer starts at (DESIGN: 8).
  int initial_bits = 8;
  // Per prunable weight (parameters() order), the bits it starts at instead of
  // initial_bits — in federation, the precision the client's ticket reached in
  // its previous round. Empty: initial_bits everywhere. Entries are clamped to
  // 0..kMaxBsqBits; a layer at 0 bits stays all-zero.
  std::vector<int> layer_initial_bits;
  // Final steps at the fixed scheme: no regularizer, no re-quantization.
  // When the run has no more steps than this, all of it is fine-tuning.
  int64_t finetune_steps = 500;
  // Carries never push a layer beyond this (at most kMaxBsqBits).
  int max_bits = kMaxBsqBits;
  // Carries never push a layer beyond the bits it started at, so precision can only fall. The
  // federated phase sets it: there a precision rises only through the guard (runtime/client_step.h).
  bool never_raise = false;
  // Train the per-layer scale s_l with the bits (the authors' code does);
  // false keeps s_l = max|W| except for re-quantization rescaling.
  bool train_scale = true;
  // The gradient of s_l sums over all kept_l weights, so left alone one step
  // can overshoot s_l to 0 and kill the layer. Like LSQ (Esser et al., ICLR
  // 2020) it is multiplied by scale_grad_gain / sqrt(kept_l).
  // Gain 4 beat 1 (and 1/sqrt(255), LSQ's own) by 1–3 accuracy points in
  // bench/bsq; an unscaled gradient killed whole layers at lr >= 0.1.
  double scale_grad_gain = 4.0;
};

// The exact integer form of one quantized weight tensor:
// W[i] = codec::Dequantize(levels[i], bits, scale).
struct QuantizedWeight {
  int param_index = 0;          // index into net.parameters()
  int bits = 0;                 // magnitude bits, 0..kMaxBsqBits (sign excluded)
  float scale = 0.f;            // value of level 2^bits − 1
  std::vector<int32_t> levels;  // numel signed levels, 0 where pruned
};

// BSQ training of `net`'s prunable weights. Biases and other parameters stay
// the net's own (plain, trainable) tensors.
//
// masks[i] (0/1 of any dtype, the shape of parameters()[i], or undefined for
// "none"; an empty vector means no masks) restricts BSQ to the kept weights of
// the client's ticket: pruned weights stay exactly zero and do not count in
// the penalty weights. A mask whose element count does not match makes Begin
// throw c10::Error (the Trainer returns it as a status).
//
// Borrows `net`, which must outlive the source; one source per training run.
// Not thread-safe (like the net it trains).
class BsqSource : public ParameterSource {
 public:
  BsqSource(NetImpl& net, std::vector<torch::Tensor> masks, BsqOptions options);

  // The final `finetune_steps` of `total_steps` run at a fixed scheme.
  void Begin(int64_t total_steps) override;
  // p, q (and s when trained) of every layer with bits > 0, then the
  // non-prunable parameters.
  std::vector<torch::Tensor> Trainable() override;
  std::vector<torch::Tensor> EffectiveWeights() override;
  // Undefined (nothing added) when α = 0 or in the fine-tuning phase.
  torch::Tensor Penalty() override;
  // Rescales the gradient of each trained s_l (see scale_grad_gain).
  void AfterBackward() override;
  // Clips bits to [0, 2] and scales to >= 0; re-quantizes every `interval` steps and once on
  // entering the fine-tuning phase (returns true then).
  bool AfterStep(int64_t step) override;
  // Re-quantizes a final time and writes the exact weights
  // codec::Dequantize(level, bits, scale) into the net's parameters.
  void Finish() override;

  // Current bits of each prunable weight, in parameters() order.
  std::vector<int> Bits() const;
  // The integer form of each prunable weight; exact after Finish().
  std::vector<QuantizedWeight> Export() const;

 private:
  struct Layer {
    int param_index = 0;
    torch::Tensor mask;   // float [numel], or undefined (keep all)
    int64_t kept = 0;     // kept elements
    int cap = 0;          // carries never push the layer beyond this
    BitPlanes planes;     // state at the last re-quantization (scale: see below)
    torch::Tensor pos;    // float [bits, numel] ∈ [0, 2], requires_grad
    torch::Tensor neg;    // (undefined when bits == 0)
    torch::Tensor scale;  // float 0-dim, the live s_l; planes.scale is synced
                          // from it at every re-quantization
  };

  int CapBits(const Layer& layer) const;
  torch::Tensor RoundedLevels(const Layer& layer, bool straight_through) const;
  void SetTrainables(Layer& layer) const;
  void RequantizeLayer(Layer& layer);
  void RequantizeAll();

  std::vector<torch::Tensor> params_;  // the net's parameters (shared storage)
  std::vector<Layer> layers_;
  std::vector<torch::Tensor> plain_;  // non-prunable parameters
  BsqOptions options_;
  std::string mask_error_;  // reported by Begin
  int64_t finetune_start_ = std::numeric_limits<int64_t>::max();
  bool finetuning_ = false;
};

// Fixed-precision quantization-aware training, the uniform k-bit baseline and
// BSQ's fine-tune at a fixed scheme: the optimizer trains fp32 latent copies
// of the prunable weights; the forward pass uses
// s · round(W / s · (2^k − 1)) / (2^k − 1) with s = max|W| over kept weights,
// recomputed every step (straight-through). Masks as for BsqSource. Finish()
// writes the exact quantized weights into the net.
class UniformQuantSource : public ParameterSource {
 public:
  // Every prunable weight at `bits`, clamped to 1..kMaxBsqBits.
  UniformQuantSource(NetImpl& net, std::vector<torch::Tensor> masks, int bits);
  // Prunable weight k (parameters() order) at layer_bits[k], clamped to
  // 0..kMaxBsqBits (0: the layer is zero); missing entries: kMaxBsqBits.
  UniformQuantSource(NetImpl& net, std::vector<torch::Tensor> masks, const std::vector<int>& layer_bits);

  void Begin(int64_t total_steps) override;
  std::vector<torch::Tensor> Trainable() override;
  std::vector<torch::Tensor> EffectiveWeights() override;
  void Finish() override;

  std::vector<int> Bits() const;
  // Valid after Finish().
  std::vector<QuantizedWeight> Export() const;

 private:
  std::vector<torch::Tensor> params_;
  std::vector<int> prunable_;          // parameter indices
  std::vector<torch::Tensor> latent_;  // per prunable weight, requires_grad
  std::vector<torch::Tensor> masks_;   // per prunable weight, float or undefined
  std::vector<BitPlanes> final_;       // filled by Finish
  std::vector<int> bits_;              // per prunable weight
  std::string mask_error_;
};

// Mean bits per weight, weighted by element count (levels.size()).
// 0 for an empty list.
double MeanBits(const std::vector<QuantizedWeight>& weights);

}  // namespace lfl

#endif  // LFL_QUANT_BSQ_BSQ_H_
