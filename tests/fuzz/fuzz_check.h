// Helpers shared by the libFuzzer harnesses in tests/fuzz/.
//
// FUZZ_CHECK(cond, what) aborts with a message when an invariant does not
// hold, so libFuzzer records the input as a crash. Utf8Valid is an independent
// UTF-8 validator (Unicode table 3-7), deliberately not the one in core/, so a
// harness can compare against it. KnownBugTolerated reads the
// NOMNOM_FUZZ_KNOWN_BUGS environment variable (a comma-separated list of bug
// names) so a known, already reported bug can be stepped over while fuzzing
// for new ones.
//
// Thread-safety: everything here is stateless except KnownBugTolerated's
// one-time read of the environment (a function-local static).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace nomnom::fuzz {

[[noreturn]] inline void Fail(const char* file, int line, const char* cond, const std::string& what) {
  std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n  %s\n", file, line, cond, what.c_str());
  std::abort();
}

#define FUZZ_CHECK(cond, what)                                                       \
  do {                                                                               \
    if (!(cond)) ::nomnom::fuzz::Fail(__FILE__, __LINE__, #cond, std::string(what)); \
  } while (0)

// Length of the well-formed UTF-8 sequence at s[i], or 0 when there is none
// (Unicode 15, table 3-7).
inline size_t WellFormedUtf8At(std::string_view s, size_t i) {
  auto at = [&](size_t k) -> int { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : -1; };
  auto in = [](int c, int lo, int hi) { return c >= lo && c <= hi; };
  const int c0 = at(0);
  if (in(c0, 0x00, 0x7F)) return 1;
  if (in(c0, 0xC2, 0xDF)) return in(at(1), 0x80, 0xBF) ? 2 : 0;
  if (in(c0, 0xE0, 0xEF)) {
    const int lo = c0 == 0xE0 ? 0xA0 : 0x80, hi = c0 == 0xED ? 0x9F : 0xBF;
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) ? 3 : 0;
  }
  if (in(c0, 0xF0, 0xF4)) {
    const int lo = c0 == 0xF0 ? 0x90 : 0x80, hi = c0 == 0xF4 ? 0x8F : 0xBF;
    return in(at(1), lo, hi) && in(at(2), 0x80, 0xBF) && in(at(3), 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

inline bool Utf8Valid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = WellFormedUtf8At(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// Printable excerpt of bytes for a failure message: non-ASCII and control
// bytes as \xNN, at most 200 bytes.
inline std::string Show(std::string_view s) {
  std::string out;
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < s.size() && i < 200; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > 200) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

inline bool KnownBugTolerated(std::string_view name) {
  static const std::string kList = [] {
    const char* v = std::getenv("NOMNOM_FUZZ_KNOWN_BUGS");
    return std::string(",") + (v != nullptr ? v : "") + ",";
  }();
  return kList.find("," + std::string(name) + ",") != std::string::npos;
}

}  // namespace nomnom::fuzz
