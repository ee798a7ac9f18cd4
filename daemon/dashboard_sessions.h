// DashboardSessions: the short-lived sessions that the dashboard trades for
// the bearer token (POST /dashboard/session), so that the page's event stream,
// which cannot send an Authorization header, carries an HttpOnly cookie
// instead of the token (a token in a URL ends up in logs).
//
// A session id is 32 random bytes (hex); it is valid for ttl_ms after it was
// made, then forgotten. At most max_sessions are kept: making one more drops
// the oldest. Times are given by the caller (milliseconds of a steady clock),
// so tests need no sleeping. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace nomnom {

class DashboardSessions {
 public:
  DashboardSessions(int64_t ttl_ms, size_t max_sessions) : ttl_ms_(ttl_ms), max_(max_sessions) {}

  // A new session id valid until now_ms + ttl_ms.
  std::string Create(int64_t now_ms);
  // Whether id names a session that has not expired at now_ms.
  bool Valid(std::string_view id, int64_t now_ms);
  size_t size() const;
  int64_t ttl_ms() const { return ttl_ms_; }

 private:
  void DropExpired(int64_t now_ms);  // mu_ held

  const int64_t ttl_ms_;
  const size_t max_;
  mutable std::mutex mu_;
  std::map<std::string, int64_t, std::less<>> expires_;  // guarded by mu_: id -> expiry
};

// FailureLimiter: bounds guessing at a secret (the token at POST
// /dashboard/session). Each key (a client address) may fail max_per_key times
// and all keys together max_total times in a window of window_ms that starts
// at the first failure; beyond that, attempts are refused until the window
// ends. At most max_keys keys are tracked: when that many are, a new key is
// refused (fail closed) until some window ends. A success clears its key.
// Times are the caller's (steady clock, ms). Thread-safe.
class FailureLimiter {
 public:
  struct Limits {
    int max_per_key = 5;
    int max_total = 50;
    int64_t window_ms = 60000;
    size_t max_keys = 4096;
  };
  explicit FailureLimiter(Limits limits) : limits_(limits) {}

  // 0 when `key` may try now, else the milliseconds until it may.
  int64_t RetryAfterMs(std::string_view key, int64_t now_ms);
  void Failed(std::string_view key, int64_t now_ms);
  void Succeeded(std::string_view key);
  size_t keys() const;

 private:
  struct Window {
    int64_t start_ms = 0;
    int failures = 0;
  };
  void DropEnded(int64_t now_ms);  // mu_ held

  const Limits limits_;
  mutable std::mutex mu_;
  std::map<std::string, Window, std::less<>> by_key_;  // guarded by mu_
  Window total_;                                       // guarded by mu_
};

// The address part of "ip:port" or "[v6]:port" (the whole text otherwise).
std::string PeerAddress(std::string_view remote);

// The value of cookie `name` in a Cookie header ("a=1; b=2"), "" if absent.
std::string CookieValue(std::string_view cookie_header, std::string_view name);

// a == b in time that depends on the lengths only.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace nomnom
