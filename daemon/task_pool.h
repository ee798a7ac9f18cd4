// BlockingTaskPool: a few threads that run blocking work (database look-ups,
// JetStream management requests) for the HTTP handlers, which must not block
// the io threads.
//
// The queue is bounded: Submit() refuses a task (returns false, the task is
// not run) when max_queued tasks already wait, so a stalled database makes
// callers answer 503 at once instead of piling up requests. Separate pools
// keep probes (/ready, /live) from waiting behind slow look-ups.
//
// Tasks must not throw; one that does is logged and the pool goes on.
// Thread-safety: every method may be called from any thread. Destruction
// stops the pool (Stop()).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace nomnom {

class BlockingTaskPool {
 public:
  BlockingTaskPool(std::string name, int threads, size_t max_queued);
  ~BlockingTaskPool();
  BlockingTaskPool(const BlockingTaskPool&) = delete;
  BlockingTaskPool& operator=(const BlockingTaskPool&) = delete;

  // Queues task; false when the queue is full or the pool stopped.
  bool Submit(std::function<void()> task);
  // Tasks waiting (not yet running).
  size_t Queued() const;
  // Runs the tasks already queued, then joins the threads. Idempotent.
  void Stop();

 private:
  void Main();

  const std::string name_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace nomnom
