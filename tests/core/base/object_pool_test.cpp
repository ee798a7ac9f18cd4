#include "core/base/object_pool.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

#include "core/base/byte_buffer.h"

using nomnom::ByteBuffer;
using nomnom::ObjectPool;

TEST_CASE("ObjectPool hands back released objects with their capacity instead of new ones", "[pool]") {
  auto pool = ObjectPool<ByteBuffer>::Create(4);
  auto a = pool->Acquire();
  a->Reserve(1 << 20);
  const char* storage = a->data();
  pool->Release(std::move(a));
  CHECK(pool->idle() == 1);
  auto b = pool->Acquire();
  CHECK(b->data() == storage);  // the same buffer, not a fresh allocation
  CHECK(b->capacity() >= (1u << 20));
  CHECK(pool->idle() == 0);
  auto c = pool->Acquire();  // none idle: a new, empty one
  CHECK(c->capacity() == 0);
}

TEST_CASE("ObjectPool keeps at most max_idle objects", "[pool]") {
  auto pool = ObjectPool<ByteBuffer>::Create(2);
  std::vector<std::unique_ptr<ByteBuffer>> held;
  for (int i = 0; i < 5; ++i) held.push_back(pool->Acquire());
  for (auto& h : held) pool->Release(std::move(h));
  CHECK(pool->idle() == 2);
  pool->Release(nullptr);
  CHECK(pool->idle() == 2);
}

TEST_CASE("ObjectPool::AcquireShared returns the object when the last reference goes, even after the pool's owner",
          "[pool]") {
  std::shared_ptr<ByteBuffer> shared;
  std::weak_ptr<ObjectPool<ByteBuffer>> weak;
  {
    auto pool = ObjectPool<ByteBuffer>::Create(4);
    weak = pool;
    shared = pool->AcquireShared();
    shared->Reserve(4096);
    auto copy = shared;
    copy.reset();
    CHECK(pool->idle() == 0);  // still referenced
  }
  // The deleter keeps the pool alive while an object is out.
  REQUIRE_FALSE(weak.expired());
  shared.reset();
  CHECK(weak.expired());  // the last object came back and the pool went with it
}

TEST_CASE("ObjectPool is safe across threads: every object is out at most once at a time", "[pool]") {
  auto pool = ObjectPool<int>::Create(8);
  std::vector<std::thread> threads;
  std::atomic<bool> overlap{false};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        auto p = pool->Acquire();
        if (*p != 0) overlap = true;  // someone else is using it
        *p = 1;
        *p = 0;
        pool->Release(std::move(p));
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK_FALSE(overlap);
  CHECK(pool->idle() <= 8);
}
