// DelimitedEncoder: CSV / .tbl records to binary COPY tuples. The tuples of
// every generated TPC-H table are byte for byte those the NDJSON encoder makes
// from the same rows; bad values and wrong column counts are rejected naming
// the column. Pure unit tests.
#include "core/format/delimited_encoder.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/format/ndjson_reader.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"
#include "core/gen/tpch_tables.h"
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

TEST_CASE("a Json column refuses what jsonb cannot store, naming why", "[delimited][json_check]") {
  auto e = nomnom::ParseEntity(R"(entity:
  name: Doc
  fields:
    - { name: id, type: Integer, nullable: false }
    - { name: body, type: Json, nullable: true }
  persistence:
    database: { conformant_table: docs, unicity_fields: [id] }
)",
                               "docs.yaml");
  REQUIRE(e.ok());
  DelimitedEncoder enc(*e);
  ByteBuffer out;
  std::string error;
  CHECK(enc.Encode({{"1", false}, {R"({"a":"\u00e9 \ud83d\ude00"})", false}}, &out, nullptr, &error));
  const size_t good = out.size();
  CHECK_FALSE(enc.Encode({{"2", false}, {R"({"a":"x\u0000y"})", false}}, &out, nullptr, &error));
  CHECK_THAT(error, Contains("column 2") && Contains("\\u0000") && Contains("jsonb"));
  CHECK_FALSE(enc.Encode({{"3", false}, {R"(["\ud83d"])", false}}, &out, nullptr, &error));
  CHECK_THAT(error, Contains("surrogate"));
  CHECK_FALSE(
      enc.Encode({{"4", false}, {std::string(1100, '[') + std::string(1100, ']'), false}}, &out, nullptr, &error));
  CHECK_THAT(error, Contains("nested deeper than 1024 levels"));
  CHECK_FALSE(enc.Encode({{"5", false}, {"{nope}", false}}, &out, nullptr, &error));
  CHECK_THAT(error, Contains("expected a JSON value"));
  CHECK(out.size() == good);
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

namespace {

// One record's outcome, as Next + Encode or as ParseAndEncode give it.
struct Outcome {
  DelimitedEncoder::Fused result;
  size_t consumed;
  uint64_t lines;
  std::string error;
  std::string out;  // the whole buffer, which starts with "prefix"
  uint64_t hash;
};

Outcome TwoCalls(DelimitedParser* parser, DelimitedEncoder* enc, std::string_view text, bool at_end, uint64_t line) {
  Outcome o{DelimitedEncoder::Fused::kRow, 0, 0, "", "", 7};
  std::vector<DelimitedField> fields;
  ByteBuffer out;
  out.Append(std::string_view("prefix"));
  switch (parser->Next(text, at_end, line, &fields, &o.consumed, &o.lines, &o.error)) {
    case DelimitedParser::Result::kRecord:
      if (!enc->Encode(fields, &out, &o.hash, &o.error)) o.result = DelimitedEncoder::Fused::kRejected;
      break;
    case DelimitedParser::Result::kNeedMore:
      o.result = DelimitedEncoder::Fused::kNeedMore;
      break;
    case DelimitedParser::Result::kError:
      o.result = DelimitedEncoder::Fused::kParseError;
      break;
  }
  o.out.assign(reinterpret_cast<const char*>(out.data()), out.size());
  return o;
}

Outcome Fused(DelimitedParser* parser, DelimitedEncoder* enc, std::string_view text, bool at_end, uint64_t line) {
  Outcome o{DelimitedEncoder::Fused::kRow, 0, 0, "", "", 7};
  ByteBuffer out;
  out.Append(std::string_view("prefix"));
  o.result = enc->ParseAndEncode(parser, text, at_end, line, &out, &o.hash, &o.consumed, &o.lines, &o.error);
  o.out.assign(reinterpret_cast<const char*>(out.data()), out.size());
  return o;
}

// Runs `text` record by record through both ways (each with its own parser and
// encoder, `header` set on both when not empty), checks every outcome is the
// same, and returns them.
std::vector<Outcome> BothWays(const nomnom::Entity& e, DelimitedDialect dialect, std::string_view text, bool at_end,
                              const std::vector<std::string>& header = {}) {
  DelimitedParser pa(dialect), pb(dialect);
  DelimitedEncoder ea(e), eb(e);
  if (!header.empty()) {
    REQUIRE(ea.SetColumns(header).ok());
    REQUIRE(eb.SetColumns(header).ok());
  }
  std::vector<Outcome> all;
  uint64_t line = 1;
  while (!text.empty()) {
    INFO("line " << line << ": " << text);
    const Outcome a = TwoCalls(&pa, &ea, text, at_end, line);
    const Outcome b = Fused(&pb, &eb, text, at_end, line);
    CHECK(static_cast<int>(b.result) == static_cast<int>(a.result));
    CHECK(b.consumed == a.consumed);
    CHECK(b.lines == a.lines);
    CHECK(b.error == a.error);
    CHECK(b.out == a.out);
    CHECK(b.hash == a.hash);
    all.push_back(b);
    if (a.result == DelimitedEncoder::Fused::kNeedMore || a.consumed == 0) break;
    text.remove_prefix(a.consumed);
    line += a.lines;
  }
  return all;
}

nomnom::Entity FusedEntity() {
  auto e = nomnom::ParseEntity(R"(entity:
  name: Fused
  fields:
    - { name: k, type: BigInt, nullable: false }
    - { name: s, type: String, nullable: true }
    - { name: v, type: String, args: [8], nullable: true }
    - { name: d, type: Decimal, args: [15, 2], nullable: true }
    - { name: day, type: Date, nullable: false }
    - { name: n, type: Integer, nullable: true }
  persistence:
    database: { conformant_table: fused, unicity_fields: [k, day] }
)",
                               "fused.yaml");
  INFO(e.status().message());
  REQUIRE(e.ok());
  return *e;
}

}  // namespace

TEST_CASE("ParseAndEncode equals Next + Encode on CSV edge cases", "[delimited]") {
  const nomnom::Entity e = FusedEntity();
  using F = DelimitedEncoder::Fused;
  const std::string long_text(1000, 'x');  // more than the room reserved per record
  struct Case {
    std::string text;
    std::vector<F> expect;
    std::string error;  // in the last outcome's error, when not empty
  };
  const std::vector<Case> cases = {
      {"1,abc,v,1.50,2024-01-02,7\n2,,,,2024-01-01,\n", {F::kRow, F::kRow}, ""},
      {"1,abc,v,1.50,2024-01-02,7\r\n2,b,c,0.1,2024-02-29,-3\r\n", {F::kRow, F::kRow}, ""},
      {"1,\"a,b\nc\",\"\",\"2.5\",2024-01-02,7\n", {F::kRow}, ""},           // quoted, LF inside, ""
      {"1,\"say \"\"hi\"\"\",\"q\"\"\",1,2024-01-02,7\n", {F::kRow}, ""},    // "" escapes
      {"1,abc,v,1.50,2024-01-02,7", {F::kRow}, ""},                          // field at the input's end
      {"1,abc,v,1.50,2024-01-02,", {F::kRow}, ""},                           // a NULL at the end
      {"1,abc,v,1.50,2024-01-02,\"7\"", {F::kRow}, ""},                      // quoted at the end
      {"1," + long_text + ",v,1,2024-01-02,7\n", {F::kRow}, ""},             // longer than the room
      {"1,h\xC3\xA9llo,\xC3\xA9t\xC3\xA9,1,2024-01-02,7\n", {F::kRow}, ""},  // slow path, then fast
      {"1,a,b,1.2.3,2024-01-02,7\n", {F::kRejected}, "column 4 (field 'd')"},
      {"1,a,b,1,2024-01-02\n", {F::kRejected}, "expected 6 columns, found 5"},      // too few
      {"1,a,b,1,2024-01-02,7,8\n", {F::kRejected}, "expected 6 columns, found 7"},  // too many
      {",a,b,1,2024-01-02,7\n", {F::kRejected}, "column 1 (field 'k'): empty (NULL) in a NOT NULL field"},
      {"x,a,b,1,2024-01-02,7,8\n", {F::kRejected}, "expected 6 columns, found 7"},  // the count wins
      {"1,a,too long!,1,2024-01-02,7\n", {F::kRejected}, "column 3 (field 'v')"},
      {"x,a,b,1,2024-01-02,7\n2,a,b\"c,1,2024-01-02,7\n", {F::kRejected, F::kParseError}, "a quote inside"},
      {"x,a,b\"c,1,2024-01-02,7\n", {F::kParseError}, "line 1, column 3"},  // the parse error wins
      {"1,\"a\"b,v,1,2024-01-02,7\n", {F::kParseError}, "text after the closing quote"},
      {"1,\"open,v,1,2024-01-02,7\n", {F::kParseError}, "unterminated quoted field"},
      {"99999999999,a,b,1,2024-01-02,99999999999\n", {F::kRejected}, "column 6 (field 'n')"},
      {"1,a,b,1,2024-13-02,7\n", {F::kRejected}, "column 5 (field 'day')"},
  };
  for (const Case& c : cases) {
    INFO(c.text);
    const auto got = BothWays(e, DelimitedDialect::kCsv, c.text, true);
    REQUIRE(got.size() == c.expect.size());
    for (size_t i = 0; i < got.size(); ++i) CHECK(static_cast<int>(got[i].result) == static_cast<int>(c.expect[i]));
    if (!c.error.empty()) CHECK_THAT(got.back().error, Contains(c.error));
    for (const Outcome& o : got) {
      if (o.result != F::kRow) CHECK(o.out == "prefix");  // nothing left behind
    }
  }
  // Cut inside a record: more is needed, and nothing is written.
  for (std::string_view text : {"1,abc,v,1.5", "1,\"ab", "1,\"ab\"", "1,a,b,1,2024-01-02,7\r"}) {
    INFO(text);
    const auto got = BothWays(e, DelimitedDialect::kCsv, text, false);
    REQUIRE(got.size() == 1);
    CHECK(got[0].result == F::kNeedMore);
    CHECK(got[0].out == "prefix");
  }
  // A header that reorders the columns takes the two-call path inside.
  const auto mapped = BothWays(e, DelimitedDialect::kCsv, "2024-01-02,1,x\n2024-01-02,,x\n", true, {"day", "k", "s"});
  REQUIRE(mapped.size() == 2);
  CHECK(mapped[0].result == F::kRow);
  CHECK(mapped[1].result == F::kRejected);
  // The key hash is the two calls' (checked in BothWays) and not constant.
  const auto keys =
      BothWays(e, DelimitedDialect::kCsv, "1,a,b,1,2024-01-02,7\n01,c,,,2024-01-02,\n2,a,b,1,2024-01-02,7\n", true);
  REQUIRE(keys.size() == 3);
  CHECK(keys[0].hash == keys[1].hash);
  CHECK(keys[0].hash != keys[2].hash);
}

TEST_CASE("ParseAndEncode equals Next + Encode on .tbl edge cases", "[delimited]") {
  const nomnom::Entity e = FusedEntity();
  using F = DelimitedEncoder::Fused;
  const auto got = BothWays(e, DelimitedDialect::kTbl,
                            "1|abc|v|1.50|2024-01-02|7|\n"
                            "2||||2024-01-01||\r\n"
                            "3|a|b|1|2024-01-02|\n"        // too few
                            "4|a|b|1|2024-01-02|7|8|\n"    // too many
                            "5|a|b|1|2024-01-02|7\n"       // no trailing '|'
                            "x|a|b|1|2024-01-02|7|8\n"     // both: the parse error wins
                            "6|a|b|1.2.3|2024-01-02|7|\n"  // a bad decimal
                            "7|a|b|1|2024-01-02|7|",       // the input's end
                            true);
  const std::vector<F> expect = {F::kRow,        F::kRow,        F::kRejected, F::kRejected,
                                 F::kParseError, F::kParseError, F::kRejected, F::kRow};
  REQUIRE(got.size() == expect.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(static_cast<int>(got[i].result) == static_cast<int>(expect[i]));
  CHECK_THAT(got[2].error, Contains("expected 6 columns, found 5"));
  CHECK_THAT(got[4].error, Contains("line 5, column 6: a .tbl record must end in '|'"));
  CHECK_THAT(got[6].error, Contains("column 4 (field 'd')"));
  const auto cut = BothWays(e, DelimitedDialect::kTbl, "1|abc|v|1.5", false);
  REQUIRE(cut.size() == 1);
  CHECK(cut[0].result == F::kNeedMore);
}

TEST_CASE("ParseAndEncode equals Next + Encode on every TPC-H table", "[delimited]") {
  auto entities = nomnom::LoadEntityDir(SourcePath("data/tpch/entities-full"));
  REQUIRE(entities.ok());
  for (const char* name : {"region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"}) {
    INFO(name);
    const nomnom::Entity* e = nomnom::FindEntity(*entities, name);
    REQUIRE(e != nullptr);
    for (auto [fmt, dialect] : {std::pair{nomnom::TpchTextFormat::kCsv, DelimitedDialect::kCsv},
                                std::pair{nomnom::TpchTextFormat::kTbl, DelimitedDialect::kTbl}}) {
      const std::string text = Generate(*nomnom::ParseTpchTable(name), fmt);
      const auto got = BothWays(*e, dialect, text, true);
      CHECK(got.size() == Lines(text).size());
      for (const Outcome& o : got) REQUIRE(o.result == DelimitedEncoder::Fused::kRow);
    }
  }
}
