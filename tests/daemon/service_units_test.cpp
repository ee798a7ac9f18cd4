// The daemon's small units: BlockingTaskPool, PendingIds, IdempotencyCache,
// BatchReply, IdempotencyResolver's identity.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <thread>

#include "core/http/probe_routes.h"
#include "core/queue/ingest_format.h"
#include "daemon/idempotency_cache.h"
#include "daemon/ingest_api.h"
#include "daemon/json_reply.h"
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

TEST_CASE("batch reply: the last chunk's result answers; stored and not stored lines merged", "[batch_reply]") {
  std::vector<http::Response> answers;
  auto respond = [&](http::Response r) { answers.push_back(std::move(r)); };
  BatchReply reply(respond, "b", std::nullopt, 3, 6, nlohmann::ordered_json{{"batch_id", "b"}});
  PublishResult ok;
  PublishResult failed;
  failed.status = Status::Connection("gone");
  CHECK_FALSE(reply.Record(ok, {4, 5}, 2));
  CHECK_FALSE(reply.Record(failed, {6, 7}, 2));
  CHECK(reply.Record(ok, {1, 3}, 2));  // the last
  CHECK(reply.failed());
  CHECK(reply.rows_stored() == 4);
  CHECK_FALSE(reply.all_duplicates());
  const http::Response r = reply.NotStored();
  CHECK(r.status == 503);
  CHECK(r.body == R"({"error":"JetStream did not store the whole batch: gone","batch_id":"b","rows_stored":4,)"
                  R"("stored_lines":[[1,5]],"not_stored_lines":[[6,7]]})");
  CHECK(reply.Accepted().status == 202);
  CHECK(reply.Accepted().body == R"({"batch_id":"b"})");
  CHECK(answers.empty());  // the caller answers
}

TEST_CASE("idempotency: identity from the entity, kind and key; none without a key; long keys refused",
          "[idempotency]") {
  CHECK_FALSE(IdempotencyResolver::Identify("Order", "message", "", "{}"));
  auto a = IdempotencyResolver::Identify("Order", "message", "k", "{\"x\":1}");
  REQUIRE(a);
  CHECK(a->cache_key == "Order\nmessage\nk");
  CHECK(a->batch_id == NameUuid("Order\nmessage\nk"));
  CHECK(a->body_hash == NameUuid("{\"x\":1}"));
  CHECK(IdempotencyResolver::Identify("Order", "batch", "k", "{}")->batch_id != a->batch_id);
  std::vector<int> statuses;
  auto respond = [&](http::Response r) { statuses.push_back(r.status); };
  CHECK(IdempotencyResolver::CheckLength(std::string(256, 'k'), respond));
  CHECK_FALSE(IdempotencyResolver::CheckLength(std::string(257, 'k'), respond));
  CHECK(statuses == std::vector<int>{400});
}

TEST_CASE("nomnomd's /live and /ready bodies through the shared probe bodies, byte for byte", "[probes]") {
  // What nomnomd wrote before it used core/http/probe_routes.h: ordered_json
  // (members in insertion order).
  nlohmann::ordered_json live;
  live["status"] = "alive";
  live["uptime_seconds"] = 12.3456789012;
  CHECK(http::LiveBody(12.3456789012, http::ProbeJson::kMembersByName) == DumpJson(live));
  nlohmann::ordered_json states;
  states["fetching"] = 1;
  states["backing_off"] = 1;
  nlohmann::ordered_json ready;
  ready["status"] = "not ready";
  ready["reason"] = "stream S missing \xff";
  ready["workers"] = states;
  ready["worker_error"] = "no database";
  http::Readiness r;
  r.reason = "stream S missing \xff";
  r.fields.emplace_back("workers", DumpJson(states));
  r.fields.emplace_back("worker_error", DumpJson(nlohmann::ordered_json("no database")));
  CHECK(http::ReadyBody(r, http::ProbeJson::kInOrder) == DumpJson(ready));
}
