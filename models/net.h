// Model zoo: the networks LotteryFL clients train, written so that the forward
// pass can run with substituted weights (BSQ computes with quantized weights
// while it trains bit planes) and with a caller-owned dropout generator (so
// clients trained on different threads are reproducible).
#ifndef LFL_MODELS_NET_H_
#define LFL_MODELS_NET_H_

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config/modes/run_modes.h"  // DatasetKind
#include "fl/tensor_set.h"

namespace lfl {

enum class ModelKind { kMnistCnn, kCifarCnn, kFemnistCnn, kMlp };

// Accepts "mnist-cnn", "cifar-cnn", "femnist-cnn" and "mlp"; anything else is
// InvalidArgument.
absl::StatusOr<ModelKind> ParseModelKind(std::string_view name);
// The name ParseModelKind accepts for `kind`.
std::string_view ModelKindName(ModelKind kind);
// The model LotteryFL uses for a dataset: cifar10 -> kCifarCnn, the EMNIST
// splits -> kFemnistCnn, mnist and fashion-mnist -> kMnistCnn.
ModelKind DefaultModelFor(DatasetKind dataset);

// Input geometry and output width of a network.
struct NetShape {
  int64_t channels = 1;
  int64_t height = 28;
  int64_t width = 28;
  int64_t num_classes = 10;
};

// A network whose forward pass can run with substituted weights.
//
// Thread safety: a NetImpl is not shared between threads while it trains;
// forward passes of distinct nets on distinct threads are independent.
class NetImpl : public torch::nn::Module {
 public:
  // Logits [N, num_classes] for a float input [N, C, H, W]. `weights` stands
  // in for parameters(): same count, order and shapes (not checked here; the
  // Trainer checks once per call). With train = true dropout is active and
  // draws its masks from `*generator` only (never from torch's global
  // generator); `generator` may be null when train = false.
  virtual torch::Tensor forward_with(const torch::Tensor& x,
                                     const std::vector<torch::Tensor>& weights, bool train,
                                     torch::Generator* generator) = 0;

  // Eval-mode logits computed with the net's own parameters.
  torch::Tensor forward(const torch::Tensor& x);
};
using Net = std::shared_ptr<NetImpl>;

// Builds a network. Its initial weights (θ0) depend only on (kind, shape,
// seed): they are drawn from a private generator seeded with `seed`, using
// PyTorch's default ranges (kaiming-uniform(a = sqrt(5)) for weights,
// uniform(±1/sqrt(fan_in)) for biases). InvalidArgument when the shape is not
// positive or too small for the model's convolutions.
//
// Parameter counts for the default shape (1×28×28, 10 classes): MnistCnn
// 21,840 (LotteryFL's CNNMnist), Mlp 199,210; CifarCnn (LeNet-5) on 3×32×32 is
// 62,006; FemnistCnn on 1×28×28 with 62 classes is 1,690,046.
absl::StatusOr<Net> MakeNet(ModelKind kind, const NetShape& shape, uint64_t seed);

// A network that is not in the zoo: any torch::nn::Module an embedding program
// brings, with its forward pass (logits [N, num_classes] for a float input
// [N, C, H, W], computed from the module's own parameters). Its parameters must
// be float32 on the CPU.
struct ModuleModel {
  std::shared_ptr<torch::nn::Module> module;
  std::function<torch::Tensor(const torch::Tensor&)> forward;
};

// A ModuleModel from a TORCH_MODULE holder: WrapModule(MyNet(shape)).
template <typename ModuleHolder>
ModuleModel WrapModule(ModuleHolder holder) {
  std::shared_ptr<torch::nn::Module> module = holder.ptr();
  return {std::move(module), [holder](const torch::Tensor& x) mutable { return holder->forward(x); }};
}

// Builds a fresh, untrained module for a run's input shape.
using ModelFactory = std::function<ModuleModel(const NetShape& shape)>;

// Registers `factory` under `name`, so that MakeNamedNet(name, ...), and so a run
// config's `model = "name"` (--model NAME) in this process, build it; register
// before loading the run (LoadRunData). InvalidArgument for an empty name, a
// zoo name, a name already registered, or an empty factory. Thread-safe.
//
// A registered model federates like the zoo's: every parameter is sent and
// aggregated; parameters with two or more dimensions (the weights of conv and
// linear layers) are prunable and quantized as weights, the others (biases,
// normalization scales) are never pruned. Its θ0 depends only on (name, shape,
// seed): every "weight" of two or more dimensions and its sibling "bias" are
// drawn from a generator seeded with `seed` (PyTorch's default conv/linear
// ranges, as for the zoo); the other parameters keep the values the factory
// gave them, so those must not be random. Buffers (batch-norm statistics) stay
// local to each net and are not federated.
//
// Randomness: `train` switches the module's train()/eval() mode, but a
// registered module draws dropout from torch's global generator, not the
// caller's, so its training is reproducible only without dropout. When the
// trainer substitutes weights (BSQ's bit planes, quantization-aware
// fine-tuning), the backward pass recomputes the forward pass with those
// weights, which is exact only for a forward pass without randomness.
absl::Status RegisterModel(std::string name, ModelFactory factory);

// The zoo model named `name` (ParseModelKind's names) or the one registered
// under it, with θ0 drawn from `seed`. InvalidArgument for an unknown name
// (the message lists the known ones), for a registered module without
// parameters, with parameters that are not float32 on the CPU, or whose
// forward pass does not map [1, C, H, W] to [1, num_classes].
absl::StatusOr<Net> MakeNamedNet(std::string_view name, const NetShape& shape, uint64_t seed);

// The parameters as a TensorSet, in named_parameters() order with their names
// ("conv1.weight", "conv1.bias", ...). prunable is true for conv/linear
// weights (dim >= 2), false for biases.
TensorSet ToTensorSet(NetImpl& net);

// Copies `values` into the net's parameters. InvalidArgument (and the net is
// left unchanged) when the layout differs from ToTensorSet(*net) (names,
// order, shapes, prunable flags, value counts) or when a value is not finite.
absl::Status LoadTensorSet(const TensorSet& values, NetImpl* net);

}  // namespace lfl

#endif  // LFL_MODELS_NET_H_
