// The daemon's small units: BlockingTaskPool, PendingIds, IdempotencyCache.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "daemon/idempotency_cache.h"
#include "daemon/pending_ids.h"
#include "daemon/task_pool.h"

using namespace nomnom;

TEST_CASE("task pool: runs tasks, refuses beyond its queue, survives a throwing task", "[task_pool]") {
  BlockingTaskPool pool("test", 1, 2);
  std::mutex gate;
  std::unique_lock<std::mutex> hold(gate);
  std::atomic<int> ran{0};
  REQUIRE(pool.Submit([&] {
    std::lock_guard<std::mutex> wait(gate);  // blocks the only thread
    ++ran;
  }));
  // Wait until the first task is running (not queued).
  for (int i = 0; i < 200 && pool.Queued() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  CHECK(pool.Submit([&] { throw std::runtime_error("boom"); }));
  CHECK(pool.Submit([&] { ++ran; }));
  CHECK_FALSE(pool.Submit([&] { ++ran; }));  // the queue holds 2
  hold.unlock();
  pool.Stop();  // runs what was queued
  CHECK(ran == 2);
  CHECK_FALSE(pool.Submit([&] { ++ran; }));  // stopped
}

TEST_CASE("pending ids: batches and message rows, bounded", "[pending_ids]") {
  PendingIds p(2);
  p.Remember("b1", 1, 1);
  p.Remember("b1", 3, 1);  // a shared message chunk acknowledged row by row
  CHECK(p.IsPending(StatusKey{StatusKey::Kind::kBatch, "b1", 0}));
  CHECK(p.IsPending(StatusKey{StatusKey::Kind::kMessage, "b1", 2}));
  CHECK_FALSE(p.IsPending(StatusKey{StatusKey::Kind::kMessage, "b1", 3}));
  p.Remember("b2", 10, 4);
  CHECK_FALSE(p.IsPending(StatusKey{StatusKey::Kind::kMessage, "b2", 0}));  // not a one-chunk batch
  p.Remember("b3", 1, 1);
  CHECK(p.size() == 2);
  CHECK_FALSE(p.IsPending(StatusKey{StatusKey::Kind::kBatch, "b1", 0}));  // the oldest went
}

TEST_CASE("idempotency cache: remembers within the ttl and the bound", "[idempotency]") {
  IdempotencyCache c(2, 200);
  c.Remember("k1", "h1");
  CHECK(c.BodyHash("k1") == std::optional<std::string>("h1"));
  CHECK_FALSE(c.BodyHash("k2").has_value());
  c.Remember("k2", "h2");
  c.Remember("k3", "h3");
  CHECK_FALSE(c.BodyHash("k1").has_value());  // bounded: the oldest went
  CHECK(c.BodyHash("k3") == std::optional<std::string>("h3"));
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  CHECK_FALSE(c.BodyHash("k3").has_value());  // expired
}
