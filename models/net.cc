#include "models/net.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/max_pool.h"

namespace lfl {
namespace {

// PyTorch's nn.Dropout with the mask drawn from `generator`.
torch::Tensor Dropout(const torch::Tensor& x, double p, torch::Generator* generator) {
  TORCH_CHECK(generator != nullptr, "training forward pass needs a generator");
  torch::Tensor keep = torch::empty_like(x).bernoulli_(1.0 - p, *generator);
  return x * keep.div_(1.0 - p);
}

// PyTorch's nn.Dropout2d: drops whole channels of an [N, C, H, W] input.
torch::Tensor Dropout2d(const torch::Tensor& x, double p, torch::Generator* generator) {
  TORCH_CHECK(generator != nullptr, "training forward pass needs a generator");
  torch::Tensor keep =
      torch::empty({x.size(0), x.size(1), 1, 1}, x.options()).bernoulli_(1.0 - p, *generator);
  return x * keep.div_(1.0 - p);
}

// A stride-1, unpadded convolution. For single-channel inputs in a training
// pass, im2col + GEMM (thnn_conv2d) runs MnistCnn's first layer's backward
// about twice as fast as oneDNN, torch::conv2d's CPU default; oneDNN is faster
// everywhere else, and thnn's im2col buffer would be large for the 1000-image
// evaluation batches.
torch::Tensor Conv2d(const torch::Tensor& x, const torch::Tensor& weight,
                     const torch::Tensor& bias) {
  if (x.size(1) == 1 && torch::GradMode::is_enabled()) {
    return at::thnn_conv2d(x, weight, {weight.size(2), weight.size(3)}, bias, {1, 1}, {0, 0});
  }
  return torch::conv2d(x, weight, bias);
}

// One conv or linear layer: its weight shape; the bias has weight_shape[0]
// elements.
struct LayerSpec {
  std::string name;
  std::vector<int64_t> weight_shape;
};

// A net whose parameters are the weight and bias of each layer in order,
// registered as "<layer>.weight", "<layer>.bias" so that named_parameters()
// reads like the equivalent torch::nn model. Parameters are created without
// touching torch's global generator.
class LayeredNet : public NetImpl {
 protected:
  void AddLayers(const std::vector<LayerSpec>& layers) {
    for (const LayerSpec& layer : layers) {
      auto holder = register_module(layer.name, std::make_shared<torch::nn::Module>());
      holder->register_parameter("weight", torch::empty(layer.weight_shape));
      holder->register_parameter("bias", torch::empty({layer.weight_shape[0]}));
    }
  }
};

// LotteryFL's CNNMnist shape: conv k5, pool, relu; conv k5, dropout2d, pool,
// relu; fc, relu, dropout; fc. Also the (wider) FEMNIST CNN.
class TwoConvCnn : public LayeredNet {
 public:
  struct Widths {
    int64_t conv1, conv2, hidden;
  };
  TwoConvCnn(const NetShape& shape, const Widths& widths) {
    const int64_t h = ((shape.height - 4) / 2 - 4) / 2;
    const int64_t w = ((shape.width - 4) / 2 - 4) / 2;
    AddLayers({{"conv1", {widths.conv1, shape.channels, 5, 5}},
               {"conv2", {widths.conv2, widths.conv1, 5, 5}},
               {"fc1", {widths.hidden, widths.conv2 * h * w}},
               {"fc2", {shape.num_classes, widths.hidden}}});
  }

  torch::Tensor forward_with(const torch::Tensor& x, const std::vector<torch::Tensor>& weights,
                             bool train, torch::Generator* generator) override {
    torch::Tensor y = Conv2d(x, weights[0], weights[1]);
    y = torch::relu(MaxPool2x2(y));
    y = Conv2d(y, weights[2], weights[3]);
    if (train) y = Dropout2d(y, 0.5, generator);
    y = torch::relu(MaxPool2x2(y)).flatten(1);
    y = torch::relu(torch::linear(y, weights[4], weights[5]));
    if (train) y = Dropout(y, 0.5, generator);
    return torch::linear(y, weights[6], weights[7]);
  }
};

// LeNet-5 as in the PyTorch CIFAR-10 tutorial (no dropout).
class CifarCnn : public LayeredNet {
 public:
  explicit CifarCnn(const NetShape& shape) {
    const int64_t h = ((shape.height - 4) / 2 - 4) / 2;
    const int64_t w = ((shape.width - 4) / 2 - 4) / 2;
    AddLayers({{"conv1", {6, shape.channels, 5, 5}},
               {"conv2", {16, 6, 5, 5}},
               {"fc1", {120, 16 * h * w}},
               {"fc2", {84, 120}},
               {"fc3", {shape.num_classes, 84}}});
  }

  torch::Tensor forward_with(const torch::Tensor& x, const std::vector<torch::Tensor>& weights,
                             bool /*train*/, torch::Generator* /*generator*/) override {
    // Pooling before relu equals the tutorial's relu-then-pool (both are
    // monotone) and does the relu on a quarter of the values.
    torch::Tensor y = torch::relu(MaxPool2x2(Conv2d(x, weights[0], weights[1])));
    y = torch::relu(MaxPool2x2(Conv2d(y, weights[2], weights[3]))).flatten(1);
    y = torch::relu(torch::linear(y, weights[4], weights[5]));
    y = torch::relu(torch::linear(y, weights[6], weights[7]));
    return torch::linear(y, weights[8], weights[9]);
  }
};

// Two hidden layers of 200 units (the FedAvg paper's "2NN"), no dropout.
class Mlp : public LayeredNet {
 public:
  explicit Mlp(const NetShape& shape) {
    AddLayers({{"fc1", {200, shape.channels * shape.height * shape.width}},
               {"fc2", {200, 200}},
               {"fc3", {shape.num_classes, 200}}});
  }

  torch::Tensor forward_with(const torch::Tensor& x, const std::vector<torch::Tensor>& weights,
                             bool /*train*/, torch::Generator* /*generator*/) override {
    torch::Tensor y = torch::relu(torch::linear(x.flatten(1), weights[0], weights[1]));
    y = torch::relu(torch::linear(y, weights[2], weights[3]));
    return torch::linear(y, weights[4], weights[5]);
  }
};

// PyTorch's default init for conv/linear layers: kaiming_uniform_(a = sqrt(5))
// for the weight and uniform(±1/sqrt(fan_in)) for the bias. Both bounds come
// out as 1/sqrt(fan_in). Parameters come in (weight, bias) pairs.
void InitializeParameters(NetImpl& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::Generator generator = at::detail::createCPUGenerator(seed);
  std::vector<torch::Tensor> params = net.parameters();
  for (size_t i = 0; i + 1 < params.size(); i += 2) {
    const double fan_in = static_cast<double>(params[i].numel() / params[i].size(0));
    const double gain = std::sqrt(2.0 / (1.0 + 5.0));
    const double weight_bound = std::sqrt(3.0) * gain / std::sqrt(fan_in);
    const double bias_bound = 1.0 / std::sqrt(fan_in);
    params[i].uniform_(-weight_bound, weight_bound, generator);
    params[i + 1].uniform_(-bias_bound, bias_bound, generator);
  }
}

// Smallest input side the two k5-conv + pool2 stages accept.
constexpr int64_t kMinConvSide = 16;

absl::Status ValidateShape(ModelKind kind, const NetShape& shape) {
  if (shape.channels <= 0 || shape.height <= 0 || shape.width <= 0 || shape.num_classes <= 0) {
    return absl::InvalidArgumentError("net shape must be positive");
  }
  if (kind != ModelKind::kMlp && (shape.height < kMinConvSide || shape.width < kMinConvSide)) {
    return absl::InvalidArgumentError(absl::StrCat(std::string(ModelKindName(kind)),
                                                   " needs inputs of at least ", kMinConvSide, "x",
                                                   kMinConvSide));
  }
  return absl::OkStatus();
}

Net Construct(ModelKind kind, const NetShape& shape) {
  switch (kind) {
    case ModelKind::kMnistCnn:
      return std::make_shared<TwoConvCnn>(shape, TwoConvCnn::Widths{10, 20, 50});
    case ModelKind::kFemnistCnn:
      return std::make_shared<TwoConvCnn>(shape, TwoConvCnn::Widths{32, 64, 512});
    case ModelKind::kCifarCnn:
      return std::make_shared<CifarCnn>(shape);
    case ModelKind::kMlp:
      return std::make_shared<Mlp>(shape);
  }
  return nullptr;
}

// While alive, the parameters hold `values` (same count and shapes) instead of their own data,
// and take gradients; the destructor restores both.
class SubstitutedParameters {
 public:
  SubstitutedParameters(std::vector<torch::Tensor> params, const std::vector<torch::Tensor>& values)
      : params_(std::move(params)) {
    TORCH_CHECK(values.size() == params_.size(), "expected ", params_.size(), " weights, got ", values.size());
    for (size_t i = 0; i < params_.size(); ++i) {
      own_.push_back(params_[i].data());
      requires_grad_.push_back(params_[i].requires_grad());
      params_[i].set_data(values[i].detach());
      params_[i].requires_grad_(true);
    }
  }
  ~SubstitutedParameters() {
    for (size_t i = 0; i < params_.size(); ++i) {
      params_[i].set_data(own_[i]);
      params_[i].requires_grad_(requires_grad_[i]);
    }
  }
  SubstitutedParameters(const SubstitutedParameters&) = delete;
  SubstitutedParameters& operator=(const SubstitutedParameters&) = delete;

 private:
  std::vector<torch::Tensor> params_, own_;
  std::vector<bool> requires_grad_;
};

// A registered ModuleModel as a Net. Its children and own parameters are registered under the
// module's own names, so named_parameters() reads exactly as the module's.
class ModuleNet : public NetImpl {
 public:
  explicit ModuleNet(ModuleModel model) : model_(std::move(model)) {
    for (const auto& param : model_.module->named_parameters(/*recurse=*/false)) {
      register_parameter(param.key(), param.value());
    }
    for (const auto& child : model_.module->named_children()) register_module(child.key(), child.value());
  }

  torch::Tensor forward_with(const torch::Tensor& x, const std::vector<torch::Tensor>& weights, bool train,
                             torch::Generator* /*generator*/) override;

  torch::Tensor Forward(const torch::Tensor& x) { return model_.forward(x); }

 private:
  ModuleModel model_;
};

// The module's forward pass with substituted weights, differentiable with respect to them (and
// x): the module cannot take weights as arguments, so the forward pass runs with the weights
// swapped into its parameters, and the backward pass swaps them in again and recomputes it with
// autograd (as activation checkpointing does).
struct SubstitutedForward : torch::autograd::Function<SubstitutedForward> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               torch::TensorList weights, ModuleNet* net) {
    torch::autograd::variable_list saved = {x};
    saved.insert(saved.end(), weights.begin(), weights.end());
    ctx->save_for_backward(saved);
    ctx->saved_data["net"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(net));
    SubstitutedParameters substituted(net->parameters(), weights.vec());
    return net->Forward(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_output) {
    const torch::autograd::variable_list saved = ctx->get_saved_variables();
    auto* net = reinterpret_cast<ModuleNet*>(static_cast<intptr_t>(ctx->saved_data["net"].toInt()));
    const std::vector<torch::Tensor> weights(saved.begin() + 1, saved.end());
    std::vector<torch::Tensor> params = net->parameters();
    SubstitutedParameters substituted(params, weights);
    torch::AutoGradMode grad_mode(true);
    torch::Tensor x = saved[0].detach().requires_grad_(saved[0].requires_grad());
    torch::Tensor y = net->Forward(x);
    std::vector<torch::Tensor> inputs = params;
    if (x.requires_grad()) inputs.push_back(x);
    torch::autograd::variable_list grads =
        torch::autograd::grad({y}, inputs, {grad_output[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                              /*allow_unused=*/true);
    // One gradient per forward input: x, each weight, and none for the net.
    torch::autograd::variable_list out = {x.requires_grad() ? grads.back() : torch::Tensor()};
    out.insert(out.end(), grads.begin(), grads.begin() + static_cast<std::ptrdiff_t>(params.size()));
    out.emplace_back();
    return out;
  }
};

torch::Tensor ModuleNet::forward_with(const torch::Tensor& x, const std::vector<torch::Tensor>& weights, bool train,
                                      torch::Generator* /*generator*/) {
  train ? model_.module->train() : model_.module->eval();
  const std::vector<torch::Tensor> params = parameters();
  bool own = weights.size() == params.size();
  for (size_t i = 0; own && i < params.size(); ++i) own = weights[i].is_same(params[i]);
  if (own) return Forward(x);
  // As a TensorList, so that autograd sees each weight as an input.
  return SubstitutedForward::apply(x, torch::TensorList(weights), this);
}

// θ0 of a registered module: every "weight" of two or more dimensions and its sibling "bias"
// from PyTorch's conv/linear default ranges (both bounds 1/sqrt(fan_in)), drawn in
// named_parameters() order from a generator seeded with `seed`.
void InitializeModuleParameters(NetImpl& net, uint64_t seed) {
  torch::NoGradGuard no_grad;
  torch::Generator generator = at::detail::createCPUGenerator(seed);
  const auto named = net.named_parameters();
  for (const auto& item : named) {
    const std::string& name = item.key();
    torch::Tensor weight = item.value();
    const bool is_weight = name == "weight" || absl::EndsWith(name, ".weight");
    if (!is_weight || weight.dim() < 2) continue;
    const double bound = 1.0 / std::sqrt(static_cast<double>(weight.numel() / weight.size(0)));
    weight.uniform_(-bound, bound, generator);
    const std::string bias_name = name.substr(0, name.size() - std::string("weight").size()) + "bias";
    if (const torch::Tensor* bias = named.find(bias_name)) bias->uniform_(-bound, bound, generator);
  }
}

absl::Status ValidateModuleNet(const std::string& name, NetImpl& net, const NetShape& shape) {
  const std::vector<torch::Tensor> params = net.parameters();
  if (params.empty()) return absl::InvalidArgumentError(absl::StrCat("model '", name, "' has no parameters"));
  for (const auto& item : net.named_parameters()) {
    if (item.value().scalar_type() != torch::kFloat32 || !item.value().device().is_cpu()) {
      return absl::InvalidArgumentError(
          absl::StrCat("model '", name, "': parameter ", item.key(), " is not float32 on the CPU"));
    }
  }
  torch::NoGradGuard no_grad;
  const torch::Tensor logits =
      net.forward(torch::zeros({1, shape.channels, shape.height, shape.width}));
  if (logits.dim() != 2 || logits.size(0) != 1 || logits.size(1) != shape.num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("model '", name, "' maps [1, ", shape.channels, ", ",
                                                   shape.height, ", ", shape.width, "] to ",
                                                   c10::str(logits.sizes()), ", not [1, ", shape.num_classes, "]"));
  }
  return absl::OkStatus();
}

struct ModelRegistry {
  std::mutex mu;
  std::map<std::string, ModelFactory, std::less<>> factories;
};

ModelRegistry& Registry() {
  static ModelRegistry* registry = new ModelRegistry();
  return *registry;
}

}  // namespace

absl::Status RegisterModel(std::string name, ModelFactory factory) {
  if (name.empty()) return absl::InvalidArgumentError("RegisterModel: empty model name");
  if (!factory) return absl::InvalidArgumentError(absl::StrCat("RegisterModel: empty factory for '", name, "'"));
  if (ParseModelKind(name).ok()) {
    return absl::InvalidArgumentError(absl::StrCat("RegisterModel: '", name, "' is a zoo model"));
  }
  ModelRegistry& registry = Registry();
  std::lock_guard<std::mutex> lock(registry.mu);
  if (!registry.factories.emplace(name, std::move(factory)).second) {
    return absl::InvalidArgumentError(absl::StrCat("RegisterModel: '", name, "' is already registered"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Net> MakeNamedNet(std::string_view model_name, const NetShape& shape, uint64_t seed) {
  if (absl::StatusOr<ModelKind> kind = ParseModelKind(model_name); kind.ok()) return MakeNet(*kind, shape, seed);
  const std::string name(model_name);
  ModelFactory factory;
  std::vector<std::string> registered;
  {
    ModelRegistry& registry = Registry();
    std::lock_guard<std::mutex> lock(registry.mu);
    if (auto it = registry.factories.find(name); it != registry.factories.end()) factory = it->second;
    for (const auto& entry : registry.factories) registered.push_back(entry.first);
  }
  if (!factory) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unknown model '", name, "' (expected mnist-cnn, cifar-cnn, femnist-cnn, mlp",
        registered.empty() ? std::string(" or a model registered with RegisterModel")
                           : absl::StrCat(" or a registered model: ", absl::StrJoin(registered, ", ")),
        ")"));
  }
  if (shape.channels <= 0 || shape.height <= 0 || shape.width <= 0 || shape.num_classes <= 0) {
    return absl::InvalidArgumentError("net shape must be positive");
  }
  try {
    ModuleModel model = factory(shape);
    if (!model.module || !model.forward) {
      return absl::InvalidArgumentError(absl::StrCat("model '", name, "': the factory returned no module"));
    }
    auto net = std::make_shared<ModuleNet>(std::move(model));
    if (absl::Status status = ValidateModuleNet(name, *net, shape); !status.ok()) return status;
    InitializeModuleParameters(*net, seed);
    return Net(std::move(net));
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(absl::StrCat("model '", name, "': ", e.what_without_backtrace()));
  }
}

torch::Tensor NetImpl::forward(const torch::Tensor& x) {
  return forward_with(x, parameters(), /*train=*/false, /*generator=*/nullptr);
}

absl::StatusOr<ModelKind> ParseModelKind(std::string_view name) {
  for (ModelKind kind :
       {ModelKind::kMnistCnn, ModelKind::kCifarCnn, ModelKind::kFemnistCnn, ModelKind::kMlp}) {
    if (name == ModelKindName(kind)) return kind;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown model '", std::string(name),
                   "' (expected mnist-cnn, cifar-cnn, femnist-cnn or mlp)"));
}

std::string_view ModelKindName(ModelKind kind) {
  switch (kind) {
    case ModelKind::kMnistCnn:
      return "mnist-cnn";
    case ModelKind::kCifarCnn:
      return "cifar-cnn";
    case ModelKind::kFemnistCnn:
      return "femnist-cnn";
    case ModelKind::kMlp:
      return "mlp";
  }
  return "unknown";
}

ModelKind DefaultModelFor(DatasetKind dataset) {
  if (dataset == DatasetKind::kCifar10) return ModelKind::kCifarCnn;
  if (IsEmnist(dataset)) return ModelKind::kFemnistCnn;
  return ModelKind::kMnistCnn;
}

absl::StatusOr<Net> MakeNet(ModelKind kind, const NetShape& shape, uint64_t seed) {
  if (absl::Status status = ValidateShape(kind, shape); !status.ok()) return status;
  try {
    Net net = Construct(kind, shape);
    InitializeParameters(*net, seed);
    return net;
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("MakeNet: ", e.what_without_backtrace()));
  }
}

TensorSet ToTensorSet(NetImpl& net) {
  TensorSet set;
  for (const auto& item : net.named_parameters()) {
    const torch::Tensor values = item.value().detach().contiguous();
    NamedTensor tensor;
    tensor.name = item.key();
    tensor.shape = values.sizes().vec();
    tensor.values.assign(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
    tensor.prunable = values.dim() >= 2;
    set.tensors.push_back(std::move(tensor));
  }
  return set;
}

absl::Status LoadTensorSet(const TensorSet& values, NetImpl* net) {
  if (absl::Status status = values.CheckLayout(ToTensorSet(*net)); !status.ok()) return status;
  if (absl::Status status = values.CheckFinite(); !status.ok()) return status;
  torch::NoGradGuard no_grad;
  const std::vector<torch::Tensor> params = net->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const std::vector<float>& source = values.tensors[i].values;
    std::copy(source.begin(), source.end(), params[i].data_ptr<float>());
  }
  return absl::OkStatus();
}

}  // namespace lfl
