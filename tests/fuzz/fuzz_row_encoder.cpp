// libFuzzer harness: RowEncoder::Encode (core/format/row_encoder.h), which parses one
// NDJSON line from the input and encodes it as a binary COPY tuple.
//
// Input: the first byte picks the entity (every type NOT NULL with a four-field key, or every type
// nullable with a second key and a field name longer than 16 bytes), --strict,
// what follows the line in its buffer (zeros, as after the last line of a
// chunk, or the line's own bytes, as when other lines follow) and whether a
// key hash is asked for; the rest is the line. The line sits in a heap block
// of exactly line + kChunkPadding bytes so ASan sees any read past the padding.
//
// On success the appended tuple is decoded: the field count, every field's
// length and form for its type (NULL only where nullable, VARCHAR(n) lengths,
// valid UTF-8 and no NUL in text, dates in range, NUMERIC well formed, jsonb
// version byte) and, when nlohmann also parses the line as an object, every
// value against nlohmann's. On rejection the error must be non-empty valid
// UTF-8 and the buffer unchanged, a line that is a JSON object must
// not be called malformed, and a line that is not JSON (per a grammar check
// here) must not be accepted.
// Known, reported bugs can be stepped over with NOMNOM_FUZZ_KNOWN_BUGS:
// error-utf8 (error excerpts cut inside a UTF-8 character) and lax-json
// (invalid JSON inside skipped values is accepted).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/pg_binary.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using nomnom::Entity;
using nomnom::FieldType;
using nomnom::fuzz::Show;

constexpr std::string_view kNotNullYaml = R"(
entity:
  name: FuzzStrict
  fields:
    - {name: id, type: BigInt}
    - {name: code, type: String, args: [3]}
    - {name: name, type: String}
    - {name: qty, type: Integer}
    - {name: price, type: Float}
    - {name: amount, type: Decimal}
    - {name: active, type: Boolean}
    - {name: day, type: Date}
    - {name: at, type: DateTime}
    - {name: meta, type: Json}
    - {name: small, type: SmallInt}
    - {name: ratio, type: Real}
    - {name: raw, type: JsonText}
    - {name: tags, type: TextArray}
  persistence:
    database:
      conformant_table: fuzz_strict
      unicity_fields: [id, code, at, price]
)";

constexpr std::string_view kNullableYaml = R"(
entity:
  name: FuzzNullable
  fields:
    - {name: id, type: BigInt, nullable: true}
    - {name: code, type: String, args: [3], nullable: true}
    - {name: name, type: String, nullable: true}
    - {name: qty, type: Integer, nullable: true}
    - {name: price, type: Float, nullable: true}
    - {name: amount, type: Decimal, nullable: true}
    - {name: active, type: Boolean, nullable: true}
    - {name: day, type: Date, nullable: true}
    - {name: at, type: DateTime, nullable: true}
    - {name: meta, type: Json, nullable: true}
    - {name: a_field_name_longer_than_sixteen_bytes, type: String, args: [1], nullable: true}
    - {name: small, type: SmallInt, nullable: true}
    - {name: ratio, type: Real, nullable: true}
    - {name: raw, type: JsonText, nullable: true}
    - {name: codes, type: VarcharArray, args: [2], nullable: true}
  persistence:
    database:
      conformant_table: fuzz_nullable
)";

Entity LoadEntity(std::string_view yaml) {
  auto e = nomnom::ParseEntity(yaml, "fuzz");
  FUZZ_CHECK(e.ok(), "entity does not parse: " + e.status().message());
  return std::move(*e);
}

const Entity& TheEntity(bool nullable) {
  static const Entity kNotNull = LoadEntity(kNotNullYaml);
  static const Entity kNullable = LoadEntity(kNullableYaml);
  return nullable ? kNullable : kNotNull;
}

// One encoder per (entity, strict), reused across inputs as a parser thread
// reuses its encoder line after line.
nomnom::RowEncoder& TheEncoder(bool nullable, bool strict) {
  static nomnom::RowEncoder encoders[4] = {
      {TheEntity(false), {false}}, {TheEntity(false), {true}}, {TheEntity(true), {false}}, {TheEntity(true), {true}}};
  return encoders[(nullable ? 2 : 0) + (strict ? 1 : 0)];
}

class TupleReader {
 public:
  TupleReader(std::string_view bytes, std::string where) : bytes_(bytes), where_(std::move(where)) {}
  uint64_t Take(size_t n) {
    FUZZ_CHECK(pos_ + n <= bytes_.size(), "tuple ends early" + where_);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<unsigned char>(bytes_[pos_++]);
    return v;
  }
  std::string_view TakeBytes(size_t n) {
    FUZZ_CHECK(pos_ + n <= bytes_.size(), "tuple ends early" + where_);
    pos_ += n;
    return bytes_.substr(pos_ - n, n);
  }
  bool done() const { return pos_ == bytes_.size(); }

 private:
  std::string_view bytes_;
  size_t pos_ = 0;
  std::string where_;
};

// Checks one decoded field against nlohmann's reading of the same line
// (`expected` is null when nlohmann could not parse the line or the field is
// absent there).
void CheckField(const nomnom::Field& f, std::string_view payload, const nlohmann::json* expected,
                const std::string& where) {
  const std::string what = "field '" + f.name + "'" + where;
  auto be = [&](size_t from, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = v << 8 | static_cast<unsigned char>(payload[from + i]);
    return v;
  };
  switch (f.type) {
    case FieldType::kString:
      FUZZ_CHECK(nomnom::fuzz::Utf8Valid(payload), "text is not valid UTF-8: " + what);
      FUZZ_CHECK(payload.find('\0') == std::string_view::npos, "text holds a NUL: " + what);
      FUZZ_CHECK(f.max_length == 0 || nomnom::pg::Utf8Length(payload) <= f.max_length,
                 "longer than VARCHAR(" + std::to_string(f.max_length) + "): " + what);
      if (expected) {
        FUZZ_CHECK(
            expected->is_string() && expected->get_ref<const std::string&>() == payload,
            "text \"" + Show(payload) + "\" differs from nlohmann's " + expected->dump(-1, ' ', true) + ": " + what);
      }
      break;
    case FieldType::kInteger:
    case FieldType::kDate:
    case FieldType::kBigInt:
    case FieldType::kDateTime: {
      const bool four = f.type == FieldType::kInteger || f.type == FieldType::kDate;
      FUZZ_CHECK(payload.size() == (four ? 4u : 8u), "wrong length: " + what);
      const int64_t v = four ? static_cast<int32_t>(be(0, 4)) : static_cast<int64_t>(be(0, 8));
      if (f.type == FieldType::kDate) {
        FUZZ_CHECK(v >= -730119 && v <= 2921939, "date out of 0001-01-01..9999-12-31: " + what);
        if (expected) {
          FUZZ_CHECK(expected->is_string() && nomnom::pg::ParseDate(expected->get<std::string>()) == v,
                     "date differs from nlohmann's: " + what);
        }
      } else if (f.type == FieldType::kDateTime) {
        if (expected) {
          FUZZ_CHECK(expected->is_string() && nomnom::pg::ParseTimestamp(expected->get<std::string>()) == v,
                     "timestamp differs from nlohmann's: " + what);
        }
      } else if (expected && expected->is_number_integer()) {
        const bool same = expected->is_number_unsigned()
                              ? v >= 0 && static_cast<uint64_t>(v) == expected->get<uint64_t>()
                              : v == expected->get<int64_t>();
        FUZZ_CHECK(same, std::to_string(v) + " differs from nlohmann's " + expected->dump() + ": " + what);
      } else if (expected) {
        FUZZ_CHECK(expected->is_number(), "an integer from a non-number: " + what);
      }
      break;
    }
    case FieldType::kFloat: {
      FUZZ_CHECK(payload.size() == 8, "wrong length: " + what);
      const uint64_t bits = be(0, 8);
      double d;
      std::memcpy(&d, &bits, 8);
      FUZZ_CHECK(std::isfinite(d), "float is not finite: " + what);
      if (expected) {
        FUZZ_CHECK(expected->is_number() && expected->get<double>() == d,
                   "float " + std::to_string(d) + " differs from nlohmann's " + expected->dump() + ": " + what);
      }
      break;
    }
    case FieldType::kBoolean:
      FUZZ_CHECK(payload.size() == 1 && (payload[0] == 0 || payload[0] == 1), "bad boolean: " + what);
      if (expected) FUZZ_CHECK(expected->is_boolean() && expected->get<bool>() == (payload[0] == 1), "bool: " + what);
      break;
    case FieldType::kJson:
      FUZZ_CHECK(!payload.empty() && payload[0] == 1, "no jsonb version byte: " + what);
      FUZZ_CHECK(payload.size() > 1, "empty JSON text: " + what);
      if (expected) {
        const auto j = nlohmann::json::parse(payload.substr(1), nullptr, false);
        FUZZ_CHECK(!j.is_discarded() && j == *expected,
                   "JSON text \"" + Show(payload.substr(1)) + "\" differs from nlohmann's value: " + what);
      }
      break;
    case FieldType::kSmallInt: {
      FUZZ_CHECK(payload.size() == 2, "wrong length: " + what);
      const auto v = static_cast<int16_t>(be(0, 2));
      // As for Integer: an integral number in any form (3e2, 300.0) is
      // accepted, and nlohmann reads those as doubles.
      if (expected && expected->is_number_integer()) {
        FUZZ_CHECK(expected->get<int64_t>() == v,
                   std::to_string(v) + " differs from nlohmann's " + expected->dump() + ": " + what);
      } else if (expected) {
        FUZZ_CHECK(expected->is_number() && expected->get<double>() == v,
                   std::to_string(v) + " differs from nlohmann's " + expected->dump() + ": " + what);
      }
      break;
    }
    case FieldType::kReal: {
      FUZZ_CHECK(payload.size() == 4, "wrong length: " + what);
      const auto bits = static_cast<uint32_t>(be(0, 4));
      float v;
      std::memcpy(&v, &bits, 4);
      FUZZ_CHECK(std::isfinite(v), "real is not finite: " + what);
      if (expected) {
        // nlohmann reads a double; its float is v or, after double rounding, a neighbour.
        FUZZ_CHECK(expected->is_number(), "a real from a non-number: " + what);
        const auto d = static_cast<float>(expected->get<double>());
        FUZZ_CHECK(d == v || std::nextafter(d, v) == v,
                   "real " + std::to_string(v) + " differs from nlohmann's " + expected->dump() + ": " + what);
      }
      break;
    }
    case FieldType::kJsonText:
      FUZZ_CHECK(!payload.empty(), "empty JSON text: " + what);
      if (expected) {
        const auto j = nlohmann::json::parse(payload, nullptr, false);
        FUZZ_CHECK(!j.is_discarded() && j == *expected,
                   "JSON text \"" + Show(payload) + "\" differs from nlohmann's value: " + what);
      }
      break;
    case FieldType::kTextArray: {
      FUZZ_CHECK(payload.size() >= 12, "array too short: " + what);
      const uint64_t ndim = be(0, 4), flags = be(4, 4), oid = be(8, 4);
      FUZZ_CHECK(oid == f.array_element_oid, "wrong element type oid: " + what);
      FUZZ_CHECK(ndim <= 1 && flags <= 1, "bad array header: " + what);
      std::vector<std::optional<std::string_view>> elements;
      if (ndim == 1) {
        FUZZ_CHECK(payload.size() >= 20 && be(16, 4) == 1, "bad array dimension: " + what);
        const uint64_t count = be(12, 4);
        FUZZ_CHECK(count > 0, "an empty array with a dimension: " + what);
        size_t at = 20;
        for (uint64_t k = 0; k < count; ++k) {
          FUZZ_CHECK(at + 4 <= payload.size(), "array ends early: " + what);
          const uint64_t len = be(at, 4);
          at += 4;
          if (len == 0xFFFFFFFFU) {
            elements.emplace_back(std::nullopt);
            continue;
          }
          FUZZ_CHECK(at + len <= payload.size(), "array element ends early: " + what);
          const std::string_view el = payload.substr(at, len);
          at += len;
          FUZZ_CHECK(nomnom::fuzz::Utf8Valid(el) && el.find('\0') == std::string_view::npos,
                     "bad array element text: " + what);
          FUZZ_CHECK(f.max_length == 0 || nomnom::pg::Utf8Length(el) <= f.max_length, "element too long: " + what);
          elements.emplace_back(el);
        }
        FUZZ_CHECK(at == payload.size(), "bytes after the array's elements: " + what);
        bool any_null = false;
        for (const auto& el : elements) any_null = any_null || !el;
        FUZZ_CHECK(flags == (any_null ? 1u : 0u), "has-null flag wrong: " + what);
      } else {
        FUZZ_CHECK(payload.size() == 12 && flags == 0, "bad empty array: " + what);
      }
      if (expected) {
        FUZZ_CHECK(expected->is_array() && expected->size() == elements.size(), "array size differs: " + what);
        for (size_t k = 0; k < elements.size(); ++k) {
          const auto& want = (*expected)[k];
          FUZZ_CHECK(
              elements[k] ? want.is_string() && want.get_ref<const std::string&>() == *elements[k] : want.is_null(),
              "array element " + std::to_string(k + 1) + " differs from nlohmann's: " + what);
        }
      }
      break;
    }
    case FieldType::kUuid: {
      FUZZ_CHECK(payload.size() == 16, "UUID not 16 bytes: " + what);
      if (expected) {
        uint8_t bytes[16];
        FUZZ_CHECK(expected->is_string() && nomnom::DecodeUuid(expected->get<std::string>(), bytes) &&
                       std::memcmp(bytes, payload.data(), 16) == 0,
                   "UUID differs from nlohmann's reading: " + what);
      }
      break;
    }
    case FieldType::kDecimal: {
      FUZZ_CHECK(payload.size() >= 8, "NUMERIC too short: " + what);
      const uint64_t ndigits = be(0, 2), sign = be(4, 2);
      FUZZ_CHECK(sign == 0 || sign == 0x4000 || sign == 0xC000 || sign == 0xD000 || sign == 0xF000,
                 "bad NUMERIC sign: " + what);
      FUZZ_CHECK((payload.size() - 8) / 2 % 65536 == ndigits && payload.size() % 2 == 0,
                 "NUMERIC length does not match ndigits: " + what);
      break;
    }
  }
}

// A JSON grammar check (RFC 8259, any number magnitude, strings valid UTF-8
// without lone surrogate escapes),
// independent of simdjson and without nlohmann's refusal of numbers out of
// double range. Returns nullopt when nesting is too deep to tell.
class JsonGrammar {
 public:
  static std::optional<bool> IsObject(std::string_view s) {
    JsonGrammar g(s);
    g.Space();
    if (g.Peek() != '{') return false;
    const bool ok = g.Value(0) && (g.Space(), g.pos_ == s.size());
    if (g.too_deep_) return std::nullopt;
    return ok;
  }

 private:
  explicit JsonGrammar(std::string_view s) : s_(s) {}
  int Peek() const { return pos_ < s_.size() ? static_cast<unsigned char>(s_[pos_]) : -1; }
  bool Eat(char c) {
    if (Peek() != static_cast<unsigned char>(c)) return false;
    ++pos_;
    return true;
  }
  void Space() {
    while (Peek() == ' ' || Peek() == '\t' || Peek() == '\n' || Peek() == '\r') ++pos_;
  }
  bool Digits() {
    const size_t start = pos_;
    while (Peek() >= '0' && Peek() <= '9') ++pos_;
    return pos_ > start;
  }
  bool Literal(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  bool Number() {
    Eat('-');
    if (!Eat('0') && !(Peek() >= '1' && Peek() <= '9' && Digits())) return false;
    if (Eat('.') && !Digits()) return false;
    if (Peek() == 'e' || Peek() == 'E') {
      ++pos_;
      if (!Eat('+')) Eat('-');
      if (!Digits()) return false;
    }
    return true;
  }
  bool Hex4(unsigned* v) {
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      const int c = Peek();
      if (c >= '0' && c <= '9') {
        *v = *v * 16 + static_cast<unsigned>(c - '0');
      } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        *v = *v * 16 + static_cast<unsigned>((c | 0x20) - 'a' + 10);
      } else {
        return false;
      }
      ++pos_;
    }
    return true;
  }
  // After "\u": four hex digits; a surrogate must be a high one followed by
  // "\uDC00".."\uDFFF" (a lone one cannot become UTF-8, so parsers reject it).
  bool Escape16() {
    unsigned v;
    if (!Hex4(&v)) return false;
    if (v >= 0xDC00 && v <= 0xDFFF) return false;
    if (v < 0xD800 || v > 0xDBFF) return true;
    return Eat('\\') && Eat('u') && Hex4(&v) && v >= 0xDC00 && v <= 0xDFFF;
  }
  bool String() {
    if (!Eat('"')) return false;
    while (true) {
      const int c = Peek();
      if (c < 0x20) return false;  // end of input or a control character
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        ++pos_;
        const int e = Peek();
        ++pos_;
        if (e == 'u') {
          if (!Escape16()) return false;
        } else if (e < 0 || std::string_view("\"\\/bfnrt").find(static_cast<char>(e)) == std::string_view::npos) {
          return false;
        }
        continue;
      }
      const size_t n = nomnom::fuzz::WellFormedUtf8At(s_, pos_);
      if (n == 0) return false;
      pos_ += n;
    }
  }
  bool Value(int depth) {
    if (depth > 500) {
      too_deep_ = true;
      return false;
    }
    Space();
    const int c = Peek();
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++pos_;
      Space();
      if (Eat(close)) return true;
      while (true) {
        if (c == '{') {
          Space();
          if (!String()) return false;
          Space();
          if (!Eat(':')) return false;
        }
        if (!Value(depth + 1)) return false;
        Space();
        if (Eat(close)) return true;
        if (!Eat(',')) return false;
      }
    }
    if (c == '"') return String();
    if (c == 't') return Literal("true");
    if (c == 'f') return Literal("false");
    if (c == 'n') return Literal("null");
    return Number();
  }

  std::string_view s_;
  size_t pos_ = 0;
  bool too_deep_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const bool nullable = (flags & 1) != 0, strict = (flags & 2) != 0, pad_with_line = (flags & 4) != 0,
             want_hash = (flags & 8) == 0;
  const std::string_view line(reinterpret_cast<const char*>(data + 1), size - 1);
  const Entity& entity = TheEntity(nullable);
  nomnom::RowEncoder& encoder = TheEncoder(nullable, strict);

  // Exactly line + padding bytes, so a read past the padding is caught.
  const size_t readable = line.size() + nomnom::kChunkPadding;
  std::unique_ptr<char[]> buf(new char[readable]);
  std::memcpy(buf.get(), line.data(), line.size());
  for (size_t i = line.size(); i < readable; ++i) {
    buf[i] = pad_with_line && !line.empty() ? line[(i - line.size()) % line.size()] : '\0';
  }
  if (!pad_with_line) buf[line.size()] = '\n';

  nomnom::ByteBuffer out;
  out.Append(std::string_view("before"));
  std::string error;
  uint64_t hash = 0;
  const bool ok =
      encoder.Encode(std::string_view(buf.get(), line.size()), readable, &out, want_hash ? &hash : nullptr, &error);
  const std::string where =
      " (line \"" + Show(line) + "\"" + (nullable ? ", nullable" : "") + (strict ? ", strict" : "") + ")";
  FUZZ_CHECK(std::string_view(out.data(), 6) == "before", "Encode changed the bytes before its tuple" + where);
  if (!ok) {
    FUZZ_CHECK(!error.empty(), "rejected without a reason" + where);
    FUZZ_CHECK(out.size() == 6, "a rejected line left bytes in the buffer" + where);
    if (!nomnom::fuzz::KnownBugTolerated("error-utf8")) {
      FUZZ_CHECK(nomnom::fuzz::Utf8Valid(error), "the error is not valid UTF-8: \"" + Show(error) + "\"" + where);
    }
    // A JSON object is never called malformed (simdjson's nesting limit aside).
    if (JsonGrammar::IsObject(line) == true) {
      const bool syntax = error.rfind("malformed JSON", 0) == 0 || error.rfind("invalid UTF-8", 0) == 0 ||
                          error.rfind("not a JSON object", 0) == 0 || error.rfind("unexpected content", 0) == 0;
      FUZZ_CHECK(!syntax || error.find("too deep") != std::string::npos,
                 "a valid JSON object rejected as \"" + Show(error) + "\"" + where);
    }
    return 0;
  }

  const auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  const bool compare = !parsed.is_discarded() && parsed.is_object();
  // simdjson On-Demand skips the values of fields the entity does not define
  // (and the inside of Json values) without validating them, so a line that is
  // not JSON can be accepted: a known, reported gap (tests/fuzz/crashes/).
  if (!nomnom::fuzz::KnownBugTolerated("lax-json")) {
    FUZZ_CHECK(JsonGrammar::IsObject(line) != false, "accepted a line that is not a JSON object" + where);
  }
  TupleReader tuple(std::string_view(out.data() + 6, out.size() - 6), where);
  FUZZ_CHECK(tuple.Take(2) == entity.fields.size(), "wrong field count" + where);
  for (const nomnom::Field& f : entity.fields) {
    const auto len = static_cast<int32_t>(tuple.Take(4));
    const nlohmann::json* expected = nullptr;
    if (compare && parsed.contains(f.name)) expected = &parsed[f.name];
    if (len == -1) {
      FUZZ_CHECK(f.nullable, "NULL in NOT NULL field '" + f.name + "'" + where);
      FUZZ_CHECK(!expected || expected->is_null(), "field '" + f.name + "' is NULL, nlohmann has a value" + where);
      continue;
    }
    FUZZ_CHECK(len >= 0, "negative field length" + where);
    if (expected && expected->is_null()) FUZZ_CHECK(false, "field '" + f.name + "' null became a value" + where);
    CheckField(f, tuple.TakeBytes(static_cast<size_t>(len)), expected, where);
  }
  FUZZ_CHECK(tuple.done(), "bytes after the last field" + where);
  return 0;
}
