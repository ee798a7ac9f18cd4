#include "core/format/row_encoder.h"

#include <cmath>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <clocale>
#include <cstdlib>
#include <cstring>
#include <functional>

#include "core/base/byte_writer.h"
#include "core/base/utf8.h"
#include "core/format/json_check.h"
#include "core/format/ndjson_reader.h"
#include "core/format/pg_binary.h"
#include "core/format/pg_float4.h"
#include "core/format/text_array.h"

namespace nomnom {

namespace od = simdjson::ondemand;

namespace {

std::string SyntaxError(simdjson::error_code code) {
  if (code == simdjson::UTF8_ERROR) return "invalid UTF-8";
  return std::string("malformed JSON: ") + simdjson::error_message(code);
}

// Whether the value of a field nomnom does not use is valid JSON text (read
// through, so the object's iteration goes on after it).
bool SkippedValueIsJson(simdjson::ondemand::value& value) {
  namespace od = simdjson::ondemand;
  od::json_type type;
  if (value.type().get(type)) return false;
  std::string_view raw;
  if (type == od::json_type::object) {
    od::object o;
    if (value.get_object().get(o) || o.raw_json().get(raw)) return false;
  } else if (type == od::json_type::array) {
    od::array a;
    if (value.get_array().get(a) || a.raw_json().get(raw)) return false;
  } else {
    raw = value.raw_json_token();
  }
  return IsJsonValue(raw);
}

enum class IntegralParse { kOk, kFraction, kRange, kInvalid };

// Decides exactly whether JSON number text (e.g. "-12", "3.0", "1.5e3",
// "1e400") is an integer that fits int64, and yields it.
IntegralParse ParseIntegralNumber(std::string_view t, int64_t* out) {
  size_t i = 0;
  const bool neg = i < t.size() && t[i] == '-';
  if (neg) ++i;
  std::string digits;
  size_t int_digits = 0, frac_digits = 0;
  while (i < t.size() && t[i] >= '0' && t[i] <= '9') digits.push_back(t[i++]), ++int_digits;
  if (int_digits == 0) return IntegralParse::kInvalid;
  if (int_digits > 1 && digits[0] == '0') return IntegralParse::kInvalid;  // JSON forbids leading zeros
  if (i < t.size() && t[i] == '.') {
    ++i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') digits.push_back(t[i++]), ++frac_digits;
    if (frac_digits == 0) return IntegralParse::kInvalid;
  }
  int64_t exp = 0;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    bool exp_neg = false;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) exp_neg = t[i++] == '-';
    if (i >= t.size()) return IntegralParse::kInvalid;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') {
      if (exp < 100000000) exp = exp * 10 + (t[i] - '0');
      ++i;
    }
    if (exp_neg) exp = -exp;
  }
  if (i != t.size()) return IntegralParse::kInvalid;
  // value = digits * 10^(exp - frac_digits)
  int64_t shift = exp - static_cast<int64_t>(frac_digits);
  const size_t first = digits.find_first_not_of('0');
  if (first == std::string::npos) {
    *out = 0;
    return IntegralParse::kOk;
  }
  digits.erase(0, first);
  if (shift < 0) {
    const size_t drop = static_cast<size_t>(-shift);
    if (drop >= digits.size()) return IntegralParse::kFraction;  // non-zero digits all after the point
    if (digits.find_first_not_of('0', digits.size() - drop) != std::string::npos) return IntegralParse::kFraction;
    digits.resize(digits.size() - drop);
    shift = 0;
  }
  if (static_cast<int64_t>(digits.size()) + shift > 19) return IntegralParse::kRange;
  digits.append(static_cast<size_t>(shift), '0');
  uint64_t value = 0;  // at most 19 digits: fits
  for (char c : digits) value = value * 10 + static_cast<uint64_t>(c - '0');
  const uint64_t limit = neg ? (uint64_t{1} << 63) : (uint64_t{1} << 63) - 1;
  if (value > limit) return IntegralParse::kRange;
  *out = neg ? static_cast<int64_t>(0 - value) : static_cast<int64_t>(value);
  return IntegralParse::kOk;
}

// simdjson before 3.6.3 (Debian bookworm ships 3.0.1) returns a wrong double
// for a number whose integer part is 0 and whose fraction has more than 19
// digits ("0.95000000000000000000" gives 0.0276...): its 64-bit significand
// overflows unnoticed (simdjson issue #2093). True for every number text it
// can misread (and for those with exactly 19 fraction digits, read right).
bool MayHitSimdjsonFractionBug(std::string_view t) {
  size_t i = !t.empty() && t[0] == '-' ? 1 : 0;
  if (t.size() < i + 2 || t[i] != '0' || t[i + 1] != '.') return false;
  size_t digits = 0;
  for (i += 2; i < t.size() && t[i] >= '0' && t[i] <= '9'; ++i) ++digits;
  return digits > 18;
}

// Parses JSON number text (already validated) with strtod in the C locale:
// correctly rounded, +-0 on underflow, +-HUGE_VAL on overflow. False if the
// text is not all a number.
bool ParseDoubleSlow(std::string_view t, double* out) {
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
  const std::string text(t);
  char* end = nullptr;
  *out = c_locale != static_cast<locale_t>(nullptr) ? strtod_l(text.c_str(), &end, c_locale)
                                                    : std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size();
}

// True when s contains '\\' or a NUL byte. May read up to 15 bytes past the
// end of s: callers guarantee kChunkPadding readable bytes after every line.
inline bool HasBackslashOrNul(std::string_view s) {
#ifdef __SSE2__
  const __m128i backslash = _mm_set1_epi8('\\');
  const __m128i zero = _mm_setzero_si128();
  const char* p = s.data();
  size_t left = s.size();
  while (left > 0) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    unsigned mask =
        static_cast<unsigned>(_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, backslash), _mm_cmpeq_epi8(v, zero))));
    if (left < 16) mask &= (1u << left) - 1;
    if (mask != 0) return true;
    p += 16;
    left = left < 16 ? 0 : left - 16;
  }
  return false;
#else
  bool found = false;
  for (char c : s) found |= (c == '\\') | (c == '\0');
  return found;
#endif
}

}  // namespace

// A UUID's text (32 hex digits, optionally with the usual hyphens or in
// braces, as PostgreSQL's uuid_in accepts) into its 16 bytes.
bool DecodeUuid(std::string_view text, uint8_t out[16]) {
  if (text.size() >= 2 && text.front() == '{' && text.back() == '}') text = text.substr(1, text.size() - 2);
  size_t n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    int v;
    if (c >= '0' && c <= '9') {
      v = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      v = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      v = c - 'A' + 10;
    } else if (c == '-' && n % 4 == 0 && n > 0 && n < 32 && i + 1 < text.size() && text[i + 1] != '-') {
      continue;
    } else {
      return false;
    }
    if (n >= 32) return false;
    if (n % 2 == 0) {
      out[n / 2] = static_cast<uint8_t>(v << 4);
    } else {
      out[n / 2] = static_cast<uint8_t>(out[n / 2] | v);
    }
    ++n;
  }
  return n == 32;
}

std::string_view TrimJsonSpace(std::string_view s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  return s;
}

namespace {

// The per-type decoders behind RowEncoder::DecodeValue: each takes a non-null
// value of field f (its JSON type already read into `type`), checks it the way
// the field's type requires and stores it in *out, or sets *error to the
// reason and returns false. They run on every field of every row, so they are
// always inlined into DecodeValue's switch: no call, no allocation on success.

// Sets *error to `why` for field f and returns false.
[[gnu::cold]] bool FieldError(const Field& f, std::string why, std::string* error) {
  *error = "field '" + f.name + "': " + std::move(why);
  return false;
}

// FieldError for a value whose JSON type is not the one f takes.
[[gnu::cold]] bool WrongType(const Field& f, std::string_view expected, od::json_type got, std::string* error) {
  return FieldError(f, "expected " + std::string(expected) + ", got " + std::string(JsonTypeName(got)), error);
}

// Sets *error to simdjson's reason and returns false.
[[gnu::cold]] bool JsonError(simdjson::error_code code, std::string* error) {
  *error = SyntaxError(code);
  return false;
}

// A JSON null: consumed (so the iterator moves on) if f is nullable.
[[gnu::always_inline]] inline bool DecodeNull(const Field& f, od::value& value, std::string* error) {
  if (!f.nullable) return FieldError(f, "null in a NOT NULL field", error);
  bool is_null = false;
  if (auto err = value.is_null().get(is_null); err || !is_null) return FieldError(f, "malformed null", error);
  return true;
}

// String / VARCHAR(n): the unescaped text, in place when it has no escapes.
[[gnu::always_inline]] inline bool DecodeString(const Field& f, od::json_type type, od::value& value,
                                                std::string_view* out, std::string* error) {
  if (type != od::json_type::string) return WrongType(f, "a string", type, error);
  // Fast path: a string without escapes is used in place, straight from
  // the (already UTF-8-validated) input, skipping simdjson's unescaping copy.
  std::string_view s = TrimJsonSpace(value.raw_json_token());
  bool special = s.size() < 2 || s.back() != '"';
  if (!special) {
    s = s.substr(1, s.size() - 2);
    special = HasBackslashOrNul(s);
  }
  if (special) {
    if (auto err = value.get_string().get(s); err) return JsonError(err, error);
    if (std::memchr(s.data(), '\0', s.size()) != nullptr) {
      return FieldError(f, "contains a NUL character (\\u0000), which PostgreSQL text cannot store", error);
    }
  }
  if (f.max_length > 0 && s.size() > f.max_length) {
    const size_t chars = pg::Utf8Length(s);
    if (chars > f.max_length) {
      return FieldError(f,
                        "string of " + std::to_string(chars) + " characters is longer than VARCHAR(" +
                            std::to_string(f.max_length) + ")",
                        error);
    }
  }
  *out = s;
  return true;
}

// Integer, BigInt, SmallInt: an integral number within the type's range.
[[gnu::always_inline]] inline bool DecodeInteger(const Field& f, od::json_type type, od::value& value, int64_t* out,
                                                 std::string* error) {
  if (type != od::json_type::number) return WrongType(f, "an integer", type, error);
  // Integers take simdjson's fast path; anything else (1.0, 1e3, huge
  // values) is decided exactly from the number's text, never via a double.
  int64_t v = 0;
  const std::string_view text = TrimJsonSpace(value.raw_json_token());
  if (value.get_int64().get(v) != simdjson::SUCCESS) {
    // The slow path reads the text itself: it must be a JSON number.
    if (!IsJsonValue(text)) return FieldError(f, "invalid number " + Excerpt(text), error);
    switch (ParseIntegralNumber(text, &v)) {
      case IntegralParse::kOk:
        break;
      case IntegralParse::kFraction:
        return FieldError(f, Excerpt(text) + " is not an integer", error);
      case IntegralParse::kRange:
        return FieldError(f, Excerpt(text) + " is out of range for " + std::string(FieldTypeName(f.type)), error);
      case IntegralParse::kInvalid:
        return FieldError(f, "invalid number " + Excerpt(text), error);
    }
  }
  if (f.type == FieldType::kInteger && (v < INT32_MIN || v > INT32_MAX)) {
    return FieldError(f, Excerpt(text) + " is out of range for Integer", error);
  }
  if (f.type == FieldType::kSmallInt && (v < INT16_MIN || v > INT16_MAX)) {
    return FieldError(f, Excerpt(text) + " is out of range for SmallInt (smallint: -32768 to 32767)", error);
  }
  *out = v;
  return true;
}

// Float (double precision): a finite double.
[[gnu::always_inline]] inline bool DecodeFloat(const Field& f, od::json_type type, od::value& value, double* out,
                                               std::string* error) {
  if (type != od::json_type::number) return WrongType(f, "a number", type, error);
  double d;
  const std::string_view text = TrimJsonSpace(value.raw_json_token());
  bool ok = value.get_double().get(d) == simdjson::SUCCESS;
  if (ok && MayHitSimdjsonFractionBug(text)) ok = ParseDoubleSlow(text, &d);
  if (!ok || !std::isfinite(d)) return FieldError(f, "number " + Excerpt(text) + " is out of double range", error);
  *out = d;
  return true;
}

// Real (float4): the number rounded to a float within its range.
[[gnu::always_inline]] inline bool DecodeReal(const Field& f, od::json_type type, od::value& value, double* out,
                                              std::string* error) {
  if (type != od::json_type::number) return WrongType(f, "a number", type, error);
  double d;  // through simdjson first: it checks the number's syntax
  const std::string_view text = TrimJsonSpace(value.raw_json_token());
  if (value.get_double().get(d) != simdjson::SUCCESS && !IsJsonValue(text)) {
    return FieldError(f, "invalid number " + Excerpt(text), error);
  }
  const auto v = pg::ParseFloat4(text);
  if (!v) return FieldError(f, "number " + Excerpt(text) + " is out of range for Real (float4)", error);
  *out = *v;
  return true;
}

// TextArray: an array of strings, encoded into *payload (the field's reused
// buffer); *out views it.
[[gnu::always_inline]] inline bool DecodeTextArrayValue(const Field& f, od::json_type type, od::value& value,
                                                        std::string* payload, std::string_view* out,
                                                        std::string* error) {
  if (type != od::json_type::array) return WrongType(f, "an array of strings", type, error);
  od::array a;
  if (auto err = value.get_array().get(a); err) return JsonError(err, error);
  std::string why;
  if (!EncodeTextArray(a, f, payload, &why)) return FieldError(f, std::move(why), error);
  *out = *payload;
  return true;
}

// Decimal: a JSON number's text, or a string (checked when it is encoded).
[[gnu::always_inline]] inline bool DecodeDecimal(const Field& f, od::json_type type, od::value& value,
                                                 std::string_view* out, std::string* error) {
  if (type == od::json_type::number) {
    *out = TrimJsonSpace(value.raw_json_token());
    // Taken as text, not parsed by simdjson: it must be a JSON number
    // (no leading zeros, no trailing dot, ...).
    if (!IsJsonValue(*out)) return FieldError(f, "invalid number " + Excerpt(*out), error);
  } else if (type == od::json_type::string) {
    std::string_view s;
    if (auto err = value.get_string().get(s); err) return JsonError(err, error);
    *out = s;
  } else {
    return WrongType(f, "a number", type, error);
  }
  return true;
}

// Boolean: true or false, as 1 or 0.
[[gnu::always_inline]] inline bool DecodeBoolean(const Field& f, od::json_type type, od::value& value, int64_t* out,
                                                 std::string* error) {
  if (type != od::json_type::boolean) return WrongType(f, "true or false", type, error);
  bool b = false;
  if (auto err = value.get_bool().get(b); err) return JsonError(err, error);
  *out = b ? 1 : 0;
  return true;
}

// Date (days since 2000-01-01) or DateTime (microseconds since then): a
// string PostgreSQL's format takes.
[[gnu::always_inline]] inline bool DecodeDateTime(const Field& f, od::json_type type, od::value& value, int64_t* out,
                                                  std::string* error) {
  if (type != od::json_type::string) {
    return WrongType(f, f.type == FieldType::kDate ? "a date string" : "a timestamp string", type, error);
  }
  std::string_view s;
  if (auto err = value.get_string().get(s); err) return JsonError(err, error);
  if (f.type == FieldType::kDate) {
    auto days = pg::ParseDate(s);
    if (!days) return FieldError(f, "invalid date '" + Excerpt(s) + "' (expected YYYY-MM-DD)", error);
    *out = *days;
  } else {
    auto usecs = pg::ParseTimestamp(s);
    if (!usecs) {
      return FieldError(f, "invalid timestamp '" + Excerpt(s) + "' (expected ISO 8601, e.g. 2024-01-31T12:00:00Z)",
                        error);
    }
    *out = *usecs;
  }
  return true;
}

// Uuid: a string DecodeUuid takes (kept as text; decoded again when written).
[[gnu::always_inline]] inline bool DecodeUuidValue(const Field& f, od::json_type type, od::value& value,
                                                   std::string_view* out, std::string* error) {
  if (type != od::json_type::string) return WrongType(f, "a UUID string", type, error);
  std::string_view s;
  if (auto err = value.get_string().get(s); err) return JsonError(err, error);
  uint8_t bytes[16];
  if (!DecodeUuid(s, bytes)) {
    return FieldError(
        f, "invalid UUID '" + Excerpt(s) + "' (expected 32 hex digits, e.g. 123e4567-e89b-12d3-a456-426614174000)",
        error);
  }
  *out = s;
  return true;
}

// Json / JsonText: any JSON value, as its raw text without trailing space.
[[gnu::always_inline]] inline bool DecodeJson(const Field& f, od::json_type type, od::value& value,
                                              std::string_view* out, std::string* error) {
  std::string_view raw;
  simdjson::error_code err = simdjson::SUCCESS;
  if (type == od::json_type::object) {
    od::object o;
    err = value.get_object().get(o);
    if (!err) err = o.raw_json().get(raw);
  } else if (type == od::json_type::array) {
    od::array a;
    err = value.get_array().get(a);
    if (!err) err = a.raw_json().get(raw);
  } else {
    raw = TrimJsonSpace(value.raw_json_token());
  }
  if (err) return JsonError(err, error);
  // raw_json() of an object or array keeps the whitespace after it: json
  // (kJsonText) would store it.
  raw = TrimJsonSpace(raw);
  // On-Demand matched the brackets but did not check the text between; a
  // jsonb column also refuses \u0000 and half a surrogate pair, which JSON
  // allows: refused here, not by PostgreSQL after the row was accepted.
  const JsonCheck check = CheckJsonValue(raw, f.type == FieldType::kJson ? JsonRules::kJsonb : JsonRules::kJson);
  if (check != JsonCheck::kOk) {
    return FieldError(f,
                      check == JsonCheck::kMalformed ? std::string("malformed JSON in the value")
                                                     : std::string(JsonCheckMessage(check)),
                      error);
  }
  *out = raw;
  return true;
}

}  // namespace

RowEncoder::RowEncoder(const Entity& entity, RowEncoderOptions options)
    : entity_(entity),
      options_(options),
      slots_(entity.fields.size()),
      key_patterns_(entity.fields.size()),
      arrays_(entity.fields.size()) {
  for (size_t i = 0; i < entity.fields.size(); ++i) {
    const std::string& name = entity.fields[i].InputName();
    KeyPattern& k = key_patterns_[i];
    if (name.size() < sizeof k.bytes) {  // name + closing quote fit: compare with one SIMD load
      std::memcpy(k.bytes, name.data(), name.size());
      k.bytes[name.size()] = '"';
      k.mask = (1u << (name.size() + 1)) - 1;
    }
  }
}

bool RowEncoder::KeyEquals(const char* raw, size_t i) const {
  const KeyPattern& k = key_patterns_[i];
#ifdef __SSE2__
  if (k.mask != 0) {
    // The key, its closing quote and the bytes after it are inside the padded
    // line, so a 16-byte load is safe.
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(raw));
    const __m128i want = _mm_loadu_si128(reinterpret_cast<const __m128i*>(k.bytes));
    const unsigned eq = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, want)));
    return (eq & k.mask) == k.mask;
  }
#endif
  const std::string& name = entity_.fields[i].InputName();
  return std::memcmp(raw, name.data(), name.size()) == 0 && raw[name.size()] == '"';
}

int RowEncoder::Lookup(od::field& field, std::string* unknown_name) {
  const auto& fields = entity_.fields;
  const int n = static_cast<int>(fields.size());
  const char* raw = field.key().raw();
  // Fast path: the field that followed the previous one last time.
  if (next_guess_ < n && KeyEquals(raw, static_cast<size_t>(next_guess_))) return next_guess_++;
  for (int i = 0; i < n; ++i) {
    if (KeyEquals(raw, static_cast<size_t>(i))) {
      next_guess_ = i + 1;
      return i;
    }
  }
  // Slow path: the key may be written with escapes.
  std::string_view unescaped;
  if (field.unescaped_key().get(unescaped) != simdjson::SUCCESS) return -2;
  for (int i = 0; i < n; ++i) {
    if (unescaped == fields[static_cast<size_t>(i)].InputName()) {
      next_guess_ = i + 1;
      return i;
    }
  }
  *unknown_name = std::string(unescaped);
  return -1;
}

// The common case, kept small enough to inline: a String field with a plain
// string value (no escapes, within its length limit), used in place. Anything
// else returns false and goes through DecodeValue, which decides it fully.
inline bool RowEncoder::DecodeStringFast(size_t index, od::value& value) {
  const Field& f = entity_.fields[index];
  if (f.type != FieldType::kString) return false;
  std::string_view s = value.raw_json_token();
  if (s.size() < 2 || s.front() != '"') return false;
  s = TrimJsonSpace(s);
  if (s.size() < 2 || s.back() != '"') return false;
  s = s.substr(1, s.size() - 2);
  if (HasBackslashOrNul(s) || (f.max_length > 0 && s.size() > f.max_length)) return false;
  Slot& slot = slots_[index];
  slot.s = s;
  slot.state = Slot::State::kSet;
  return true;
}

bool RowEncoder::DecodeValue(size_t index, od::value& value, std::string* error) {
  const Field& f = entity_.fields[index];
  Slot& slot = slots_[index];
  od::json_type type;
  if (auto err = value.type().get(type); err) return JsonError(err, error);
  if (type == od::json_type::null) {
    if (!DecodeNull(f, value, error)) return false;
    slot.state = Slot::State::kNull;
    return true;
  }
  switch (f.type) {
    case FieldType::kString:
      if (!DecodeString(f, type, value, &slot.s, error)) return false;
      break;
    case FieldType::kInteger:
    case FieldType::kBigInt:
    case FieldType::kSmallInt:
      if (!DecodeInteger(f, type, value, &slot.i, error)) return false;
      break;
    case FieldType::kFloat:
      if (!DecodeFloat(f, type, value, &slot.d, error)) return false;
      break;
    case FieldType::kReal:
      if (!DecodeReal(f, type, value, &slot.d, error)) return false;
      break;
    case FieldType::kTextArray:
      if (!DecodeTextArrayValue(f, type, value, &arrays_[index], &slot.s, error)) return false;
      break;
    case FieldType::kDecimal:
      if (!DecodeDecimal(f, type, value, &slot.s, error)) return false;
      break;
    case FieldType::kBoolean:
      if (!DecodeBoolean(f, type, value, &slot.i, error)) return false;
      break;
    case FieldType::kDate:
    case FieldType::kDateTime:
      if (!DecodeDateTime(f, type, value, &slot.i, error)) return false;
      break;
    case FieldType::kUuid:
      if (!DecodeUuidValue(f, type, value, &slot.s, error)) return false;
      break;
    case FieldType::kJson:
    case FieldType::kJsonText:
      if (!DecodeJson(f, type, value, &slot.s, error)) return false;
      break;
  }
  slot.state = Slot::State::kSet;
  return true;
}

bool RowEncoder::WriteTuple(size_t line_size, ByteBuffer* out, uint64_t* key_hash, std::string* error) {
  const auto& fields = entity_.fields;
  // Every string, number or JSON text in the slots is a piece of the line or
  // its unescaped (shorter) copy, so this bounds the tuple; numerics may still
  // grow it. Written through a local cursor: no capacity check per field.
  const size_t bound = line_size + fields.size() * (4 + 9) + 2;
  char* begin = out->Grow(bound);
  char* w = begin;
  w = PutBigEndian(w, static_cast<uint16_t>(fields.size()));
  for (size_t i = 0; i < fields.size(); ++i) {
    const Slot& s = slots_[i];
    if (s.state != Slot::State::kSet) {
      w = PutBigEndian(w, uint32_t{0xFFFFFFFF});  // NULL: length -1
      continue;
    }
    switch (fields[i].type) {
      case FieldType::kString:
        w = PutBigEndian(w, static_cast<uint32_t>(s.s.size()));
        w = CopyBytes(w, s.s);
        break;
      case FieldType::kInteger:
        w = PutBigEndian(w, uint32_t{4});
        w = PutBigEndian(w, static_cast<uint32_t>(static_cast<int32_t>(s.i)));
        break;
      case FieldType::kDate:
        w = PutBigEndian(w, uint32_t{4});
        w = PutBigEndian(w, static_cast<uint32_t>(static_cast<int32_t>(s.i)));
        break;
      case FieldType::kSmallInt:
        w = PutBigEndian(w, uint32_t{2});
        w = PutBigEndian(w, static_cast<uint16_t>(static_cast<int16_t>(s.i)));
        break;
      case FieldType::kReal: {
        const auto f4 = static_cast<float>(s.d);  // exactly a float: ParseFloat4 made it
        uint32_t bits;
        std::memcpy(&bits, &f4, 4);
        w = PutBigEndian(w, uint32_t{4});
        w = PutBigEndian(w, bits);
        break;
      }
      case FieldType::kJsonText:
        w = PutBigEndian(w, static_cast<uint32_t>(s.s.size()));
        w = CopyBytes(w, s.s);
        break;
      case FieldType::kTextArray:
        // Not bounded by the line's size (an empty string element takes 4
        // bytes for its 3 of JSON), so appended like a numeric.
        out->Commit(static_cast<size_t>(w - begin));
        pg::AppendTextField(*out, s.s);
        begin = out->Grow(bound);
        w = begin;
        break;
      case FieldType::kBigInt:
      case FieldType::kDateTime:
        w = PutBigEndian(w, uint32_t{8});
        w = PutBigEndian(w, static_cast<uint64_t>(s.i));
        break;
      case FieldType::kFloat: {
        uint64_t bits;
        std::memcpy(&bits, &s.d, 8);
        w = PutBigEndian(w, uint32_t{8});
        w = PutBigEndian(w, bits);
        break;
      }
      case FieldType::kBoolean:
        w = PutBigEndian(w, uint32_t{1});
        *w++ = s.i != 0 ? 1 : 0;
        break;
      case FieldType::kUuid: {
        uint8_t bytes[16];
        DecodeUuid(s.s, bytes);  // validated when parsed
        w = PutBigEndian(w, uint32_t{16});
        std::memcpy(w, bytes, 16);  // NOLINT
        w += 16;
        break;
      }
      case FieldType::kJson:
        w = PutBigEndian(w, static_cast<uint32_t>(s.s.size() + 1));
        *w++ = 1;  // jsonb version
        w = CopyBytes(w, s.s);
        break;
      case FieldType::kDecimal: {
        out->Commit(static_cast<size_t>(w - begin));
        std::string why;
        if (!pg::AppendNumericField(*out, s.s, &why)) {
          *error = "field '" + fields[i].name + "': " + why;
          return false;
        }
        begin = out->Grow(bound);  // room for the remaining fields again
        w = begin;
        break;
      }
    }
  }
  out->Commit(static_cast<size_t>(w - begin));
  if (key_hash == nullptr) return true;
  uint64_t h = 0;
  for (size_t k : entity_.key_fields) {
    const Slot& s = slots_[k];
    uint64_t part;
    const FieldType t = fields[k].type;
    if (t == FieldType::kString || t == FieldType::kDecimal || t == FieldType::kJson || t == FieldType::kUuid ||
        t == FieldType::kJsonText || t == FieldType::kTextArray) {
      part = std::hash<std::string_view>{}(s.s);
    } else if (t == FieldType::kFloat || t == FieldType::kReal) {
      part = std::hash<double>{}(s.d);
    } else {
      part = std::hash<int64_t>{}(s.i);
    }
    h = (h ^ part) * 0x9E3779B97F4A7C15ULL + (h >> 29);
  }
  *key_hash = h;
  return true;
}

bool RowEncoder::Encode(std::string_view line, size_t readable, ByteBuffer* out, uint64_t* key_hash,
                        std::string* error) {
  od::document doc;
  if (auto err = parser_.iterate(line.data(), line.size(), readable).get(doc); err) {
    *error = SyntaxError(err);
    return false;
  }
  od::json_type root_type;
  if (auto err = doc.type().get(root_type); err) {
    *error = SyntaxError(err);
    return false;
  }
  if (root_type != od::json_type::object) {
    *error = "not a JSON object (got " + std::string(JsonTypeName(root_type)) + ")";
    return false;
  }
  od::object obj;
  if (auto err = doc.get_object().get(obj); err) {
    *error = SyntaxError(err);
    return false;
  }
  for (Slot& s : slots_) s.state = Slot::State::kMissing;
  next_guess_ = 0;
  for (auto field_result : obj) {
    if (auto err = field_result.error(); err) {
      *error = SyntaxError(err);
      return false;
    }
    // By reference: copying the field out costs a store-forwarding stall.
    od::field& field = field_result.value_unsafe();
    scratch_.clear();
    const int idx = Lookup(field, &scratch_);
    if (idx == -2) {
      *error = "malformed JSON: invalid object key";
      return false;
    }
    if (idx < 0) {
      if (options_.strict && entity_.FindInput(scratch_) == nullptr) {
        *error = "unknown field '" + Excerpt(scratch_) + "' (strict mode)";
        return false;
      }
      // Ignored, but still JSON: On-Demand would skip the value by bracket
      // matching alone, so check its text (only unknown fields pay this).
      if (!SkippedValueIsJson(field.value())) {
        *error = "malformed JSON in the value of field '" + Excerpt(scratch_) + "'";
        return false;
      }
      continue;
    }
    if (slots_[static_cast<size_t>(idx)].state != Slot::State::kMissing) {
      *error = "field '" + entity_.fields[static_cast<size_t>(idx)].name + "' appears more than once";
      return false;
    }
    od::value& value = field.value();
    if (DecodeStringFast(static_cast<size_t>(idx), value)) continue;
    if (!DecodeValue(static_cast<size_t>(idx), value, error)) return false;
  }
  const char* rest = nullptr;
  if (doc.current_location().get(rest) == simdjson::SUCCESS) {
    *error = "unexpected content after the JSON object";
    return false;
  }
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].state == Slot::State::kMissing && !entity_.fields[i].nullable) {
      *error = "missing required field '" + entity_.fields[i].name + "'";
      return false;
    }
  }
  const size_t start = out->size();
  if (!WriteTuple(line.size(), out, key_hash, error)) {
    out->Truncate(start);
    return false;
  }
  return true;
}

}  // namespace nomnom
