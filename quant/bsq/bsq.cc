#include "quant/bsq/bsq.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "quant/codec/codec.h"

namespace lfl {
namespace {

bool IsPrunable(const torch::Tensor& param) { return param.dim() >= 2; }

// masks[i] as a flat float 0/1 tensor, or undefined for "keep all". Records
// the first mismatch in *error (the mask is then ignored).
torch::Tensor FlatMask(const std::vector<torch::Tensor>& masks, size_t i,
                       const torch::Tensor& param, std::string* error) {
  if (i >= masks.size() || !masks[i].defined()) return {};
  if (masks[i].numel() != param.numel()) {
    if (error->empty()) {
      *error = "mask " + std::to_string(i) + " has " + std::to_string(masks[i].numel()) +
               " elements, parameter has " + std::to_string(param.numel());
    }
    return {};
  }
  return (masks[i].detach().reshape({-1}) != 0).to(torch::kFloat32);
}

std::string CheckMaskCount(const std::vector<torch::Tensor>& masks, size_t params) {
  if (masks.empty() || masks.size() == params) return "";
  return "got " + std::to_string(masks.size()) + " masks for " + std::to_string(params) +
         " parameters";
}

std::vector<float> ToVector(const torch::Tensor& t) {
  const torch::Tensor flat = t.detach().reshape({-1}).to(torch::kFloat32).contiguous();
  return std::vector<float>(flat.data_ptr<float>(), flat.data_ptr<float>() + flat.numel());
}

std::vector<uint8_t> KeepFlags(const torch::Tensor& flat_mask) {
  if (!flat_mask.defined()) return {};
  const torch::Tensor flags = flat_mask.to(torch::kUInt8).contiguous();
  return std::vector<uint8_t>(flags.data_ptr<uint8_t>(), flags.data_ptr<uint8_t>() + flags.numel());
}

// Writes codec::Dequantize of every level into `param` (the canonical decode,
// so the server reconstructs bit-identical weights).
void WriteDequantized(const BitPlanes& planes, torch::Tensor& param) {
  std::vector<float> values(planes.levels.size());
  for (size_t i = 0; i < values.size(); ++i) {
    values[i] = codec::Dequantize(planes.levels[i], planes.bits, planes.scale);
  }
  torch::NoGradGuard no_grad;
  param.copy_(torch::from_blob(values.data(), param.sizes(), torch::kFloat32));
}

QuantizedWeight ToQuantizedWeight(int param_index, const BitPlanes& planes) {
  return QuantizedWeight{param_index, planes.bits, planes.scale, planes.levels};
}

// The positive and negative bit tensors [bits, numel] of integer levels.
std::pair<torch::Tensor, torch::Tensor> LevelsToBits(const BitPlanes& planes) {
  const int64_t n = static_cast<int64_t>(planes.levels.size());
  torch::Tensor pos = torch::zeros({planes.bits, n});
  torch::Tensor neg = torch::zeros({planes.bits, n});
  float* p = pos.data_ptr<float>();
  float* q = neg.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int32_t level = planes.levels[i];
    float* dst = level > 0 ? p : q;
    const int32_t mag = std::abs(level);
    for (int b = 0; b < planes.bits; ++b) dst[b * n + i] = static_cast<float>((mag >> b) & 1);
  }
  return {pos.requires_grad_(true), neg.requires_grad_(true)};
}

// 2^b for b = 0..bits-1, as a column [bits, 1].
torch::Tensor PlaneWeights(int bits) {
  return torch::pow(2.0, torch::arange(bits, torch::kFloat32)).unsqueeze(1);
}

}  // namespace

BsqSource::BsqSource(NetImpl& net, std::vector<torch::Tensor> masks, BsqOptions options)
    : params_(net.parameters()), options_(options) {
  options_.max_bits = std::clamp(options_.max_bits, 1, kMaxBsqBits);
  mask_error_ = CheckMaskCount(masks, params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& param = params_[i];
    if (!IsPrunable(param)) {
      plain_.push_back(param);
      continue;
    }
    Layer layer;
    layer.param_index = static_cast<int>(i);
    layer.mask = FlatMask(masks, i, param, &mask_error_);
    layer.kept = layer.mask.defined() ? layer.mask.sum().item<int64_t>() : param.numel();
    const size_t k = layers_.size();
    const int bits = std::clamp(
        k < options_.layer_initial_bits.size() ? options_.layer_initial_bits[k] : options_.initial_bits, 0,
        kMaxBsqBits);
    if (bits == 0) {
      layer.planes = BitPlanes{0, 0.f, std::vector<int32_t>(static_cast<size_t>(param.numel()), 0)};
    } else {
      layer.planes = QuantizeUniform(ToVector(param), KeepFlags(layer.mask), bits);
    }
    layer.cap = options_.never_raise ? std::min(bits, options_.max_bits) : options_.max_bits;
    if (layer.planes.scale == 0.f) layer.planes = DropZeroPlanes(std::move(layer.planes));
    SetTrainables(layer);
    layers_.push_back(std::move(layer));
  }
}

void BsqSource::SetTrainables(Layer& layer) const {
  std::tie(layer.pos, layer.neg) = LevelsToBits(layer.planes);
  layer.scale = torch::tensor(layer.planes.scale).requires_grad_(options_.train_scale);
}

void BsqSource::Begin(int64_t total_steps) {
  TORCH_CHECK(mask_error_.empty(), "BsqSource: ", mask_error_);
  finetune_start_ = total_steps - std::max<int64_t>(0, options_.finetune_steps);
  finetuning_ = finetune_start_ <= 0;
}

std::vector<torch::Tensor> BsqSource::Trainable() {
  std::vector<torch::Tensor> out;
  for (const Layer& layer : layers_) {
    if (layer.planes.bits == 0) continue;
    out.push_back(layer.pos);
    out.push_back(layer.neg);
    if (options_.train_scale) out.push_back(layer.scale);
  }
  out.insert(out.end(), plain_.begin(), plain_.end());
  return out;
}

int BsqSource::CapBits(const Layer& layer) const {
  return finetuning_ ? layer.planes.bits : std::max(layer.planes.bits, layer.cap);
}

// round(Σ_b (p_b − q_b)·2^b), clamped to what the next re-quantization can
// represent and masked; with straight_through the gradient flows to p and q as
// if the rounding were the identity.
torch::Tensor BsqSource::RoundedLevels(const Layer& layer, bool straight_through) const {
  const torch::Tensor continuous =
      ((layer.pos - layer.neg) * PlaneWeights(layer.planes.bits)).sum(0);
  const double limit = MaxLevel(CapBits(layer));
  const torch::Tensor rounded = torch::round(continuous.detach()).clamp(-limit, limit);
  torch::Tensor levels = straight_through ? continuous + (rounded - continuous).detach() : rounded;
  return layer.mask.defined() ? levels * layer.mask : levels;
}

std::vector<torch::Tensor> BsqSource::EffectiveWeights() {
  std::vector<torch::Tensor> weights = params_;
  for (const Layer& layer : layers_) {
    const torch::Tensor& param = params_[layer.param_index];
    if (layer.planes.bits == 0) {
      weights[layer.param_index] = torch::zeros_like(param);
      continue;
    }
    const torch::Tensor levels = RoundedLevels(layer, /*straight_through=*/true);
    // Same operation order as codec::Dequantize: scale · level / (2^n − 1).
    weights[layer.param_index] =
        ((levels * layer.scale) / static_cast<double>(MaxLevel(layer.planes.bits)))
            .view(param.sizes());
  }
  return weights;
}

torch::Tensor BsqSource::Penalty() {
  if (options_.alpha == 0.0 || finetuning_) return {};
  int64_t total_kept = 0;
  for (const Layer& layer : layers_) total_kept += layer.kept;
  torch::Tensor sum;
  for (const Layer& layer : layers_) {
    if (layer.planes.bits == 0 || layer.kept == 0) continue;
    const torch::Tensor planes = torch::cat({layer.pos, layer.neg}, 1);
    const torch::Tensor group_lasso =
        at::linalg_vector_norm(planes, 2, {1}, /*keepdim=*/false, c10::nullopt).sum();
    const double weight = static_cast<double>(layer.kept) * layer.planes.bits / total_kept;
    sum = sum.defined() ? sum + group_lasso * weight : group_lasso * weight;
  }
  return sum.defined() ? sum * options_.alpha : sum;
}

void BsqSource::AfterBackward() {
  if (!options_.train_scale) return;
  torch::NoGradGuard no_grad;
  for (Layer& layer : layers_) {
    torch::Tensor& grad = layer.scale.mutable_grad();
    if (grad.defined() && layer.kept > 0) {
      grad.mul_(options_.scale_grad_gain / std::sqrt(static_cast<double>(layer.kept)));
    }
  }
}

void BsqSource::RequantizeLayer(Layer& layer) {
  if (layer.planes.bits == 0) return;
  const torch::Tensor levels =
      RoundedLevels(layer, /*straight_through=*/false).to(torch::kInt32).contiguous();
  layer.planes.levels.assign(levels.data_ptr<int32_t>(),
                             levels.data_ptr<int32_t>() + levels.numel());
  layer.planes.scale = layer.scale.item<float>();
  if (layer.planes.scale == 0.f)
    std::fill(layer.planes.levels.begin(), layer.planes.levels.end(), 0);
  layer.planes = lfl::Requantize(std::move(layer.planes), CapBits(layer));
  SetTrainables(layer);
}

void BsqSource::RequantizeAll() {
  torch::NoGradGuard no_grad;
  for (Layer& layer : layers_) RequantizeLayer(layer);
}

bool BsqSource::AfterStep(int64_t step) {
  {
    torch::NoGradGuard no_grad;
    for (Layer& layer : layers_) {
      if (layer.planes.bits == 0) continue;
      layer.pos.clamp_(0.0, 2.0);
      layer.neg.clamp_(0.0, 2.0);
      layer.scale.clamp_min_(0.0);
    }
  }
  if (!finetuning_ && step + 1 >= finetune_start_) {
    RequantizeAll();  // with the carries the training phase allowed
    finetuning_ = true;
    return true;
  }
  if (finetuning_ || options_.interval <= 0 || (step + 1) % options_.interval != 0) return false;
  RequantizeAll();
  return true;
}

void BsqSource::Finish() {
  RequantizeAll();
  for (const Layer& layer : layers_) WriteDequantized(layer.planes, params_[layer.param_index]);
}

std::vector<int> BsqSource::Bits() const {
  std::vector<int> bits;
  for (const Layer& layer : layers_) bits.push_back(layer.planes.bits);
  return bits;
}

std::vector<QuantizedWeight> BsqSource::Export() const {
  std::vector<QuantizedWeight> out;
  for (const Layer& layer : layers_)
    out.push_back(ToQuantizedWeight(layer.param_index, layer.planes));
  return out;
}

UniformQuantSource::UniformQuantSource(NetImpl& net, std::vector<torch::Tensor> masks, int bits)
    : UniformQuantSource(net, std::move(masks),
                         std::vector<int>(net.parameters().size(), std::clamp(bits, 1, kMaxBsqBits))) {}

UniformQuantSource::UniformQuantSource(NetImpl& net, std::vector<torch::Tensor> masks,
                                       const std::vector<int>& layer_bits)
    : params_(net.parameters()) {
  mask_error_ = CheckMaskCount(masks, params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    const torch::Tensor& param = params_[i];
    if (!IsPrunable(param)) continue;
    const size_t k = prunable_.size();
    bits_.push_back(std::clamp(k < layer_bits.size() ? layer_bits[k] : kMaxBsqBits, 0, kMaxBsqBits));
    prunable_.push_back(static_cast<int>(i));
    torch::Tensor mask = FlatMask(masks, i, param, &mask_error_);
    torch::Tensor latent = param.detach().clone();
    if (mask.defined()) {
      mask = mask.view(param.sizes());
      latent.mul_(mask);
    }
    masks_.push_back(mask);
    latent_.push_back(latent.requires_grad_(true));
  }
}

void UniformQuantSource::Begin(int64_t /*total_steps*/) {
  TORCH_CHECK(mask_error_.empty(), "UniformQuantSource: ", mask_error_);
}

std::vector<torch::Tensor> UniformQuantSource::Trainable() {
  std::vector<torch::Tensor> out = latent_;
  for (const torch::Tensor& param : params_) {
    if (!IsPrunable(param)) out.push_back(param);
  }
  return out;
}

std::vector<torch::Tensor> UniformQuantSource::EffectiveWeights() {
  std::vector<torch::Tensor> weights = params_;
  for (size_t k = 0; k < prunable_.size(); ++k) {
    const double max_level = MaxLevel(bits_[k]);
    const torch::Tensor w = masks_[k].defined() ? latent_[k] * masks_[k] : latent_[k];
    const torch::Tensor scale = w.detach().abs().max();
    if (bits_[k] == 0 || scale.item<float>() == 0.f) {
      weights[prunable_[k]] = w * 0.0;
      continue;
    }
    const torch::Tensor levels = torch::round(w.detach() / scale * max_level);
    const torch::Tensor quantized = (levels * scale) / max_level;
    weights[prunable_[k]] = w + (quantized - w.detach());
  }
  return weights;
}

void UniformQuantSource::Finish() {
  final_.clear();
  for (size_t k = 0; k < prunable_.size(); ++k) {
    BitPlanes planes =
        bits_[k] == 0 ? BitPlanes{0, 0.f, std::vector<int32_t>(static_cast<size_t>(latent_[k].numel()), 0)}
                      : QuantizeUniform(ToVector(latent_[k]), KeepFlags(masks_[k]), bits_[k]);
    if (planes.scale == 0.f) planes = DropZeroPlanes(std::move(planes));
    final_.push_back(std::move(planes));
    WriteDequantized(final_.back(), params_[prunable_[k]]);
  }
}

std::vector<int> UniformQuantSource::Bits() const { return bits_; }

std::vector<QuantizedWeight> UniformQuantSource::Export() const {
  std::vector<QuantizedWeight> out;
  for (size_t k = 0; k < final_.size(); ++k)
    out.push_back(ToQuantizedWeight(prunable_[k], final_[k]));
  return out;
}

double MeanBits(const std::vector<QuantizedWeight>& weights) {
  double bits = 0, count = 0;
  for (const QuantizedWeight& w : weights) {
    bits += static_cast<double>(w.bits) * w.levels.size();
    count += static_cast<double>(w.levels.size());
  }
  return count == 0 ? 0.0 : bits / count;
}

}  // namespace lfl
