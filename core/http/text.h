// Internal to core/http: the small text helpers of the request path (ASCII
// case folding, percent-decoding, query parsing, header-field checks, the
// bearer token's comparison) and the per-connection size limits. Inline: they
// run for every request, in the session's and the router's files alike.
// Pure functions, thread-safe.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/http/beast.h"
#include "core/http/http_server.h"

namespace nomnom::http::internal {

inline std::string_view SV(beast::string_view s) { return {s.data(), s.size()}; }

// ASCII case folding: what HTTP's case-insensitive tokens need (and no
// locale look-up per character).
constexpr char AsciiLower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

inline std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// What a request's Transfer-Encoding (all its fields, joined with ',') asks
// of the server, as RFC 9112 section 6.1 has it: 0 when it is exactly
// "chunked" (the one coding nomnomd reads: Beast de-chunks it); 400 when
// chunked is not the final coding, or is applied twice, or the list is empty
// (the body's length cannot be known: a request smuggled in the body would be
// read as the next one); 501 for a coding before the final chunked that
// nomnomd does not implement (gzip, ...). Either way the connection closes.
inline int TransferCodingStatus(std::string_view codings) {
  std::string_view last;
  int chunked = 0, others = 0;
  while (!codings.empty()) {
    const size_t comma = codings.find(',');
    const std::string_view coding = Trim(codings.substr(0, comma));
    codings = comma == std::string_view::npos ? std::string_view() : codings.substr(comma + 1);
    if (coding.empty()) continue;  // list syntax allows empty elements
    last = coding;
    if (IEquals(coding, "chunked")) {
      ++chunked;
    } else {
      ++others;
    }
  }
  if (last.empty() || !IEquals(last, "chunked") || chunked > 1) return 400;
  return others > 0 ? 501 : 0;
}

inline int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decoding; '+' is a space when plus_is_space. A malformed escape is kept as is.
inline std::string Decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]);
      int lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

inline void ParseQuery(std::string_view q, std::map<std::string, std::string>& out) {
  while (!q.empty()) {
    size_t amp = q.find('&');
    std::string_view pair = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    std::string name = Decode(pair.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? std::string() : Decode(pair.substr(eq + 1), true);
    out.insert_or_assign(std::move(name), std::move(value));
  }
}

// Compares in time that depends on the lengths only, not on where they differ.
inline bool ConstantTimeEquals(std::string_view given, std::string_view expected) {
  volatile unsigned char diff = given.size() == expected.size() ? 0 : 1;
  for (size_t i = 0; i < expected.size(); ++i) {
    unsigned char g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
    diff = static_cast<unsigned char>(diff | (g ^ static_cast<unsigned char>(expected[i])));
  }
  return diff == 0;
}

inline bool IsIngestPath(std::string_view path) { return path == "/ingest" || path.starts_with("/ingest/"); }

inline bool HeaderValueIsSafe(std::string_view s) {
  return s.find_first_of("\r\n") == std::string_view::npos && s.find('\0') == std::string_view::npos;
}

inline bool HeaderNameIsSafe(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 32 || u >= 127 || c == ':') return false;
  }
  return true;
}

// The handler's extra header fields, without the ones the server sets itself
// or any that could split the head.
inline void AppendExtraHeaders(std::string& head, const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (!HeaderNameIsSafe(name) || !HeaderValueIsSafe(value) || IEquals(name, "Server") ||
        IEquals(name, "Content-Length") || IEquals(name, "Connection") || IEquals(name, "Transfer-Encoding") ||
        IEquals(name, "Content-Type")) {
      continue;
    }
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
}

inline void AppendUnsigned(std::string& out, uint64_t v) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<size_t>(res.ptr - buf));
}

constexpr size_t kFirstReadBytes = 4096;
// A connection keeps its last request body's buffer for the next one up to
// this size (a typical /ingest/message body; 10,000 idle connections: 20 MB),
// and its last request's other strings (target, headers) up to this size; a
// larger request's are let go after its response.
constexpr size_t kKeptRequestBodyBytes = 2048;
constexpr size_t kKeptRequestHeadBytes = 2048;

// Bytes the strings of a request's target and header fields hold.
inline size_t HeadCapacity(const Request& r) {
  size_t n = r.method.capacity() + r.path.capacity() + r.remote.capacity();
  for (const auto& [name, value] : r.headers) n += name.capacity() + value.capacity();
  return n;
}
// A request for an unknown route or method whose body announces at most this
// many bytes has its body read (and dropped) so that the connection, and the
// requests pipelined after it, go on. A larger or chunked body is not read.
constexpr uint64_t kDrainBodyBytes = 64 << 10;

// A request's method as a metrics label: a known one, or "other".
inline std::string_view BoundedMethod(std::string_view m) {
  for (std::string_view known : {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    if (m == known) return known;
  }
  return "other";
}
constexpr int kLingerMs = 2000;

}  // namespace nomnom::http::internal
