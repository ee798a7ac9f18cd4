// libFuzzer harness: pg::ParseDate and pg::ParseTimestamp (core/format/pg_binary.h),
// which read Date and DateTime values from the input.
//
// The whole input is the text. ParseDate is compared with a reference built on
// std::chrono's calendar. An accepted timestamp must lie within a day (plus
// the zone offset) of its date, a 10-byte one must be that date's midnight,
// and its canonical form (YYYY-MM-DDTHH:MM:SS.ffffffZ, formatted here) must
// parse back to the same microsecond.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "core/format/pg_binary.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::fuzz::Show;
namespace chr = std::chrono;

constexpr int64_t kUsecsPerDay = nomnom::pg::kUsecsPerDay;
const chr::sys_days kEpoch2000 = chr::year{2000} / chr::January / 1;

std::optional<int32_t> RefDate(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return std::nullopt;
  int v[3] = {0, 0, 0};
  const size_t starts[3] = {0, 5, 8}, lens[3] = {4, 2, 2};
  for (int k = 0; k < 3; ++k) {
    for (size_t i = starts[k]; i < starts[k] + lens[k]; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v[k] = v[k] * 10 + (s[i] - '0');
    }
  }
  const chr::year_month_day ymd{chr::year{v[0]}, chr::month{static_cast<unsigned>(v[1])},
                                chr::day{static_cast<unsigned>(v[2])}};
  if (v[0] < 1 || !ymd.ok()) return std::nullopt;
  return static_cast<int32_t>((chr::sys_days(ymd) - kEpoch2000).count());
}

// "YYYY-MM-DDTHH:MM:SS.ffffffZ" for microseconds since 2000-01-01, or "" when
// the year is outside 1..9999.
std::string Canonical(int64_t usecs) {
  int64_t days = usecs / kUsecsPerDay;
  int64_t rest = usecs % kUsecsPerDay;
  if (rest < 0) {
    rest += kUsecsPerDay;
    --days;
  }
  const chr::year_month_day ymd{kEpoch2000 + chr::days{days}};
  const int year = static_cast<int>(ymd.year());
  if (year < 1 || year > 9999) return "";
  const int64_t secs = rest / 1000000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ", year,
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60), static_cast<long long>(rest % 1000000));
  return buf;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view s(reinterpret_cast<const char*>(data), size);
  const std::string where = "\"" + Show(s) + "\"";

  const auto date = nomnom::pg::ParseDate(s);
  const auto ref = RefDate(s);
  FUZZ_CHECK(date.has_value() == ref.has_value(),
             std::string("ParseDate ") + (date ? "accepted " : "rejected ") + where + ", the reference did not");
  if (date)
    FUZZ_CHECK(*date == *ref, "ParseDate " + where + " = " + std::to_string(*date) + ", want " + std::to_string(*ref));

  const auto ts = nomnom::pg::ParseTimestamp(s);
  if (!ts) {
    FUZZ_CHECK(!date, "ParseTimestamp rejects the valid date " + where);
    return 0;
  }
  const auto day = s.size() >= 10 ? RefDate(s.substr(0, 10)) : std::nullopt;
  FUZZ_CHECK(day.has_value(), "ParseTimestamp accepted " + where + " whose first 10 bytes are no date");
  const int64_t midnight = int64_t{*day} * kUsecsPerDay;
  if (s.size() == 10) FUZZ_CHECK(*ts == midnight, "a date-only timestamp is not midnight: " + where);
  // Local time in [0, 24h) (plus one second of fraction rounding), zone
  // offsets within +-23:59.
  const int64_t slack = 24 * 3600 * int64_t{1000000};
  FUZZ_CHECK(*ts >= midnight - slack && *ts <= midnight + kUsecsPerDay + 1000000 + slack,
             "ParseTimestamp " + where + " = " + std::to_string(*ts) + " is too far from its date");
  const std::string canonical = Canonical(*ts);
  if (!canonical.empty()) {
    const auto again = nomnom::pg::ParseTimestamp(canonical);
    FUZZ_CHECK(again && *again == *ts, "round trip of " + where + " through " + canonical + " gives " +
                                           (again ? std::to_string(*again) : "nothing"));
  }
  return 0;
}
