#include "runtime/torch_evaluator.h"

#include <map>

#include "absl/strings/str_cat.h"

#include "wire/model_payload.h"

namespace lfl {

absl::StatusOr<std::vector<uint8_t>> Correctness(NetImpl& net, const TensorData& data,
                                                 const std::vector<int64_t>& indices) {
  try {
    torch::NoGradGuard no_grad;
    net.eval();
    const int64_t n = indices.empty() ? data.labels.size(0) : static_cast<int64_t>(indices.size());
    std::vector<uint8_t> out;
    out.reserve(static_cast<size_t>(n));
    torch::Tensor all_idx =
        indices.empty() ? torch::arange(n, torch::kLong)
                        : torch::from_blob(const_cast<int64_t*>(indices.data()), {n}, torch::kLong);
    for (int64_t start = 0; start < n; start += 1000) {
      torch::Tensor idx = all_idx.slice(0, start, std::min(n, start + 1000));
      torch::Tensor pred = net.forward(data.images.index_select(0, idx)).argmax(1);
      torch::Tensor ok = pred.eq(data.labels.index_select(0, idx)).to(torch::kUInt8).contiguous();
      out.insert(out.end(), ok.data_ptr<uint8_t>(), ok.data_ptr<uint8_t>() + ok.numel());
    }
    return out;
  } catch (const c10::Error& e) {
    return absl::InternalError(e.what_without_backtrace());
  }
}

absl::StatusOr<EvalResult> TorchEvaluator::Evaluate(const EvalRequest& request) {
  if (request.clients.size() != request.masks.size()) {
    return absl::InvalidArgumentError("an evaluation request needs one mask per client");
  }
  absl::StatusOr<Net> net = NewNet(*data_);
  if (!net.ok()) return net.status();
  const TensorSet& global = request.global;
  EvalResult result;
  if (request.global_accuracy) {
    if (absl::Status s = LoadTensorSet(global, net->get()); !s.ok()) return s;
    absl::StatusOr<std::vector<uint8_t>> all = Correctness(**net, data_->test, {});
    if (!all.ok()) return all.status();
    int64_t correct = 0;
    for (uint8_t c : *all) correct += c;
    result.global_accuracy = all->empty() ? 0 : static_cast<double>(correct) / static_cast<double>(all->size());
  }

  // Group clients by mask so equal tickets share one pass (the map orders groups by hash, and
  // members by client id, so the float sum below is the same in every run).
  std::map<uint64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < request.clients.size(); ++i) {
    const int64_t k = request.clients[i];
    if (k < 0 || static_cast<size_t>(k) >= data_->partition.clients.size()) {
      return absl::InvalidArgumentError(absl::StrCat("no client ", k, " in this run's partition"));
    }
    groups[MaskHash(request.masks[i])].push_back(i);
  }
  double sum = 0;
  int64_t counted = 0;
  for (const auto& [hash, members] : groups) {
    TensorSet masked = global;
    request.masks[members.front()].ApplyTo(&masked);
    if (absl::Status s = LoadTensorSet(masked, net->get()); !s.ok()) return s;
    std::vector<int64_t> indices;
    for (size_t i : members) {
      const auto& test = data_->partition.clients[request.clients[i]].test;
      indices.insert(indices.end(), test.begin(), test.end());
    }
    absl::StatusOr<std::vector<uint8_t>> ok = Correctness(**net, data_->test, indices);
    if (!ok.ok()) return ok.status();
    size_t offset = 0;
    for (size_t i : members) {
      const size_t n = data_->partition.clients[request.clients[i]].test.size();
      int64_t c = 0;
      for (size_t i = 0; i < n; ++i) c += (*ok)[offset + i];
      offset += n;
      if (n > 0) {
        sum += static_cast<double>(c) / static_cast<double>(n);
        ++counted;
      }
    }
  }
  result.global_masked_accuracy = counted ? sum / static_cast<double>(counted) : -1;
  return result;
}

}  // namespace lfl
