// core/base/log.h: the UTC timestamps stamped on API answers and log records.
#include "core/base/log.h"

#include <regex>
#include <string>

#include <catch2/catch.hpp>

using nomnom::AppendUtcTimestamp;
using nomnom::UtcTimestamp;

TEST_CASE("AppendUtcTimestamp appends the current time as UtcTimestamp formats it", "[log]") {
  const std::regex format(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z)");
  for (int i = 0; i < 2000; ++i) {  // crosses millisecond boundaries: cached and fresh values
    const std::string before = UtcTimestamp();
    std::string out = "ts=";
    AppendUtcTimestamp(&out);
    const std::string after = UtcTimestamp();
    REQUIRE(out.rfind("ts=", 0) == 0);
    const std::string ts = out.substr(3);
    REQUIRE(std::regex_match(ts, format));
    // Same format, so text order is time order.
    REQUIRE(before <= ts);
    REQUIRE(ts <= after);
  }
  CHECK(std::regex_match(UtcTimestamp(), format));
}
