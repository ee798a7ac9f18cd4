// The ledger's totals (nomnom_counters, kept by a trigger in the inserting
// transaction) and pruning, against real PostgreSQL.
#include <catch2/catch.hpp>

#include "core/queue/ingest_format.h"
#include "core/worker/ledger.h"
#include "tests/support/test_env.h"

using namespace nomnom;
using namespace nomnom::testing;

namespace {
LedgerRow Row(const std::string& entity, const std::string& batch, uint32_t k, uint64_t rows, bool dead = false) {
  LedgerRow r;
  r.msg_id = ChunkId(batch, k);
  r.batch_id = batch;
  r.chunk_index = k;
  r.chunk_count = 4;
  r.entity = entity;
  r.rows_committed = dead ? 0 : rows;
  r.rows_dead = dead ? 0 : 1;
  r.dead = dead;
  return r;
}
}  // namespace

TEST_CASE("ledger totals follow committed inserts only, and survive pruning", "[ledger][counters]") {
  auto db = Connect();
  REQUIRE(EnsureBookkeepingTables(*db).ok());
  REQUIRE(EnsureBookkeepingTables(*db).ok());  // idempotent
  const std::string entity = UniqueName("Ent");
  const std::string batch = NewUuid();
  bool conflict = false;

  // A rolled-back insert counts nothing.
  Query(*db, "BEGIN");
  REQUIRE_FALSE(InsertLedgerRows(*db, {Row(entity, batch, 0, 10)}, &conflict));
  Query(*db, "ROLLBACK");
  auto t = ReadLedgerTotals(*db);
  REQUIRE(t.ok());
  CHECK(t->by_entity.count(entity) == 0);

  Query(*db, "BEGIN");
  REQUIRE_FALSE(InsertLedgerRows(*db, {Row(entity, batch, 0, 10), Row(entity, batch, 1, 5)}, &conflict));
  Query(*db, "COMMIT");
  DeadLetterRow dl;
  dl.msg_id = ChunkId(batch, 2);
  dl.batch_id = batch;
  dl.entity = entity;
  dl.error = "test";
  auto whole = DeadLetterWholeChunk(*db, Row(entity, batch, 2, 0, true), dl);
  REQUIRE(whole.ok());
  t = ReadLedgerTotals(*db);
  REQUIRE(t.ok());
  const EntityTotals e = t->by_entity[entity];
  CHECK(e.chunks_committed == 2);
  CHECK(e.rows_committed == 15);
  CHECK(e.rows_dead == 2);
  CHECK(e.chunks_dead == 1);
  CHECK(t->rows_committed >= 15);

  // Pruning: only rows past the horizon go, and the totals stay.
  Query(*db, "UPDATE nomnom_ledger SET committed_at = now() - interval '2 hours' WHERE msg_id = '" + ChunkId(batch, 0) +
                 "'");
  auto pruned = PruneLedger(*db, 3600 * 1000, 100000);
  REQUIRE(pruned.ok());
  CHECK(*pruned >= 1);
  CHECK(QueryValue(*db, "SELECT count(*) FROM nomnom_ledger WHERE batch_id = '" + batch + "'") == "2");
  t = ReadLedgerTotals(*db);
  REQUIRE(t.ok());
  CHECK(t->by_entity[entity].rows_committed == 15);
}

TEST_CASE("derived tables' rows are counted with the transaction that commits them", "[ledger][counters]") {
  auto db = Connect();
  REQUIRE(EnsureBookkeepingTables(*db).ok());
  const std::string entity = UniqueName("Nested");
  // Rolled back: nothing.
  Query(*db, "BEGIN");
  REQUIRE_FALSE(AddDerivedTableRows(*db, entity, {{"public.lines", 7}}));
  Query(*db, "ROLLBACK");
  auto t = ReadLedgerTotals(*db);
  REQUIRE(t.ok());
  CHECK(t->by_entity.count(entity) == 0);
  // Committed twice, from two connections (two slots): summed per table; a
  // table with 0 rows and a name that needs quoting in an array literal.
  Query(*db, "BEGIN");
  REQUIRE_FALSE(AddDerivedTableRows(*db, entity, {{"public.lines", 7}, {"empty", 0}, {"we\"ird,{t}", 2}}));
  Query(*db, "COMMIT");
  auto other = Connect();
  REQUIRE_FALSE(AddDerivedTableRows(*other, entity, {{"public.lines", 5}}));
  REQUIRE_FALSE(AddDerivedTableRows(*other, entity, {}));  // nothing to add
  t = ReadLedgerTotals(*db);
  REQUIRE(t.ok());
  const EntityTotals& e = t->by_entity[entity];
  CHECK(e.derived_rows.size() == 2);
  CHECK(e.derived_rows.at("public.lines") == 12);
  CHECK(e.derived_rows.at("we\"ird,{t}") == 2);
  CHECK(e.rows_committed == 0);  // the root's rows come from the ledger only
}
