#include "daemon/task_pool.h"

#include "core/base/log.h"

namespace nomnom {

BlockingTaskPool::BlockingTaskPool(std::string name, int threads, size_t max_queued)
    : name_(std::move(name)), max_queued_(max_queued) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Main(); });
}

BlockingTaskPool::~BlockingTaskPool() { Stop(); }

bool BlockingTaskPool::Submit(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || tasks_.size() >= max_queued_) return false;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

size_t BlockingTaskPool::Queued() const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.size();
}

void BlockingTaskPool::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void BlockingTaskPool::Main() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, nothing left
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& ex) {
      LogError("{}: a task failed: {}", name_, ex.what());
    } catch (...) {
      LogError("{}: a task failed", name_);
    }
  }
}

}  // namespace nomnom
