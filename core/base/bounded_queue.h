// BoundedQueue: a multi-producer multi-consumer queue with a fixed capacity,
// built on moodycamel's lock-free BlockingConcurrentQueue plus a counting
// semaphore for free slots. Push blocks while the queue is full (back-pressure);
// Pop blocks while it is empty and returns false once the queue is closed and
// drained. Thread-safe.
//
// moodycamel's queue is FIFO per producer only: items from different producers
// may come out in any order. So the end of a stream is never an in-band marker
// item (it could overtake another producer's items); producers call Close()
// after their last Push instead.
#pragma once

#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/lightweightsemaphore.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <utility>

namespace nomnom {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t capacity)
      : queue_(capacity), free_slots_(static_cast<moodycamel::LightweightSemaphore::ssize_t>(capacity)) {}

  // Blocks while the queue is full. Must not be called after Close().
  void Push(T item) {
    free_slots_.wait();
    queue_.enqueue(std::move(item));
  }

  // Takes the next item into *item and returns true; returns false when the
  // queue is closed and every item pushed before Close() has been taken.
  bool Pop(T* item) {
    for (;;) {
      if (queue_.wait_dequeue_timed(*item, std::chrono::milliseconds(5))) {
        free_slots_.signal();
        return true;
      }
      if (closed_.load(std::memory_order_acquire)) {
        // Every Push happened before Close(), so an empty look now is final.
        if (queue_.try_dequeue(*item)) {
          free_slots_.signal();
          return true;
        }
        return false;
      }
    }
  }

  // Marks the end of the stream; call once, after all producers' last Push.
  void Close() { closed_.store(true, std::memory_order_release); }

  size_t ApproxSize() const { return queue_.size_approx(); }

 private:
  moodycamel::BlockingConcurrentQueue<T> queue_;
  moodycamel::LightweightSemaphore free_slots_;
  std::atomic<bool> closed_{false};
};

}  // namespace nomnom
