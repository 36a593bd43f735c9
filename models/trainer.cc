#include "models/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sampler.h"

namespace lfl {
namespace {

absl::Status ValidateOptions(const TrainOptions& options) {
  if (options.epochs < 0) return absl::InvalidArgumentError("epochs must be >= 0");
  if (options.batch_size <= 0) return absl::InvalidArgumentError("batch_size must be > 0");
  if (!(options.lr > 0) || !std::isfinite(options.lr)) {
    return absl::InvalidArgumentError("lr must be positive and finite");
  }
  if (!(options.momentum >= 0 && options.momentum < 1)) {
    return absl::InvalidArgumentError("momentum must be in [0, 1)");
  }
  if (!(options.noise_sigma >= 0) || !std::isfinite(options.noise_sigma)) {
    return absl::InvalidArgumentError("noise_sigma must be >= 0 and finite");
  }
  if (!(options.proximal_mu >= 0) || !std::isfinite(options.proximal_mu)) {
    return absl::InvalidArgumentError("proximal_mu must be >= 0 and finite");
  }
  return absl::OkStatus();
}

// With a proximal term, the anchor lines up with the net's parameters.
absl::Status ValidateAnchor(NetImpl& net, const TrainOptions& options) {
  if (options.proximal_mu == 0) return absl::OkStatus();
  const std::vector<torch::Tensor> params = net.parameters();
  const std::vector<torch::Tensor>& anchor = options.proximal_anchor;
  if (anchor.size() != params.size()) {
    return absl::InvalidArgumentError(absl::StrCat("proximal_anchor has ", anchor.size(),
                                                   " tensors, the net has ", params.size()));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    if (!anchor[i].defined() || anchor[i].sizes() != params[i].sizes() ||
        anchor[i].scalar_type() != params[i].scalar_type()) {
      return absl::InvalidArgumentError(
          absl::StrCat("proximal_anchor ", i, " does not match the net's parameter ", i));
    }
  }
  return absl::OkStatus();
}

// (mu / 2) · Σ_i ‖weights[i] − anchor[i]‖², differentiable in the weights (at least one).
torch::Tensor ProximalTerm(const std::vector<torch::Tensor>& weights,
                           const std::vector<torch::Tensor>& anchor, double mu) {
  torch::Tensor sum = (weights[0] - anchor[0]).square().sum();
  for (size_t i = 1; i < weights.size(); ++i) sum = sum + (weights[i] - anchor[i]).square().sum();
  return sum * (mu / 2);
}

absl::Status ValidateData(const TensorData& data, const std::vector<int64_t>& indices) {
  if (!data.images.defined() || !data.labels.defined() || data.images.dim() != 4 ||
      data.labels.dim() != 1 || data.images.size(0) != data.labels.size(0)) {
    return absl::InvalidArgumentError("data must hold images [N,C,H,W] and labels [N]");
  }
  const int64_t n = data.labels.size(0);
  for (int64_t index : indices) {
    if (index < 0 || index >= n) {
      return absl::InvalidArgumentError(
          absl::StrCat("index ", index, " is outside the split of ", n, " images"));
    }
  }
  return absl::OkStatus();
}

std::vector<torch::Tensor> ZerosLike(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> zeros;
  zeros.reserve(tensors.size());
  for (const torch::Tensor& t : tensors) zeros.push_back(torch::zeros_like(t));
  return zeros;
}

// The effective weights must line up with parameters(): forward_with indexes
// them positionally.
void CheckWeights(const std::vector<torch::Tensor>& params,
                  const std::vector<torch::Tensor>& weights) {
  TORCH_CHECK_VALUE(weights.size() == params.size(), "parameter source gives ", weights.size(),
                    " weights, the net has ", params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    TORCH_CHECK_VALUE(weights[i].sizes() == params[i].sizes(), "weight ", i, " has shape ",
                      weights[i].sizes(), ", the net's is ", params[i].sizes());
  }
}

// buf = momentum * buf + grad; p -= lr * buf. Leaves without a gradient (not
// reached by the loss) are left alone.
void SgdStep(std::vector<torch::Tensor>& trainable, std::vector<torch::Tensor>& buffers, double lr,
             double momentum) {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < trainable.size(); ++i) {
    const torch::Tensor& grad = trainable[i].grad();
    if (!grad.defined()) continue;
    buffers[i].mul_(momentum).add_(grad);
    trainable[i].add_(buffers[i], -lr);
  }
}

TrainStats RunTraining(NetImpl& net, ParameterSource& source, const TensorData& data,
                       const std::vector<int64_t>& indices, const TrainOptions& options) {
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t batches_per_epoch = (n + options.batch_size - 1) / options.batch_size;
  const std::vector<torch::Tensor> params = net.parameters();
  Sampler shuffle_rng(options.seed);
  torch::Generator generator = at::detail::createCPUGenerator(options.seed);
  std::vector<int64_t> order = indices;

  source.Begin(options.epochs * batches_per_epoch);
  std::vector<torch::Tensor> trainable = source.Trainable();
  std::vector<torch::Tensor> buffers = ZerosLike(trainable);
  TrainStats stats;
  double loss_sum = 0;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    shuffle_rng.Shuffle(&order);
    for (int64_t start = 0; start < n; start += options.batch_size) {
      const int64_t count = std::min(options.batch_size, n - start);
      const torch::Tensor batch = torch::from_blob(order.data() + start, {count}, torch::kInt64);
      torch::Tensor x = data.images.index_select(0, batch);
      if (options.noise_sigma > 0) {
        x.add_(torch::randn(x.sizes(), generator, x.options()), options.noise_sigma);
      }
      const std::vector<torch::Tensor> weights = source.EffectiveWeights();
      CheckWeights(params, weights);
      const torch::Tensor loss = torch::nn::functional::cross_entropy(
          net.forward_with(x, weights, /*train=*/true, &generator),
          data.labels.index_select(0, batch));
      const torch::Tensor penalty = source.Penalty();
      for (torch::Tensor& t : trainable) t.mutable_grad().reset();
      torch::Tensor objective = penalty.defined() ? loss + penalty : loss;
      if (options.proximal_mu > 0 && !weights.empty()) {
        objective = objective + ProximalTerm(weights, options.proximal_anchor, options.proximal_mu);
      }
      objective.backward();
      source.AfterBackward();
      SgdStep(trainable, buffers, options.lr, options.momentum);
      if (source.AfterStep(stats.steps)) {
        trainable = source.Trainable();
        buffers = ZerosLike(trainable);
      }
      loss_sum += loss.item<double>();
      ++stats.steps;
      stats.samples += count;
    }
  }
  source.Finish();
  stats.mean_loss = stats.steps > 0 ? loss_sum / static_cast<double>(stats.steps) : 0.0;
  return stats;
}

double RunEvaluation(NetImpl& net, const TensorData& data, const std::vector<int64_t>& indices,
                     float noise_sigma, uint64_t seed) {
  constexpr int64_t kBatch = 1000;
  torch::NoGradGuard no_grad;
  torch::Generator generator = at::detail::createCPUGenerator(seed);
  const bool whole_split = indices.empty();
  const int64_t n = whole_split ? data.labels.size(0) : static_cast<int64_t>(indices.size());
  const torch::Tensor all =
      whole_split ? torch::Tensor()
                  : torch::from_blob(const_cast<int64_t*>(indices.data()), {n}, torch::kInt64);
  int64_t correct = 0;
  for (int64_t start = 0; start < n; start += kBatch) {
    const int64_t count = std::min(kBatch, n - start);
    torch::Tensor x, y;
    if (whole_split) {
      x = data.images.narrow(0, start, count);
      y = data.labels.narrow(0, start, count);
    } else {
      const torch::Tensor batch = all.narrow(0, start, count);
      x = data.images.index_select(0, batch);
      y = data.labels.index_select(0, batch);
    }
    if (noise_sigma > 0) x = x + torch::randn(x.sizes(), generator, x.options()) * noise_sigma;
    correct += net.forward(x).argmax(1).eq(y).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(n);
}

}  // namespace

PlainSource::PlainSource(NetImpl& net, std::vector<torch::Tensor> masks)
    : params_(net.parameters()), masks_(std::move(masks)) {}

void PlainSource::Begin(int64_t /*total_steps*/) {
  if (masks_.empty()) return;
  TORCH_CHECK_VALUE(masks_.size() == params_.size(), "got ", masks_.size(), " masks for ",
                    params_.size(), " parameters");
  for (size_t i = 0; i < masks_.size(); ++i) {
    if (!masks_[i].defined()) continue;
    TORCH_CHECK_VALUE(masks_[i].sizes() == params_[i].sizes(), "mask ", i, " has shape ",
                      masks_[i].sizes(), ", parameter has ", params_[i].sizes());
    masks_[i] = masks_[i].to(torch::kFloat32);
  }
  ApplyMasks();
}

std::vector<torch::Tensor> PlainSource::Trainable() { return params_; }

std::vector<torch::Tensor> PlainSource::EffectiveWeights() { return params_; }

void PlainSource::AfterBackward() {
  for (size_t i = 0; i < masks_.size(); ++i) {
    torch::Tensor grad = params_[i].mutable_grad();
    if (masks_[i].defined() && grad.defined()) grad.mul_(masks_[i]);
  }
}

bool PlainSource::AfterStep(int64_t /*step*/) {
  ApplyMasks();
  return false;
}

void PlainSource::ApplyMasks() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < masks_.size(); ++i) {
    if (masks_[i].defined()) params_[i].mul_(masks_[i]);
  }
}

absl::StatusOr<TrainStats> Trainer::Train(NetImpl& net, ParameterSource& source,
                                          const TensorData& data,
                                          const std::vector<int64_t>& indices,
                                          const TrainOptions& options) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) return status;
  if (indices.empty()) return absl::InvalidArgumentError("no training indices");
  if (absl::Status status = ValidateData(data, indices); !status.ok()) return status;
  if (absl::Status status = ValidateAnchor(net, options); !status.ok()) return status;
  try {
    return RunTraining(net, source, data, indices, options);
  } catch (const c10::ValueError& e) {
    return absl::InvalidArgumentError(absl::StrCat("Train: ", e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("Train: ", e.what_without_backtrace()));
  }
}

absl::StatusOr<double> Trainer::Evaluate(NetImpl& net, const TensorData& data,
                                         const std::vector<int64_t>& indices, float noise_sigma,
                                         uint64_t seed) {
  if (absl::Status status = ValidateData(data, indices); !status.ok()) return status;
  if (data.labels.size(0) == 0) return absl::InvalidArgumentError("nothing to evaluate");
  if (!(noise_sigma >= 0) || !std::isfinite(noise_sigma)) {
    return absl::InvalidArgumentError("noise_sigma must be >= 0 and finite");
  }
  try {
    return RunEvaluation(net, data, indices, noise_sigma, seed);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("Evaluate: ", e.what_without_backtrace()));
  }
}

void SetMathThreads(int threads) {
  threads = std::max(threads, 1);
  at::set_num_threads(threads);
  try {
    at::set_num_interop_threads(threads);
  } catch (const c10::Error&) {
    // The inter-op pool is already running; its size can no longer change.
  }
  using SetBlasThreads = void (*)(int);
  if (auto set_blas =
          reinterpret_cast<SetBlasThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"))) {
    set_blas(threads);
  }
}

}  // namespace lfl
