// One logger for the diagnostics of core/, cli/ and daemon/: levels, one line
// format, JSON lines on request. (The CLI's user-facing output, such as
// `file:line: reason` rejects, summaries and `nomnom: error:`, is not logging
// and does not go through here.)
//
// Lines go to stderr, as text
//   2026-11-28T06:40:00.123Z info nomnomd: listening on 127.0.0.1:8080
// or, with json = true, one object per line
//   {"ts":"2026-11-28T06:40:00.123Z","level":"info","component":"nomnomd","msg":"listening on ..."}
// Messages are always valid UTF-8 in JSON (invalid bytes are replaced).
//
// Thread-safety: logging is thread-safe and never throws (a failure to format
// or write is dropped). ConfigureLogging is meant for start-up, before other
// threads log; until then the defaults (info, text, "nomnom") apply.
#pragma once

#include <fmt/core.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace nomnom {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  bool json = false;
  std::string component = "nomnom";  // the program, e.g. nomnomd
};

void ConfigureLogging(const LogConfig& config);

// "debug", "info", "warn"/"warning", "error", "off", "trace" (= debug); also
// RUST_LOG-style "nomnom=debug" (the last level wins). nullopt if unknown.
std::optional<LogLevel> ParseLogLevel(std::string_view text);

bool LogEnabled(LogLevel level);

// The current time as ISO 8601 UTC with milliseconds, "2026-11-28T06:40:00.123Z"
// (the format of log lines; also used in API answers).
std::string UtcTimestamp();
// The same appended to *out, formatted at most once per millisecond per thread
// (for code that stamps many records at once).
void AppendUtcTimestamp(std::string* out);
void LogMessage(LogLevel level, std::string_view message) noexcept;

namespace log_detail {
template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!LogEnabled(level)) return;
  try {
    LogMessage(level, fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {  // formatting failed (e.g. out of memory): drop the line
  }
}
}  // namespace log_detail

template <typename... Args>
void LogDebug(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log_detail::Log(LogLevel::kDebug, format, std::forward<Args>(args)...);
}
template <typename... Args>
void LogInfo(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log_detail::Log(LogLevel::kInfo, format, std::forward<Args>(args)...);
}
template <typename... Args>
void LogWarn(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log_detail::Log(LogLevel::kWarn, format, std::forward<Args>(args)...);
}
template <typename... Args>
void LogError(fmt::format_string<Args...> format, Args&&... args) noexcept {
  log_detail::Log(LogLevel::kError, format, std::forward<Args>(args)...);
}

}  // namespace nomnom
