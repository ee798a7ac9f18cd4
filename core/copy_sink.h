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
// error PgError::IsRowLevel: bad data, CHECK, foreign key, unique violation, a
// trigger's exception, an index row too large, ...), the failing part is rolled back to a savepoint and split until the
// failing rows stand alone; they are rejected with PostgreSQL's message and every other row commits in the same
// transaction. A caller can add its own statements to that transaction (e.g. a ledger of message ids and the dead
// letters), so the rows, the rejects and the bookkeeping commit together or not at all. Deadlocks, serialization
// failures and lost connections retry the whole transaction with backoff (a lost connection is re-established).
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

#include "core/byte_buffer.h"
#include "core/ndjson_reader.h"
#include "core/pg_connection.h"
#include "core/schema.h"
#include "core/table_setup.h"

namespace nomnom {

// Where an encoded row came from, for reject records.
struct RowOrigin {
  uint32_t source = 0;   // index of the input in the load's input list
  uint64_t line = 0;     // 1-based line number
  std::string_view raw;  // the line's bytes (kept alive by EncodedPart::chunk)
};

// Encoded rows (binary COPY tuples, no header) from one input chunk.
struct EncodedPart {
  uint64_t seq = 0;                    // the chunk's sequence number in the load
  ByteBuffer tuples;                   // concatenated tuples
  std::vector<uint32_t> offsets;       // start of each tuple in `tuples`
  std::vector<RowOrigin> origins;      // one per tuple
  std::shared_ptr<const Chunk> chunk;  // owner of the raw bytes origins point to
  size_t rows() const { return offsets.size(); }
};

struct BatchResult {
  uint64_t inserted = 0;
  uint64_t updated = 0;
  uint64_t skipped = 0;   // not written because the key existed (kNothing)
  uint64_t rejected = 0;  // rejected by PostgreSQL
  uint64_t retries = 0;   // transactions retried after a transient error
};

using RejectFn = std::function<void(const RowOrigin& origin, std::string_view error)>;

// A row PostgreSQL rejected in the current transaction.
struct RejectedRow {
  const RowOrigin* origin;
  std::string error;
};
// Runs inside the batch's transaction just before COMMIT; returning an error
// aborts (and, if transient, retries) the whole transaction.
using BeforeCommitFn =
    std::function<std::optional<PgError>(PgConnection& conn, const std::vector<RejectedRow>& rejected)>;

struct CopySinkOptions {
  int max_transient_retries = 8;  // then the error is returned
  bool reconnect = false;         // re-establish a lost connection and retry (workers)
  int64_t max_backoff_ms = 5000;
};

class CopySink {
 public:
  // Prepares the connection (staging table for kNothing/kUpdate). The target
  // table must already exist (EnsureTable).
  static Result<std::unique_ptr<CopySink>> Create(std::unique_ptr<PgConnection> conn, const Entity& entity,
                                                  ConflictMode mode, CopySinkOptions options = {});

  // Loads every row of `parts` (in order) in one transaction. After COMMIT the
  // rejected rows are passed to on_reject. Returns the counts, or a Status for
  // an error that is not about particular rows (connection lost for good,
  // permission denied, ...); then nothing of the batch was committed.
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject,
                            const BeforeCommitFn& before_commit = nullptr);

  PgConnection& connection() { return *conn_; }

 private:
  CopySink(std::unique_ptr<PgConnection> conn, const Entity& entity, ConflictMode mode, CopySinkOptions options);
  Status Prepare();
  Status Reconnect();

  // A view of rows [lo, hi) of the current batch as COPY stream slices.
  void Slices(size_t lo, size_t hi, std::vector<std::string_view>* out) const;
  // COPY (+ merge) rows [lo, hi) inside the open transaction; on failure
  // returns the error and, when PostgreSQL named the failing COPY row, its
  // index in *bad_row.
  std::optional<PgError> TryLoad(size_t lo, size_t hi, bool whole_batch, BatchResult* result, size_t* bad_row);
  // Loads [lo, hi) under a savepoint, isolating rows PostgreSQL rejects into
  // rejected_. Returns an error only for failures not caused by rows.
  std::optional<PgError> LoadRange(size_t lo, size_t hi, bool whole_batch, BatchResult* result);
  std::optional<PgError> MergeUpdate(PgRows* merged);
  const RowOrigin& Origin(size_t row) const;

  std::unique_ptr<PgConnection> conn_;
  const Entity& entity_;
  ConflictMode mode_;
  std::string copy_sql_;
  std::string merge_sql_;
  std::string direct_copy_sql_;  // kNothing/kUpdate: the optimistic COPY into the target
  bool optimistic_ = true;       // no key conflict seen yet on this connection
  std::string max_dup_sql_;      // kUpdate: most occurrences of one key in the staging table
  std::string merge_pass_sql_;   // kUpdate: merge the $1-th occurrence of every key
  // The batch being written: parts and the first global row index of each.
  const std::vector<const EncodedPart*>* parts_ = nullptr;
  std::vector<size_t> part_start_;
  std::vector<std::string_view> slices_;
  std::vector<RejectedRow> rejected_;
  CopySinkOptions options_;
  std::string conninfo_;
};

}  // namespace nomnom
