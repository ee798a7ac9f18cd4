// IdempotencyCache: the Idempotency-Keys this process has stored, with a hash
// of the body each came with, for the duplicate window. A repeated key is
// answered as the first time (the same body) or 409 (another body).
//
// JetStream's duplicate window already keeps a second copy out of the stream;
// this cache only tells the two answers apart quickly. Across processes (and
// after a restart) the body hash travels in the chunk's Nomnom-Body-Hash
// header, read back from the stream while the original is still there.
//
// Bounded by max_entries (oldest forgotten first) and by ttl. Thread-safe.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace nomnom {

class IdempotencyCache {
 public:
  IdempotencyCache(size_t max_entries, int64_t ttl_ms) : max_entries_(max_entries), ttl_(ttl_ms) {}

  // The body hash stored under key, if remembered and not expired.
  std::optional<std::string> BodyHash(const std::string& key);
  void Remember(const std::string& key, const std::string& body_hash);

 private:
  using Clock = std::chrono::steady_clock;
  struct Entry {
    std::string body_hash;
    Clock::time_point expires;
  };
  void ExpireLocked(Clock::time_point now);

  const size_t max_entries_;
  const std::chrono::milliseconds ttl_;
  std::mutex mu_;
  std::unordered_map<std::string, Entry> entries_;               // guarded by mu_
  std::deque<std::pair<Clock::time_point, std::string>> order_;  // by insertion; guarded by mu_
};

}  // namespace nomnom
