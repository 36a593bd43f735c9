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

absl::StatusOr<TorchEvaluator::TicketScores> TorchEvaluator::ScoreTickets(
    const EvalRequest& request, NetImpl& net) {
  if (request.clients.size() != request.masks.size()) {
    return absl::InvalidArgumentError("an evaluation request needs one mask per client");
  }
  // Group clients by mask so equal tickets share one pass (the map orders groups by hash, and
  // members by their place in the request, so `order` — and the float sum over it — is the
  // same in every run).
  std::map<uint64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < request.clients.size(); ++i) {
    const int64_t k = request.clients[i];
    if (k < 0 || static_cast<size_t>(k) >= data_->partition.clients.size()) {
      return absl::InvalidArgumentError(absl::StrCat("no client ", k, " in this run's partition"));
    }
    groups[MaskHash(request.masks[i])].push_back(i);
  }
  const int64_t test_size = data_->test.labels.defined() ? data_->test.labels.size(0) : 0;
  TicketScores scores;
  scores.accuracy.assign(request.clients.size(), -1);
  scores.order.reserve(request.clients.size());
  // slot[j]: where test image j sits in the current group's `unique` list (-1: not in it). Set
  // for a group's images only and cleared after it, so a group costs its members' images.
  std::vector<int32_t> slot(static_cast<size_t>(test_size), -1);
  std::vector<int64_t> unique;
  for (const auto& [hash, members] : groups) {
    scores.order.insert(scores.order.end(), members.begin(), members.end());
    // Each distinct test image of the group once, in the order the members first name it (a
    // group of clients with disjoint test splits scores exactly the list it always did).
    unique.clear();
    for (size_t i : members) {
      for (int64_t j : data_->partition.clients[request.clients[i]].test) {
        if (j < 0 || j >= test_size) {
          for (int64_t u : unique) slot[u] = -1;
          return absl::InvalidArgumentError(
              absl::StrCat("client ", request.clients[i], "'s test image ", j,
                           " is outside the test set (", test_size, " images)"));
        }
        if (slot[j] < 0) {
          slot[j] = static_cast<int32_t>(unique.size());
          unique.push_back(j);
        }
      }
    }
    if (unique.empty()) continue;  // no member has a test image (Correctness({}) means "all")
    TensorSet masked = request.global;
    request.masks[members.front()].ApplyTo(&masked);
    absl::Status loaded = LoadTensorSet(masked, &net);
    absl::StatusOr<std::vector<uint8_t>> ok = loaded.ok()
                                                  ? Correctness(net, data_->test, unique)
                                                  : absl::StatusOr<std::vector<uint8_t>>(loaded);
    if (!ok.ok()) return ok.status();
    for (size_t i : members) {
      const std::vector<int64_t>& test = data_->partition.clients[request.clients[i]].test;
      if (test.empty()) continue;
      int64_t c = 0;
      for (int64_t j : test) c += (*ok)[static_cast<size_t>(slot[j])];
      scores.accuracy[i] = static_cast<double>(c) / static_cast<double>(test.size());
    }
    for (int64_t u : unique) slot[u] = -1;
  }
  return scores;
}

absl::StatusOr<std::vector<double>> TorchEvaluator::TicketAccuracies(const EvalRequest& request) {
  absl::StatusOr<Net> net = NewNet(*data_);
  if (!net.ok()) return net.status();
  absl::StatusOr<TicketScores> scores = ScoreTickets(request, **net);
  if (!scores.ok()) return scores.status();
  return std::move(scores->accuracy);
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
    result.global_accuracy =
        all->empty() ? 0 : static_cast<double>(correct) / static_cast<double>(all->size());
  }
  absl::StatusOr<TicketScores> scores = ScoreTickets(request, **net);
  if (!scores.ok()) return scores.status();
  // Summed group by group, members in request order: the order the evaluator always used.
  double sum = 0;
  int64_t counted = 0;
  for (size_t i : scores->order) {
    if (data_->partition.clients[request.clients[i]].test.empty()) continue;
    sum += scores->accuracy[i];
    ++counted;
  }
  result.global_masked_accuracy = counted ? sum / static_cast<double>(counted) : -1;
  return result;
}

}  // namespace lfl
