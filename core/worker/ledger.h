// Ledger: the workers' bookkeeping tables in PostgreSQL and every query on them.
//
//   nomnom_ledger        one row per chunk (Nats-Msg-Id) that a worker committed
//                        or dead-lettered whole: the exactly-once record. Its
//                        primary key is the chunk id, so a chunk can be in it once.
//   nomnom_dead_letters  one row per row (line) or whole chunk that could not be
//                        stored, with the reason and the raw bytes.
//
// The worker inserts ledger rows and row dead letters in the transaction that
// commits the chunk's rows (InsertLedgerRows, InsertDeadLetter), so the data and
// its bookkeeping commit together or not at all; a chunk dead-lettered whole
// gets both rows in one statement (DeadLetterWholeChunk; a chunk without a
// batch header has batch_id '' in both tables). /ingest/status reads
// them (LookupIngestStatus), so `processed` and `dead` survive restarts.
//
// Text stored here is always valid UTF-8: raw rows, errors and ids with bytes
// that are not are stored with those bytes written as the four characters
// \xNN (EscapeInvalidUtf8), so a dead letter never fails on its own contents.
//
// Thread-safety: free functions over a caller-owned PgConnection (one thread
// at a time, as PgConnection requires). Nothing here keeps state.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/status.h"
#include "core/pg/pg_connection.h"

namespace nomnom {

inline constexpr std::string_view kLedgerTable = "nomnom_ledger";
inline constexpr std::string_view kDeadLetterTable = "nomnom_dead_letters";
// Totals over all workers, kept by a trigger on the ledger (see below).
inline constexpr std::string_view kCountersTable = "nomnom_counters";
// Committed rows per table of nested entities (the derived entities'
// tables; the root table's rows are the entity's rows_committed), added by
// the worker in the transaction that commits them.
inline constexpr std::string_view kTableCountersTable = "nomnom_table_counters";
// One row per worker process (nomnomd's embedded workers, `nomnom worker`):
// its heartbeat, so a dashboard sees every worker of the pipeline.
inline constexpr std::string_view kWorkersTable = "nomnom_workers";

// Creates the tables (and their indexes) when missing, and the trigger that
// adds every ledger insert to nomnom_counters in the same transaction. Safe to
// run from several processes at once.
Status EnsureBookkeepingTables(PgConnection& conn);

// What every worker has committed so far (from nomnom_counters: a handful of
// rows, however long the ledger). All zero before any worker ran. Pruning the
// ledger does not change them.
struct EntityTotals {
  uint64_t chunks_committed = 0;
  uint64_t rows_committed = 0;
  uint64_t chunks_dead = 0;  // dead-lettered whole
  uint64_t rows_dead = 0;    // rows of committed chunks dead-lettered one by one
  // Nested entities: rows committed into each derived entity's table, by
  // table name ("schema.table" as the entity names it). Empty for flat ones.
  std::map<std::string, uint64_t> derived_rows;
};
struct LedgerTotals : EntityTotals {
  std::map<std::string, EntityTotals> by_entity;
};
Result<LedgerTotals> ReadLedgerTotals(PgConnection& conn);

// The newest dead letters (by id), newest first: what a dashboard lists. The
// error is cut to 300 characters. Empty before any worker ran.
struct RecentDeadLetter {
  std::string failed_at;  // ISO 8601, UTC
  std::string msg_id;
  std::string batch_id;
  std::string entity;
  uint64_t line = 0;  // 0: the whole chunk
  std::string error;
};
Result<std::vector<RecentDeadLetter>> ReadRecentDeadLetters(PgConnection& conn, size_t limit);

// Adds rows committed into derived tables (table name -> rows) to
// nomnom_table_counters, in the caller's open transaction (the one that
// commits those rows and their chunks' ledger rows), so the counts commit
// with the data or not at all. Tables with 0 rows are skipped.
std::optional<PgError> AddDerivedTableRows(PgConnection& conn, std::string_view entity,
                                           const std::vector<std::pair<std::string, uint64_t>>& table_rows);

// A worker process's heartbeat (WorkerPool writes one every few seconds).
struct WorkerHeartbeat {
  std::string process;  // "<role>@<host>:<pid>" (role: nomnomd or worker): unique while it runs
  int workers = 0;      // worker threads
  std::string states;   // e.g. "fetching 2, committing 1"
  std::string error;    // the last error of a worker backing off, "" when none
  uint64_t rows_committed = 0;
  uint64_t rows_dead = 0;
  double age_s = 0;  // read: seconds since the heartbeat was written
};
// Inserts or replaces the process's row (seen_at = now()); deletes rows not
// seen for an hour. The table is created when missing.
Status WriteWorkerHeartbeat(PgConnection& conn, const WorkerHeartbeat& hb);
// The processes seen in the last max_age_s seconds, by process name.
Result<std::vector<WorkerHeartbeat>> ReadWorkerHeartbeats(PgConnection& conn, int max_age_s);

// Deletes up to max_rows ledger rows committed more than older_than_ms ago;
// returns how many. A chunk redelivered after that would be committed again,
// so the horizon must exceed how long JetStream can still deliver it (the
// stream's max age) plus its duplicate window. A pruned id's status is then
// unknown (404), except for the dead letters, which are kept.
Result<uint64_t> PruneLedger(PgConnection& conn, int64_t older_than_ms, uint64_t max_rows);

// Where an id given to /ingest/status stands, from the ledger and the
// dead-letter table (which survive restarts).
struct IngestStatus {
  enum class State { kUnknown, kPending, kProcessed, kDead } state = State::kUnknown;
  std::string committed_at;  // ISO 8601, when processed
  uint64_t rows = 0;         // rows committed
  uint64_t chunks_committed = 0;
  uint64_t chunks_total = 0;  // 0 when unknown
  uint64_t rows_dead = 0;
  std::string error;  // the first dead-letter error
};
Result<IngestStatus> LookupIngestStatus(PgConnection& conn, std::string_view id);

// The ledger key of a chunk that has no Nats-Msg-Id: "seq:<stream>:<stream
// sequence>:<stored-at nanoseconds>". Sequences restart at 1 when a stream is
// re-created; the time the server stored the message keeps the key unique.
std::string UnnamedChunkKey(std::string_view stream, uint64_t stream_seq, int64_t stored_ns);

// The ids among `ids` that the ledger already has (committed or dead).
Result<std::vector<std::string>> FindInLedger(PgConnection& conn, const std::vector<std::string>& ids);

// One ledger row.
struct LedgerRow {
  std::string msg_id;
  std::string batch_id;  // empty for a chunk without a batch header
  uint32_t chunk_index = 0;
  uint32_t chunk_count = 1;
  std::string entity;
  uint64_t rows_committed = 0;
  uint64_t rows_dead = 0;
  bool dead = false;  // dead-lettered whole
  uint64_t stream_seq = 0;
};

// Inserts the rows (distinct msg_ids) in one statement, in the caller's open
// transaction. When some id is already in the ledger (another worker committed
// that chunk meanwhile), nothing may be committed: *conflict is set and a
// PgError (SQLSTATE 23505) is returned, for the caller to roll back. Other
// failures return PostgreSQL's error.
std::optional<PgError> InsertLedgerRows(PgConnection& conn, const std::vector<LedgerRow>& rows, bool* conflict);

// One dead letter: a row of a chunk (line set) or a whole chunk (no line).
struct DeadLetterRow {
  std::string msg_id;
  std::string batch_id;  // empty for a chunk without a batch header
  std::string entity;
  std::optional<uint64_t> line;  // 1-based line in the chunk
  std::string error;
  std::string raw;  // the row or chunk as received (any bytes)
  uint64_t deliveries = 0;
};

// Inserts one dead letter (in the caller's transaction, if one is open).
std::optional<PgError> InsertDeadLetter(PgConnection& conn, const DeadLetterRow& row);

// Records a chunk dead-lettered whole: its ledger row (dead = true) and its
// dead letter, in one statement. Returns true when both were inserted, false
// when the ledger already had the chunk (committed or dead-lettered by another
// worker meanwhile: nothing was written, and the chunk must not be
// dead-lettered again).
Result<bool> DeadLetterWholeChunk(PgConnection& conn, const LedgerRow& ledger, const DeadLetterRow& dead);

}  // namespace nomnom
