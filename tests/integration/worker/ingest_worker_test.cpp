// IngestWorker against real nats-server and PostgreSQL: exactly-once with the
// ledger, dead letters, status look-ups.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <thread>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/pgcopy_chunk.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "core/queue/chunk_writer.h"
#include "core/queue/ingest_format.h"
#include "core/queue/nats_client.h"
#include "core/worker/ingest_worker.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;

namespace {

JetStreamConfig WorkerTestConfig(int64_t duplicate_window_ms, int64_t ack_wait_ms) {
  JetStreamConfig c = UniqueJetStreamConfig("nnw");
  c.duplicate_window_ms = duplicate_window_ms;
  if (ack_wait_ms > 0) c.ack_wait_ms = ack_wait_ms;
  return c;
}

// conninfo (a URL, as the tests use) with search_path set to one schema.
std::string WithSearchPath(const std::string& url, const std::string& schema) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" + schema;
}

// Waits until pred() holds, for at most timeout_ms; returns pred().
template <typename Pred>
bool WaitFor(Pred pred, int64_t timeout_ms) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (!pred() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
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

  // Publishes a message without a Nats-Msg-Id; returns its stream sequence.
  uint64_t PublishUnnamed(const std::string& body) {
    OutgoingMessage m;
    m.subject = js->EntitySubject("Item");
    m.headers = {{std::string(kHeaderEntity), "Item"}};
    m.body = body;
    PublishResult r;
    REQUIRE(js->Publish(m, &r).ok());
    return r.stream_seq;
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
    uint64_t rows_committed = 0, messages_committed = 0, rows_dead = 0, messages_dead = 0, duplicates_skipped = 0,
             transient_errors = 0, last_commit_unix_us = 0;
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
    out.last_commit_unix_us = w.counters().last_commit_unix_us.load();
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
  const auto unix_us = [] {
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
  };
  const uint64_t started_us = unix_us();
  auto c = f.RunWorker();
  const uint64_t ended_us = unix_us();
  // The last commit's time: during the run, and well before the worker
  // returned (it then waited 1.5 s for messages, counted from the fetch).
  CHECK(c.last_commit_unix_us >= started_us);
  CHECK(c.last_commit_unix_us + 1000 * 1000 <= ended_us);
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
  CHECK(second.last_commit_unix_us == 0);  // nothing committed: no commit time
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

TEST_CASE("a chunk for an unknown entity is dead-lettered whole; one delivered too often is still committed",
          "[worker]") {
  Fixture f;
  const std::string unknown = f.PublishChunk("{\"id\":\"z\"}\n", "", "Nope");
  // Deliver a chunk three times without acking it, as crashed workers would.
  const std::string tired = f.PublishChunk("{\"id\":\"t\"}\n");
  for (int i = 0; i < 3; ++i) {
    auto msgs = f.js->Fetch(10, 0, 2000);
    REQUIRE(msgs.ok());
    for (auto& m : *msgs) REQUIRE(m->Nak().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  auto c = f.RunWorker(1500, /*max_deliver=*/2);
  // Past max_deliver a chunk is tried alone, and dead-lettered only when that
  // fails for its content: this one is fine.
  CHECK(c.messages_dead == 1);
  CHECK(f.Count() == "1");
  auto st = LookupIngestStatus(*f.db, tired);
  REQUIRE(st.ok());
  CHECK(st->state == IngestStatus::State::kProcessed);
  auto st2 = LookupIngestStatus(*f.db, unknown);
  REQUIRE(st2.ok());
  CHECK(st2->state == IngestStatus::State::kDead);
  CHECK_THAT(st2->error, Catch::Contains("unknown entity 'Nope'"));
}

TEST_CASE("a chunk that fails for its content on every delivery is dead-lettered after max_deliver", "[worker]") {
  Fixture f;
  // A trigger PostgreSQL raises for one row: not a data exception the sink
  // pins to the row by itself (SQLSTATE P0001).
  f.db->TryExec("CREATE TABLE " + QuoteIdent(f.table) + " (id varchar(64) PRIMARY KEY, qty integer)");
  const std::string fn = UniqueName("nnw_no_x");
  REQUIRE_FALSE(f.db->TryExec("CREATE FUNCTION " + QuoteIdent(fn) +
                              "() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.id = 'x' THEN "
                              "RAISE EXCEPTION 'no x please'; END IF; RETURN NEW; END $$"));
  REQUIRE_FALSE(f.db->TryExec("CREATE TRIGGER no_x BEFORE INSERT ON " + QuoteIdent(f.table) +
                              " FOR EACH ROW EXECUTE FUNCTION " + QuoteIdent(fn) + "()"));
  const std::string bad = f.PublishChunk("{\"id\":\"x\"}\n");
  const std::string good = f.PublishChunk("{\"id\":\"g\"}\n");
  auto c = f.RunWorker(f.Options(3000, /*max_deliver=*/2), /*deadline_ms=*/30000);
  CHECK(f.Count() == "1");
  CHECK(c.messages_dead + c.rows_dead == 1);
  auto st = LookupIngestStatus(*f.db, bad + ".0");
  REQUIRE(st.ok());
  CHECK(st->state == IngestStatus::State::kDead);
  CHECK_THAT(st->error, Catch::Contains("no x please"));
  auto ok = LookupIngestStatus(*f.db, good);
  REQUIRE(ok.ok());
  CHECK(ok->state == IngestStatus::State::kProcessed);
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
  f.db->TryExec("DROP TABLE IF EXISTS " + QuoteIdent(f.table));
  f.db->TryExec("DROP FUNCTION IF EXISTS " + QuoteIdent(fn) + "()");
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

TEST_CASE("a worker that cannot create its tables at start-up keeps retrying until it can", "[worker][startup]") {
  // As when PostgreSQL restarts while a worker creates its tables: here the
  // schema the worker's search_path names does not exist yet, so creating the
  // bookkeeping tables fails until it is created, seconds later.
  Fixture f;
  const std::string schema = UniqueName("nnw_later");
  WorkerOptions o = f.Options(/*idle_ms=*/0);
  o.conninfo = WithSearchPath(DatabaseUrl(), schema);
  o.retry_max_backoff_ms = 300;
  f.PublishChunk("{\"id\":\"a\"}\n");
  IngestWorker w(*f.js, {f.entity}, o);
  std::atomic<bool> returned{false};
  std::thread t([&] {
    w.Run();
    returned.store(true);
  });
  CHECK(WaitFor([&] { return !w.last_error().empty(); }, 10000));
  CHECK_THAT(w.last_error(), Catch::Contains("bookkeeping tables"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK_FALSE(returned.load());
  CHECK((w.state() == WorkerState::kStarting || w.state() == WorkerState::kBackingOff));
  REQUIRE_FALSE(f.db->TryExec("CREATE SCHEMA " + QuoteIdent(schema)));
  const std::string count_sql = "SELECT count(*) FROM " + QuoteQualified(schema, f.table);
  const bool committed = WaitFor(
      [&] {
        PgRows rows;
        return !f.db->TryExec(count_sql, &rows) && rows.rows.at(0).at(0).value_or("") == "1";
      },
      30000);
  CHECK(committed);
  CHECK(WaitFor([&] { return w.state() == WorkerState::kFetching; }, 10000));
  w.Stop();
  t.join();
  CHECK(w.state() == WorkerState::kStopped);
  CHECK(w.counters().messages_committed.load() == 1);
  f.db->TryExec("DROP SCHEMA " + QuoteIdent(schema) + " CASCADE");
}

TEST_CASE("chunks without an id from streams whose sequences repeat get distinct ledger keys", "[worker][seq-key]") {
  // Two streams (as one re-created: sequences start at 1 again), each with a
  // chunk that has no Nats-Msg-Id: both are dead-lettered, each under its own key.
  for (int i = 0; i < 2; ++i) {
    Fixture f;
    const uint64_t seq = f.PublishUnnamed("{\"id\":\"n\"}\n");
    CHECK(seq == 1);
    auto c = f.RunWorker(f.Options(1000), /*deadline_ms=*/15000);
    CHECK(c.messages_dead == 1);
    CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_dead_letters WHERE msg_id LIKE 'seq:" + f.config.stream +
                                ":1:%' AND error LIKE '%no Nats-Msg-Id%'") == "1");
    CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_ledger WHERE msg_id LIKE 'seq:" + f.config.stream +
                                ":1:%' AND dead") == "1");
  }
}

TEST_CASE("a chunk the ledger already has is acked, not dead-lettered a second time", "[worker][dead-once]") {
  // The ledger row appears between the worker's look-up and its dead-letter
  // insert (another worker got there first): here it is there before, under
  // the key of a chunk without an id, which the look-up cannot see.
  Fixture f;
  f.PublishUnnamed("{\"id\":\"n\"}\n");
  std::string key;
  {
    auto msgs = f.js->Fetch(1, 0, 2000);
    REQUIRE(msgs.ok());
    REQUIRE(msgs->size() == 1);
    const auto& m = msgs->front();
    key = UnnamedChunkKey(f.config.stream, m->StreamSequence(), m->StoredAtNs());
    REQUIRE(m->Nak().ok());
  }
  REQUIRE(EnsureBookkeepingTables(*f.db).ok());
  LedgerRow row;
  row.msg_id = key;
  row.batch_id = NewUuid();
  row.entity = "Item";
  bool conflict = false;
  REQUIRE_FALSE(InsertLedgerRows(*f.db, {row}, &conflict));
  auto c = f.RunWorker(f.Options(1000), /*deadline_ms=*/15000);
  CHECK(c.messages_dead == 0);
  CHECK(c.duplicates_skipped == 1);
  CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_dead_letters WHERE msg_id = '" + key + "'") == "0");
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
}

TEST_CASE("a table locked for longer than ack_wait x max_deliver delays commits but dead-letters nothing",
          "[worker][lock]") {
  // Three workers (as three pods), ack wait 1 s, max_deliver 2, the target
  // table locked for 6 s while one of them holds a chunk: it may not be
  // redelivered to the others (the third delivery would be past max_deliver)
  // and dead-lettered for the database's slowness.
  Fixture f(2 * 60 * 1000, /*ack_wait_ms=*/1000);
  REQUIRE_FALSE(f.db->TryExec("CREATE TABLE " + QuoteIdent(f.table) + " (id varchar(64) PRIMARY KEY, qty integer)"));
  WorkerOptions o = f.Options(/*idle_ms=*/0, /*max_deliver=*/2);
  std::vector<std::unique_ptr<IngestWorker>> workers;
  std::vector<std::thread> threads;
  for (int i = 0; i < 3; ++i) {
    o.worker_name = "lock-worker-" + std::to_string(i);
    workers.push_back(std::make_unique<IngestWorker>(*f.js, std::vector<Entity>{f.entity}, o));
    threads.emplace_back([w = workers.back().get()] { w->Run(); });
  }
  // Past start-up (which reads the table) before the lock is taken.
  CHECK(WaitFor(
      [&] {
        for (const auto& w : workers) {
          if (w->state() != WorkerState::kFetching) return false;
        }
        return true;
      },
      20000));
  auto locker = Connect();
  REQUIRE_FALSE(locker->TryExec("BEGIN"));
  REQUIRE_FALSE(locker->TryExec("LOCK TABLE " + QuoteIdent(f.table) + " IN ACCESS EXCLUSIVE MODE"));
  std::vector<std::string> batches;
  batches.push_back(f.PublishChunk("{\"id\":\"r0\"}\n{\"id\":\"r1\"}\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(6000));
  std::string in_list;
  for (const auto& b : batches) in_list += (in_list.empty() ? "'" : ", '") + b + "'";
  // (Not the table: reading it would wait for the lock.)
  CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_ledger WHERE NOT dead AND batch_id IN (" + in_list + ")") ==
        "0");
  REQUIRE_FALSE(locker->TryExec("COMMIT"));
  CHECK(WaitFor([&] { return f.Count() == "2"; }, 30000));
  // Give a wrongly redelivered copy time to be dead-lettered, then stop.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (auto& w : workers) w->Stop();
  for (auto& t : threads) t.join();
  uint64_t dead = 0, committed = 0;
  for (const auto& w : workers) {
    dead += w->counters().messages_dead.load() + w->counters().rows_dead.load();
    committed += w->counters().messages_committed.load();
  }
  CHECK(dead == 0);
  CHECK(committed == 1);
  CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_dead_letters WHERE batch_id IN (" + in_list + ")") == "0");
  CHECK(QueryValue(*f.db, "SELECT count(*) FROM nomnom_ledger WHERE NOT dead AND batch_id IN (" + in_list + ")") ==
        "1");
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
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
  auto first = f.RunWorker([&] {
    WorkerOptions o = f.Options(1500, 3);
    o.mode = ConflictMode::kUpdate;
    return o;
  }());
  CHECK(first.messages_committed == 1);
  CHECK(QueryValue(*f.db, "SELECT qty FROM " + QuoteIdent(f.table) + " WHERE id = 'k'") == "2");
  REQUIRE((*held)[0]->Nak().ok());
  auto second = f.RunWorker([&] {
    WorkerOptions o = f.Options(1500, 3);
    o.mode = ConflictMode::kUpdate;
    return o;
  }());
  CHECK(second.messages_committed == 1);
  CHECK(second.rows_committed == 1);  // committed as skipped: a later message's version is in place
  CHECK(QueryValue(*f.db, "SELECT qty FROM " + QuoteIdent(f.table) + " WHERE id = 'k'") == "2");
  CHECK(f.Count() == "2");
  auto lag = f.js->Lag();
  REQUIRE(lag.ok());
  CHECK(lag->Backlog() == 0);
}

TEST_CASE("workers load into a partitioned table in every conflict mode", "[worker][partitioned]") {
  const std::string kind = GENERATE(as<std::string>{}, "HASH", "RANGE", "LIST");
  const ConflictMode mode = GENERATE(ConflictMode::kError, ConflictMode::kNothing, ConflictMode::kUpdate);
  DYNAMIC_SECTION(kind << " x " << ConflictModeName(mode)) {
    Fixture f;
    // The worker finds the table in place (partitioned on its key) and checks it.
    const std::string t = QuoteIdent(f.table);
    Query(*f.db,
          "CREATE TABLE " + t + " (id varchar(64) NOT NULL PRIMARY KEY, qty integer) PARTITION BY " + kind + " (id)");
    for (int i = 0; i < 3; ++i) {
      std::string bounds;
      if (kind == "HASH") {
        bounds = "FOR VALUES WITH (MODULUS 3, REMAINDER " + std::to_string(i) + ")";
      } else if (kind == "RANGE") {
        bounds = i == 0 ? "FOR VALUES FROM (MINVALUE) TO ('c')"
                        : (i == 1 ? "FOR VALUES FROM ('c') TO ('m')" : "FOR VALUES FROM ('m') TO (MAXVALUE)");
      } else {
        bounds = i == 0 ? "FOR VALUES IN ('a', 'b')" : (i == 1 ? "FOR VALUES IN ('k', 'm')" : "DEFAULT");
      }
      Query(*f.db,
            "CREATE TABLE " + QuoteIdent(f.table + "_p" + std::to_string(i)) + " PARTITION OF " + t + " " + bounds);
    }
    f.PublishChunk("{\"id\":\"a\",\"qty\":1}\n{\"id\":\"k\",\"qty\":1}\n{\"id\":\"z\",\"qty\":1}\n");
    f.PublishChunk("{\"id\":\"a\",\"qty\":2}\n{\"id\":\"d\",\"qty\":2}\n");
    WorkerOptions o = f.Options(1500, 2);
    o.mode = mode;
    auto c = f.RunWorker(o);
    CHECK(c.messages_committed == 2);
    CHECK(f.Count() == "4");
    CHECK(QueryValue(*f.db, "SELECT count(DISTINCT tableoid) FROM " + t) != "1");
    const std::string a = QueryValue(*f.db, "SELECT qty FROM " + t + " WHERE id = 'a'");
    CHECK(a == (mode == ConflictMode::kUpdate ? "2" : "1"));
    // error: the second "a" is a duplicate key, dead-lettered alone.
    CHECK(c.rows_dead == (mode == ConflictMode::kError ? 1u : 0u));
    auto lag = f.js->Lag();
    REQUIRE(lag.ok());
    CHECK(lag->Backlog() == 0);
  }
}

TEST_CASE("a worker fills an order's table and its line items' from one message; a bad item dead-letters its order",
          "[worker][nested]") {
  const ConflictMode mode = GENERATE(ConflictMode::kError, ConflictMode::kNothing, ConflictMode::kUpdate);
  DYNAMIC_SECTION(ConflictModeName(mode)) {
    Fixture f;
    auto entities = LoadEntityDir(SourcePath("data/tpch/entities-nested"));
    REQUIRE(entities.ok());
    const std::string schema = UniqueName("nnw_nested");
    REQUIRE_FALSE(f.db->TryExec("CREATE SCHEMA " + QuoteIdent(schema)));
    const std::string order1 =
        R"({"order_key":"123","customer_key":"CUST-001","order_status":"O","total_price":99.99,"order_date":"2024-01-01","line_items":[)"
        R"({"line_number":1,"part_key":"P1","supplier_key":"S1","quantity":2,"extended_price":40.0,"discount":0.05},)"
        R"({"line_number":2,"part_key":"P2","supplier_key":"S2","quantity":1,"extended_price":59.99}]})";
    const std::string bad =
        R"({"order_key":"666","customer_key":"C","order_status":"O","total_price":1,"order_date":"2024-01-01","line_items":[)"
        R"({"line_number":1,"part_key":"P1","supplier_key":"S1","quantity":2,"extended_price":40.0},{"line_number":2}]})";
    const std::string order2 =
        R"({"order_key":"124","customer_key":"CUST-002","order_status":"F","total_price":5,"order_date":"2024-01-02","line_items":[)"
        R"({"line_number":1,"part_key":"P9","supplier_key":"S9","quantity":1,"extended_price":5}]})";
    // Order 123 again, with one line item changed and one gone.
    const std::string resent =
        R"({"order_key":"123","customer_key":"CUST-001","order_status":"F","total_price":50,"order_date":"2024-01-01","line_items":[)"
        R"({"line_number":2,"part_key":"P2b","supplier_key":"S2","quantity":1,"extended_price":50}]})";
    f.PublishChunk(order1 + "\n" + bad + "\n" + order2 + "\n", "", "Order");
    f.PublishChunk(resent + "\n", "", "Order");
    WorkerOptions o = f.Options(1500, 2);
    o.mode = mode;
    o.conninfo = WithSearchPath(DatabaseUrl(), schema);
    IngestWorker w(*f.js, *entities, o);
    std::atomic<bool> finished{false};
    std::thread stopper([&] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!finished.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      w.Stop();
    });
    REQUIRE(w.Run().ok());
    finished.store(true);
    stopper.join();
    CHECK(w.counters().messages_committed.load() == 2);
    const std::string q = QuoteIdent(schema) + ".";
    auto items = [&](const std::string& key) {
      PgRows rows = Query(*f.db, "SELECT line_number || ':' || part_key FROM " + q +
                                     "order_line_items WHERE order_key = '" + key + "' ORDER BY line_number");
      std::vector<std::string> out;
      for (auto& r : rows.rows) out.push_back(r.at(0).value_or("NULL"));
      return out;
    };
    CHECK(QueryValue(*f.db, "SELECT count(*) FROM " + q + "orders") == "2");
    CHECK(items("666").empty());
    CHECK(QueryValue(*f.db, "SELECT count(*) FROM " + q + "orders WHERE order_key = '666'") == "0");
    CHECK(items("124") == std::vector<std::string>{"1:P9"});
    // The dead letter names the element.
    CHECK_THAT(QueryValue(*f.db, "SELECT string_agg(error, ';') FROM " + q + "nomnom_dead_letters"),
               Catch::Contains("line_items[1].part_key: missing required field"));
    if (mode == ConflictMode::kUpdate) {
      CHECK(w.counters().rows_dead.load() == 1);
      CHECK(QueryValue(*f.db, "SELECT order_status FROM " + q + "orders WHERE order_key = '123'") == "F");
      CHECK(items("123") == std::vector<std::string>{"2:P2b"});
    } else {
      // error: the re-sent order is a duplicate key, dead-lettered whole;
      // nothing: skipped, with its line items as they were.
      CHECK(w.counters().rows_dead.load() == (mode == ConflictMode::kError ? 2u : 1u));
      CHECK(QueryValue(*f.db, "SELECT order_status FROM " + q + "orders WHERE order_key = '123'") == "O");
      CHECK(items("123") == std::vector<std::string>{"1:P1", "2:P2"});
    }
    f.db->TryExec("DROP SCHEMA " + QuoteIdent(schema) + " CASCADE");
  }
}

TEST_CASE("update through workers, nested: an older message committed after a newer one changes no table",
          "[worker][nested][update-order]") {
  Fixture f(2 * 60 * 1000, 120 * 1000);
  auto entities = LoadEntityDir(SourcePath("data/tpch/entities-nested"));
  REQUIRE(entities.ok());
  const std::string schema = UniqueName("nnw_nested_order");
  REQUIRE_FALSE(f.db->TryExec("CREATE SCHEMA " + QuoteIdent(schema)));
  auto order = [](const std::string& status, const std::string& items) {
    return R"({"order_key":"7","customer_key":"C","order_status":")" + status +
           R"(","total_price":1,"order_date":"2024-01-01","line_items":[)" + items + "]}\n";
  };
  auto item = [](int n, const std::string& part) {
    return R"({"line_number":)" + std::to_string(n) + R"(,"part_key":")" + part +
           R"(","supplier_key":"S","quantity":1,"extended_price":1})";
  };
  // The older message has three line items, the newer one two others.
  f.PublishChunk(order("O", item(1, "old1") + "," + item(2, "old2") + "," + item(3, "old3")), "", "Order");
  f.PublishChunk(order("F", item(2, "new2") + "," + item(4, "new4")), "", "Order");
  auto held = f.js->Fetch(1, 0, 5000);
  REQUIRE(held.ok());
  REQUIRE(held->size() == 1);
  WorkerOptions o = f.Options(1500, 3);
  o.mode = ConflictMode::kUpdate;
  o.conninfo = WithSearchPath(DatabaseUrl(), schema);
  auto run = [&] {
    IngestWorker w(*f.js, *entities, o);
    std::atomic<bool> finished{false};
    std::thread stopper([&] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!finished.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      w.Stop();
    });
    REQUIRE(w.Run().ok());
    finished.store(true);
    stopper.join();
    return w.counters().messages_committed.load();
  };
  const std::string q = QuoteIdent(schema) + ".";
  auto state = [&] {
    return QueryValue(*f.db,
                      "SELECT order_status || ' ' || (SELECT string_agg(line_number || ':' || part_key, ',' "
                      "ORDER BY line_number) FROM " +
                          q + "order_line_items) FROM " + q + "orders");
  };
  CHECK(run() == 1);
  CHECK(state() == "F 2:new2,4:new4");
  REQUIRE((*held)[0]->Nak().ok());
  CHECK(run() == 1);
  CHECK(state() == "F 2:new2,4:new4");
  f.db->TryExec("DROP SCHEMA " + QuoteIdent(schema) + " CASCADE");
}

TEST_CASE("a worker fills three tables from one depth-2 message; a bad grandchild dead-letters its order only",
          "[worker][nested][deep]") {
  const ConflictMode mode = GENERATE(ConflictMode::kError, ConflictMode::kNothing, ConflictMode::kUpdate);
  DYNAMIC_SECTION(ConflictModeName(mode)) {
    Fixture f;
    auto entities = LoadEntityDir(SourcePath("tests/fixtures/entities-deep"));
    REQUIRE(entities.ok());
    const std::string schema = UniqueName("nnw_deep");
    REQUIRE_FALSE(f.db->TryExec("CREATE SCHEMA " + QuoteIdent(schema)));
    const std::string o1 =
        R"({"order_key":"o1","customer_key":"c1","line_items":[{"line_number":1,"part_key":"p1","adjustments":[)"
        R"({"no":1,"amount":5,"reason":"promo"},{"no":2,"amount":-1.5}]},{"line_number":2,"part_key":"p2"}]})";
    const std::string bad =
        R"({"order_key":"bad","customer_key":"c","line_items":[{"line_number":1,"part_key":"p","adjustments":[)"
        R"({"no":1,"amount":"x"}]}]})";
    const std::string o2 =
        R"({"order_key":"o2","customer_key":"c2","line_items":[{"line_number":1,"part_key":"q1","adjustments":[)"
        R"({"no":1,"amount":2}]}]})";
    // o1 again: item 1 and its adjustments gone, item 2 with one.
    const std::string resent =
        R"({"order_key":"o1","customer_key":"c1-new","line_items":[{"line_number":2,"part_key":"p2","adjustments":[)"
        R"({"no":1,"amount":9}]}]})";
    f.PublishChunk(o1 + "\n" + bad + "\n" + o2 + "\n", "", "Order");
    f.PublishChunk(resent + "\n", "", "Order");
    WorkerOptions o = f.Options(1500, 2);
    o.mode = mode;
    o.conninfo = WithSearchPath(DatabaseUrl(), schema);
    IngestWorker w(*f.js, *entities, o);
    std::atomic<bool> finished{false};
    std::thread stopper([&] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!finished.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      w.Stop();
    });
    REQUIRE(w.Run().ok());
    finished.store(true);
    stopper.join();
    CHECK(w.counters().messages_committed.load() == 2);
    const std::string q = QuoteIdent(schema) + ".";
    auto rows = [&](const std::string& sql) {
      std::vector<std::string> out;
      for (auto& r : Query(*f.db, sql).rows) out.push_back(r.at(0).value_or("NULL"));
      return out;
    };
    const auto orders = rows("SELECT order_key || ':' || customer_key FROM " + q + "orders ORDER BY 1");
    const auto items = rows("SELECT order_key || ':' || line_number FROM " + q + "order_line_items ORDER BY 1");
    const auto adjs = rows("SELECT order_key || ':' || line_number || ':' || adjustment_no || ':' || amount FROM " + q +
                           "order_line_item_adjustments ORDER BY 1");
    CHECK_THAT(QueryValue(*f.db, "SELECT string_agg(error, ';') FROM " + q + "nomnom_dead_letters"),
               Catch::Contains("line_items[0].adjustments[0].amount: expected a number, got string"));
    if (mode == ConflictMode::kUpdate) {
      CHECK(w.counters().rows_dead.load() == 1);
      CHECK(orders == std::vector<std::string>{"o1:c1-new", "o2:c2"});
      CHECK(items == std::vector<std::string>{"o1:2", "o2:1"});
      CHECK(adjs == std::vector<std::string>{"o1:2:1:9", "o2:1:1:2"});
    } else {
      CHECK(w.counters().rows_dead.load() == (mode == ConflictMode::kError ? 2u : 1u));
      CHECK(orders == std::vector<std::string>{"o1:c1", "o2:c2"});
      CHECK(items == std::vector<std::string>{"o1:1", "o1:2", "o2:1"});
      CHECK(adjs == std::vector<std::string>{"o1:1:1:5", "o1:1:2:-1.5", "o2:1:1:2"});
    }
    f.db->TryExec("DROP SCHEMA " + QuoteIdent(schema) + " CASCADE");
  }
}

TEST_CASE("update through workers, depth 2: an older message committed after a newer one changes no table",
          "[worker][nested][deep][update-order]") {
  Fixture f(2 * 60 * 1000, 120 * 1000);
  auto entities = LoadEntityDir(SourcePath("tests/fixtures/entities-deep"));
  REQUIRE(entities.ok());
  const std::string schema = UniqueName("nnw_deep_order");
  REQUIRE_FALSE(f.db->TryExec("CREATE SCHEMA " + QuoteIdent(schema)));
  // The older message: two items with adjustments; the newer: item 2 alone, with none.
  f.PublishChunk(
      R"({"order_key":"7","customer_key":"old","line_items":[{"line_number":1,"part_key":"a","adjustments":[)"
      R"({"no":1,"amount":1},{"no":2,"amount":2}]},{"line_number":2,"part_key":"b","adjustments":[{"no":1,"amount":3}]}]})"
      "\n",
      "", "Order");
  f.PublishChunk(
      R"({"order_key":"7","customer_key":"new","line_items":[{"line_number":2,"part_key":"b2","adjustments":[]}]})"
      "\n",
      "", "Order");
  auto held = f.js->Fetch(1, 0, 5000);  // the older message, held back
  REQUIRE(held.ok());
  REQUIRE(held->size() == 1);
  WorkerOptions o = f.Options(1500, 3);
  o.mode = ConflictMode::kUpdate;
  o.conninfo = WithSearchPath(DatabaseUrl(), schema);
  auto run = [&] {
    IngestWorker w(*f.js, *entities, o);
    std::atomic<bool> finished{false};
    std::thread stopper([&] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (!finished.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      w.Stop();
    });
    REQUIRE(w.Run().ok());
    finished.store(true);
    stopper.join();
    return w.counters().messages_committed.load();
  };
  const std::string q = QuoteIdent(schema) + ".";
  auto state = [&] {
    return QueryValue(*f.db,
                      "SELECT customer_key || ' ' || (SELECT coalesce(string_agg(line_number || ':' || part_key, "
                      "',' ORDER BY line_number), '-') FROM " +
                          q + "order_line_items) || ' ' || (SELECT coalesce(string_agg(line_number || '.' || " +
                          "adjustment_no, ',' ORDER BY line_number, adjustment_no), '-') FROM " + q +
                          "order_line_item_adjustments) FROM " + q + "orders");
  };
  CHECK(run() == 1);
  CHECK(state() == "new 2:b2 -");
  REQUIRE((*held)[0]->Nak().ok());
  CHECK(run() == 1);
  CHECK(state() == "new 2:b2 -");
  f.db->TryExec("DROP SCHEMA " + QuoteIdent(schema) + " CASCADE");
}

namespace {

// The pgcopy1 body of NDJSON lines for the fixture's entity, as the publisher
// of `nomnom load --via-nats` writes it.
std::string Tuples(const Entity& entity, const std::vector<std::string>& lines) {
  RowEncoder enc(entity, RowEncoderOptions{});
  ByteBuffer out;
  for (const std::string& line : lines) {
    std::string padded = line + std::string(kChunkPadding, ' ');
    std::string error;
    REQUIRE(enc.Encode(std::string_view(padded.data(), line.size()), padded.size(), &out, nullptr, &error));
  }
  return std::string(out.view());
}

std::string PublishBinary(Fixture& f, const std::string& body, uint64_t rows, const std::string& schema,
                          const std::string& format = std::string(kFormatPgCopy1)) {
  const std::string batch = NewUuid();
  OutgoingMessage m =
      MakeChunkMessage(f.js->EntitySubject("Item"), "Item", batch, 0, 1, static_cast<uint32_t>(rows), body);
  m.headers.emplace_back(std::string(kHeaderFormat), format);
  m.headers.emplace_back(std::string(kHeaderSchema), schema);
  PublishResult r;
  REQUIRE(f.js->Publish(m, &r).ok());
  return batch;
}

}  // namespace

TEST_CASE("pgcopy1 chunks: applied when schema and framing hold, else dead-lettered whole; rejected rows as JSON",
          "[worker][pgcopy]") {
  Fixture f;
  f.db->TryExec("CREATE TABLE " + QuoteIdent(f.table) + " (id varchar(64) PRIMARY KEY, qty integer CHECK (qty >= 0))");
  const std::string schema = SchemaFingerprint(f.entity);
  const std::string good_body =
      Tuples(f.entity, {R"({"id":"b1","qty":1})", R"({"id":"b2","qty":-3})", R"({"id":"b3"})"});
  const std::string good = PublishBinary(f, good_body, 3, schema);
  // Broken framing, each alone in a chunk: none may cost the good chunk.
  const std::string truncated = PublishBinary(f, good_body.substr(0, good_body.size() - 1), 3, schema);
  const std::string wrong_rows = PublishBinary(f, good_body, 2, schema);
  std::string neg = Tuples(f.entity, {R"({"id":"n1","qty":1})"});
  neg[2] = neg[3] = neg[4] = '\xFF';
  neg[5] = '\xF0';  // first field's length -16
  const std::string negative = PublishBinary(f, neg, 1, schema);
  const std::string trailing = PublishBinary(f, good_body + "x", 3, schema);
  const std::string other_schema =
      PublishBinary(f, Tuples(f.entity, {R"({"id":"m1","qty":1})"}), 1, "0123456789abcdef");
  const std::string unknown_format = PublishBinary(f, good_body, 3, schema, "pgcopy9");

  auto c = f.RunWorker();
  CHECK(c.rows_committed == 2);
  CHECK(c.rows_dead == 1);
  CHECK(c.messages_dead == 6);
  CHECK(QueryValue(*f.db, "SELECT string_agg(id || ':' || coalesce(qty::text, 'null'), ',' ORDER BY id) FROM " +
                              QuoteIdent(f.table)) == "b1:1,b3:null");
  PgRows dead = Query(*f.db, "SELECT line, error, raw FROM nomnom_dead_letters WHERE batch_id = '" + good + "'");
  REQUIRE(dead.rows.size() == 1);
  CHECK(dead.rows[0][0].value() == "2");
  CHECK_THAT(dead.rows[0][1].value(), Catch::Contains("check constraint"));
  CHECK(dead.rows[0][2].value() == R"({"id":"b2","qty":-3})");
  auto error_of = [&](const std::string& batch) {
    auto st = LookupIngestStatus(*f.db, batch);
    REQUIRE(st.ok());
    CHECK(st->state == IngestStatus::State::kDead);
    return st->error;
  };
  CHECK_THAT(error_of(truncated),
             Catch::Contains("malformed pgcopy1 body: row 3, field 2") && Catch::Contains("truncated field length"));
  CHECK_THAT(error_of(wrong_rows), Catch::Contains("more tuples than the 2 rows"));
  CHECK_THAT(error_of(negative), Catch::Contains("row 1, field 1") && Catch::Contains("negative field length -16"));
  CHECK_THAT(error_of(trailing), Catch::Contains("malformed pgcopy1 body: row 4"));
  CHECK_THAT(error_of(other_schema), Catch::Contains("schema mismatch, not applied") &&
                                         Catch::Contains("'0123456789abcdef'") && Catch::Contains("'" + schema + "'"));
  CHECK_THAT(error_of(unknown_format), Catch::Contains("unknown chunk format 'pgcopy9'"));
  // Whole binary chunks are kept readable as hex.
  CHECK(QueryValue(*f.db, "SELECT left(raw, 2) FROM nomnom_dead_letters WHERE batch_id = '" + other_schema + "'") ==
        "\\x");
  auto stats = f.js->Lag();
  REQUIRE(stats.ok());
  CHECK(stats->Backlog() == 0);
}
