// PgRowSink: a RowSink that stores each Write in one PostgreSQL transaction,
// into which its caller can add statements of its own ("bookkeeping": e.g. the
// ingest worker's ledger rows and dead letters), so the rows, the rejects and
// the bookkeeping commit together or not at all.
//
// Implemented by CopySink (one table) and NestedSink (a root table with its
// derived tables); the ingest worker writes through this interface whichever
// it has, and the load pipeline through RowSink.
//
// Thread-safety: as RowSink, one sink per thread.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "core/base/status.h"
#include "core/format/encoded_rows.h"
#include "core/format/row_sink.h"
#include "core/pg/pg_connection.h"

namespace nomnom {

// Runs inside the batch's transaction just before COMMIT, on the sink's
// connection, with the rows PostgreSQL rejected; returning an error aborts
// (and, if transient, retries: it may run more than once) the whole
// transaction.
using BeforeCommitFn =
    std::function<std::optional<PgError>(PgConnection& conn, const std::vector<RejectedRow>& rejected)>;

class PgRowSink : public RowSink {
 public:
  // Stores the rows of `parts` (in order) in one transaction and, when
  // `before_commit` is set, runs it in that transaction just before COMMIT.
  // After COMMIT the rejected rows are passed to on_reject. Returns the counts,
  // or a Status for an error that is not about particular rows (then nothing
  // of the batch, and none of the bookkeeping, was committed).
  virtual Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject,
                                    const BeforeCommitFn& before_commit) = 0;
  // RowSink::Write: the same without bookkeeping.
  Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject) final {
    return Write(parts, on_reject, nullptr);
  }
};

}  // namespace nomnom
