// FreshTable: a fresh load, i.e. COPY into an empty table without its primary
// key index, and the key built once at the end (faster than maintaining the
// index row by row).
//
// Begin() (one transaction, the table locked) refuses a table that is not
// empty, that foreign keys reference, that is partitioned or a partition, or
// that has no primary key; otherwise it records a marker row in
// "<table's schema>".nomnom_fresh_loads (the table's oid, the key's name and
// definition) and drops the primary key constraint. The loaders then COPY
// with ConflictMode::kError semantics. Finish() adds the key back and deletes
// the marker in one transaction. Abandon() (the load failed) empties the
// table, restores the key and deletes the marker: a fresh load is all or
// nothing.
//
// Duplicate keys: when adding the key fails with a unique violation,
// Finish() asks the caller to COPY every row the load stored again, each with
// its input position (source index, line) as two extra fields, into a
// session-private table; it then keeps, for each duplicated key, the row of its
// first occurrence in input order, and returns the later occurrences (the
// losers) so that the caller rejects them with their file and line. Rows the
// load did not store must not be sent again.
//
// Crashes: the FreshTable holds a session advisory lock on the table for the
// whole load (on its own connection; PostgreSQL releases it when the session
// ends). RecoverInterruptedFreshLoad(), which every load runs before touching
// its table, finds a marker whose lock is free (its loader is gone), empties
// the table, restores its key and says so; a marker whose lock is held means a
// fresh load is running, and the other load is refused.
//
// COPY FREEZE is not used: it needs the table created or truncated in the COPY's
// own transaction (and no savepoint), while the loaders commit batches on
// several connections and isolate bad rows under savepoints.
//
// Thread-safety: a FreshTable is used by one thread. The Entity must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/base/status.h"
#include "core/format/schema.h"
#include "core/pg/pg_connection.h"

namespace nomnom {

// A later occurrence of a key that Finish() removed from the table.
struct DuplicateRow {
  uint32_t source = 0;        // the input (index in the load's inputs) ...
  uint64_t line = 0;          // ... and line of the occurrence that lost
  uint32_t first_source = 0;  // where the kept (first) occurrence is
  uint64_t first_line = 0;
  std::string key;  // the key's value(s) as PostgreSQL prints a row, e.g. (K-1)
};

// Streams every stored row again: runs conn.CopyIn(copy_sql, ...) with binary
// COPY tuples holding the entity's fields, then the row's source (int4) and
// line (int8).
using RestageFn = std::function<Status(PgConnection& conn, const std::string& copy_sql)>;

class FreshTable {
 public:
  // `conn` is used only by the FreshTable (it holds the lock). `what` names the
  // mode in messages (e.g. "--fresh"). The table must exist.
  static Result<std::unique_ptr<FreshTable>> Begin(std::unique_ptr<PgConnection> conn, const Entity& entity,
                                                   const std::string& what);
  ~FreshTable();
  FreshTable(const FreshTable&) = delete;
  FreshTable& operator=(const FreshTable&) = delete;

  // Builds the primary key; on duplicate keys resolves them as described
  // above (restage is called at most once) and appends the losers to
  // *duplicates. After an error the marker stays (the next load cleans up).
  Status Finish(const RestageFn& restage, std::vector<DuplicateRow>* duplicates);
  // Empties the table, restores its key, deletes the marker.
  Status Abandon();

  const std::string& key_name() const { return key_name_; }

 private:
  FreshTable(std::unique_ptr<PgConnection> conn, const Entity& entity, std::string what)
      : conn_(std::move(conn)), entity_(entity), what_(std::move(what)) {}
  Status ResolveDuplicates(const RestageFn& restage, std::vector<DuplicateRow>* duplicates);

  std::unique_ptr<PgConnection> conn_;
  const Entity& entity_;
  std::string what_;
  std::string oid_;       // the table's oid, as text
  std::string marker_;    // the marker table, quoted and qualified
  std::string key_name_;  // the primary key constraint's name
  std::string key_def_;   // pg_get_constraintdef, e.g. PRIMARY KEY (order_key)
  bool done_ = false;     // finished or abandoned: the marker is gone
};

// Before a load touches entity's table: when an interrupted fresh load left
// its marker and its loader is gone, empties the table, restores its primary
// key and returns a sentence saying so ("" when there was nothing to do).
// Fails (Status::Conflict) while a fresh load of the table is running.
Result<std::string> RecoverInterruptedFreshLoad(PgConnection& conn, const Entity& entity, const std::string& what);

}  // namespace nomnom
