// Model zoo: the networks LotteryFL clients train, written so that the forward
// pass can run with substituted weights (BSQ computes with quantized weights
// while it trains bit planes) and with a caller-owned dropout generator (so
// clients trained on different threads are reproducible).
#ifndef LFL_MODELS_NET_H_
#define LFL_MODELS_NET_H_

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fl/tensor_set.h"

namespace lfl {

enum class ModelKind { kMnistCnn, kCifarCnn, kFemnistCnn, kMlp };

// Accepts "mnist-cnn", "cifar-cnn", "femnist-cnn" and "mlp"; anything else is
// InvalidArgument.
absl::StatusOr<ModelKind> ParseModelKind(std::string_view name);
// The name ParseModelKind accepts for `kind`.
std::string_view ModelKindName(ModelKind kind);
// The model LotteryFL uses for a dataset name: "cifar10" -> kCifarCnn,
// "emnist-*" -> kFemnistCnn, everything else (mnist, fashion-mnist) -> kMnistCnn.
ModelKind DefaultModelFor(std::string_view dataset);

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
