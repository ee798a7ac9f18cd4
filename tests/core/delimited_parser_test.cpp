// DelimitedParser: RFC 4180 CSV and dbgen .tbl records. Pure unit tests.
#include "core/delimited_parser.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

using Catch::Matchers::Contains;
using nomnom::DelimitedDialect;
using nomnom::DelimitedField;
using nomnom::DelimitedParser;

namespace {

struct Parsed {
  std::vector<std::vector<std::string>> records;  // "\\N" marks NULL
  std::vector<uint64_t> start_lines;
  std::string error;
};

// Parses all of `text` (at_end = true), stopping at the first error.
Parsed ParseAll(DelimitedDialect dialect, std::string_view text) {
  DelimitedParser p(dialect);
  Parsed out;
  std::vector<DelimitedField> fields;
  uint64_t line = 1;
  while (!text.empty()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    std::string error;
    auto r = p.Next(text, true, line, &fields, &consumed, &lines, &error);
    if (r == DelimitedParser::Result::kError) {
      out.error = error;
      return out;
    }
    REQUIRE(r == DelimitedParser::Result::kRecord);
    REQUIRE(consumed > 0);
    std::vector<std::string> rec;
    for (const auto& f : fields) rec.push_back(f.null ? std::string("\\N") : std::string(f.value));
    out.records.push_back(rec);
    out.start_lines.push_back(line);
    text.remove_prefix(consumed);
    line += lines;
  }
  return out;
}

using Rec = std::vector<std::string>;

}  // namespace

TEST_CASE("CSV: plain, quoted, escaped quotes, NULL and empty", "[delimited]") {
  auto p = ParseAll(DelimitedDialect::kCsv, "1,abc,\"x,y\"\n2,,\"\"\n3,\"say \"\"hi\"\"\",z\n");
  REQUIRE(p.error.empty());
  REQUIRE(p.records.size() == 3);
  CHECK(p.records[0] == Rec{"1", "abc", "x,y"});
  CHECK(p.records[1] == Rec{"2", "\\N", ""});
  CHECK(p.records[2] == Rec{"3", "say \"hi\"", "z"});
}

TEST_CASE("CSV: CRLF line ends and a last record without a newline", "[delimited]") {
  auto p = ParseAll(DelimitedDialect::kCsv, "a,b\r\n\"c\",d\r\ne,f");
  REQUIRE(p.error.empty());
  REQUIRE(p.records.size() == 3);
  CHECK(p.records[0] == Rec{"a", "b"});
  CHECK(p.records[1] == Rec{"c", "d"});
  CHECK(p.records[2] == Rec{"e", "f"});
}

TEST_CASE("CSV: embedded newlines keep line numbers right", "[delimited]") {
  auto p = ParseAll(DelimitedDialect::kCsv, "1,\"two\nlines\"\n2,\"a\r\nb\"\n3,x\n");
  REQUIRE(p.error.empty());
  REQUIRE(p.records.size() == 3);
  CHECK(p.records[0] == Rec{"1", "two\nlines"});
  CHECK(p.records[1] == Rec{"2", "a\r\nb"});
  CHECK(p.start_lines == std::vector<uint64_t>{1, 3, 5});
}

TEST_CASE("CSV: a trailing separator is a last NULL field", "[delimited]") {
  auto p = ParseAll(DelimitedDialect::kCsv, "1,\n");
  REQUIRE(p.error.empty());
  REQUIRE(p.records.size() == 1);
  CHECK(p.records[0] == Rec{"1", "\\N"});
}

TEST_CASE("CSV: malformed records name line and column", "[delimited]") {
  SECTION("quote in an unquoted field") {
    auto p = ParseAll(DelimitedDialect::kCsv, "1,2\n3,ab\"c\n");
    CHECK_THAT(p.error, Contains("line 2, column 2") && Contains("quote inside an unquoted field"));
    CHECK(p.records.size() == 1);
  }
  SECTION("text after a closing quote") {
    auto p = ParseAll(DelimitedDialect::kCsv, "\"a\"b,c\n");
    CHECK_THAT(p.error, Contains("line 1, column 1") && Contains("after the closing quote"));
  }
  SECTION("unterminated quote") {
    auto p = ParseAll(DelimitedDialect::kCsv, "x\n1,\"open\nstill open");
    CHECK_THAT(p.error, Contains("line 2, column 2") && Contains("unterminated"));
  }
}

TEST_CASE("CSV: incomplete input asks for more", "[delimited]") {
  DelimitedParser p(DelimitedDialect::kCsv);
  std::vector<DelimitedField> fields;
  size_t consumed = 0;
  uint64_t lines = 0;
  std::string error;
  CHECK(p.Next("1,\"ab", false, 1, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kNeedMore);
  CHECK(p.Next("1,ab", false, 1, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kNeedMore);
  CHECK(p.Next("1,\"a\"", false, 1, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kNeedMore);
  CHECK(p.Next("1,ab\n2", false, 1, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kRecord);
  CHECK(consumed == 5);
  CHECK(lines == 1);
}

TEST_CASE("TBL: dbgen's layout", "[delimited]") {
  auto p = ParseAll(DelimitedDialect::kTbl, "1|AFRICA|x, \"y\"|\n2||z|\r\n3|last|");
  REQUIRE(p.error.empty());
  REQUIRE(p.records.size() == 3);
  CHECK(p.records[0] == Rec{"1", "AFRICA", "x, \"y\""});
  CHECK(p.records[1] == Rec{"2", "\\N", "z"});
  CHECK(p.records[2] == Rec{"3", "last"});
}

TEST_CASE("TBL: a record without its trailing bar names line and column", "[delimited]") {
  auto p = ParseAll(DelimitedDialect::kTbl, "1|a|\n2|b\n");
  CHECK_THAT(p.error, Contains("line 2, column 2") && Contains("must end in '|'"));
  CHECK(p.records.size() == 1);
}

TEST_CASE("CSV: many quoted fields in one record stay intact", "[delimited]") {
  // Regression (found by fuzz_delimited): unescaped fields were kept in a
  // vector of strings, and growing it moved short strings the earlier fields
  // pointed into.
  std::string text;
  Rec want;
  for (int i = 0; i < 40; ++i) {
    if (i > 0) text += ',';
    text += "\"q" + std::to_string(i) + "\"";
    want.push_back("q" + std::to_string(i));
  }
  text += '\n';
  auto p = ParseAll(DelimitedDialect::kCsv, text);
  REQUIRE(p.error.empty());
  REQUIRE(p.records.size() == 1);
  CHECK(p.records[0] == want);
}
