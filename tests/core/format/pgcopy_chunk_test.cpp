// pgcopy1 chunks: the schema fingerprint, the framing walker a worker runs
// before COPY (core/format/pgcopy_chunk.h), and the JSON rendering of a tuple for dead
// letters (core/format/tuple_json.h), round-tripped through RowEncoder.
#include "core/format/pgcopy_chunk.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "core/format/tuple_json.h"

using Catch::Matchers::Contains;
using nomnom::ByteBuffer;
using nomnom::Entity;
using nomnom::RowEncoder;
using nomnom::RowEncoderOptions;

namespace {

constexpr std::string_view kAllYaml = R"(
entity:
  name: All
  fields:
    - {name: id, type: BigInt}
    - {name: s, type: String, nullable: true}
    - {name: v, type: String, args: [5], nullable: true}
    - {name: i, type: Integer, nullable: true}
    - {name: si, type: SmallInt, nullable: true}
    - {name: f, type: Float, nullable: true}
    - {name: r, type: Real, nullable: true}
    - {name: d, type: Decimal, nullable: true}
    - {name: dp, type: Decimal, args: [15, 2], nullable: true}
    - {name: b, type: Boolean, nullable: true}
    - {name: day, type: Date, nullable: true}
    - {name: at, type: DateTime, nullable: true}
    - {name: u, type: Uuid, nullable: true}
    - {name: j, type: Json, nullable: true}
    - {name: jt, type: JsonText, nullable: true}
    - {name: ta, type: TextArray, nullable: true}
  persistence:
    database:
      conformant_table: all_types
      unicity_fields: [id]
)";

Entity Parse(std::string_view yaml) {
  auto e = nomnom::ParseEntity(yaml, "test");
  REQUIRE(e.ok());
  return std::move(e).value();
}

// Encodes one NDJSON line; fails the test when RowEncoder rejects it.
std::string Encode(RowEncoder& enc, std::string_view line) {
  std::string padded(line);
  padded.append(nomnom::kChunkPadding, ' ');
  ByteBuffer out;
  std::string error;
  INFO(line);
  const bool ok = enc.Encode(std::string_view(padded.data(), line.size()), padded.size(), &out, nullptr, &error);
  INFO(error);
  REQUIRE(ok);
  return std::string(out.view());
}

void PutBe16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v >> 8));
  s->push_back(static_cast<char>(v & 0xFF));
}
void PutBe32(std::string* s, uint32_t v) {
  PutBe16(s, static_cast<uint16_t>(v >> 16));
  PutBe16(s, static_cast<uint16_t>(v & 0xFFFF));
}

// A tuple of two fields: an int32 and a text.
std::string TwoFieldTuple(int32_t a, std::string_view text) {
  std::string t;
  PutBe16(&t, 2);
  PutBe32(&t, 4);
  PutBe32(&t, static_cast<uint32_t>(a));
  PutBe32(&t, static_cast<uint32_t>(text.size()));
  t.append(text);
  return t;
}

}  // namespace

TEST_CASE("SchemaFingerprint: stable, and changes with everything the tuples depend on", "[pgcopy]") {
  const Entity base = Parse(kAllYaml);
  const std::string fp = nomnom::SchemaFingerprint(base);
  CHECK(fp.size() == 16);
  CHECK(fp == nomnom::SchemaFingerprint(Parse(kAllYaml)));
  CHECK(fp.find_first_not_of("0123456789abcdef") == std::string::npos);

  auto changed = [&](auto&& edit) {
    Entity e = Parse(kAllYaml);
    edit(e);
    return nomnom::SchemaFingerprint(e);
  };
  CHECK(changed([](Entity& e) { e.table = "other"; }) != fp);
  CHECK(changed([](Entity& e) { e.table_schema = "sales"; }) != fp);
  CHECK(changed([](Entity& e) { e.fields[1].name = "s2"; }) != fp);
  CHECK(changed([](Entity& e) { std::swap(e.fields[3], e.fields[4]); }) != fp);
  CHECK(changed([](Entity& e) { e.fields[3].type = nomnom::FieldType::kBigInt; }) != fp);
  CHECK(changed([](Entity& e) { e.fields[2].max_length = 6; }) != fp);
  CHECK(changed([](Entity& e) { e.fields[8].scale = 3; }) != fp);
  CHECK(changed([](Entity& e) { e.fields[8].precision = 16; }) != fp);
  CHECK(changed([](Entity& e) { e.fields[1].nullable = false; }) != fp);
  CHECK(changed([](Entity& e) { e.fields[13].type = nomnom::FieldType::kJsonText; }) != fp);
  CHECK(changed([](Entity& e) { e.fields[15].array_element_oid = nomnom::kVarcharOid; }) != fp);
  CHECK(changed([](Entity& e) { e.fields.pop_back(); }) != fp);
  // Names that only differ in where one ends and the next begins.
  CHECK(changed([](Entity& e) {
          e.fields[1].name = "sv";
          e.fields[2].name = "";
        }) != changed([](Entity& e) {
          e.fields[1].name = "s";
          e.fields[2].name = "v";
        }));
  // Docs are not part of it.
  CHECK(changed([](Entity& e) { e.fields[1].doc = "changed"; }) == fp);
}

TEST_CASE("WalkTuples: accepts well-formed bodies and records each tuple's start", "[pgcopy]") {
  std::string body = TwoFieldTuple(1, "ab") + TwoFieldTuple(2, "");
  std::string null_tuple;
  PutBe16(&null_tuple, 2);
  PutBe32(&null_tuple, 0xFFFFFFFF);
  PutBe32(&null_tuple, 0xFFFFFFFF);
  body += null_tuple;
  std::vector<uint32_t> offsets;
  CHECK(nomnom::WalkTuples(body, 2, 3, &offsets).empty());
  CHECK(offsets == std::vector<uint32_t>{0, 16, 30});
  CHECK(nomnom::WalkTuples("", 2, 0, &offsets).empty());
  CHECK(offsets.empty());
}

TEST_CASE("WalkTuples: rejects broken framing with the row, field and byte", "[pgcopy]") {
  const std::string good = TwoFieldTuple(1, "abc") + TwoFieldTuple(2, "de");
  std::vector<uint32_t> offsets;
  SECTION("truncated anywhere") {
    for (size_t n = 1; n < good.size(); ++n) {
      if (n == 17) continue;  // the end of the first tuple: a valid one-row body
      INFO(n);
      CHECK_FALSE(nomnom::WalkTuples(good.substr(0, n), 2, 2, &offsets).empty());
    }
    CHECK_THAT(nomnom::WalkTuples(good.substr(0, 17), 2, 2, &offsets), Contains("1 tuples") && Contains("says 2"));
    CHECK_THAT(nomnom::WalkTuples(good.substr(0, 20), 2, 2, &offsets),
               Contains("row 2, field 1") && Contains("truncated field length"));
    CHECK_THAT(nomnom::WalkTuples(good.substr(0, good.size() - 1), 2, 2, &offsets),
               Contains("row 2, field 2") && Contains("runs past the end"));
  }
  SECTION("wrong field count") {
    CHECK_THAT(nomnom::WalkTuples(good, 3, 2, &offsets), Contains("row 1") && Contains("2 fields, the entity has 3"));
    std::string neg = good;
    neg[0] = '\xFF';
    CHECK_THAT(nomnom::WalkTuples(neg, 2, 2, &offsets), Contains("fields, the entity has 2"));
  }
  SECTION("negative lengths other than -1") {
    for (uint32_t len : {0xFFFFFFFEu, 0x80000000u, 0xFFFFFF00u}) {
      std::string t;
      PutBe16(&t, 2);
      PutBe32(&t, 4);
      PutBe32(&t, 7);
      PutBe32(&t, len);
      t.append(8, 'x');
      CHECK_THAT(nomnom::WalkTuples(t, 2, 1, &offsets),
                 Contains("row 1, field 2") && Contains("negative field length"));
    }
  }
  SECTION("lengths past the end, even huge ones") {
    std::string t;
    PutBe16(&t, 2);
    PutBe32(&t, 0x7FFFFFFF);
    CHECK_THAT(nomnom::WalkTuples(t, 2, 1, &offsets), Contains("runs past the end"));
  }
  SECTION("trailing bytes") {
    CHECK_FALSE(nomnom::WalkTuples(good + "x", 2, 2, &offsets).empty());
    CHECK_THAT(nomnom::WalkTuples(good + std::string("\0\2", 2), 2, 2, &offsets),
               Contains("row 3") && Contains("more tuples than the 2 rows"));
  }
  SECTION("row count differs from the header") {
    CHECK_THAT(nomnom::WalkTuples(good, 2, 3, &offsets), Contains("2 tuples, the Nomnom-Rows header says 3"));
    CHECK_THAT(nomnom::WalkTuples(good, 2, 1, &offsets), Contains("more tuples than the 1 rows"));
  }
}

TEST_CASE("TupleToJson: JSON -> encode -> decode -> encode gives identical bytes", "[pgcopy]") {
  const Entity e = Parse(kAllYaml);
  RowEncoder enc(e, RowEncoderOptions{});
  const std::vector<std::string> lines = {
      // Every field NULL but the key.
      R"({"id":1})",
      R"({"id":2,"s":null,"v":null,"i":null,"si":null,"f":null,"r":null,"d":null,"dp":null,"b":null,"day":null,)"
      R"("at":null,"u":null,"j":null,"jt":null,"ta":null})",
      R"({"id":-9223372036854775808,"s":"plain","v":"héllo","i":-2147483648,"si":-32768,"f":0.1,"r":0.1,)"
      R"("d":"123.4500","dp":-0.05,"b":true,"day":"2024-02-29","at":"2024-01-31T12:00:00Z",)"
      R"("u":"123E4567-E89B-12D3-A456-426614174000","j":{"a":[1,2,{"b":null}]},"jt":{"x": 1 },"ta":["a",null,""]})",
      R"({"id":9223372036854775807,"s":"quote \" backslash \\ tab \t nl \n ctrl \u0001 é 😀","v":"","i":2147483647,)"
      R"("si":32767,"f":-1.7976931348623157e308,"r":3.4028235e38,"d":0,"dp":0.00,"b":false,"day":"0001-01-01",)"
      R"("at":"0001-01-01T00:00:00Z","u":"00000000-0000-0000-0000-000000000000","j":"str","jt":[1, 2],"ta":[]})",
      R"({"id":3,"f":5e-324,"r":1e-45,"d":"NaN","day":"9999-12-31","at":"9999-12-31T23:59:59.999999Z","j":null,)"
      R"("jt":null,"ta":[null]})",
      R"({"id":4,"f":0,"r":-0.0,"d":"Infinity","at":"1999-12-31T23:59:59.5+01:00","j":1e400,"jt":"t"})",
      R"({"id":5,"f":-0.0,"r":16777217,"d":"-Infinity","at":"2000-01-01T00:00:00.000001Z","j":true})",
      R"({"id":6,"f":123456789012345678,"d":"-123456789012345678901234567890.000000000000000000001"})",
      R"({"id":7,"d":1e-7,"dp":12345678901234.56})",
      R"({"id":8,"d":100000000,"dp":-1})",
      R"({"id":9,"d":0.0001,"at":"1970-01-01T00:00:00Z","day":"1999-12-31"})",
      R"({"id":10,"d":-10000.00010000})",
  };
  for (const std::string& line : lines) {
    INFO(line);
    const std::string first = Encode(enc, line);
    std::string json, error;
    REQUIRE(nomnom::TupleToJson(e, first, &json, &error));
    INFO(json);
    const std::string second = Encode(enc, json);
    CHECK(second == first);
    // And the rendering is stable.
    std::string again;
    REQUIRE(nomnom::TupleToJson(e, second, &again, &error));
    CHECK(again == json);
  }
}

TEST_CASE("TupleToJson: readable values", "[pgcopy]") {
  const Entity e = Parse(kAllYaml);
  RowEncoder enc(e, RowEncoderOptions{});
  std::string json, error;
  REQUIRE(nomnom::TupleToJson(
      e,
      Encode(enc, R"({"id":1,"d":"-12.3400","day":"2024-02-29","at":"2024-01-31T12:00:00.25+00:00",)"
                  R"("u":"{123e4567e89b12d3a456426614174000}","b":true,"ta":["x",null]})"),
      &json, &error));
  CHECK(json == R"({"id":1,"s":null,"v":null,"i":null,"si":null,"f":null,"r":null,"d":-12.3400,"dp":null,"b":true,)"
                R"("day":"2024-02-29","at":"2024-01-31T12:00:00.250000Z","u":"123e4567-e89b-12d3-a456-426614174000",)"
                R"("j":null,"jt":null,"ta":["x",null]})");
}

TEST_CASE("TupleToJson/TupleRaw: bytes that are not a tuple of the entity", "[pgcopy]") {
  const Entity e = Parse(kAllYaml);
  RowEncoder enc(e, RowEncoderOptions{});
  const std::string good = Encode(enc, R"({"id":1,"s":"x","d":1.5})");
  std::string json, error;
  // Every truncation fails cleanly and names something.
  for (size_t n = 0; n < good.size(); ++n) {
    json.clear();
    error.clear();
    CHECK_FALSE(nomnom::TupleToJson(e, good.substr(0, n), &json, &error));
    CHECK_FALSE(error.empty());
  }
  CHECK_FALSE(nomnom::TupleToJson(e, good + "x", &json, &error));
  const std::string raw = nomnom::TupleRaw(e, std::string("\0\1\0\0\0\0", 6));
  CHECK_THAT(raw, Contains("pgcopy1 tuple (1 fields, the entity has 16): \\x000100000000"));
}
