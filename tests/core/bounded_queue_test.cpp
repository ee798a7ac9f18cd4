#include "core/bounded_queue.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>
#include <vector>

using nomnom::BoundedQueue;

TEST_CASE("BoundedQueue delivers every item once across threads", "[queue]") {
  BoundedQueue<int> q(4);
  constexpr int kPerProducer = 20000;
  std::vector<std::thread> producers;
  for (int p = 0; p < 3; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) q.Push(p * kPerProducer + i + 1);
      q.Push(0);  // end marker
    });
  }
  std::atomic<long long> sum{0};
  std::atomic<int> count{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 3; ++c) {
    consumers.emplace_back([&] {
      for (;;) {
        int v = q.Pop();
        if (v == 0) return;
        sum += v;
        ++count;
      }
    });
  }
  for (auto& t : producers) t.join();
  for (auto& t : consumers) t.join();
  const long long n = 3LL * kPerProducer;
  CHECK(count == n);
  CHECK(sum == n * (n + 1) / 2);
}

TEST_CASE("BoundedQueue blocks producers when full", "[queue]") {
  BoundedQueue<int> q(2);
  q.Push(1);
  q.Push(2);
  std::atomic<bool> pushed{false};
  std::thread t([&] {
    q.Push(3);
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(pushed.load());
  CHECK(q.Pop() == 1);
  t.join();
  CHECK(pushed.load());
  CHECK(q.Pop() == 2);
  CHECK(q.Pop() == 3);
}
