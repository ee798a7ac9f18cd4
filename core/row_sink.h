// RowSink: where the load pipeline's sink threads put encoded rows.
//
// CopySinks write PostgreSQL; a JetStream sink (publish_sink.h) publishes the
// validated rows for workers instead (`nomnom load --via-nats`). One RowSink
// is used by one sink thread.
#pragma once

#include <vector>

#include "core/copy_sink.h"
#include "core/status.h"

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

// Adapts a CopySink.
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
