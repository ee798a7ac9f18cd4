// RowEncoder: one NDJSON line -> one binary COPY tuple, or a reject reason.
// Pure unit tests (no database): the tuples are decoded field by field here and
// compared with hand-computed PostgreSQL binary representations.
#include "core/format/row_encoder.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/pg_binary.h"
#include "core/format/schema.h"

using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using nomnom::ByteBuffer;
using nomnom::Entity;
using nomnom::RowEncoder;
using nomnom::RowEncoderOptions;

namespace {

constexpr size_t kPad = 64;
static_assert(nomnom::kChunkPadding <= kPad, "tests pad lines with at least kChunkPadding bytes");

// ---------------------------------------------------------------------------
// Entities

// Every type, every field NOT NULL; key: id.
constexpr std::string_view kWideYaml = R"(
entity:
  name: Wide
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
  persistence:
    database:
      conformant_table: wide
      unicity_fields: [id]
)";

// The same columns, all nullable except the key.
constexpr std::string_view kNullableYaml = R"(
entity:
  name: Loose
  fields:
    - {name: id, type: BigInt}
    - {name: code, type: String, args: [3], nullable: true}
    - {name: name, type: String, nullable: true}
    - {name: qty, type: Integer, nullable: true}
    - {name: price, type: Float, nullable: true}
    - {name: amount, type: Decimal, nullable: true}
    - {name: active, type: Boolean, nullable: true}
    - {name: day, type: Date, nullable: true}
    - {name: at, type: DateTime, nullable: true}
    - {name: meta, type: Json, nullable: true}
  persistence:
    database:
      unicity_fields: [id]
)";

Entity MustParse(std::string_view yaml) {
  auto e = nomnom::ParseEntity(yaml, "test.yaml");
  INFO((e.ok() ? std::string() : e.status().message()));
  REQUIRE(e.ok());
  return std::move(e).value();
}

// An entity with a single field "v" of the given type, no key.
Entity OneField(std::string_view type, bool nullable, std::string_view extra = {}) {
  std::string yaml = "entity:\n  name: One\n  fields:\n    - name: v\n      type: " + std::string(type) +
                     "\n      nullable: " + (nullable ? "true" : "false") + "\n";
  if (!extra.empty()) yaml += "      " + std::string(extra) + "\n";
  return MustParse(yaml);
}

// ---------------------------------------------------------------------------
// Running the encoder

struct Encoded {
  bool ok = false;
  std::string bytes;  // what Encode appended
  uint64_t hash = 0;
  std::string error;
};

// Encodes `json` as one line followed by kPad padding bytes of `pad`.
Encoded EncodeLine(RowEncoder& enc, std::string_view json, char pad = ' ') {
  const std::string buf = std::string(json) + std::string(kPad, pad);
  ByteBuffer out;
  Encoded r;
  r.hash = 0xDEADBEEF;
  r.ok = enc.Encode(std::string_view(buf.data(), json.size()), json.size() + kPad, &out, &r.hash, &r.error);
  r.bytes = std::string(out.view());
  return r;
}

// Encodes a line that must be accepted; returns the tuple bytes.
std::string Accept(RowEncoder& enc, std::string_view json, uint64_t* hash = nullptr) {
  Encoded r = EncodeLine(enc, json);
  INFO("line: " << json << "\nerror: " << r.error);
  REQUIRE(r.ok);
  CHECK(r.error.empty());
  if (hash != nullptr) *hash = r.hash;
  return r.bytes;
}

// Encodes a line that must be rejected into a buffer that already holds bytes,
// checks the buffer is left exactly as it was, and returns the reason.
std::string Reject(RowEncoder& enc, std::string_view json) {
  const std::string buf = std::string(json) + std::string(kPad, '\n');
  ByteBuffer out;
  const std::string before = "previous tuple bytes";
  out.Append(before);
  uint64_t hash = 0;
  std::string error;
  const bool ok = enc.Encode(std::string_view(buf.data(), json.size()), json.size() + kPad, &out, &hash, &error);
  INFO("line: " << json);
  CHECK_FALSE(ok);
  if (ok) return "<accepted>";
  CHECK(out.size() == before.size());
  CHECK(out.view() == before);
  CHECK_FALSE(error.empty());
  return error;
}

// ---------------------------------------------------------------------------
// Decoding tuples

using Field = std::optional<std::string>;  // nullopt: SQL NULL

int64_t ReadBe(std::string_view b, size_t pos, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(b[pos + i]);
  if (n < 8 && (v >> (8 * n - 1)) != 0) v |= ~uint64_t{0} << (8 * n);  // sign-extend
  return static_cast<int64_t>(v);
}

// Decodes one tuple starting at *pos: int16 count, then per field int32 length
// (-1 for NULL) and the payload. Advances *pos past it.
std::vector<Field> DecodeTupleAt(std::string_view b, size_t* pos) {
  REQUIRE(b.size() >= *pos + 2);
  const int64_t count = ReadBe(b, *pos, 2);
  *pos += 2;
  REQUIRE(count >= 0);
  std::vector<Field> fields;
  for (int64_t i = 0; i < count; ++i) {
    REQUIRE(b.size() >= *pos + 4);
    const int64_t len = ReadBe(b, *pos, 4);
    *pos += 4;
    if (len == -1) {
      fields.emplace_back(std::nullopt);
      continue;
    }
    REQUIRE(len >= 0);
    REQUIRE(b.size() >= *pos + static_cast<size_t>(len));
    fields.emplace_back(std::string(b.substr(*pos, static_cast<size_t>(len))));
    *pos += static_cast<size_t>(len);
  }
  return fields;
}

// Decodes a buffer that must hold exactly one tuple.
std::vector<Field> DecodeTuple(std::string_view b) {
  size_t pos = 0;
  std::vector<Field> fields = DecodeTupleAt(b, &pos);
  CHECK(pos == b.size());
  return fields;
}

// Big-endian payloads.
std::string Be(uint64_t v, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[n - 1 - i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}
std::string I32(int32_t v) { return Be(static_cast<uint32_t>(v), 4); }
std::string I64(int64_t v) { return Be(static_cast<uint64_t>(v), 8); }
std::string F64(double d) {
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  return Be(bits, 8);
}
// numeric payload: int16 words ndigits, weight, sign, dscale, digits...
std::string Numeric(std::initializer_list<int> words) {
  std::string s;
  for (int w : words) s += Be(static_cast<uint16_t>(w), 2);
  return s;
}
std::string Jsonb(std::string_view text) { return std::string(1, '\x01') + std::string(text); }

// The single field of a OneField entity.
Field Only(RowEncoder& enc, std::string_view json) {
  const std::vector<Field> f = DecodeTuple(Accept(enc, json));
  REQUIRE(f.size() == 1);
  return f[0];
}

constexpr std::string_view kWideLine =
    R"({"id":42,"code":"héé","name":"Ann \"A\" O'Neil\\n","qty":-7,"price":1.5,"amount":"12.50",)"
    R"("active":true,"day":"2000-03-01","at":"2000-01-01T00:00:01.5Z","meta":{"k": [1, 2], "s": "x"}})";

}  // namespace

// ---------------------------------------------------------------------------
// Valid rows

TEST_CASE("a valid line encodes to the exact binary tuple", "[row_encoder]") {
  const Entity e = MustParse(kWideYaml);
  RowEncoder enc(e, {});
  const std::string bytes = Accept(enc, kWideLine);
  const std::vector<Field> f = DecodeTuple(bytes);
  REQUIRE(f.size() == 10);
  CHECK(bytes.substr(0, 2) == std::string("\x00\x0a", 2));  // int16 field count
  CHECK(f[0] == I64(42));
  CHECK(f[1] == std::string("h\xc3\xa9\xc3\xa9"));
  CHECK(f[2] == std::string("Ann \"A\" O'Neil\\n"));  // JSON escapes decoded
  CHECK(f[3] == I32(-7));
  CHECK(f[4] == Be(0x3FF8000000000000ULL, 8));  // 1.5
  CHECK(f[5] == Numeric({2, 0, 0x0000, 2, 12, 5000}));
  CHECK(f[6] == std::string("\x01", 1));
  CHECK(f[7] == I32(60));       // 2000-03-01 is 60 days after 2000-01-01
  CHECK(f[8] == I64(1500000));  // 1.5 s after 2000-01-01T00:00:00Z
  CHECK(f[9] == Jsonb(R"({"k": [1, 2], "s": "x"})"));

  // And the whole byte string, to catch anything the decoder might tolerate.
  std::string expected = std::string("\x00\x0a", 2);
  for (const Field& x : f) expected += I32(static_cast<int32_t>(x->size())) + *x;
  CHECK(bytes == expected);
}

TEST_CASE("each type's payload", "[row_encoder]") {
  SECTION("Integer") {
    const Entity enc_entity = OneField("Integer", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":0})") == I32(0));
    CHECK(Only(enc, R"({"v":2147483647})") == I32(2147483647));
    CHECK(Only(enc, R"({"v":-2147483648})") == I32(INT32_MIN));
  }
  SECTION("BigInt") {
    const Entity enc_entity = OneField("BigInt", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":9223372036854775807})") == I64(INT64_MAX));
    CHECK(Only(enc, R"({"v":-9223372036854775808})") == I64(INT64_MIN));
    CHECK(Only(enc, R"({"v":-1})") == Be(~uint64_t{0}, 8));
  }
  SECTION("Float") {
    const Entity enc_entity = OneField("Float", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":-2.25})") == Be(0xC002000000000000ULL, 8));
    CHECK(Only(enc, R"({"v":5})") == F64(5.0));  // an integer is a valid float
    CHECK(Only(enc, R"({"v":1e308})") == F64(1e308));
    CHECK(Only(enc, R"({"v":0.1})") == F64(0.1));
  }
  SECTION("Decimal: number and string give the same numeric, text kept exactly") {
    const Entity enc_entity = OneField("Decimal", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":12.50})") == Numeric({2, 0, 0x0000, 2, 12, 5000}));
    CHECK(Only(enc, R"({"v":"12.50"})") == Numeric({2, 0, 0x0000, 2, 12, 5000}));
    CHECK(Only(enc, R"({"v":-0.0001})") == Numeric({1, -1, 0x4000, 4, 1}));
    CHECK(Only(enc, R"({"v":1e-7})") == Numeric({1, -2, 0x0000, 7, 10}));
    // More digits than a double holds: the text goes to numeric unrounded.
    ByteBuffer want;
    REQUIRE(nomnom::pg::AppendNumericField(want, "12345678901234567890.123456789", nullptr));
    CHECK(Only(enc, R"({"v":12345678901234567890.123456789})") == std::string(want.view().substr(4)));
    CHECK(Only(enc, R"({"v":"NaN"})") == Numeric({0, 0, 0xC000, 0}));
  }
  SECTION("Boolean") {
    const Entity enc_entity = OneField("Boolean", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":true})") == std::string("\x01", 1));
    CHECK(Only(enc, R"({"v":false})") == std::string("\x00", 1));
  }
  SECTION("Date") {
    const Entity enc_entity = OneField("Date", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":"2000-01-01"})") == I32(0));
    CHECK(Only(enc, R"({"v":"1999-12-31"})") == I32(-1));
    CHECK(Only(enc, R"({"v":"2000-02-29"})") == I32(59));
    CHECK(Only(enc, R"({"v":"2001-01-01"})") == I32(366));
  }
  SECTION("DateTime") {
    const Entity enc_entity = OneField("DateTime", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":"2000-01-01T00:00:00Z"})") == I64(0));
    CHECK(Only(enc, R"({"v":"2000-01-01T01:00:00+01:00"})") == I64(0));
    CHECK(Only(enc, R"({"v":"2000-01-01 00:00:01.000002"})") == I64(1000002));
    CHECK(Only(enc, R"({"v":"2000-01-02"})") == I64(86400LL * 1000000));
    CHECK(Only(enc, R"({"v":"1999-12-31T23:59:59Z"})") == I64(-1000000));
  }
  SECTION("Json keeps the raw text of any JSON value") {
    const Entity enc_entity = OneField("Json", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":{"a" : [1, {"b":null}]}})") == Jsonb(R"({"a" : [1, {"b":null}]})"));
    CHECK(Only(enc, R"({"v":[ ]})") == Jsonb("[ ]"));
    CHECK(Only(enc, R"({"v":"s\"q"})") == Jsonb(R"("s\"q")"));
    CHECK(Only(enc, R"({"v": 12.5e1 })") == Jsonb("12.5e1"));
    CHECK(Only(enc, R"({"v":true , "other": 1})") == Jsonb("true"));
    CHECK(Only(enc, R"({"v":false})") == Jsonb("false"));
    // Whitespace after an object or array value may be kept in the jsonb text
    // (PostgreSQL ignores it); the value itself is intact.
    Field spaced = Only(enc, R"({"v":{"a":1}  , "w":2})");
    REQUIRE(spaced.has_value());
    while (!spaced->empty() && spaced->back() == ' ') spaced->pop_back();
    CHECK(spaced == Jsonb(R"({"a":1})"));
  }
  SECTION("String: TEXT takes any length, escapes are decoded") {
    const Entity enc_entity = OneField("String", false);
    RowEncoder enc(enc_entity, {});
    const std::string long_text(10000, 'x');
    CHECK(Only(enc, R"({"v":")" + long_text + R"("})") == long_text);
    CHECK(Only(enc, R"({"v":""})") == std::string());
    CHECK(Only(enc, R"({"v":"tab\there\nnl \u00e9 \ud83d\ude00 \/"})") ==
          std::string("tab\there\nnl \xc3\xa9 \xf0\x9f\x98\x80 /"));
  }
}

TEST_CASE("SmallInt, Real, JsonText and TextArray payloads and rejects", "[row_encoder]") {
  SECTION("SmallInt: int2, range-checked") {
    const Entity enc_entity = OneField("SmallInt", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":-32768})") == Be(0x8000, 2));
    CHECK(Only(enc, R"({"v":32767})") == Be(0x7FFF, 2));
    CHECK(Only(enc, R"({"v":-1})") == Be(0xFFFF, 2));
    CHECK(Only(enc, R"({"v":1.0e2})") == Be(100, 2));
    CHECK_THAT(Reject(enc, R"({"v":32768})"),
               Contains("field 'v': 32768 is out of range for SmallInt (smallint: -32768 to 32767)"));
    CHECK_THAT(Reject(enc, R"({"v":-32769})"), Contains("field 'v': -32769 is out of range for SmallInt"));
    CHECK_THAT(Reject(enc, R"({"v":99999999999999999999})"), Contains("out of range for SmallInt"));
    CHECK_THAT(Reject(enc, R"({"v":1.5})"), Contains("field 'v': 1.5 is not an integer"));
    CHECK_THAT(Reject(enc, R"({"v":"1"})"), Contains("field 'v': expected an integer, got string"));
  }
  SECTION("Real: float4, correctly rounded; overflow and underflow rejected") {
    const Entity enc_entity = OneField("Real", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":1.5})") == Be(0x3FC00000, 4));
    CHECK(Only(enc, R"({"v":-2})") == Be(0xC0000000, 4));
    CHECK(Only(enc, R"({"v":0.1})") == Be(0x3DCCCCCD, 4));
    CHECK(Only(enc, R"({"v":3.4028235e38})") == Be(0x7F7FFFFF, 4));  // FLT_MAX
    CHECK(Only(enc, R"({"v":1.4e-45})") == Be(0x00000001, 4));       // the smallest denormal
    CHECK(Only(enc, R"({"v":0})") == Be(0, 4));
    CHECK(Only(enc, R"({"v":-0.0})") == Be(0x80000000, 4));
    // Rounded from the text, not through a double: 1.00000005960464477539062500001
    // is just above the midpoint between 1 and the next float.
    CHECK(Only(enc, R"({"v":1.00000005960464477539062500001})") == Be(0x3F800001, 4));
    CHECK_THAT(Reject(enc, R"({"v":3.5e38})"), Contains("field 'v': number 3.5e38 is out of range for Real (float4)"));
    CHECK_THAT(Reject(enc, R"({"v":-1e39})"), Contains("out of range for Real"));
    CHECK_THAT(Reject(enc, R"({"v":1e-50})"), Contains("field 'v': number 1e-50 is out of range for Real"));
    CHECK_THAT(Reject(enc, R"({"v":1e999})"), Contains("out of range for Real"));
    CHECK_THAT(Reject(enc, R"({"v":"1.5"})"), Contains("field 'v': expected a number, got string"));
  }
  SECTION("JsonText: the JSON text as written, without jsonb's version byte") {
    const Entity enc_entity = OneField("JsonText", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":{"b" : 1,  "a":[2 ]}})") == std::string(R"({"b" : 1,  "a":[2 ]})"));
    CHECK(Only(enc, R"({"v":{"a":1}  , "w":2})") == std::string(R"({"a":1})"));
    CHECK(Only(enc, R"({"v":"s\"q"})") == std::string(R"("s\"q")"));
    CHECK(Only(enc, R"({"v":12.5e1})") == std::string("12.5e1"));
    CHECK_THAT(Reject(enc, R"({"v":{"a": tru}})"), Contains("JSON"));
  }
  SECTION("TextArray: ndim 1, has-null flag, element oid 25, lower bound 1, elements") {
    const Entity enc_entity = OneField("TextArray", true);
    RowEncoder enc(enc_entity, {});
    const std::string header_one = I32(1) + I32(0) + I32(25);
    CHECK(Only(enc, R"({"v":["ab","\u00e9"]})") == header_one + I32(2) + I32(1) + I32(2) + "ab" + I32(2) + "\xc3\xa9");
    CHECK(Only(enc, R"({"v":[null,"NULL",""]})") ==
          I32(1) + I32(1) + I32(25) + I32(3) + I32(1) + I32(-1) + I32(4) + "NULL" + I32(0));
    CHECK(Only(enc, R"({"v":[]})") == I32(0) + I32(0) + I32(25));  // array_send of '{}'
    CHECK(Only(enc, R"({"v":null})") == std::nullopt);
    // Many empty strings: 4 bytes each for 3 bytes of JSON, more than the line.
    std::string many = R"({"v":[)";
    for (int i = 0; i < 1000; ++i) many += i > 0 ? R"(,"")" : R"("")";
    many += "]}";
    const Field big = Only(enc, many);
    REQUIRE(big.has_value());
    CHECK(big->size() == 20 + 4 * 1000);
    CHECK_THAT(Reject(enc, R"({"v":["a",1]})"),
               Contains("field 'v': element 2: expected a string or null, got number"));
    CHECK_THAT(Reject(enc, R"({"v":[["a"]]})"), Contains("field 'v': element 1: expected a string or null, got array"));
    CHECK_THAT(Reject(enc, R"({"v":"a"})"), Contains("field 'v': expected an array of strings, got string"));
    CHECK_THAT(Reject(enc, R"({"v":["a\u0000"]})"), Contains("field 'v': element 1 contains a NUL"));
    CHECK_THAT(Reject(enc, R"({"v":["a",]})"), Contains("JSON"));
  }
  SECTION("VarcharArray with a length: element oid 1043, each element checked") {
    const Entity enc_entity = OneField("VarcharArray", false, "args: [2]");
    REQUIRE(enc_entity.fields[0].array_element_oid == nomnom::kVarcharOid);
    REQUIRE(enc_entity.fields[0].PgTypeName() == "character varying(2)[]");
    RowEncoder enc(enc_entity, {});
    CHECK(Only(enc, R"({"v":["\u00e9\u00e9"]})") ==
          I32(1) + I32(0) + I32(1043) + I32(1) + I32(1) + I32(4) + "\xc3\xa9\xc3\xa9");
    CHECK_THAT(Reject(enc, R"({"v":["ab","abc"]})"),
               Contains("field 'v': element 2: string of 3 characters is longer than VARCHAR(2)"));
  }
}

TEST_CASE("strings of every length are copied exactly, next to their neighbours", "[row_encoder]") {
  // The encoder copies short strings with fixed-size overlapping moves (one
  // path per length class: 0, 1-3, 4-7, 8-16, 17-32, 33-64, longer); every
  // length, with fields before and after it, must come out byte for byte.
  const Entity e = MustParse(R"(
entity:
  name: Three
  fields:
    - {name: a, type: String}
    - {name: b, type: String}
    - {name: c, type: Integer}
)");
  RowEncoder enc(e, {});
  for (size_t n = 0; n <= 140; ++n) {
    std::string b;
    for (size_t i = 0; i < n; ++i) b.push_back(static_cast<char>('a' + (i * 7 + n) % 26));
    const std::string a(n % 5, 'x');
    const std::string line = R"({"a":")" + a + R"(","b":")" + b + R"(","c":)" + std::to_string(n) + "}";
    INFO("length " << n);
    const std::vector<Field> fields = DecodeTuple(Accept(enc, line));
    REQUIRE(fields.size() == 3);
    CHECK(fields[0] == a);
    CHECK(fields[1] == b);
    CHECK(fields[2] == I32(static_cast<int32_t>(n)));
  }
}

TEST_CASE("field order in the JSON object does not change the tuple", "[row_encoder]") {
  const Entity e = MustParse(kWideYaml);
  RowEncoder enc(e, {});
  uint64_t h0 = 0;
  const std::string reference = Accept(enc, kWideLine, &h0);
  const std::vector<std::string> permutations = {
      R"({"meta":{"k": [1, 2], "s": "x"},"at":"2000-01-01T00:00:01.5Z","day":"2000-03-01","active":true,)"
      R"("amount":"12.50","price":1.5,"qty":-7,"name":"Ann \"A\" O'Neil\\n","code":"héé","id":42})",
      R"({"qty":-7,"id":42,"meta":{"k": [1, 2], "s": "x"},"code":"héé","price":1.5,"active":true,)"
      R"("name":"Ann \"A\" O'Neil\\n","day":"2000-03-01","amount":"12.50","at":"2000-01-01T00:00:01.5Z"})",
      R"(  { "at" : "2000-01-01T00:00:01.5Z" , "id" : 42 , "amount" : "12.50" , "code" : "héé" , )"
      R"("name" : "Ann \"A\" O'Neil\\n" , "qty" : -7 , "price" : 1.5 , "day" : "2000-03-01" , )"
      R"("active" : true , "meta" : {"k": [1, 2], "s": "x"}}  )",
  };
  for (const std::string& line : permutations) {
    uint64_t h = 0;
    INFO("line: " << line);
    CHECK(Accept(enc, line, &h) == reference);
    CHECK(h == h0);
  }
  // And back to the original order (the encoder guesses the next field).
  CHECK(Accept(enc, kWideLine) == reference);
}

TEST_CASE("missing or null nullable fields are NULL", "[row_encoder]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  const std::string only_key = Accept(enc, R"({"id":7})");
  const std::vector<Field> f = DecodeTuple(only_key);
  REQUIRE(f.size() == 10);
  CHECK(f[0] == I64(7));
  for (size_t i = 1; i < f.size(); ++i) {
    INFO("field " << e.fields[i].name);
    CHECK_FALSE(f[i].has_value());
  }
  // Exact bytes: count 10, the id, nine -1 lengths.
  std::string expected = std::string("\x00\x0a", 2) + I32(8) + I64(7);
  for (int i = 0; i < 9; ++i) expected += I32(-1);
  CHECK(only_key == expected);

  // Explicit nulls (a JSON null in a Json column too) are the same NULLs.
  CHECK(Accept(enc, R"({"code":null,"name":null,"qty":null,"price":null,"amount":null,"active":null,)"
                    R"("day":null,"at":null,"meta":null,"id":7})") == only_key);

  // A mix: set fields are encoded, the rest are NULL.
  const std::vector<Field> g = DecodeTuple(Accept(enc, R"({"id":8,"qty":3,"meta":null,"day":"2000-01-02"})"));
  REQUIRE(g.size() == 10);
  CHECK(g[3] == I32(3));
  CHECK(g[7] == I32(1));
  CHECK_FALSE(g[1].has_value());
  CHECK_FALSE(g[9].has_value());
}

TEST_CASE("key_hash follows the unicity fields' values", "[row_encoder]") {
  SECTION("single BigInt key") {
    const Entity e = MustParse(kNullableYaml);
    RowEncoder enc(e, {});
    uint64_t a = 0, b = 0, c = 0;
    Accept(enc, R"({"id":1,"name":"first","qty":1})", &a);
    Accept(enc, R"({"qty":99,"id":1,"code":"zz"})", &b);
    Accept(enc, R"({"id":2,"name":"first","qty":1})", &c);
    CHECK(a == b);  // same key, other fields differ
    CHECK(a != c);  // different key
    std::set<uint64_t> seen;
    for (int i = 0; i < 1000; ++i) {
      uint64_t h = 0;
      Accept(enc, R"({"id":)" + std::to_string(i) + "}", &h);
      seen.insert(h);
    }
    CHECK(seen.size() == 1000);
  }
  SECTION("composite String + Integer key") {
    const Entity e = MustParse(R"(
entity:
  name: K
  fields:
    - {name: region, type: String}
    - {name: n, type: Integer}
    - {name: note, type: String, nullable: true}
  persistence:
    database:
      unicity_fields: [region, n]
)");
    RowEncoder enc(e, {});
    uint64_t a = 0, a2 = 0, a3 = 0, b = 0, c = 0, d = 0;
    Accept(enc, R"({"region":"eu","n":1,"note":"x"})", &a);
    Accept(enc, R"({"n":1,"note":"y","region":"eu"})", &a2);
    Accept(enc, R"({"region":"\u0065\u0075","n":1.0})", &a3);  // same values, spelled differently
    Accept(enc, R"({"region":"eu","n":2})", &b);
    Accept(enc, R"({"region":"us","n":1})", &c);
    Accept(enc, R"({"region":"","n":1})", &d);
    CHECK(a == a2);
    CHECK(a == a3);
    CHECK(a != b);
    CHECK(a != c);
    CHECK(a != d);
    CHECK(b != c);
    std::set<uint64_t> seen;
    for (int i = 0; i < 500; ++i) {
      uint64_t h = 0;
      Accept(enc, R"({"region":"r)" + std::to_string(i) + R"(","n":)" + std::to_string(i % 7) + "}", &h);
      seen.insert(h);
    }
    CHECK(seen.size() == 500);
  }
  SECTION("no unicity fields: hash 0") {
    const Entity enc_entity = OneField("Integer", false);
    RowEncoder enc(enc_entity, {});
    uint64_t h = 12345;
    Accept(enc, R"({"v":5})", &h);
    CHECK(h == 0);
  }
}

TEST_CASE("unknown fields are ignored, or rejected with strict", "[row_encoder]") {
  const Entity e = MustParse(kNullableYaml);
  const std::string plain = R"({"id":1,"qty":2})";
  const std::string extra =
      R"({"extra":"x","id":1,"nested":{"a":[1,{"b":2}],"qty":5},"list":[{"qty":9}],"qty":2,"n":null,"z":1.5e3})";
  SECTION("default") {
    RowEncoder enc(e, {});
    const std::string want = Accept(enc, plain);
    CHECK(Accept(enc, extra) == want);
    // Repeated unknown fields are just ignored too.
    CHECK(Accept(enc, R"({"x":1,"x":2,"id":1,"qty":2})") == want);
  }
  SECTION("strict") {
    RowEncoderOptions opts;
    opts.strict = true;
    RowEncoder enc(e, opts);
    CHECK(DecodeTuple(Accept(enc, plain))[3] == I32(2));  // known fields only: fine
    const std::string err = Reject(enc, extra);
    CHECK_THAT(err, Contains("unknown field 'extra'"));
    CHECK_THAT(err, Contains("strict"));
    CHECK_THAT(Reject(enc, R"({"id":1,"qty":2,"Qty":3})"), Contains("unknown field 'Qty'"));  // case-sensitive
    CHECK_THAT(Reject(enc, R"({"id":1,"q\u0074y2":3})"), Contains("unknown field 'qty2'"));
  }
}

TEST_CASE("escaped keys match their field", "[row_encoder]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  const std::string want = Accept(enc, R"({"id":1,"qty":2,"code":"ab"})");
  CHECK(Accept(enc, R"({"\u0069d":1,"q\u0074y":2,"c\u006f\u0064e":"ab"})") == want);
  CHECK(Accept(enc, R"({"id":1,"\u0071\u0074\u0079":2,"code":"ab"})") == want);

  const Entity order = MustParse(R"(
entity:
  name: O
  fields:
    - {name: order_key, type: String}
  persistence:
    database:
      unicity_fields: [order_key]
)");
  RowEncoder oenc(order, {});
  uint64_t h1 = 0, h2 = 0;
  const std::string a = Accept(oenc, R"({"order_key":"k1"})", &h1);
  const std::string b = Accept(oenc, R"({"order\u005fkey":"k1"})", &h2);
  CHECK(a == b);
  CHECK(h1 == h2);
  CHECK_THAT(Reject(oenc, R"({"order_key":"k1","order\u005fkey":"k2"})"),
             Contains("field 'order_key' appears more than once"));
}

TEST_CASE("bytes after the line are not parsed", "[row_encoder]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  const std::string line = R"({"id":3,"qty":4})";
  const std::string want = Accept(enc, line);
  SECTION("padding of any byte") {
    for (char pad : {' ', '\n', '\0', '}', 'x', '"'}) {
      Encoded r = EncodeLine(enc, line, pad);
      INFO("pad byte " << static_cast<int>(pad));
      CHECK(r.ok);
      CHECK(r.bytes == want);
    }
  }
  SECTION("the next NDJSON line in the readable region, as in a chunk") {
    const std::string chunk = line + "\n" + R"({"id":9,"qty":"garbage"} trailing)" + "\n" + std::string(kPad, '\0');
    ByteBuffer out;
    uint64_t h = 0;
    std::string err;
    CHECK(enc.Encode(std::string_view(chunk.data(), line.size()), chunk.size(), &out, &h, &err));
    CHECK(err.empty());
    CHECK(out.view() == want);
  }
  SECTION("CRLF line ending and surrounding whitespace") {
    CHECK(Accept(enc, line + "\r") == want);
    CHECK(Accept(enc, " \t" + line + " \t ") == want);
  }
}

// ---------------------------------------------------------------------------
// Rejects

TEST_CASE("malformed JSON is rejected", "[row_encoder][reject]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  for (const char* line : {
           R"({"id":1,"qty":2)",            // unclosed object
           R"({"id":1,"name":"abc})",       // unclosed string
           R"({"id":1,"qty":2,})",          // trailing comma
           R"({"id":1,,"qty":2})",          // double comma
           R"({"id":1 "qty":2})",           // missing comma
           R"({"id" 1})",                   // missing colon
           R"({id:1})",                     // unquoted key
           R"({"id":1,"active":tru})",      // bad literal
           R"({"id":1,"active":nul})",      // bad literal in a nullable field
           R"({"id":1,"price":.5})",        // bad number
           R"({"id":1,"name":"\q"})",       // bad escape
           R"({"id":1,"name":"\ud800"})",   // lone surrogate escape
           "{\"id\":1,\"name\":\"a\tb\"}",  // raw control character in a string
           R"({)",
           R"(})",
           R"()",
           R"(   )",
       }) {
    const std::string err = Reject(enc, line);
    INFO("line: " << line << "\nerror: " << err);
    CHECK((err.find("malformed") != std::string::npos));
  }
}

TEST_CASE("content after the object is rejected", "[row_encoder][reject]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  CHECK(Reject(enc, R"({"id":1}})") == "unexpected content after the JSON object");
  CHECK(Reject(enc, R"({"id":1} {"id":2})") == "unexpected content after the JSON object");
  for (const char* line : {R"({"id":1} x)", R"({"id":1}{)", R"({"id":1}])", R"({"id":1},)", R"({"id":1} 5)"}) {
    const std::string err = Reject(enc, line);
    INFO("line: " << line << "\nerror: " << err);
    CHECK((err.find("malformed JSON") != std::string::npos ||
           err.find("unexpected content after the JSON object") != std::string::npos));
  }
}

TEST_CASE("a line that is not a JSON object is rejected", "[row_encoder][reject]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  CHECK(Reject(enc, R"([{"id":1}])") == "not a JSON object (got array)");
  CHECK(Reject(enc, R"("{\"id\":1}")") == "not a JSON object (got string)");
  CHECK(Reject(enc, "42") == "not a JSON object (got number)");
  CHECK(Reject(enc, "null") == "not a JSON object (got null)");
  CHECK(Reject(enc, "true") == "not a JSON object (got boolean)");
}

TEST_CASE("missing required fields are rejected", "[row_encoder][reject]") {
  const Entity e = MustParse(kWideYaml);
  RowEncoder enc(e, {});
  CHECK(Reject(enc, "{}") == "missing required field 'id'");
  CHECK(Reject(enc, R"({"id":1})") == "missing required field 'code'");
  // Drop each field in turn from the complete line.
  for (const nomnom::Field& f : e.fields) {
    auto obj = std::string(kWideLine);
    const std::string key = "\"" + f.name + "\":";
    const size_t at = obj.find(key);
    REQUIRE(at != std::string::npos);
    // Replace the key by an unknown one, so the value stays well-formed JSON.
    obj.replace(at, key.size(), "\"x_" + f.name + "\":");
    CHECK(Reject(enc, obj) == "missing required field '" + f.name + "'");
  }
}

TEST_CASE("null in a NOT NULL field is rejected, for every type", "[row_encoder][reject]") {
  const Entity e = MustParse(kWideYaml);
  RowEncoder enc(e, {});
  for (const nomnom::Field& f : e.fields) {
    const std::string line = R"({")" + f.name + R"(":null})";
    CHECK(Reject(enc, line) == "field '" + f.name + "': null in a NOT NULL field");
  }
}

TEST_CASE("wrong JSON types are rejected", "[row_encoder][reject]") {
  struct Case {
    const char* type;
    const char* value;
    const char* reason;
  };
  const Case cases[] = {
      {"String", "5", "expected a string, got number"},
      {"String", "true", "expected a string, got boolean"},
      {"String", R"({"a":1})", "expected a string, got object"},
      {"String", "[]", "expected a string, got array"},
      {"Integer", R"("5")", "expected an integer, got string"},
      {"Integer", "true", "expected an integer, got boolean"},
      {"Integer", "[1]", "expected an integer, got array"},
      {"BigInt", R"("5")", "expected an integer, got string"},
      {"BigInt", "{}", "expected an integer, got object"},
      {"Float", R"("1.5")", "expected a number, got string"},
      {"Float", "false", "expected a number, got boolean"},
      {"Decimal", "true", "expected a number, got boolean"},
      {"Decimal", "[1]", "expected a number, got array"},
      {"Boolean", "1", "expected true or false, got number"},
      {"Boolean", R"("true")", "expected true or false, got string"},
      {"Date", "20210101", "expected a date string, got number"},
      {"Date", "{}", "expected a date string, got object"},
      {"DateTime", "0", "expected a timestamp string, got number"},
      {"DateTime", "true", "expected a timestamp string, got boolean"},
  };
  for (const Case& c : cases) {
    for (bool nullable : {false, true}) {
      const Entity enc_entity = OneField(c.type, nullable);
      RowEncoder enc(enc_entity, {});
      const std::string line = std::string(R"({"v":)") + c.value + "}";
      INFO("type " << c.type << " nullable " << nullable);
      CHECK(Reject(enc, line) == std::string("field 'v': ") + c.reason);
    }
  }
}

TEST_CASE("Integer and BigInt: fractions and range", "[row_encoder][reject]") {
  SECTION("Integer") {
    const Entity enc_entity = OneField("Integer", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Reject(enc, R"({"v":1.5})") == "field 'v': 1.5 is not an integer");
    CHECK(Reject(enc, R"({"v":-0.25})") == "field 'v': -0.25 is not an integer");
    CHECK(Reject(enc, R"({"v":1e-3})") == "field 'v': 1e-3 is not an integer");
    CHECK(Reject(enc, R"({"v":2147483648})") == "field 'v': 2147483648 is out of range for Integer");
    CHECK(Reject(enc, R"({"v":-2147483649})") == "field 'v': -2147483649 is out of range for Integer");
    CHECK(Reject(enc, R"({"v":9223372036854775807})") == "field 'v': 9223372036854775807 is out of range for Integer");
    CHECK(Reject(enc, R"({"v":2147483648.0})") == "field 'v': 2147483648.0 is out of range for Integer");
    CHECK(Reject(enc, R"({"v":-3e9})") == "field 'v': -3e9 is out of range for Integer");
    CHECK(Reject(enc, R"({"v":1e400})") == "field 'v': 1e400 is out of range for Integer");
    // Integral floats are accepted as the integer they denote.
    CHECK(Only(enc, R"({"v":3.0})") == I32(3));
    CHECK(Only(enc, R"({"v":1e3})") == I32(1000));
    CHECK(Only(enc, R"({"v":-2.5e1})") == I32(-25));
    CHECK(Only(enc, R"({"v":-0.0})") == I32(0));
    CHECK(Only(enc, R"({"v":2147483647.0})") == I32(INT32_MAX));
    CHECK(Only(enc, R"({"v":-2147483648.0})") == I32(INT32_MIN));
  }
  SECTION("BigInt") {
    const Entity enc_entity = OneField("BigInt", false);
    RowEncoder enc(enc_entity, {});
    CHECK(Reject(enc, R"({"v":9223372036854775808})") == "field 'v': 9223372036854775808 is out of range for BigInt");
    CHECK(Reject(enc, R"({"v":18446744073709551615})") == "field 'v': 18446744073709551615 is out of range for BigInt");
    const std::string below = Reject(enc, R"({"v":-9223372036854775809})");
    CHECK_THAT(below, StartsWith("field 'v': "));
    CHECK_THAT(below, Contains("-9223372036854775809 is out of range"));
    const std::string above = Reject(enc, R"({"v":18446744073709551616})");
    CHECK_THAT(above, StartsWith("field 'v': "));
    CHECK_THAT(above, Contains("18446744073709551616 is out of range"));
    CHECK(Reject(enc, R"({"v":1e19})") == "field 'v': 1e19 is out of range for BigInt");
    CHECK(Reject(enc, R"({"v":-9.3e18})") == "field 'v': -9.3e18 is out of range for BigInt");
    CHECK(Reject(enc, R"({"v":2.5})") == "field 'v': 2.5 is not an integer");
    CHECK(Only(enc, R"({"v":1e18})") == I64(1000000000000000000LL));
    CHECK(Only(enc, R"({"v":-4.0})") == I64(-4));
    CHECK(Only(enc, R"({"v":4294967296})") == I64(4294967296LL));
  }
}

TEST_CASE("Float: numbers outside double range are rejected", "[row_encoder][reject]") {
  const Entity enc_entity = OneField("Float", false);
  RowEncoder enc(enc_entity, {});
  CHECK(Reject(enc, R"({"v":1e400})") == "field 'v': number 1e400 is out of double range");
  CHECK(Reject(enc, R"({"v":-1e400})") == "field 'v': number -1e400 is out of double range");
  CHECK(Only(enc, R"({"v":-1.7976931348623157e308})") == F64(-1.7976931348623157e308));
}

TEST_CASE("VARCHAR(n) length is counted in characters", "[row_encoder][reject]") {
  const Entity enc_entity = OneField("String", false, "args: [3]");
  RowEncoder enc(enc_entity, {});
  CHECK(Only(enc, R"({"v":"abc"})") == std::string("abc"));
  CHECK(Only(enc, R"({"v":"héé"})") == std::string("h\xc3\xa9\xc3\xa9"));                        // 5 bytes
  CHECK(Only(enc, R"({"v":"€€€"})") == std::string("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"));     // 9 bytes
  CHECK(Only(enc, "{\"v\":\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"}").has_value());  // 12 bytes
  CHECK(Only(enc, R"({"v":"\u00e9\u00e9\ud83d\ude00"})") == std::string("\xc3\xa9\xc3\xa9\xf0\x9f\x98\x80"));
  CHECK(Reject(enc, R"({"v":"abcd"})") == "field 'v': string of 4 characters is longer than VARCHAR(3)");
  CHECK(Reject(enc, R"({"v":"héé!"})") == "field 'v': string of 4 characters is longer than VARCHAR(3)");
  CHECK(Reject(enc, R"({"v":"€€€€"})") == "field 'v': string of 4 characters is longer than VARCHAR(3)");
  CHECK(Reject(enc, R"({"v":"\u00e9\u00e9\u00e9\u00e9\u00e9"})") ==
        "field 'v': string of 5 characters is longer than VARCHAR(3)");

  const Entity one_entity = OneField("String", true, "args: [1]");

  RowEncoder one(one_entity, {});
  CHECK(Only(one, R"({"v":"é"})") == std::string("\xc3\xa9"));
  CHECK(Reject(one, R"({"v":"ab"})") == "field 'v': string of 2 characters is longer than VARCHAR(1)");
}

TEST_CASE("invalid UTF-8 is rejected", "[row_encoder][reject]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  for (const char* line : {
           "{\"id\":1,\"name\":\"\xff\"}",              // never valid in UTF-8
           "{\"id\":1,\"name\":\"ab\xe2\x82\"}",        // truncated 3-byte sequence
           "{\"id\":1,\"name\":\"\x80\"}",              // lone continuation byte
           "{\"id\":1,\"name\":\"\xc0\xaf\"}",          // overlong '/'
           "{\"id\":1,\"name\":\"\xed\xa0\x80\"}",      // encoded surrogate
           "{\"id\":1,\"name\":\"\xf4\x90\x80\x80\"}",  // above U+10FFFF
           "{\"id\":1,\"x\":\"\xff\"}",                 // in an ignored field
           "{\"id\":1,\"\xff\":1}",                     // in a key
       }) {
    CHECK(Reject(enc, line) == "invalid UTF-8");
  }
}

TEST_CASE("NUL characters in strings are rejected", "[row_encoder][reject]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  for (const char* line :
       {R"({"id":1,"name":"\u0000"})", R"({"id":1,"name":"a\u0000b"})", R"({"id":1,"code":"ab\u0000"})"}) {
    const std::string err = Reject(enc, line);
    CHECK_THAT(err, StartsWith(std::string("field '") + (std::strstr(line, "code") ? "code" : "name") + "'"));
    CHECK_THAT(err, Contains("NUL character"));
  }
}

TEST_CASE("invalid dates and timestamps are rejected", "[row_encoder][reject]") {
  const Entity date_entity = OneField("Date", true);
  RowEncoder date(date_entity, {});
  for (const char* s : {"2021-02-30", "21-01-01", "2021-1-01", "2021-13-01", "2021-00-10", "2019-02-29", "",
                        "2021-01-01T00:00:00Z", "0000-01-01", "yesterday"}) {
    const std::string err = Reject(date, std::string(R"({"v":")") + s + R"("})");
    CHECK(err == std::string("field 'v': invalid date '") + s + "' (expected YYYY-MM-DD)");
  }
  const Entity ts_entity = OneField("DateTime", true);
  RowEncoder ts(ts_entity, {});
  for (const char* s : {"2021-01-01T25:00:00Z", "2021-01-01T12:60:00Z", "2021-02-30T00:00:00Z", "2021-01-01T",
                        "2021-01-01T00:00:00+25:00", "2021-01-01T00:00:00 UTC", "2021-01-01X00:00:00", "now"}) {
    const std::string err = Reject(ts, std::string(R"({"v":")") + s + R"("})");
    CHECK_THAT(err, StartsWith(std::string("field 'v': invalid timestamp '") + s + "'"));
  }
  // A long bad value is shortened in the message.
  const std::string long_bad(100, '9');
  const std::string err = Reject(date, R"({"v":")" + long_bad + R"("})");
  CHECK_THAT(err, StartsWith("field 'v': invalid date '" + std::string(40, '9') + "...'"));
}

TEST_CASE("invalid decimal strings are rejected without touching the buffer", "[row_encoder][reject]") {
  // Decimal text is checked while the tuple is written (after other fields were
  // appended), so this exercises the truncate-on-failure path.
  const Entity e = MustParse(kWideYaml);
  RowEncoder enc(e, {});
  for (const char* bad : {"12abc", "", "1.2.3", "--1", "0x10", "1e", "abc"}) {
    std::string line(kWideLine);
    const std::string good = R"("amount":"12.50")";
    line.replace(line.find(good), good.size(), std::string(R"("amount":")") + bad + "\"");
    const std::string err = Reject(enc, line);
    INFO("decimal text '" << bad << "'");
    CHECK_THAT(err, StartsWith("field 'amount': "));
    CHECK_THAT(err, Contains("numeric"));
  }
  std::string line(kWideLine);
  line.replace(line.find(R"("12.50")"), 7, R"("12abc")");
  CHECK_THAT(Reject(enc, line), Contains("\"12abc\""));  // the message quotes the bad text
}

TEST_CASE("a field given twice is rejected", "[row_encoder][reject]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  CHECK(Reject(enc, R"({"id":1,"id":2})") == "field 'id' appears more than once");
  CHECK(Reject(enc, R"({"id":1,"qty":2,"name":"a","qty":2})") == "field 'qty' appears more than once");
  CHECK(Reject(enc, R"({"id":1,"name":null,"name":"x"})") == "field 'name' appears more than once");
  CHECK(Reject(enc, R"({"id":1,"name":"x","name":null})") == "field 'name' appears more than once");
}

TEST_CASE("a rejected line leaves earlier output intact and the encoder reusable", "[row_encoder][reject]") {
  const Entity e = MustParse(kNullableYaml);
  RowEncoder enc(e, {});
  ByteBuffer out;
  auto encode = [&](std::string_view json, std::string* err) {
    const std::string buf = std::string(json) + std::string(kPad, ' ');
    uint64_t h = 0;
    err->clear();
    return enc.Encode(std::string_view(buf.data(), json.size()), json.size() + kPad, &out, &h, err);
  };
  std::string err;
  REQUIRE(encode(R"({"id":1,"name":"first","qty":10})", &err));
  const std::string after_first(out.view());
  // Fails in validation after some fields were decoded.
  CHECK_FALSE(encode(R"({"id":2,"name":"stale","qty":"x"})", &err));
  CHECK(err == "field 'qty': expected an integer, got string");
  CHECK(out.view() == after_first);
  // Fails while writing (bad decimal) after name was decoded.
  CHECK_FALSE(encode(R"({"id":3,"name":"stale2","amount":"bad"})", &err));
  CHECK_THAT(err, StartsWith("field 'amount'"));
  CHECK(out.view() == after_first);
  // Fails on syntax.
  CHECK_FALSE(encode(R"({"id":4,"name":"stale3")", &err));
  CHECK(out.view() == after_first);
  // The next good line encodes normally; fields the failed lines set are not
  // carried over.
  REQUIRE(encode(R"({"id":5})", &err));
  CHECK(err.empty());
  size_t pos = 0;
  const std::vector<Field> t1 = DecodeTupleAt(out.view(), &pos);
  const std::vector<Field> t2 = DecodeTupleAt(out.view(), &pos);
  CHECK(pos == out.size());
  REQUIRE(t1.size() == 10);
  REQUIRE(t2.size() == 10);
  CHECK(t1[0] == I64(1));
  CHECK(t1[2] == std::string("first"));
  CHECK(t1[3] == I32(10));
  CHECK(t2[0] == I64(5));
  for (size_t i = 1; i < t2.size(); ++i) CHECK_FALSE(t2[i].has_value());

  // A duplicate-field reject does not poison the next line either.
  CHECK_FALSE(encode(R"({"id":6,"id":6})", &err));
  REQUIRE(encode(R"({"id":6,"qty":1})", &err));
}

TEST_CASE("a good line after a bad one encodes as if alone", "[row_encoder][reject]") {
  const Entity e = MustParse(kWideYaml);
  RowEncoder fresh(e, {});
  const std::string want = Accept(fresh, kWideLine);
  RowEncoder enc(e, {});
  for (const char* bad : {R"({"id":1)", R"([1])", R"({"id":null})", R"({"qty":1.5,"id":1})", "{\"name\":\"\xff\"}",
                          R"({"code":"abcd"})", R"({"id":1,"id":1})"}) {
    INFO("after: " << bad);
    Reject(enc, bad);
    CHECK(Accept(enc, kWideLine) == want);
  }
}

TEST_CASE("Float: a fraction of more than 19 digits after \"0.\" is parsed exactly (simdjson 3.0.1 bug #2093)",
          "[row_encoder]") {
  // simdjson before 3.6.3 overflows its 64-bit significand for such numbers
  // and returns a wrong value (0.95000000000000000000 -> 0.0276...).
  const Entity enc_entity = OneField("Float", false);
  RowEncoder enc(enc_entity, {});
  CHECK(Only(enc, R"({"v":0.95000000000000000000})") == F64(0.95));
  CHECK(Only(enc, R"({"v":-0.100000000000000000001})") == F64(-0.1));
  CHECK(Only(enc, R"({"v":0.566666666666666666667})") == F64(0.566666666666666666667));
  CHECK(Only(enc, R"({"v":0.12345678901234567890123e3})") == F64(123.45678901234567890123));
  CHECK(Only(enc, R"({"v":0.000012345678901234567890123})") == F64(0.000012345678901234567890123));
  CHECK(Only(enc, R"({"v":-0.10000000000000000000000e-400})") == F64(-0.0));
  CHECK(Reject(enc, R"({"v":0.10000000000000000000000e400})") ==
        "field 'v': number 0.10000000000000000000000e400 is out of double range");
}

TEST_CASE("integers written as long decimals or exponents are decided exactly (simdjson 3.0.1 number bug)",
          "[row_encoder]") {
  auto entity = nomnom::ParseEntity(R"(entity:
  name: N
  fields:
    - {name: i, type: Integer}
    - {name: b, type: BigInt}
)",
                                    "inline");
  REQUIRE(entity.ok());
  nomnom::RowEncoder enc(*entity, {});
  auto encode = [&](const std::string& line, std::string* err) {
    std::string padded = line + std::string(64, ' ');
    nomnom::ByteBuffer out;
    uint64_t h;
    bool ok = enc.Encode(std::string_view(padded.data(), line.size()), padded.size(), &out, &h, err);
    int64_t b = 0;
    if (ok) {
      // tuple: int16 count, int32 len + int32 (i), int32 len + int64 (b)
      const auto* p = reinterpret_cast<const unsigned char*>(out.data()) + 2 + 4 + 4 + 4;
      for (int k = 0; k < 8; ++k) b = (b << 8) | p[k];
    }
    return std::make_pair(ok, b);
  };
  std::string err;
  CHECK(encode(R"({"i":1.0000000000000000000,"b":1234567890123456789.0})", &err) ==
        std::make_pair(true, int64_t{1234567890123456789}));
  CHECK(encode(R"({"i":5.00000000000000000000e0,"b":-9223372036854775808})", &err) ==
        std::make_pair(true, std::numeric_limits<int64_t>::min()));
  CHECK(encode(R"({"i":1,"b":92233720368547758.07e2})", &err) ==
        std::make_pair(true, std::numeric_limits<int64_t>::max()));
  CHECK_FALSE(encode(R"({"i":1000000000.000000001,"b":1})", &err).first);
  CHECK_THAT(err, Catch::Contains("is not an integer"));
  CHECK_FALSE(encode(R"({"i":1,"b":9223372036854775808.0})", &err).first);
  CHECK_THAT(err, Catch::Contains("out of range for BigInt"));
  CHECK_FALSE(encode(R"({"i":1,"b":1e19})", &err).first);
  CHECK_THAT(err, Catch::Contains("out of range"));
  CHECK_FALSE(encode(R"({"i":2147483648.0,"b":1})", &err).first);
  CHECK_THAT(err, Catch::Contains("out of range for Integer"));
  CHECK_FALSE(encode(R"({"i":01,"b":1})", &err).first);
  CHECK_THAT(err, Catch::Contains("invalid number 01"));
}
