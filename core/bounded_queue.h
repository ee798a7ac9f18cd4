// BoundedQueue: a multi-producer multi-consumer queue with a fixed capacity,
// built on moodycamel's lock-free BlockingConcurrentQueue plus a counting
// semaphore for free slots. Push blocks while the queue is full (back-pressure),
// Pop blocks while it is empty. Thread-safe.
//
// There is no close(): pipelines end a queue by pushing one end-of-stream item
// per consumer, so no thread is ever left blocked.
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>

#include <cstddef>
#include <utility>

namespace nomnom {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity)
      : queue_(capacity), free_slots_(static_cast<moodycamel::LightweightSemaphore::ssize_t>(capacity)) {}

  void Push(T item) {
    free_slots_.wait();
    queue_.enqueue(std::move(item));
  }

  T Pop() {
    T item;
    queue_.wait_dequeue(item);
    free_slots_.signal();
    return item;
  }

  size_t ApproxSize() const { return queue_.size_approx(); }

 private:
  moodycamel::BlockingConcurrentQueue<T> queue_;
  moodycamel::LightweightSemaphore free_slots_;
};

}  // namespace nomnom
