// The new column types (SmallInt, Real, JsonText, TextArray) through the CSV
// encoder: the same tuple bytes as the NDJSON encoder's for the same values,
// and bad values rejected naming the column. Pure unit tests (no database).
#include "core/format/text_array.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/byte_buffer.h"
#include "core/format/delimited_encoder.h"
#include "core/format/ndjson_reader.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"

using Catch::Matchers::Contains;
using nomnom::ByteBuffer;
using nomnom::DelimitedField;

namespace {

constexpr std::string_view kYaml = R"(entity:
  name: Kinds
  fields:
    - {name: id, type: BigInt}
    - {name: small, type: SmallInt, nullable: true}
    - {name: ratio, type: Real, nullable: true}
    - {name: raw, type: JsonText, nullable: true}
    - {name: tags, type: TextArray, nullable: true}
    - {name: codes, type: VarcharArray, args: [2], nullable: true}
  persistence:
    database: {conformant_table: kinds, unicity_fields: [id]}
)";

std::string Bytes(const ByteBuffer& b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

std::string FromJson(nomnom::RowEncoder& enc, std::string line) {
  const size_t size = line.size();
  line.append(nomnom::kChunkPadding, ' ');
  ByteBuffer out;
  std::string error;
  INFO(error);
  REQUIRE(enc.Encode(std::string_view(line.data(), size), line.size(), &out, nullptr, &error));
  return Bytes(out);
}

}  // namespace

TEST_CASE("CSV cells of SmallInt, Real, JsonText and TextArray encode like the NDJSON values", "[text_array]") {
  auto e = nomnom::ParseEntity(kYaml, "kinds.yaml");
  REQUIRE(e.ok());
  nomnom::DelimitedEncoder csv(*e);
  nomnom::RowEncoder json(*e, {});
  ByteBuffer a;
  std::string error;
  REQUIRE(csv.Encode({{"7", false},
                      {"-32768", false},
                      {"0.1", false},
                      {R"({"a": [1]})", false},
                      {R"(["x", null, "NULL"])", false},
                      {R"(["ab"])", false}},
                     &a, nullptr, &error));
  CHECK(Bytes(a) ==
        FromJson(json,
                 R"({"id":7,"small":-32768,"ratio":0.1,"raw":{"a": [1]},"tags":["x", null, "NULL"],"codes":["ab"]})"));
  ByteBuffer empty;
  REQUIRE(csv.Encode({{"8", false}, {"", true}, {"", true}, {"", true}, {"[]", false}, {"", true}}, &empty, nullptr,
                     &error));
  CHECK(Bytes(empty) == FromJson(json, R"({"id":8,"tags":[]})"));

  const size_t good = a.size();
  auto reject = [&](std::vector<DelimitedField> row) {
    error.clear();
    CHECK_FALSE(csv.Encode(row, &a, nullptr, &error));
    CHECK(a.size() == good);
    return error;
  };
  CHECK_THAT(reject({{"1", false}, {"32768", false}, {"", true}, {"", true}, {"", true}, {"", true}}),
             Contains("column 2") && Contains("SMALLINT"));
  CHECK_THAT(reject({{"1", false}, {"", true}, {"1e39", false}, {"", true}, {"", true}, {"", true}}),
             Contains("column 3") && Contains("REAL"));
  CHECK_THAT(reject({{"1", false}, {"", true}, {"inf", false}, {"", true}, {"", true}, {"", true}}),
             Contains("column 3"));
  CHECK_THAT(reject({{"1", false}, {"", true}, {"", true}, {"{a", false}, {"", true}, {"", true}}),
             Contains("column 4") && Contains("JSON"));
  CHECK_THAT(reject({{"1", false}, {"", true}, {"", true}, {"", true}, {"{a,b}", false}, {"", true}}),
             Contains("column 5") && Contains("expected a JSON array of strings"));
  CHECK_THAT(reject({{"1", false}, {"", true}, {"", true}, {"", true}, {"[1]", false}, {"", true}}),
             Contains("column 5") && Contains("element 1: expected a string or null, got number"));
  CHECK_THAT(reject({{"1", false}, {"", true}, {"", true}, {"", true}, {"", true}, {R"(["abc"])", false}}),
             Contains("column 6") && Contains("longer than VARCHAR(2)"));
}

TEST_CASE("EncodeTextArrayJson writes the array_send layout", "[text_array]") {
  nomnom::Field f;
  f.type = nomnom::FieldType::kTextArray;
  std::string payload, error;
  REQUIRE(nomnom::EncodeTextArrayJson(R"(["a",null])", f, &payload, &error));
  const std::string want = std::string("\0\0\0\1\0\0\0\1\0\0\0\x19\0\0\0\2\0\0\0\1\0\0\0\1a\xff\xff\xff\xff", 29);
  CHECK(payload == want);
  f.array_element_oid = nomnom::kVarcharOid;
  REQUIRE(nomnom::EncodeTextArrayJson("[]", f, &payload, &error));
  CHECK(payload == std::string("\0\0\0\0\0\0\0\0\0\0\x04\x13", 12));
  CHECK_FALSE(nomnom::EncodeTextArrayJson(R"({"a":1})", f, &payload, &error));
  CHECK_THAT(error, Contains("expected a JSON array of strings, got object"));
}
