// DelimitedEncoder: CSV / .tbl records to binary COPY tuples. The tuples of
// every generated TPC-H table are byte for byte those the NDJSON encoder makes
// from the same rows; bad values and wrong column counts are rejected naming
// the column. Pure unit tests.
#include "core/delimited_encoder.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/ndjson_reader.h"
#include "core/row_encoder.h"
#include "core/schema.h"
#include "core/tpch_tables.h"
#include "tests/support/test_env.h"

using Catch::Matchers::Contains;
using nomnom::ByteBuffer;
using nomnom::DelimitedDialect;
using nomnom::DelimitedEncoder;
using nomnom::DelimitedField;
using nomnom::DelimitedParser;
using nomnom::testing::SourcePath;

namespace {

std::string Generate(nomnom::TpchTable t, nomnom::TpchTextFormat f) {
  nomnom::TpchTableOptions o;
  o.table = t;
  o.scale_factor = 0.001;
  o.seed = 3;
  o.format = f;
  std::string text;
  REQUIRE(nomnom::WriteTpchTable(o, [&](std::string_view c) {
            text.append(c);
            return nomnom::Status::Ok();
          }).ok());
  return text;
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < s.size()) {
    size_t lf = s.find('\n', start);
    out.push_back(s.substr(start, lf - start));
    start = lf + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("CSV and .tbl tuples equal the NDJSON encoder's for every TPC-H table", "[delimited]") {
  auto entities = nomnom::LoadEntityDir(SourcePath("data/tpch/entities-full"));
  REQUIRE(entities.ok());
  for (const char* name : {"region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"}) {
    INFO(name);
    const auto table = *nomnom::ParseTpchTable(name);
    const nomnom::Entity* e = nomnom::FindEntity(*entities, name);
    REQUIRE(e != nullptr);
    nomnom::RowEncoder json(*e, {});
    const auto nd = Lines(Generate(table, nomnom::TpchTextFormat::kNdjson));
    for (auto [fmt, dialect] : {std::pair{nomnom::TpchTextFormat::kCsv, DelimitedDialect::kCsv},
                                std::pair{nomnom::TpchTextFormat::kTbl, DelimitedDialect::kTbl}}) {
      const std::string text = Generate(table, fmt);
      DelimitedParser parser(dialect);
      DelimitedEncoder enc(*e);
      std::vector<DelimitedField> fields;
      std::string_view rest = text;
      size_t row = 0;
      uint64_t line = 1;
      while (!rest.empty()) {
        size_t consumed = 0;
        uint64_t lines = 0;
        std::string error;
        REQUIRE(parser.Next(rest, true, line, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kRecord);
        REQUIRE(row < nd.size());
        ByteBuffer a, b;
        std::string padded = nd[row];
        padded.append(nomnom::kChunkPadding, ' ');
        uint64_t ha = 0, hb = 0;
        REQUIRE(json.Encode(std::string_view(padded.data(), nd[row].size()), padded.size(), &a, &ha, &error));
        INFO(error);
        REQUIRE(enc.Encode(fields, &b, &hb, &error));
        REQUIRE(std::string_view(reinterpret_cast<const char*>(a.data()), a.size()) ==
                std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
        rest.remove_prefix(consumed);
        line += lines;
        ++row;
      }
      CHECK(row == nd.size());
    }
  }
}

TEST_CASE("delimited values are validated and errors name the column", "[delimited]") {
  auto e = nomnom::LoadEntityFile(SourcePath("data/tpch/entities-full/nation.yaml"));
  REQUIRE(e.ok());
  DelimitedEncoder enc(*e);
  ByteBuffer out;
  std::string error;
  auto rec = [](std::vector<std::string_view> v) {
    std::vector<DelimitedField> f;
    for (auto s : v) f.push_back(DelimitedField{s, s.empty()});
    return f;
  };
  CHECK(enc.Encode(rec({"1", "X", "2", "c"}), &out, nullptr, &error));
  const size_t good = out.size();
  CHECK_FALSE(enc.Encode(rec({"1", "X", "2"}), &out, nullptr, &error));
  CHECK_THAT(error, Contains("expected 4 columns, found 3"));
  CHECK_FALSE(enc.Encode(rec({"1", "X", "2", "c", "extra"}), &out, nullptr, &error));
  CHECK_THAT(error, Contains("expected 4 columns, found 5"));
  CHECK_FALSE(enc.Encode(rec({"1", "X", "two", "c"}), &out, nullptr, &error));
  CHECK_THAT(error, Contains("column 3") && Contains("n_regionkey") && Contains("integer"));
  CHECK_FALSE(enc.Encode(rec({"1", "", "2", "c"}), &out, nullptr, &error));
  CHECK_THAT(error, Contains("column 2") && Contains("NOT NULL"));
  CHECK_FALSE(enc.Encode(rec({"99999999999", "X", "2", "c"}), &out, nullptr, &error));
  CHECK_THAT(error, Contains("column 1") && Contains("range"));
  CHECK_FALSE(enc.Encode(rec({"1", std::string_view("this name is longer than 25 chars")}), &out, nullptr, &error));
  CHECK(out.size() == good);  // rejected rows leave nothing behind
}

TEST_CASE("a header maps columns by name", "[delimited]") {
  auto e = nomnom::LoadEntityFile(SourcePath("data/tpch/entities-full/region.yaml"));
  REQUIRE(e.ok());
  DelimitedEncoder enc(*e);
  std::vector<DelimitedField> header{{"r_regionkey", false}, {"r_name", false}, {"r_comment", false}};
  CHECK(enc.IsEntityHeader(header));
  header[0].value = "r_name";
  header[1].value = "r_regionkey";
  CHECK_FALSE(enc.IsEntityHeader(header));
  REQUIRE(enc.SetColumns({"r_name", "r_comment", "r_regionkey"}).ok());
  DelimitedEncoder plain(*e);
  ByteBuffer a, b;
  std::string error;
  REQUIRE(enc.Encode({{"ASIA", false}, {"c", false}, {"2", false}}, &a, nullptr, &error));
  REQUIRE(plain.Encode({{"2", false}, {"ASIA", false}, {"c", false}}, &b, nullptr, &error));
  CHECK(std::string_view(reinterpret_cast<const char*>(a.data()), a.size()) ==
        std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  auto unknown = enc.SetColumns({"r_name", "colour", "r_regionkey"});
  CHECK_THAT(unknown.message(), Contains("column 2 'colour'"));
  auto missing = enc.SetColumns({"r_name", "r_comment"});
  CHECK_THAT(missing.message(), Contains("NOT NULL field 'r_regionkey'"));
}

TEST_CASE("a Uuid column in CSV encodes like the NDJSON encoder's, and a bad UUID names the column", "[delimited]") {
  auto e = nomnom::ParseEntity(R"(entity:
  name: Device
  fields:
    - { name: id, type: Uuid, nullable: false }
    - { name: label, type: String, nullable: true }
  persistence:
    database: { conformant_table: devices, unicity_fields: [id] }
)",
                               "devices.yaml");
  REQUIRE(e.ok());
  DelimitedEncoder enc(*e);
  nomnom::RowEncoder json(*e, {});
  ByteBuffer a, b;
  std::string error;
  REQUIRE(enc.Encode({{"123E4567-e89b-12d3-a456-426614174000", false}, {"x", false}}, &a, nullptr, &error));
  std::string line = R"({"id":"123e4567-e89b-12d3-a456-426614174000","label":"x"})";
  const size_t size = line.size();
  line.append(nomnom::kChunkPadding, ' ');
  REQUIRE(json.Encode(std::string_view(line.data(), size), line.size(), &b, nullptr, &error));
  CHECK(std::string_view(reinterpret_cast<const char*>(a.data()), a.size()) ==
        std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
  const size_t good = a.size();
  CHECK_FALSE(enc.Encode({{"not-a-uuid", false}, {"x", false}}, &a, nullptr, &error));
  CHECK_THAT(error, Contains("column 1") && Contains("UUID"));
  CHECK(a.size() == good);
}

TEST_CASE("a key hashes by its encoded value: 1 and 01 route alike, 1 and 2 apart", "[delimited]") {
  auto e = nomnom::ParseEntity(R"(entity:
  name: Item
  fields:
    - { name: label, type: String, nullable: true }
    - { name: k, type: Integer, nullable: false }
    - { name: d, type: Date, nullable: false }
  persistence:
    database: { conformant_table: items, unicity_fields: [k, d] }
)",
                               "items.yaml");
  REQUIRE(e.ok());
  DelimitedEncoder enc(*e);
  std::string error;
  auto hash = [&](std::string_view label, std::string_view k, std::string_view d) {
    ByteBuffer out;
    out.Append("prefix");  // the tuple need not start the buffer
    uint64_t h = 0;
    REQUIRE(enc.Encode({{label, label.empty()}, {k, false}, {d, false}}, &out, &h, &error));
    return h;
  };
  const uint64_t one = hash("a", "1", "2024-01-05");
  CHECK(hash("b", "01", "2024-01-05") == one);  // same key, other text and another label
  CHECK(hash("", "+1", "2024-01-05") == one);   // a NULL label, a sign
  CHECK(hash("a", "2", "2024-01-05") != one);   // another key
  CHECK(hash("a", "1", "2024-01-06") != one);   // the second key field counts
}
