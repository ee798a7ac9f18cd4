// CopySink: loads encoded rows into PostgreSQL over one connection with
// binary COPY, one transaction per batch.
//
//  - ConflictMode::kError: COPY straight into the target table.
//  - kNothing / kUpdate: COPY into a session-private staging table, then
//    INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING | DO UPDATE, committed
//    together. For kUpdate a batch holding a key several times is merged in
//    passes (the k-th occurrence of every key in pass k), so duplicates never
//    fail it, every row is checked, and the last row in the input wins.
//
// kNothing/kUpdate first try each batch optimistically: a plain COPY into the
// target, which gives the same result as the merge when no key conflicts. The
// first unique violation switches the connection to the staging merge.
//
// A batch is one transaction. When it fails on a row PostgreSQL rejects (any
// error PgError::IsRowLevel: bad data, CHECK, foreign key, unique violation,
// a trigger's exception, an index row too large, ...), the failing part is
// rolled back to a savepoint and split until the failing rows stand alone;
// they are rejected with PostgreSQL's message and every other row commits in
// the same transaction. A caller can add its own statements to that
// transaction (e.g. a ledger of message ids and the dead letters), so the
// rows, the rejects and the bookkeeping commit together or not at all.
// Infrastructure errors (PgError::IsInfrastructure) are never blamed on a row:
// deadlocks, serialization failures and lost connections retry the whole
// transaction with backoff (a lost connection is re-established).
//
// The shared row types (EncodedPart, RowOrigin, BatchResult, RejectFn,
// RejectedRow) are in encoded_rows.h, ConflictMode in conflict_mode.h.
//
// kUpdate through several writers (workers): when rows carry the stream
// sequence of their message (RowOrigin::stream_seq != 0), a table
// "nomnom_versions_<table>" (key columns, nomnom_stream_seq) records per key
// the sequence of the row applied last. In the batch's transaction, before
// the merge, each key's newest staged sequence is upserted there (ON CONFLICT
// DO UPDATE ... WHERE the stored sequence is not newer, which PostgreSQL
// evaluates on the latest committed version after waiting for any writer
// holding the key), and the staged rows of keys that lost are dropped
// (counted as skipped). So the row from the later message wins whatever the
// commit order; such batches skip the optimistic COPY, and within a batch rows
// apply in (stream sequence, input) order. Rows without a sequence (nomnom
// load) neither read nor write the version table.
//
// Thread-safety: a CopySink is used by one thread. The Entity must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/format/encoded_rows.h"
#include "core/format/schema.h"
#include "core/pg/conflict_mode.h"
#include "core/pg/pg_connection.h"
#include "core/pg/pg_row_sink.h"

namespace nomnom {

// ConflictMode::kUpdate with stream sequences (RowOrigin::stream_seq): the
// table "<prefix><target table>" in the target's schema holds, per key, the
// stream sequence of the message whose row was applied last.
inline constexpr std::string_view kVersionTablePrefix = "nomnom_versions_";

struct CopySinkOptions {
  int max_transient_retries = 8;  // then the error is returned
  bool reconnect = false;         // re-establish a lost connection and retry (workers)
  int64_t max_backoff_ms = 5000;
  // The session's staging table (several sinks on one connection need one each).
  std::string staging_table = "nomnom_stage";
  // A derived entity's columns copied from its parent's key (nested loads):
  // kNothing inserts no row for a parent that already has rows here (an
  // existing parent keeps its children); kUpdate first deletes the rows of the
  // staged parents that the batch no longer has (a re-sent parent replaces its
  // children).
  std::vector<std::string> parent_columns;
  // kUpdate with stream sequences, for a derived entity: the parent's version
  // table (VersionTableFor) and its key columns, matching parent_columns one
  // to one. Staged rows whose parent's applied version is newer than their
  // own message are dropped (the parent's later message owns its children);
  // the derived table keeps no version table of its own.
  std::string parent_version_table;
  std::vector<std::string> parent_key_columns;
  // Nested loads, for a derived entity (at any depth) whose rows carry their
  // root's key: a session table, filled by NestedSink with the root keys of
  // the lines being loaded (root key columns, nomnom_stream_seq,
  // nomnom_existed: the root was in its table before the batch). It replaces
  // parent_columns' rules, with parent_columns this table's columns holding
  // the root's key and parent_key_columns the root's key columns (one to
  // one): kNothing inserts no row for a root that existed (an existing root
  // keeps its whole subtree); kUpdate first deletes the rows of the batch's
  // roots that the batch does not have (a re-sent root replaces its whole
  // subtree, also when its list is now empty or absent), except for a root
  // whose applied version is newer than the line's message.
  std::string roots_table;
  // Nested loads in kNothing, for the root entity: the same session table.
  // The merge marks there (nomnom_existed) every staged root key it did not
  // insert itself, whether the key was in the table before the batch or a
  // concurrent transaction inserted it while this one waited for it, so the
  // derived tables get rows only for roots this batch inserted.
  std::string mark_existing_roots_table;
};

// The quoted, qualified name of the version table of an entity's table.
std::string VersionTableFor(const Entity& entity);

class CopySink : public PgRowSink {
 public:
  // Prepares the connection (staging table for kNothing/kUpdate). The target
  // table must already exist (EnsureTable).
  static Result<std::unique_ptr<CopySink>> Create(std::unique_ptr<PgConnection> conn, const Entity& entity,
                                                  ConflictMode mode, CopySinkOptions options = {});

  // PgRowSink::Write: loads every row of `parts` (in order) in one
  // transaction, with the caller's before_commit (may be null) in it. After
  // COMMIT the rejected rows are passed to on_reject. Returns the counts, or a
  // Status for an error that is not about particular rows (connection lost for
  // good, permission denied, ...); then nothing of the batch was committed.
  using PgRowSink::Write;
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject,
                            const BeforeCommitFn& before_commit) override;

  PgConnection& connection() { return *conn_; }

  // For a caller that runs several sinks in one transaction on one connection
  // (NestedSink): Create with a borrowed connection, which must outlive the
  // sink; then, inside the caller's transaction, BeginBatch(parts) and
  // LoadRows for row ranges of it; EndBatch when done. LoadRows is the COPY
  // (+ merge) of rows [lo, hi) with no savepoint of its own: on an error the
  // caller rolls back; *bad_row is the failing row when PostgreSQL named it.
  // `allow_direct`: the optimistic COPY straight into the table may be tried;
  // last_load_direct() says whether the last LoadRows took it.
  static Result<std::unique_ptr<CopySink>> CreateShared(PgConnection* conn, const Entity& entity, ConflictMode mode,
                                                        CopySinkOptions options);
  // Fails only when the version table cannot be created (kUpdate with
  // stream sequences); call it outside a transaction.
  Status BeginBatch(const std::vector<const EncodedPart*>& parts);
  std::optional<PgError> LoadRows(size_t lo, size_t hi, bool whole_batch, bool allow_direct, BatchResult* result,
                                  size_t* bad_row);
  bool last_load_direct() const { return last_direct_; }
  // After the shared connection was re-established: prepares the session
  // again (staging table).
  Status PrepareSession() { return Prepare(); }
  void EndBatch() { parts_ = nullptr; }
  // With a roots table: whether the batch's root lines carry stream
  // sequences (then a root's subtree is replaced only by its latest message),
  // set by the caller before LoadRows since this table may have no rows.
  void SetRootsSequenced(bool sequenced) { roots_sequenced_ = sequenced; }

 private:
  CopySink(std::unique_ptr<PgConnection> owned, PgConnection* conn, const Entity& entity, ConflictMode mode,
           CopySinkOptions options);
  // Prepares the session: the staging table (CreateStagingTable) and the
  // statements of the conflict mode (the SQL builders in copy_sink.cpp).
  Status Prepare();
  // kNothing/kUpdate: the session's staging table (kUpdate: with the arrival
  // order and stream sequence columns).
  Status CreateStagingTable();
  Status Reconnect();

  // A view of rows [lo, hi) of the current batch as COPY stream slices.
  void Slices(size_t lo, size_t hi, std::vector<std::string_view>* out) const;
  // COPY (+ merge) rows [lo, hi) inside the open transaction; on failure
  // returns the error and, when PostgreSQL named the failing COPY row, its
  // index in *bad_row.
  // enclosing_savepoint: a savepoint set right before this call, which a
  // failed optimistic COPY is rolled back to (null: it sets its own).
  std::optional<PgError> TryLoad(size_t lo, size_t hi, bool whole_batch, BatchResult* result, size_t* bad_row,
                                 const char* enclosing_savepoint = nullptr);
  // Loads [lo, hi) under a savepoint, isolating rows PostgreSQL rejects into
  // rejected_. Returns an error only for failures not caused by rows.
  std::optional<PgError> LoadRange(size_t lo, size_t hi, bool whole_batch, BatchResult* result);
  std::optional<PgError> MergeUpdate(PgRows* merged);
  const RowOrigin& Origin(size_t row) const;
  // kUpdate with stream sequences: creates the version table when missing.
  Status EnsureVersionTable();
  // Copies the batch's tuples with the row's stream sequence as an extra
  // field (the staging table's nomnom_stream_seq) into seq_tuples_.
  void BuildSequencedTuples(size_t total);

  std::unique_ptr<PgConnection> owned_conn_;
  PgConnection* conn_;
  const Entity& entity_;
  ConflictMode mode_;
  std::string copy_sql_;
  std::string merge_sql_;
  std::string direct_copy_sql_;       // kNothing/kUpdate: the optimistic COPY into the target
  bool optimistic_ = true;            // no key conflict seen yet on this connection
  bool allow_direct_ = true;          // this load may try the optimistic COPY
  bool last_direct_ = false;          // the last TryLoad committed its rows by the optimistic COPY
  std::string before_merge_sql_;      // kUpdate with parent_columns: deletes the children staged parents lost
  std::string before_merge_seq_sql_;  // the same for a batch with stream sequences (roots_table)
  std::string max_dup_sql_;           // kUpdate: most occurrences of one key in the staging table
  std::string merge_pass_sql_;        // kUpdate: merge the $1-th occurrence of every key
  // kUpdate with stream sequences (the batch's rows carry RowOrigin::stream_seq):
  std::string seq_copy_sql_;       // COPY into staging with nomnom_stream_seq
  std::string version_table_;      // quoted, qualified
  std::string version_guard_sql_;  // drops staged rows older than their key's version
  std::string parent_guard_sql_;   // derived entities: drops staged rows older than their parent's version
  bool version_table_ready_ = false;
  bool sequenced_ = false;           // the current batch carries stream sequences
  bool merge_count_in_row_ = false;  // kNothing merge is a statement returning its insert count
  bool roots_sequenced_ = false;     // the batch's roots do (roots_table)
  ByteBuffer seq_tuples_;            // the batch's tuples with the sequence field
  std::vector<size_t> seq_offsets_;  // start of row i in seq_tuples_; [total] = end
  // The batch being written: parts and the first global row index of each.
  const std::vector<const EncodedPart*>* parts_ = nullptr;
  std::vector<size_t> part_start_;
  std::vector<std::string_view> slices_;
  std::vector<RejectedRow> rejected_;
  CopySinkOptions options_;
  std::string conninfo_;
};

// Adapts a CopySink to the load pipeline's RowSink (a CopySink is a RowSink
// itself now; this owner is kept for the pipeline's callers).
class CopyRowSink : public RowSink {
 public:
  explicit CopyRowSink(std::unique_ptr<CopySink> sink) : sink_(std::move(sink)) {}
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject) override {
    return sink_->Write(parts, on_reject);
  }

 private:
  std::unique_ptr<CopySink> sink_;
};

}  // namespace nomnom
