#include "daemon/dashboard_sessions.h"

#include <algorithm>
#include <climits>
#include <random>

namespace nomnom {

std::string DashboardSessions::Create(int64_t now_ms) {
  // std::random_device reads the kernel's random source on Linux.
  static thread_local std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  id.reserve(64);
  for (int i = 0; i < 8; ++i) {
    uint32_t v = rd();
    for (int k = 0; k < 8; ++k) {
      id.push_back(kHex[v & 0xf]);
      v >>= 4;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  DropExpired(now_ms);
  while (max_ > 0 && expires_.size() >= max_) {
    auto oldest = std::min_element(expires_.begin(), expires_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    expires_.erase(oldest);
  }
  if (max_ > 0) expires_[id] = now_ms + ttl_ms_;
  return id;
}

bool DashboardSessions::Valid(std::string_view id, int64_t now_ms) {
  if (id.size() != 64) return false;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = expires_.find(id);
  if (it == expires_.end()) return false;
  if (it->second <= now_ms) {
    expires_.erase(it);
    return false;
  }
  return true;
}

size_t DashboardSessions::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return expires_.size();
}

void DashboardSessions::DropExpired(int64_t now_ms) {
  for (auto it = expires_.begin(); it != expires_.end();) {
    it = it->second <= now_ms ? expires_.erase(it) : std::next(it);
  }
}

int64_t FailureLimiter::RetryAfterMs(std::string_view key, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  DropEnded(now_ms);
  int64_t wait = 0;
  if (total_.failures >= limits_.max_total) wait = total_.start_ms + limits_.window_ms - now_ms;
  if (auto it = by_key_.find(key); it != by_key_.end()) {
    if (it->second.failures >= limits_.max_per_key) {
      wait = std::max(wait, it->second.start_ms + limits_.window_ms - now_ms);
    }
  } else if (by_key_.size() >= limits_.max_keys) {
    // Full: no room to count this key's failures, so it waits for the
    // oldest window to end.
    int64_t first_end = INT64_MAX;
    for (const auto& [k, w] : by_key_) first_end = std::min(first_end, w.start_ms + limits_.window_ms);
    wait = std::max(wait, first_end - now_ms);
  }
  return std::max<int64_t>(wait, 0);
}

void FailureLimiter::Failed(std::string_view key, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  DropEnded(now_ms);
  if (total_.failures == 0) total_.start_ms = now_ms;
  ++total_.failures;
  auto it = by_key_.find(key);
  if (it == by_key_.end()) {
    if (by_key_.size() >= limits_.max_keys) return;  // counted in the total only
    it = by_key_.emplace(std::string(key), Window{now_ms, 0}).first;
  }
  ++it->second.failures;
}

void FailureLimiter::Succeeded(std::string_view key) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = by_key_.find(key); it != by_key_.end()) by_key_.erase(it);
}

size_t FailureLimiter::keys() const {
  std::lock_guard<std::mutex> lock(mu_);
  return by_key_.size();
}

void FailureLimiter::DropEnded(int64_t now_ms) {
  if (total_.failures > 0 && total_.start_ms + limits_.window_ms <= now_ms) total_ = Window{};
  for (auto it = by_key_.begin(); it != by_key_.end();) {
    it = it->second.start_ms + limits_.window_ms <= now_ms ? by_key_.erase(it) : std::next(it);
  }
}

std::string PeerAddress(std::string_view remote) {
  if (remote.starts_with('[')) {
    const size_t close = remote.find(']');
    if (close != std::string_view::npos) return std::string(remote.substr(1, close - 1));
  }
  const size_t colon = remote.rfind(':');
  if (colon != std::string_view::npos && remote.find(':') == colon) return std::string(remote.substr(0, colon));
  return std::string(remote);
}

std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const size_t semi = header.find(';');
    std::string_view pair = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
    while (!pair.empty() && (pair.back() == ' ' || pair.back() == '\t')) pair.remove_suffix(1);
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) continue;
    std::string_view value = pair.substr(eq + 1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    return std::string(value);
  }
  return {};
}

bool ConstantTimeEqual(std::string_view a, std::string_view b) {
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff = static_cast<unsigned char>(diff | (x ^ static_cast<unsigned char>(b[i])));
  }
  return diff == 0;
}

}  // namespace nomnom
