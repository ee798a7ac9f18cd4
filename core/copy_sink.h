// CopySink: loads encoded rows into PostgreSQL over one connection with
// binary COPY, one transaction per batch.
//
//  - ConflictMode::kError: COPY straight into the target table.
//  - kNothing / kUpdate: COPY into a session-private staging table, then
//    INSERT ... SELECT ... ON CONFLICT (key) DO NOTHING | DO UPDATE, committed
//    together. For kUpdate the staging rows are deduplicated by key keeping the
//    last occurrence (DISTINCT ON ... ORDER BY arrival DESC), so duplicates in
//    one batch never fail it and the last row in the input wins.
//
// A batch that fails on a row PostgreSQL rejects (SQLSTATE class 22 or 23:
// bad data, CHECK, foreign key, unique violation) is split and retried until
// the failing rows are isolated; they are reported through the reject
// callback with PostgreSQL's message and every other row is committed.
// Deadlocks and serialization failures are retried with backoff.
//
// Thread-safety: a CopySink is used by one thread. The Entity must outlive it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
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
  uint64_t seq = 0;                     // the chunk's sequence number in the load
  ByteBuffer tuples;                    // concatenated tuples
  std::vector<uint32_t> offsets;        // start of each tuple in `tuples`
  std::vector<RowOrigin> origins;       // one per tuple
  std::shared_ptr<const Chunk> chunk;   // owner of the raw bytes origins point to
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

class CopySink {
 public:
  // Prepares the connection (staging table for kNothing/kUpdate). The target
  // table must already exist (EnsureTable).
  static Result<std::unique_ptr<CopySink>> Create(std::unique_ptr<PgConnection> conn, const Entity& entity,
                                                  ConflictMode mode);

  // Loads every row of `parts` (in order). Returns the counts, or a Status for
  // an error that is not about particular rows (connection lost, permission
  // denied, ...); then nothing of the failing transaction was committed.
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject);

  PgConnection& connection() { return *conn_; }

 private:
  CopySink(std::unique_ptr<PgConnection> conn, const Entity& entity, ConflictMode mode);
  Status Prepare();

  // A view of rows [lo, hi) of the current batch as COPY stream slices.
  void Slices(size_t lo, size_t hi, std::vector<std::string_view>* out) const;
  // One transaction for rows [lo, hi); on failure returns the error and, when
  // PostgreSQL named the failing COPY row, its index in *bad_row.
  std::optional<PgError> TryLoad(size_t lo, size_t hi, BatchResult* result, size_t* bad_row);
  Status LoadRange(size_t lo, size_t hi, BatchResult* result, const RejectFn& on_reject);
  const RowOrigin& Origin(size_t row) const;

  std::unique_ptr<PgConnection> conn_;
  const Entity& entity_;
  ConflictMode mode_;
  std::string copy_sql_;
  std::string merge_sql_;
  // The batch being written: parts and the first global row index of each.
  const std::vector<const EncodedPart*>* parts_ = nullptr;
  std::vector<size_t> part_start_;
  std::vector<std::string_view> slices_;
};

}  // namespace nomnom
