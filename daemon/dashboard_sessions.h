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

// The value of cookie `name` in a Cookie header ("a=1; b=2"), "" if absent.
std::string CookieValue(std::string_view cookie_header, std::string_view name);

// a == b in time that depends on the lengths only.
bool ConstantTimeEqual(std::string_view a, std::string_view b);

}  // namespace nomnom
