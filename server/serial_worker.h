#ifndef LOTTERYFL_SERVER_SERIAL_WORKER_H_
#define LOTTERYFL_SERVER_SERIAL_WORKER_H_

// SerialWorker: one thread that runs posted jobs in the order they were posted. The server
// gives it each aggregated round's bookkeeping (evaluation, the metrics.jsonl row, the
// checkpoint), so none of it holds up the next round or a parked poll. Drain() waits until
// every job posted so far has run. Thread-safe.

#include <deque>
#include <functional>
#include <thread>

#include "absl/synchronization/mutex.h"

namespace lfl {

class SerialWorker {
 public:
  SerialWorker() : thread_([this] { Run(); }) {}
  ~SerialWorker() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
    }
    thread_.join();
  }
  SerialWorker(const SerialWorker&) = delete;
  SerialWorker& operator=(const SerialWorker&) = delete;

  void Post(std::function<void()> job) {
    absl::MutexLock lock(&mu_);
    jobs_.push_back(std::move(job));
  }
  // Returns once every job posted before the call has finished.
  void Drain() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &SerialWorker::Idle));
  }

 private:
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return jobs_.empty() && !busy_; }
  bool HasWorkOrStopping() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !jobs_.empty() || stopping_; }
  void Run() {
    for (;;) {
      std::function<void()> job;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &SerialWorker::HasWorkOrStopping));
        if (jobs_.empty()) return;  // stopping, and everything posted has run
        job = std::move(jobs_.front());
        jobs_.pop_front();
        busy_ = true;
      }
      job();
      absl::MutexLock lock(&mu_);
      busy_ = false;
    }
  }

  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace lfl

#endif  // LOTTERYFL_SERVER_SERIAL_WORKER_H_
