#include "daemon/pending_ids.h"

namespace nomnom {

void PendingIds::Remember(const std::string& batch_id, uint32_t rows, uint32_t chunks) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = batches_.emplace(batch_id, Batch{rows, chunks});
  if (inserted) {
    order_.push_back(batch_id);
  } else if (rows > it->second.rows) {
    it->second.rows = rows;  // the rows of a shared /ingest/message chunk are acknowledged one by one
  }
  while (order_.size() > max_entries_) {
    batches_.erase(order_.front());
    order_.pop_front();
  }
}

bool PendingIds::IsPending(const StatusKey& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = batches_.find(key.batch_id);
  if (it == batches_.end()) return false;
  // A message id names row i of a one-chunk batch.
  return key.kind == StatusKey::Kind::kBatch || (it->second.chunks == 1 && key.row < it->second.rows);
}

size_t PendingIds::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return batches_.size();
}

}  // namespace nomnom
