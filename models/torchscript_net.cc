#include "models/torchscript_net.h"

#include <torch/script.h>

#include <filesystem>
#include <memory>
#include <mutex>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"

namespace lfl {
namespace {

// A torch::nn::Module view of a TorchScript module: the same parameter tensors (so optimizers,
// set_data and named_parameters() act on what the script's forward uses) and the same tree.
class ScriptModuleView : public torch::nn::Module {
 public:
  explicit ScriptModuleView(torch::jit::Module script) : script_(std::move(script)) {
    for (const auto& p : script_.named_parameters(/*recurse=*/false)) {
      p.value.requires_grad_(true);
      register_parameter(p.name, p.value);
    }
    for (const auto& child : script_.named_children()) {
      register_module(child.name, std::make_shared<ScriptModuleView>(child.value));
    }
  }

  void train(bool on = true) override {
    torch::nn::Module::train(on);
    script_.train(on);
  }

  torch::Tensor Forward(const torch::Tensor& x) { return script_.forward({x}).toTensor(); }

 private:
  torch::jit::Module script_;
};

struct Registered {
  std::mutex mu;
  std::set<std::string> names;
};

Registered& RegisteredNames() {
  static Registered* registered = new Registered();
  return *registered;
}

}  // namespace

bool IsTorchScriptModel(std::string_view model) {
  return model.substr(0, kTorchScriptPrefix.size()) == kTorchScriptPrefix;
}

absl::StatusOr<ModuleModel> LoadTorchScriptModel(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_regular_file(path, error)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such TorchScript file"));
  }
  try {
    torch::jit::Module script = torch::jit::load(path, torch::kCPU);
    auto view = std::make_shared<ScriptModuleView>(std::move(script));
    return ModuleModel{view, [view](const torch::Tensor& x) { return view->Forward(x); }};
  } catch (const c10::Error& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a TorchScript file torch::jit::load reads (",
                     e.what_without_backtrace(), ")"));
  }
}

absl::Status RegisterTorchScriptModel(const std::string& model) {
  if (!IsTorchScriptModel(model)) {
    return absl::InvalidArgumentError(absl::StrCat("'", model, "' is not torchscript:FILE"));
  }
  const std::string path = model.substr(kTorchScriptPrefix.size());
  Registered& registered = RegisteredNames();
  std::lock_guard<std::mutex> lock(registered.mu);
  if (registered.names.count(model) > 0) return absl::OkStatus();
  if (absl::Status s = LoadTorchScriptModel(path).status(); !s.ok()) return s;
  // The file loaded once; a later failure (the file changed underneath) surfaces as MakeNamedNet's
  // InvalidArgument through the c10::Error.
  absl::Status s = RegisterModel(model, [path](const NetShape&) {
    absl::StatusOr<ModuleModel> loaded = LoadTorchScriptModel(path);
    TORCH_CHECK(loaded.ok(), std::string(loaded.status().message()));
    return *std::move(loaded);
  });
  if (!s.ok()) return s;
  registered.names.insert(model);
  return absl::OkStatus();
}

}  // namespace lfl
