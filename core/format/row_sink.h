// RowSink: where the load pipeline's sink threads put encoded rows.
//
// CopySink and NestedSink write PostgreSQL (core/pg/pg_row_sink.h: PgRowSink
// adds bookkeeping in the rows' transaction, which the ingest worker uses); a
// JetStream sink (publish_sink.h) publishes the validated rows for workers
// instead (`nomnom load --via-nats`). One RowSink is used by one sink thread.
// The row types are in encoded_rows.h.
#pragma once

#include <vector>

#include "core/base/status.h"
#include "core/format/encoded_rows.h"

namespace nomnom {

class RowSink {
 public:
  virtual ~RowSink() = default;
  // Stores the rows of `parts` (in order); rows that cannot be stored go to
  // on_reject. BatchResult.inserted counts rows stored (for a publisher: handed
  // over; Finish() confirms them).
  virtual Result<BatchResult> Write(const std::vector<const EncodedPart*>& parts, const RejectFn& on_reject) = 0;
  // Called once after the last Write: waits for outstanding work and reports
  // its failure.
  virtual Status Finish() { return Status::Ok(); }
};

}  // namespace nomnom
