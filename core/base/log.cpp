#include "core/base/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

namespace nomnom {

namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};

spdlog::level::level_enum ToSpd(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarn:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kOff:
      break;
  }
  return spdlog::level::off;
}

const char* LevelName(LogLevel level) {
  static const char* kNames[] = {"debug", "info", "warn", "error", "off"};
  return kNames[static_cast<int>(level)];
}

std::mutex g_mu;
std::shared_ptr<spdlog::logger> g_logger;  // guarded by g_mu (the pointer; the logger is thread-safe)
std::string g_component = "nomnom";        // guarded by g_mu

// Built on first use; ConfigureLogging replaces it.
std::shared_ptr<spdlog::logger> Logger() {
  std::lock_guard<std::mutex> lock(g_mu);
  if (!g_logger) {
    g_logger = std::make_shared<spdlog::logger>(g_component, std::make_shared<spdlog::sinks::stderr_sink_mt>());
    g_logger->set_level(spdlog::level::trace);  // filtering is ours (LogEnabled)
    const bool json = g_json.load();
    g_logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        json ? "%v" : "%Y-%m-%dT%H:%M:%S.%eZ %l %n: %v", spdlog::pattern_time_type::utc, std::string("\n")));
    g_logger->flush_on(spdlog::level::trace);
  }
  return g_logger;
}

}  // namespace

namespace {

// "YYYY-MM-DDTHH:MM:SS.mmmZ" of epoch milliseconds ms into buf; its length.
int FormatUtcMillis(int64_t epoch_ms, char (&buf)[96]) {
  const std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(epoch_ms % 1000));
}

int64_t NowEpochMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string UtcTimestamp() {
  char buf[96];
  const int n = FormatUtcMillis(NowEpochMillis(), buf);
  return std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
}

void AppendUtcTimestamp(std::string* out) {
  thread_local int64_t cached_ms = -1;
  thread_local char cached[96];
  thread_local size_t cached_size = 0;
  const int64_t now = NowEpochMillis();
  if (now != cached_ms) {
    const int n = FormatUtcMillis(now, cached);
    cached_size = n > 0 ? static_cast<size_t>(n) : 0;
    cached_ms = now;
  }
  out->append(cached, cached_size);
}

void ConfigureLogging(const LogConfig& config) {
  g_level.store(static_cast<int>(config.level));
  g_json.store(config.json);
  std::lock_guard<std::mutex> lock(g_mu);
  g_component = config.component;
  g_logger.reset();  // rebuilt with the new settings on next use
}

std::optional<LogLevel> ParseLogLevel(std::string_view text) {
  // RUST_LOG style: comma-separated directives, "target=level" or "level".
  std::optional<LogLevel> result;
  while (!text.empty()) {
    const size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (const size_t eq = item.rfind('='); eq != std::string_view::npos) item = item.substr(eq + 1);
    std::string s(item);
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (s == "trace" || s == "debug") {
      result = LogLevel::kDebug;
    } else if (s == "info") {
      result = LogLevel::kInfo;
    } else if (s == "warn" || s == "warning") {
      result = LogLevel::kWarn;
    } else if (s == "error") {
      result = LogLevel::kError;
    } else if (s == "off") {
      result = LogLevel::kOff;
    } else {
      return std::nullopt;
    }
  }
  return result;
}

bool LogEnabled(LogLevel level) { return level != LogLevel::kOff && static_cast<int>(level) >= g_level.load(); }

void LogMessage(LogLevel level, std::string_view message) noexcept {
  try {
    auto logger = Logger();
    if (g_json.load()) {
      nlohmann::ordered_json j;
      j["ts"] = UtcTimestamp();
      j["level"] = LevelName(level);
      j["component"] = logger->name();
      j["msg"] = std::string(message);
      logger->log(ToSpd(level), "{}", j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    } else {
      logger->log(ToSpd(level), "{}", message);
    }
  } catch (...) {  // nothing to report a logging failure to
  }
}

}  // namespace nomnom
