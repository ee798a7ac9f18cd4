// The ledger unit against real PostgreSQL: conflicts are reported as such,
// a chunk dead-lettered whole is recorded once, text that is not UTF-8 is stored.
#include <catch2/catch.hpp>

#include "core/queue/ingest_format.h"
#include "core/worker/ledger.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;

namespace {

LedgerRow Row(const std::string& batch, uint32_t index = 0) {
  LedgerRow r;
  r.msg_id = ChunkId(batch, index);
  r.batch_id = batch;
  r.chunk_index = index;
  r.chunk_count = 2;
  r.entity = "Item";
  r.rows_committed = 3;
  r.stream_seq = 7;
  return r;
}

}  // namespace

TEST_CASE("ledger rows already present are a conflict, and nothing of the statement is written", "[ledger]") {
  auto db = Connect();
  REQUIRE(EnsureBookkeepingTables(*db).ok());
  const std::string batch = NewUuid();
  bool conflict = true;
  REQUIRE_FALSE(InsertLedgerRows(*db, {Row(batch, 0)}, &conflict));
  CHECK_FALSE(conflict);
  auto err = InsertLedgerRows(*db, {Row(batch, 1), Row(batch, 0)}, &conflict);
  REQUIRE(err);
  CHECK(conflict);
  CHECK(err->sqlstate == "23505");
  // Autocommit: the statement inserted chunk 1 (DO NOTHING); the worker runs it
  // inside its transaction and rolls back. Here: the look-up sees both.
  auto found = FindInLedger(*db, {ChunkId(batch, 0), ChunkId(batch, 1), ChunkId(batch, 5)});
  REQUIRE(found.ok());
  CHECK(found->size() == 2);
}

TEST_CASE("a chunk dead-lettered whole is recorded once; a committed one is not dead-lettered", "[ledger]") {
  auto db = Connect();
  REQUIRE(EnsureBookkeepingTables(*db).ok());
  const std::string batch = NewUuid();
  LedgerRow l = Row(batch);
  l.dead = true;
  DeadLetterRow d;
  d.msg_id = l.msg_id;
  d.batch_id = batch;
  d.entity = "Item";
  d.error = "bad";
  d.raw = "x";
  auto first = DeadLetterWholeChunk(*db, l, d);
  REQUIRE(first.ok());
  CHECK(*first);
  auto again = DeadLetterWholeChunk(*db, l, d);
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  CHECK(QueryValue(*db, "SELECT count(*) FROM nomnom_dead_letters WHERE batch_id = '" + batch + "'") == "1");

  const std::string committed = NewUuid();
  bool conflict = false;
  REQUIRE_FALSE(InsertLedgerRows(*db, {Row(committed)}, &conflict));
  LedgerRow l2 = Row(committed);
  l2.dead = true;
  d.msg_id = l2.msg_id;
  d.batch_id = committed;
  auto dead = DeadLetterWholeChunk(*db, l2, d);
  REQUIRE(dead.ok());
  CHECK_FALSE(*dead);
  CHECK(QueryValue(*db, "SELECT count(*) FROM nomnom_dead_letters WHERE batch_id = '" + committed + "'") == "0");
}

TEST_CASE("dead letters whose raw bytes or error are not UTF-8 are stored escaped", "[ledger]") {
  auto db = Connect();
  REQUIRE(EnsureBookkeepingTables(*db).ok());
  const std::string batch = NewUuid();
  DeadLetterRow d;
  d.msg_id = ChunkId(batch, 0);
  d.batch_id = batch;
  d.entity = "Item";
  d.line = 2;
  d.error = std::string("field 'id': \xC3");
  d.raw = std::string("{\"id\":\"\xFF\xFE\"}");
  REQUIRE_FALSE(InsertDeadLetter(*db, d));
  CHECK(QueryValue(*db, "SELECT raw FROM nomnom_dead_letters WHERE batch_id = '" + batch + "'") ==
        "{\"id\":\"\\xFF\\xFE\"}");
  CHECK(QueryValue(*db, "SELECT error FROM nomnom_dead_letters WHERE batch_id = '" + batch + "'") ==
        "field 'id': \\xC3");
  LedgerRow l = Row(NewUuid());
  l.dead = true;
  d.msg_id = l.msg_id;
  d.batch_id = l.batch_id;
  d.line.reset();
  auto whole = DeadLetterWholeChunk(*db, l, d);
  REQUIRE(whole.ok());
  CHECK(*whole);
}

TEST_CASE("keys of chunks without an id differ when a re-created stream repeats a sequence", "[ledger]") {
  CHECK(UnnamedChunkKey("MESSAGES", 1, 1000) != UnnamedChunkKey("MESSAGES", 1, 2000));
  CHECK(UnnamedChunkKey("MESSAGES", 1, 1000) == UnnamedChunkKey("MESSAGES", 1, 1000));
  CHECK(UnnamedChunkKey("A", 1, 1000) != UnnamedChunkKey("B", 1, 1000));
}

TEST_CASE("the newest dead letters, newest first, for the dashboard", "[ledger][dashboard]") {
  auto db = Connect();
  REQUIRE(EnsureBookkeepingTables(*db).ok());
  const std::string batch = NewUuid();
  for (uint64_t line : {4, 9}) {
    DeadLetterRow d;
    d.msg_id = ChunkId(batch, 0);
    d.batch_id = batch;
    d.entity = "Item";
    d.line = line;
    d.error = std::string(400, 'e');
    d.raw = "{}";
    REQUIRE_FALSE(InsertDeadLetter(*db, d));
  }
  auto recent = ReadRecentDeadLetters(*db, 1000);
  REQUIRE(recent.ok());
  std::vector<uint64_t> lines;
  for (const auto& d : *recent) {
    if (d.batch_id != batch) continue;
    lines.push_back(d.line);
    CHECK(d.entity == "Item");
    CHECK(d.msg_id == ChunkId(batch, 0));
    CHECK(d.error.size() == 300);     // cut
    CHECK(d.failed_at.size() == 20);  // 2026-01-01T00:00:00Z
    CHECK(d.failed_at.back() == 'Z');
  }
  CHECK(lines == std::vector<uint64_t>{9, 4});
  auto one = ReadRecentDeadLetters(*db, 1);
  REQUIRE(one.ok());
  CHECK(one->size() == 1);
}

TEST_CASE("worker heartbeats: written, replaced, read while fresh", "[ledger][dashboard]") {
  auto db = Connect();
  const std::string process = "test-host:" + NewUuid();
  WorkerHeartbeat hb;
  hb.process = process;
  hb.workers = 2;
  hb.states = "fetching 2";
  hb.rows_committed = 10;
  REQUIRE(WriteWorkerHeartbeat(*db, hb).ok());  // creates the table when missing
  hb.states = "fetching 1, backing_off 1";
  hb.error = "bad \xff byte";
  hb.rows_committed = 25;
  REQUIRE(WriteWorkerHeartbeat(*db, hb).ok());
  auto read = ReadWorkerHeartbeats(*db, 10);
  REQUIRE(read.ok());
  int found = 0;
  for (const auto& h : *read) {
    if (h.process != process) continue;
    ++found;
    CHECK(h.workers == 2);
    CHECK(h.states == "fetching 1, backing_off 1");
    CHECK(h.error == "bad \\xFF byte");
    CHECK(h.rows_committed == 25);
    CHECK(h.age_s >= 0);
    CHECK(h.age_s < 5);
  }
  CHECK(found == 1);
  // An old heartbeat is not read back.
  REQUIRE_FALSE(db->TryExecParams("UPDATE nomnom_workers SET seen_at = now() - interval '1 minute' WHERE process = $1",
                                  {process}));
  read = ReadWorkerHeartbeats(*db, 10);
  REQUIRE(read.ok());
  for (const auto& h : *read) CHECK(h.process != process);
}
