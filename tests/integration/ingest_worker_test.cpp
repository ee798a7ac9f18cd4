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

JetStreamConfig WorkerTestConfig(int64_t duplicate_window_ms, int64_t ack_wait_ms = 0) {
  JetStreamConfig c = UniqueJetStreamConfig("nnw");
  c.duplicate_window_ms = duplicate_window_ms;
  if (ack_wait_ms > 0) c.ack_wait_ms = ack_wait_ms;
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
  explicit Fixture(int64_t duplicate_window_ms = 2 * 60 * 1000, int64_t ack_wait_ms = 0)
      : config(WorkerTestConfig(duplicate_window_ms, ack_wait_ms)),
        table(UniqueName("items")),
        entity(TestEntity(table)) {
    auto c = JetStreamClient::Connect(config);
    if (!c.ok()) FAIL(c.status().message());
    js = std::move(c).value();
    REQUIRE(js->EnsureTopology().ok());
    db = Connect();
  }
  ~Fixture() {
    db->TryExec("DROP TABLE IF EXISTS " + QuoteIdent(table));
    db->TryExec("DROP TABLE IF EXISTS " + QuoteIdent("nomnom_versions_" + table));
  }

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
    uint64_t rows_committed = 0, messages_committed = 0, rows_dead = 0, messages_dead = 0, duplicates_skipped = 0;
  };
  // Runs one worker until it has seen no message for idle_ms.
  Counts RunWorker(int64_t idle_ms = 1500, int max_deliver = 3, ConflictMode mode = ConflictMode::kNothing) {
    WorkerOptions o;
    o.mode = mode;
    o.conninfo = DatabaseUrl();
    o.fetch_wait_ms = 300;
    o.idle_exit_ms = idle_ms;
    o.max_deliver = max_deliver;
    IngestWorker w(*js, {entity}, o);
    REQUIRE(w.Run().ok());
    Counts out;
    out.rows_committed = w.counters().rows_committed.load();
    out.messages_committed = w.counters().messages_committed.load();
    out.rows_dead = w.counters().rows_dead.load();
    out.messages_dead = w.counters().messages_dead.load();
    out.duplicates_skipped = w.counters().duplicates_skipped.load();
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

TEST_CASE("a row a trigger rejects (P0001) is dead-lettered at once; the other rows of its chunk commit", "[worker]") {
  Fixture f;
  const std::string function = UniqueName("nnw_no_x");
  f.db->TryExec("CREATE TABLE " + QuoteIdent(f.table) + " (id varchar(64) PRIMARY KEY, qty integer)");
  Query(*f.db, "CREATE FUNCTION " + QuoteIdent(function) +
                   "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                   " IF NEW.id = 'x' THEN RAISE EXCEPTION 'no x please'; END IF; RETURN NEW; END $$");
  Query(*f.db, "CREATE TRIGGER no_x BEFORE INSERT OR UPDATE ON " + QuoteIdent(f.table) +
                   " FOR EACH ROW EXECUTE FUNCTION " + QuoteIdent(function) + "()");
  const std::string batch = f.PublishChunk(
      "{\"id\":\"a\",\"qty\":1}\n{\"id\":\"b\",\"qty\":2}\n{\"id\":\"x\",\"qty\":3}\n"
      "{\"id\":\"c\",\"qty\":4}\n{\"id\":\"d\",\"qty\":5}\n");
  // A watchdog stops a worker that keeps retrying the chunk (as it did when
  // only classes 22/23 were isolated), so the test fails instead of hanging.
  WorkerOptions o;
  o.conninfo = DatabaseUrl();
  o.fetch_wait_ms = 300;
  o.idle_exit_ms = 1500;
  IngestWorker w(*f.js, {f.entity}, o);
  std::atomic<bool> done{false};
  std::thread watchdog([&] {
    for (int i = 0; i < 600 && !done.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    w.Stop();
  });
  Status run = w.Run();
  done.store(true);
  watchdog.join();
  CHECK(run.ok());
  CHECK(w.counters().messages_committed.load() == 1);
  CHECK(w.counters().messages_dead.load() == 0);
  CHECK(w.counters().rows_committed.load() == 4);
  CHECK(w.counters().rows_dead.load() == 1);
  CHECK(f.Count() == "4");
  PgRows dead = Query(*f.db, "SELECT line, error, raw FROM nomnom_dead_letters WHERE batch_id = '" + batch + "'");
  REQUIRE(dead.rows.size() == 1);
  CHECK(dead.rows[0][0].value() == "3");
  CHECK_THAT(dead.rows[0][1].value(), Catch::Contains("no x please") && Catch::Contains("P0001"));
  CHECK(dead.rows[0][2].value() == "{\"id\":\"x\",\"qty\":3}");
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
  f.db->TryExec("DROP TABLE IF EXISTS " + QuoteIdent(f.table));
  f.db->TryExec("DROP FUNCTION IF EXISTS " + QuoteIdent(function) + "()");
}

TEST_CASE("update through workers: an older message committed after a newer one does not win",
          "[worker][update-order]") {
  // A long ack wait, so that the message the test holds is not redelivered
  // while the worker runs, however slow the machine.
  Fixture f(2 * 60 * 1000, 120 * 1000);
  f.PublishChunk("{\"id\":\"k\",\"qty\":1}\n");
  f.PublishChunk("{\"id\":\"k\",\"qty\":2}\n{\"id\":\"m\",\"qty\":2}\n");
  // Hold the older message (as a slow worker would), let a worker commit the
  // newer one, then release the older one: it commits last.
  auto held = f.js->Fetch(1, 0, 5000);
  REQUIRE(held.ok());
  REQUIRE(held->size() == 1);
  REQUIRE((*held)[0]->body() == "{\"id\":\"k\",\"qty\":1}\n");
  auto first = f.RunWorker(1500, 3, ConflictMode::kUpdate);
  CHECK(first.messages_committed == 1);
  CHECK(QueryValue(*f.db, "SELECT qty FROM " + QuoteIdent(f.table) + " WHERE id = 'k'") == "2");
  REQUIRE((*held)[0]->Nak().ok());
  auto second = f.RunWorker(1500, 3, ConflictMode::kUpdate);
  CHECK(second.messages_committed == 1);
  CHECK(second.rows_committed == 1);  // committed as skipped: a later message's version is in place
  CHECK(QueryValue(*f.db, "SELECT qty FROM " + QuoteIdent(f.table) + " WHERE id = 'k'") == "2");
  CHECK(f.Count() == "2");
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
}
