// pg_binary: PostgreSQL binary COPY format encoders.
//
// Every Append*Field function appends one complete field of a binary COPY tuple:
// a big-endian int32 byte length followed by the value in PostgreSQL's binary
// send/recv representation (or length -1 for NULL). The COPY stream framing
// (signature header, per-tuple int16 field count, int16 -1 trailer) is written
// with AppendCopyHeader / AppendTupleStart / AppendCopyTrailer.
//
// Format reference: https://www.postgresql.org/docs/15/sql-copy.html (Binary
// Format) and the *_send functions in PostgreSQL's src/backend/utils/adt/.
//
// The text parsers (decimal, date, timestamp) are pure functions: they never
// allocate on success paths beyond the output buffer and are thread-safe.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "core/base/byte_buffer.h"

namespace nomnom::pg {

// Days from 0001-01-01 ... are counted relative to PostgreSQL's epoch 2000-01-01.
inline constexpr int64_t kUsecsPerSecond = 1000000;
inline constexpr int64_t kUsecsPerDay = 86400LL * kUsecsPerSecond;

void AppendCopyHeader(ByteBuffer& out);   // "PGCOPY\n\377\r\n\0", flags 0, extension 0
void AppendCopyTrailer(ByteBuffer& out);  // int16 -1

inline void AppendTupleStart(ByteBuffer& out, int16_t field_count) { out.PutI16(field_count); }
inline void AppendNullField(ByteBuffer& out) { out.PutI32(-1); }

// text, varchar, and the textual payload of other types.
inline void AppendTextField(ByteBuffer& out, std::string_view s) {
  out.PutI32(static_cast<int32_t>(s.size()));
  out.Append(s);
}
inline void AppendBoolField(ByteBuffer& out, bool v) {
  out.PutI32(1);
  out.PutU8(v ? 1 : 0);
}
inline void AppendInt16Field(ByteBuffer& out, int16_t v) {
  out.PutI32(2);
  out.PutI16(v);
}
inline void AppendInt32Field(ByteBuffer& out, int32_t v) {
  out.PutI32(4);
  out.PutI32(v);
}
inline void AppendInt64Field(ByteBuffer& out, int64_t v) {
  out.PutI32(8);
  out.PutI64(v);
}
inline void AppendFloat8Field(ByteBuffer& out, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  out.PutI32(8);
  out.PutU64(bits);
}
// real (float4): the IEEE 754 single's bits.
inline void AppendFloat4Field(ByteBuffer& out, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  out.PutI32(4);
  out.PutU32(bits);
}
// date: int32 days since 2000-01-01.
inline void AppendDateField(ByteBuffer& out, int32_t days_since_2000) { AppendInt32Field(out, days_since_2000); }
// timestamptz: int64 microseconds since 2000-01-01 00:00:00 UTC.
inline void AppendTimestampField(ByteBuffer& out, int64_t usecs_since_2000) { AppendInt64Field(out, usecs_since_2000); }
// jsonb: a version byte (1) followed by the JSON text. PostgreSQL validates it.
inline void AppendJsonbField(ByteBuffer& out, std::string_view json_text) {
  out.PutI32(static_cast<int32_t>(json_text.size() + 1));
  out.PutU8(1);
  out.Append(json_text);
}

// numeric: parses a decimal number in JSON number syntax or plain decimal text
// ("-12.3400", "1e-7", "+5", ".5", "5.") and appends its binary NUMERIC field
// (ndigits, weight, sign, dscale, base-10000 digits). The display scale is the
// number of fractional digits written (after applying the exponent), as
// PostgreSQL's numeric_in computes it. Like numeric_in (PostgreSQL 14+), it
// also accepts "NaN", "Infinity"/"inf" and "-Infinity"/"-inf"
// (case-insensitive) and ignores surrounding whitespace; the output is
// byte-identical to numeric_send of numeric_in's result. (numeric_in also
// takes whitespace after the 'e' of an exponent; this does not.) Returns
// false and sets *error (if non-null) when the text is not a number or
// exceeds NUMERIC's limits (131072 digits before the point, 16383 after);
// nothing is appended then.
bool AppendNumericField(ByteBuffer& out, std::string_view text, std::string* error);

// The common case of AppendNumericField, for writers with a cursor: when
// `text` is exactly "[-]digits[.digits]" with at most 19 digits in all (the
// fraction counted padded to a multiple of 4), writes the same field
// AppendNumericField would (at most kMaxPlainNumericField bytes at w) and
// returns its end; otherwise writes nothing and returns nullptr (call
// AppendNumericField then).
inline constexpr size_t kMaxPlainNumericField = 4 + 8 + 2 * 5;
char* WritePlainNumericField(char* w, std::string_view text);
// The same, always inlined (DelimitedEncoder's fused scanner, where GCC left
// it a call); the plain one is left to the compiler (forced, RowEncoder was
// ~1.5 % slower).
char* WritePlainNumericFieldInline(char* w, std::string_view text);

// Parses "YYYY-MM-DD" (years 0001..9999, a real calendar day) into days since
// 2000-01-01 (negative before). Returns nullopt for anything else.
std::optional<int32_t> ParseDate(std::string_view text);
// The same, into *days; false (and *days unspecified) for anything else. For
// hot loops: no std::optional in registers through memory.
bool ParseDate(std::string_view text, int32_t* days);
// The same, always inlined (as WritePlainNumericFieldInline).
bool ParseDateInline(std::string_view text, int32_t* days);

// Parses an ISO-8601 / RFC 3339 timestamp into microseconds since
// 2000-01-01T00:00:00Z: "YYYY-MM-DD", "YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]"
// with an optional zone "Z", "+HH", "+HHMM" or "+HH:MM" (either sign). Without a
// zone the time is taken as UTC. A fraction longer than 6 digits is rounded to
// microseconds (half away from zero). Hours are 00-23, seconds 00-59 (no
// leap second or 24:00, unlike PostgreSQL), zone offsets at most 23:59.
// Returns nullopt for anything else.
std::optional<int64_t> ParseTimestamp(std::string_view text);

// Counts UTF-8 characters (code points) in valid UTF-8 text: the length
// PostgreSQL compares against VARCHAR(n).
inline size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// ---------------------------------------------------------------------------
// Inline definitions: the hot paths above, in the header so encoders' loops
// inline them. Not part of the interface.
namespace detail {

// NUMERIC sign words (PostgreSQL's NUMERIC_POS, NUMERIC_NEG).
inline constexpr uint16_t kNumericPos = 0x0000;
inline constexpr uint16_t kNumericNeg = 0x4000;
inline constexpr int64_t kUnixEpochDaysBefore2000 = 10957;  // 1970-01-01 .. 2000-01-01

inline bool IsDigit(char c) { return c >= '0' && c <= '9'; }

inline void StoreBe16(char* p, uint16_t v) {
  p[0] = static_cast<char>(v >> 8);
  p[1] = static_cast<char>(v & 0xFF);
}

inline char* PutBigEndian32(char* p, uint32_t v) {
  StoreBe16(p, static_cast<uint16_t>(v >> 16));
  StoreBe16(p + 2, static_cast<uint16_t>(v & 0xFFFF));
  return p + 4;
}

// Parses exactly two ASCII digits at p.
[[gnu::always_inline]] inline bool TwoDigits(const char* p, int* value) {
  if (!IsDigit(p[0]) || !IsDigit(p[1])) return false;
  *value = (p[0] - '0') * 10 + (p[1] - '0');
  return true;
}

[[gnu::always_inline]] inline bool IsLeapYear(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

[[gnu::always_inline]] inline int DaysInMonth(int y, int m) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && IsLeapYear(y) ? 29 : kDays[m - 1];
}

// Days from 1970-01-01 to the proleptic Gregorian date y-m-d (Howard Hinnant's
// days_from_civil; y >= 1 here so the era arithmetic never sees negatives).
// Unsigned 32-bit arithmetic: divisions by constants are cheaper (years
// 1..9999 keep every term far below 2^32).
[[gnu::always_inline]] inline int64_t DaysFromCivil(int64_t year, int64_t month, int64_t day) {
  const uint32_t m = static_cast<uint32_t>(month);
  const uint32_t y = static_cast<uint32_t>(year) - (m <= 2 ? 1 : 0);
  const uint32_t era = y / 400;
  const uint32_t yoe = y - era * 400;
  const uint32_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + static_cast<uint32_t>(day) - 1;
  const uint32_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return int64_t{era} * 146097 + int64_t{doe} - 719468;
}

}  // namespace detail

[[gnu::always_inline]] inline bool ParseDateInline(std::string_view text, int32_t* days) {
  using namespace detail;  // NOLINT
  if (text.size() != 10) return false;
  const char* p = text.data();
  int year, month, day;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  // "YYYY-MM-" checked as one word: digit bytes are 0x30 + 0..9 (high
  // nibble 3, low nibble + 6 without a carry into bit 4), dash bytes '-'.
  uint64_t w;
  std::memcpy(&w, p, 8);
  constexpr uint64_t kDigitLow = 0x000F0F000F0F0F0FULL;  // bytes 0-3, 5-6
  const uint64_t low = w & kDigitLow;
  if ((w & 0xFFF0F0FFF0F0F0F0ULL) != 0x2D30302D30303030ULL ||
      ((low + 0x0006060006060606ULL) & 0x0010100010101010ULL) != 0 || !TwoDigits(p + 8, &day)) {
    return false;
  }
  const auto digit = [&](int k) { return static_cast<int>((low >> (8 * k)) & 0xFF); };
  year = digit(0) * 1000 + digit(1) * 100 + digit(2) * 10 + digit(3);
  month = digit(5) * 10 + digit(6);
#else
  int y_hi, y_lo;
  if (!TwoDigits(p, &y_hi) || !TwoDigits(p + 2, &y_lo) || p[4] != '-' || !TwoDigits(p + 5, &month) || p[7] != '-' ||
      !TwoDigits(p + 8, &day)) {
    return false;
  }
  year = y_hi * 100 + y_lo;
#endif
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > DaysInMonth(year, month)) return false;
  *days = static_cast<int32_t>(DaysFromCivil(year, month, day) - kUnixEpochDaysBefore2000);
  return true;
}

[[gnu::always_inline]] inline char* WritePlainNumericFieldInline(char* w, std::string_view s) {
  using namespace detail;  // NOLINT
  const char* p = s.data();
  const size_t n = s.size();
  size_t i = 0;
  const bool negative = n > 0 && p[0] == '-';
  if (negative) i = 1;
  // All digits, before and after the point, as one integer.
  uint64_t v = 0;
  const size_t int_begin = i;
  for (; i < n && IsDigit(p[i]); ++i) v = v * 10 + static_cast<uint64_t>(p[i] - '0');
  size_t digits = i - int_begin;
  size_t n_frac = 0;
  if (i < n && p[i] == '.') {
    const size_t frac_begin = ++i;
    for (; i < n && IsDigit(p[i]); ++i) v = v * 10 + static_cast<uint64_t>(p[i] - '0');
    n_frac = i - frac_begin;
    digits += n_frac;
  }
  // Pad the fraction to whole base-10000 digits; 19 decimal digits fit.
  const size_t pad = (4 - n_frac % 4) % 4;
  if (i != n || digits == 0 || digits + pad > 19) return nullptr;
  for (size_t k = 0; k < pad; ++k) v *= 10;
  const int frac_groups = static_cast<int>((n_frac + pad) / 4);
  if (v == 0) {  // zero: no digits, sign always +
    w = PutBigEndian32(w, 8);
    std::memset(w, 0, 6);
    StoreBe16(w + 6, static_cast<uint16_t>(n_frac));
    return w + 8;
  }
  uint16_t groups[5];  // least significant first; 10^19 < 10000^5
  int count = 0;
  for (; v != 0; v /= 10000) groups[count++] = static_cast<uint16_t>(v % 10000);
  int low = 0;  // trailing zero base-10000 digits are not stored
  while (groups[low] == 0) ++low;
  const int ndigits = count - low;
  w = PutBigEndian32(w, static_cast<uint32_t>(8 + 2 * ndigits));
  StoreBe16(w, static_cast<uint16_t>(ndigits));
  StoreBe16(w + 2, static_cast<uint16_t>(static_cast<int16_t>(count - 1 - frac_groups)));  // weight
  StoreBe16(w + 4, negative ? kNumericNeg : kNumericPos);
  StoreBe16(w + 6, static_cast<uint16_t>(n_frac));  // dscale
  w += 8;
  for (int k = count; k-- > low;) {
    StoreBe16(w, groups[k]);
    w += 2;
  }
  return w;
}

inline bool ParseDate(std::string_view text, int32_t* days) { return ParseDateInline(text, days); }
inline char* WritePlainNumericField(char* w, std::string_view s) { return WritePlainNumericFieldInline(w, s); }

}  // namespace nomnom::pg
