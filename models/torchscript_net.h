// TorchScript models: `--model torchscript:FILE` trains and federates a model saved with
// torch.jit.save (or torch::jit::Module::save) like a registered one (models/net.h,
// RegisterModel): parameters of two or more dimensions (conv and linear weights) are prunable and
// quantized, the others are not; θ0 of every "weight" and its sibling "bias" is drawn from the run
// seed, so the file's own values of those do not matter; the other parameters keep the file's.
// The file's forward(x) must map [N, C, H, W] to logits [N, num_classes], without randomness in a
// run that substitutes weights (BSQ). Every process of the run (server and clients) needs FILE at
// the same path.
#ifndef LFL_MODELS_TORCHSCRIPT_NET_H_
#define LFL_MODELS_TORCHSCRIPT_NET_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "models/net.h"

namespace lfl {

inline constexpr std::string_view kTorchScriptPrefix = "torchscript:";

// Whether `model` names a TorchScript file ("torchscript:FILE").
bool IsTorchScriptModel(std::string_view model);

// Loads FILE as a ModuleModel: a torch::nn::Module whose parameters (and submodules, under the
// same names) are the TorchScript module's own tensors, set to take gradients, and a forward
// pass that calls the script's forward; train()/eval() reach the script. NotFound for a missing
// file, InvalidArgument for one torch::jit::load refuses.
absl::StatusOr<ModuleModel> LoadTorchScriptModel(const std::string& path);

// Registers `model` = "torchscript:FILE" (RegisterModel) with a factory that loads FILE for every
// new net, after checking once that it loads. Registering the same name again is a no-op.
// Thread-safe.
absl::Status RegisterTorchScriptModel(const std::string& model);

}  // namespace lfl

#endif  // LFL_MODELS_TORCHSCRIPT_NET_H_
