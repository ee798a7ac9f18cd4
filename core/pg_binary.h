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

#include "core/byte_buffer.h"

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

// Parses "YYYY-MM-DD" (years 0001..9999, a real calendar day) into days since
// 2000-01-01 (negative before). Returns nullopt for anything else.
std::optional<int32_t> ParseDate(std::string_view text);

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

}  // namespace nomnom::pg
