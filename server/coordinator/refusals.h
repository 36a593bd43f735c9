#ifndef LOTTERYFL_SERVER_REFUSALS_H_
#define LOTTERYFL_SERVER_REFUSALS_H_

// RefusalCounters: every request the server turned away, counted by cause.
//
// One instance per server process, shared by the gRPC service (transport refusals: no upload
// slot, pre-header timeout, too many streams on a connection, ...) and the coordinator
// (header and update refusals: bad credential, no open task, decode, norm, ticket, ...).
// /metrics exports the totals (lotteryfl_refusals_total{cause="..."}) and each metrics.jsonl
// row the round's deltas, so a refusal is never silent. Thread-safe; Count is lock-free once
// a cause has been seen (causes are a small fixed vocabulary of snake_case names).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace lfl {

class RefusalCounters {
 public:
  // Adds n to cause's counter (creating it on first use).
  void Count(std::string_view cause, uint64_t n = 1) {
    std::atomic<uint64_t>* counter = nullptr;
    {
      absl::ReaderMutexLock lock(&mu_);
      auto it = counters_.find(cause);
      if (it != counters_.end()) counter = it->second.get();
    }
    if (counter == nullptr) {
      absl::MutexLock lock(&mu_);
      auto& slot = counters_[std::string(cause)];
      if (!slot) slot = std::make_unique<std::atomic<uint64_t>>(0);
      counter = slot.get();
    }
    counter->fetch_add(n, std::memory_order_relaxed);
  }

  // Counts a refusal under `cause` and returns `why` (for `return refusals.Refuse(...)`).
  absl::Status Refuse(std::string_view cause, absl::Status why) {
    Count(cause);
    return why;
  }

  // What changed since the snapshot `*last` (which becomes the current snapshot).
  std::map<std::string, uint64_t> TakeDelta(std::map<std::string, uint64_t>* last) const {
    std::map<std::string, uint64_t> now = Snapshot();
    std::map<std::string, uint64_t> out = Delta(*last, now);
    *last = std::move(now);
    return out;
  }

  // Totals since the process started, by cause (sorted by name).
  std::map<std::string, uint64_t> Snapshot() const {
    std::map<std::string, uint64_t> out;
    absl::ReaderMutexLock lock(&mu_);
    for (const auto& [cause, counter] : counters_) out[cause] = counter->load(std::memory_order_relaxed);
    return out;
  }

  // What changed between two snapshots (causes whose count did not move are left out).
  static std::map<std::string, uint64_t> Delta(const std::map<std::string, uint64_t>& before,
                                               const std::map<std::string, uint64_t>& after) {
    std::map<std::string, uint64_t> out;
    for (const auto& [cause, n] : after) {
      auto it = before.find(cause);
      const uint64_t prev = it == before.end() ? 0 : it->second;
      if (n > prev) out[cause] = n - prev;
    }
    return out;
  }

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<std::atomic<uint64_t>>, std::less<>> counters_ ABSL_GUARDED_BY(mu_);
};

// RefusalLogLimiter: decides which refusals get a log line, so that a flood of refusals cannot
// fill the disk. Per cause, at most `burst` lines in each `window_seconds`; the first line of
// the next window that logs that cause reports how many were suppressed in the meantime.
// Thread-safe. It does not log itself (libraries do not log): Admit says whether to, and how
// many lines of that cause were dropped since the last one that was admitted.
class RefusalLogLimiter {
 public:
  explicit RefusalLogLimiter(int burst = 5, double window_seconds = 10) : burst_(burst), window_(window_seconds) {}

  // True when a line for `cause` may be written at time `now` (seconds, any monotonic clock);
  // *suppressed is then the number of lines of that cause refused since the last admitted one.
  bool Admit(std::string_view cause, double now, uint64_t* suppressed) {
    absl::MutexLock lock(&mu_);
    auto it = windows_.find(cause);
    if (it == windows_.end()) it = windows_.emplace(std::string(cause), Window{now, 0, 0}).first;
    Window& w = it->second;
    if (now - w.start >= window_) {
      w.start = now;
      w.lines = 0;
    }
    if (w.lines >= burst_) {
      ++w.suppressed;
      return false;
    }
    ++w.lines;
    *suppressed = w.suppressed;
    w.suppressed = 0;
    return true;
  }

 private:
  struct Window {
    double start;
    int lines;
    uint64_t suppressed;
  };
  const int burst_;
  const double window_;
  absl::Mutex mu_;
  std::map<std::string, Window, std::less<>> windows_ ABSL_GUARDED_BY(mu_);
};

// Where a refusal's log line goes (the executable passes spdlog; empty: nowhere). `cause` is
// the RefusalCounters cause, `detail` says who was refused and why, in one line.
using RefusalLogFn = std::function<void(std::string_view cause, const std::string& detail)>;

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_REFUSALS_H_
