#include "daemon/idempotency_cache.h"

namespace nomnom {

void IdempotencyCache::ExpireLocked(Clock::time_point now) {
  while (!order_.empty() && (order_.size() > max_entries_ || order_.front().first <= now)) {
    auto it = entries_.find(order_.front().second);
    // A key remembered again later has a newer expiry: keep that entry.
    if (it != entries_.end() && it->second.expires == order_.front().first) entries_.erase(it);
    order_.pop_front();
  }
}

std::optional<std::string> IdempotencyCache::BodyHash(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  ExpireLocked(now);
  auto it = entries_.find(key);
  if (it == entries_.end() || it->second.expires <= now) return std::nullopt;
  return it->second.body_hash;
}

void IdempotencyCache::Remember(const std::string& key, const std::string& body_hash) {
  std::lock_guard<std::mutex> lock(mu_);
  const auto now = Clock::now();
  const auto expires = now + ttl_;
  entries_[key] = Entry{body_hash, expires};
  order_.emplace_back(expires, key);
  ExpireLocked(now);
}

}  // namespace nomnom
