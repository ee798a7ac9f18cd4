// ObjectPool: a free list of reusable objects shared by the stages of a
// pipeline, so that big buffers keep their capacity from one use to the next
// instead of being freed (handed back to the kernel: large blocks are mmapped,
// see cli/main.cpp) and faulted in again for the next chunk.
//
// Acquire() hands out an idle object, or a new default-constructed one; the
// caller resets what must not carry over (e.g. clears its buffers, which keep
// their capacity). Release() takes it back; beyond max_idle idle objects it is
// destroyed. Memory stays bounded because objects only come back after being
// in flight: the pool holds at most as many as were ever in flight at once,
// which the pipeline's bounded queues limit.
//
// Thread-safe. Release() never allocates (the free list is reserved up front)
// and never throws, so it may be called from a shared_ptr deleter (see
// Share()).
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace nomnom {

template <typename T>
class ObjectPool : public std::enable_shared_from_this<ObjectPool<T>> {
 public:
  // Pools are shared with the deleters of Share()d objects, so they are
  // always owned by a shared_ptr.
  static std::shared_ptr<ObjectPool> Create(size_t max_idle) {
    return std::shared_ptr<ObjectPool>(new ObjectPool(max_idle));
  }

  std::unique_ptr<T> Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        std::unique_ptr<T> object = std::move(idle_.back());
        idle_.pop_back();
        return object;
      }
    }
    return std::make_unique<T>();
  }

  // Acquire() as a shared_ptr that goes back to this pool when the last
  // reference is dropped (the pool lives at least as long).
  std::shared_ptr<T> AcquireShared() {
    std::unique_ptr<T> object = Acquire();
    return std::shared_ptr<T>(object.release(),
                              [pool = this->shared_from_this()](T* p) { pool->Release(std::unique_ptr<T>(p)); });
  }

  void Release(std::unique_ptr<T> object) noexcept {
    if (object == nullptr) return;
    std::unique_lock<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) {
      idle_.push_back(std::move(object));  // within the reserved capacity: no allocation
      return;
    }
    lock.unlock();
    object.reset();
  }

  size_t idle() const {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_.size();
  }

 private:
  explicit ObjectPool(size_t max_idle) : max_idle_(max_idle) { idle_.reserve(max_idle); }

  const size_t max_idle_;
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<T>> idle_;  // guarded by mu_
};

}  // namespace nomnom
