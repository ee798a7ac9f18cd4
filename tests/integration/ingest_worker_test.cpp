// IngestWorker against real nats-server and PostgreSQL: exactly-once with the
// ledger, dead letters, status look-ups.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/ingest_format.h"
#include "core/ingest_worker.h"
#include "core/nats_client.h"
#include "core/schema.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;

namespace {

JetStreamConfig WorkerTestConfig(int64_t duplicate_window_ms) {
  JetStreamConfig c = UniqueJetStreamConfig("nnw");
  c.duplicate_window_ms = duplicate_window_ms;
  return c;
}

Entity TestEntity(const std::string& table) {
  auto e = ParseEntity(
      "entity:\n  name: Item\n  fields:\n"
      "    - {name: id, type: String, args: [64]}\n"
      "    - {name: qty, type: Integer, nullable: true}\n"
      "  persistence:\n    database:\n      conformant_table: " +
          table + "\n      unicity_fields: [id]\n",
      "test");
  REQUIRE(e.ok());
  return *e;
}

struct Fixture {
  explicit Fixture(int64_t duplicate_window_ms = 2 * 60 * 1000)
      : config(WorkerTestConfig(duplicate_window_ms)), table(UniqueName("items")), entity(TestEntity(table)) {
    auto c = JetStreamClient::Connect(config);
    if (!c.ok()) FAIL(c.status().message());
    js = std::move(c).value();
    REQUIRE(js->EnsureTopology().ok());
    db = Connect();
  }
  ~Fixture() { db->TryExec("DROP TABLE IF EXISTS " + QuoteIdent(table)); }

  // Publishes rows (NDJSON lines) as one chunk; returns its batch id.
  std::string PublishChunk(const std::string& body, std::string batch = "", const std::string& entity_name = "Item") {
    if (batch.empty()) batch = NewUuid();
    OutgoingMessage m;
    m.subject = js->EntitySubject(entity_name);
    m.msg_id = ChunkId(batch, 0);
    m.headers = {{std::string(kHeaderEntity), entity_name},
                 {std::string(kHeaderBatch), batch},
                 {std::string(kHeaderChunk), "0/1"}};
    m.body = body;
    PublishResult r;
    REQUIRE(js->Publish(m, &r).ok());
    return batch;
  }

  struct Counts {
    uint64_t rows_committed = 0, messages_committed = 0, rows_dead = 0, messages_dead = 0, duplicates_skipped = 0,
             transient_errors = 0;
  };
  WorkerOptions Options(int64_t idle_ms = 1500, int max_deliver = 3) const {
    WorkerOptions o;
    o.conninfo = DatabaseUrl();
    o.fetch_wait_ms = 300;
    o.idle_exit_ms = idle_ms;
    o.max_deliver = max_deliver;
    return o;
  }
  // Runs one worker until it has seen no message for idle_ms.
  Counts RunWorker(int64_t idle_ms = 1500, int max_deliver = 3) { return RunWorker(Options(idle_ms, max_deliver)); }
  // Runs one worker until it has seen no message for o.idle_exit_ms, or is
  // stopped after deadline_ms (a worker that loops forever does not hang the test).
  Counts RunWorker(const WorkerOptions& o, int64_t deadline_ms = 60000) {
    IngestWorker w(*js, {entity}, o);
    std::atomic<bool> finished{false};
    std::thread stopper([&] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(deadline_ms);
      while (!finished.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      w.Stop();
    });
    Status s = w.Run();
    finished.store(true);
    stopper.join();
    REQUIRE(s.ok());
    Counts out;
    out.rows_committed = w.counters().rows_committed.load();
    out.messages_committed = w.counters().messages_committed.load();
    out.rows_dead = w.counters().rows_dead.load();
    out.messages_dead = w.counters().messages_dead.load();
    out.duplicates_skipped = w.counters().duplicates_skipped.load();
    out.transient_errors = w.counters().transient_errors.load();
    return out;
  }

  std::string Count() { return QueryValue(*db, "SELECT count(*) FROM " + QuoteIdent(table)); }

  JetStreamConfig config;
  std::string table;
  Entity entity;
  std::unique_ptr<JetStreamClient> js;
  std::unique_ptr<PgConnection> db;
};

}  // namespace

TEST_CASE("a worker commits chunks, records them in the ledger and reports them processed", "[worker]") {
  Fixture f;
  const std::string b1 = f.PublishChunk("{\"id\":\"a\",\"qty\":1}\n{\"id\":\"b\",\"qty\":2}\n");
  const std::string b2 = f.PublishChunk("{\"id\":\"c\"}\n");
  auto c = f.RunWorker();
  CHECK(c.messages_committed == 2);
  CHECK(c.rows_committed == 3);
  CHECK(f.Count() == "3");
  CHECK(QueryValue(*f.db, "SELECT qty FROM " + QuoteIdent(f.table) + " WHERE id = 'b'") == "2");
  auto st = LookupIngestStatus(*f.db, b1);
  REQUIRE(st.ok());
  CHECK(st->state == IngestStatus::State::kProcessed);
  CHECK(st->rows == 2);
  auto row = LookupIngestStatus(*f.db, b2 + ".0");
  REQUIRE(row.ok());
  CHECK(row->state == IngestStatus::State::kProcessed);
  auto unknown = LookupIngestStatus(*f.db, NewUuid());
  REQUIRE(unknown.ok());
  CHECK(unknown->state == IngestStatus::State::kUnknown);
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
}

TEST_CASE("a chunk redelivered after its commit is acked without writing again", "[worker]") {
  // A 200 ms duplicate window lets the same Nats-Msg-Id into the stream again,
  // as a redelivery after a lost ack would arrive.
  Fixture f(200);
  const std::string batch = f.PublishChunk("{\"id\":\"a\",\"qty\":1}\n");
  auto first = f.RunWorker(800);
  CHECK(first.rows_committed == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  f.PublishChunk("{\"id\":\"a\",\"qty\":999}\n", batch);
  auto second = f.RunWorker(800);
  CHECK(second.duplicates_skipped == 1);
  CHECK(second.rows_committed == 0);
  CHECK(f.Count() == "1");
  CHECK(QueryValue(*f.db, "SELECT qty FROM " + QuoteIdent(f.table) + " WHERE id = 'a'") == "1");
  CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_ledger WHERE batch_id = '" + batch + "'") == "1");
}

TEST_CASE("rows PostgreSQL or the encoder reject become dead letters; the good rows commit", "[worker]") {
  Fixture f;
  f.db->TryExec("CREATE TABLE " + QuoteIdent(f.table) + " (id varchar(64) PRIMARY KEY, qty integer CHECK (qty >= 0))");
  const std::string batch = f.PublishChunk(
      "{\"id\":\"ok1\",\"qty\":1}\n{\"id\":\"neg\",\"qty\":-5}\n{\"id\":\"bad\",\"qty\":\"x\"}\n"
      "{\"id\":\"ok2\",\"qty\":2}\n");
  auto c = f.RunWorker();
  CHECK(c.rows_committed == 2);
  CHECK(c.rows_dead == 2);
  CHECK(f.Count() == "2");
  PgRows dead =
      Query(*f.db, "SELECT line, error, raw FROM nomnom_dead_letters WHERE batch_id = '" + batch + "' ORDER BY line");
  REQUIRE(dead.rows.size() == 2);
  CHECK(dead.rows[0][0].value() == "2");
  CHECK_THAT(dead.rows[0][1].value(), Catch::Contains("check constraint"));
  CHECK(dead.rows[0][2].value() == "{\"id\":\"neg\",\"qty\":-5}");
  CHECK(dead.rows[1][0].value() == "3");
  CHECK_THAT(dead.rows[1][1].value(), Catch::Contains("field 'qty'"));
  auto row_status = LookupIngestStatus(*f.db, batch + ".1");  // 0-based row 1 = line 2
  REQUIRE(row_status.ok());
  CHECK(row_status->state == IngestStatus::State::kDead);
  CHECK_THAT(row_status->error, Catch::Contains("check constraint"));
  auto good_row = LookupIngestStatus(*f.db, batch + ".0");
  REQUIRE(good_row.ok());
  CHECK(good_row->state == IngestStatus::State::kProcessed);
  auto stats = f.js->Lag();
  REQUIRE(stats.ok());
  CHECK(stats->Backlog() == 0);
}

TEST_CASE("a chunk for an unknown entity, or delivered too often, is dead-lettered whole", "[worker]") {
  Fixture f;
  const std::string unknown = f.PublishChunk("{\"id\":\"z\"}\n", "", "Nope");
  // Deliver a chunk three times without acking it, as crashed workers would.
  const std::string tired = f.PublishChunk("{\"id\":\"t\"}\n");
  for (int i = 0; i < 3; ++i) {
    auto msgs = f.js->Fetch(10, 0, 2000);
    REQUIRE(msgs.ok());
    for (auto& m : *msgs) {
      if (m->Header(std::string(kHeaderBatch)).value_or("") == tired) {
        REQUIRE(m->Nak().ok());
      } else {
        REQUIRE(m->Nak().ok());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto c = f.RunWorker(1500, /*max_deliver=*/2);
  CHECK(c.messages_dead == 2);
  CHECK(f.Count() == "0");
  auto st = LookupIngestStatus(*f.db, tired);
  REQUIRE(st.ok());
  CHECK(st->state == IngestStatus::State::kDead);
  CHECK_THAT(st->error, Catch::Contains("times without being committed"));
  auto st2 = LookupIngestStatus(*f.db, unknown);
  REQUIRE(st2.ok());
  CHECK(st2->state == IngestStatus::State::kDead);
  CHECK_THAT(st2->error, Catch::Contains("unknown entity 'Nope'"));
}

TEST_CASE("two copies of one chunk id in one fetch commit once and the rest of the fetch commits", "[worker][dup-id]") {
  // An Idempotency-Key re-sent after the duplicate window while the first copy
  // is still queued: the stream holds two messages with one Nats-Msg-Id.
  Fixture f(200);
  const std::string batch = f.PublishChunk("{\"id\":\"a\",\"qty\":1}\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  f.PublishChunk("{\"id\":\"a\",\"qty\":1}\n", batch);
  const std::string other = f.PublishChunk("{\"id\":\"b\",\"qty\":2}\n");
  auto c = f.RunWorker(f.Options(1500), /*deadline_ms=*/15000);
  CHECK(f.Count() == "2");
  CHECK(c.messages_committed == 2);
  CHECK(c.rows_committed == 2);
  CHECK(c.duplicates_skipped == 1);
  CHECK(c.transient_errors == 0);  // no conflict round
  CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_ledger WHERE batch_id IN ('" + batch + "', '" + other + "')") ==
        "2");
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
}

TEST_CASE("rows and chunks that are not UTF-8 are dead-lettered with their bytes escaped", "[worker][utf8]") {
  Fixture f;
  const std::string batch = f.PublishChunk("{\"id\":\"ok\"}\n{\"id\":\"\xFF\xFE\"}\n");
  const std::string whole = f.PublishChunk("{\"id\":\"\xC3\"}\n", "", "Nope");
  auto c = f.RunWorker(f.Options(1500), /*deadline_ms=*/15000);
  CHECK(f.Count() == "1");
  CHECK(c.rows_dead == 1);
  CHECK(c.messages_dead == 1);
  CHECK(QueryValue(*f.db, "SELECT raw FROM nomnom_dead_letters WHERE batch_id = '" + batch + "'") ==
        "{\"id\":\"\\xFF\\xFE\"}");
  CHECK(QueryValue(*f.db, "SELECT raw FROM nomnom_dead_letters WHERE batch_id = '" + whole + "'") ==
        "{\"id\":\"\\xC3\"}\n");
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
}
