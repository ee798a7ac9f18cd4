// PendingIds: the batches this process has had stored in JetStream, so that
// /ingest/status can answer "pending" for an id no worker has committed yet
// (the ledger in PostgreSQL knows only committed ids).
//
// Bounded: the oldest entries are forgotten beyond max_entries (their status
// then comes from the ledger alone: processed, dead, or unknown while still
// queued). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/queue/ingest_format.h"

namespace nomnom {

class PendingIds {
 public:
  explicit PendingIds(size_t max_entries = 1000000) : max_entries_(max_entries) {}

  // A batch of `chunks` chunk messages holding `rows` rows was stored (for a
  // batch already remembered, the larger row count is kept).
  void Remember(const std::string& batch_id, uint32_t rows, uint32_t chunks);
  // Whether key names a remembered batch, or a row of a remembered one-chunk
  // batch (a /ingest/message id).
  bool IsPending(const StatusKey& key) const;
  size_t size() const;

 private:
  struct Batch {
    uint32_t rows;
    uint32_t chunks;
  };
  const size_t max_entries_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Batch> batches_;  // guarded by mu_
  std::deque<std::string> order_;                   // oldest first; guarded by mu_
};

}  // namespace nomnom
