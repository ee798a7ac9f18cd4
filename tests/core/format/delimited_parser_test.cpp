// DelimitedParser: RFC 4180 CSV and dbgen .tbl records. Pure unit tests.
#include "core/format/delimited_parser.h"

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

TEST_CASE("CSV: a CR is data before a separator, not before a line end", "[delimited]") {
  auto p = ParseAll(DelimitedDialect::kCsv, "a\r,b\r\nc,d\r");
  REQUIRE(p.error.empty());
  REQUIRE(p.records.size() == 2);
  CHECK(p.records[0] == Rec{"a\r", "b"});
  CHECK(p.records[1] == Rec{"c", "d"});
}

TEST_CASE("delimited: a field that ends at the end of the input", "[delimited]") {
  // The parser scans 64 bytes at a time while that many remain, then byte by
  // byte: fields ending at and around the last byte, with and without more
  // input to come, at every length up to two blocks.
  for (DelimitedDialect d : {DelimitedDialect::kCsv, DelimitedDialect::kTbl}) {
    const char sep = d == DelimitedDialect::kCsv ? ',' : '|';
    for (size_t len = 1; len <= 140; ++len) {
      std::string text = "1" + std::string(1, sep) + std::string(len, 'x');
      if (d == DelimitedDialect::kTbl) text += '|';
      INFO("dialect " << static_cast<int>(d) << ", field of " << len << " bytes, no newline");
      DelimitedParser parser(d);
      std::vector<DelimitedField> fields;
      size_t consumed = 0;
      uint64_t lines = 0;
      std::string error;
      CHECK(parser.Next(text, false, 1, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kNeedMore);
      REQUIRE(parser.Next(text, true, 1, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kRecord);
      CHECK(consumed == text.size());
      CHECK(lines == 0);
      REQUIRE(fields.size() == 2);
      CHECK(fields[1].value == std::string(len, 'x'));
      text += '\n';
      REQUIRE(parser.Next(text, false, 1, &fields, &consumed, &lines, &error) == DelimitedParser::Result::kRecord);
      CHECK(consumed == text.size());
      CHECK(lines == 1);
      REQUIRE(fields.size() == 2);
      CHECK(fields[1].value == std::string(len, 'x'));
    }
  }
}

TEST_CASE("CSV: a quote inside an unquoted field is found in any block", "[delimited]") {
  for (size_t at = 0; at < 140; ++at) {
    std::string field(140, 'y');
    field[at] = '"';
    if (at == 0) field[at] = 'y';  // a quote first would open a quoted field
    if (at == 0) continue;
    const std::string text = "1,2,3," + field + ",5\n6\n";
    INFO("quote at " << at);
    auto p = ParseAll(DelimitedDialect::kCsv, text);
    CHECK_THAT(p.error, Contains("line 1, column 4") && Contains("quote inside an unquoted field"));
  }
}

namespace {

// A small deterministic generator (the tests must not depend on the clock).
struct Rng {
  uint64_t s;
  uint64_t Next(uint64_t n) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (s >> 33) % n;
  }
};

}  // namespace

TEST_CASE("delimited: random records parse back to the fields they were written from", "[delimited]") {
  // Records written from known fields (quoted when they must be, "" for a
  // quote, CRLF or LF, fields of 0..150 bytes so separators fall on every
  // position of the 64-byte blocks), then parsed whole and in pieces: the
  // same fields, line numbers and lengths either way.
  for (DelimitedDialect d : {DelimitedDialect::kCsv, DelimitedDialect::kTbl}) {
    const bool csv = d == DelimitedDialect::kCsv;
    Rng rng{csv ? 7u : 11u};
    std::string text;
    std::vector<Rec> want;
    std::vector<uint64_t> want_lines;
    uint64_t line = 1;
    for (int r = 0; r < 400; ++r) {
      Rec rec;
      const size_t nf = 1 + rng.Next(12);
      want_lines.push_back(line);
      for (size_t f = 0; f < nf; ++f) {
        if (f > 0) text += csv ? ',' : '|';
        const size_t len = rng.Next(8) == 0 ? 40 + rng.Next(110) : rng.Next(12);
        std::string v;
        const char* alphabet = csv ? "ab1.- ,\"\r\n|" : "ab1.- ,\"\r";
        const size_t special = csv ? 11 : 9;
        for (size_t k = 0; k < len; ++k) {
          v.push_back(rng.Next(6) == 0 ? alphabet[rng.Next(special)] : alphabet[rng.Next(5)]);
        }
        if (!csv) {
          if (!v.empty() && v.back() == '\r' && f + 1 == nf) v.back() = 'z';  // a last CR is the CRLF's
          text += v;
          rec.push_back(v.empty() ? "\\N" : v);
          continue;
        }
        const bool quote =
            v.find_first_of(",\"\r\n") != std::string::npos || (v.empty() && rng.Next(2) == 0) || rng.Next(10) == 0;
        if (quote) {
          text += '"';
          for (char c : v) {
            if (c == '"') text += '"';
            if (c == '\n') ++line;
            text += c;
          }
          text += '"';
          rec.push_back(v);
        } else {
          text += v;
          rec.push_back(v.empty() ? "\\N" : v);
        }
      }
      if (!csv) text += '|';
      const bool last = r + 1 == 400;
      if (!last || rng.Next(2) == 0) {
        text += rng.Next(3) == 0 ? "\r\n" : "\n";
        ++line;
      }
      want.push_back(rec);
    }
    INFO("dialect " << (csv ? "csv" : "tbl"));
    auto p = ParseAll(d, text);
    REQUIRE(p.error.empty());
    REQUIRE(p.records.size() == want.size());
    for (size_t r = 0; r < want.size(); ++r) {
      INFO("record " << r);
      CHECK(p.records[r] == want[r]);
      CHECK(p.start_lines[r] == want_lines[r]);
    }
    // In pieces, as a reader hands out chunks: every record is either
    // complete in the piece or asked for again with more.
    DelimitedParser parser(d);
    std::vector<DelimitedField> fields;
    size_t pos = 0, r = 0;
    uint64_t at_line = 1;
    size_t piece = 1 + rng.Next(300);
    while (pos < text.size()) {
      const bool at_end = pos + piece >= text.size();
      const std::string_view rest = std::string_view(text).substr(pos, piece);
      size_t consumed = 0;
      uint64_t lines = 0;
      std::string error;
      const auto res = parser.Next(rest, at_end, at_line, &fields, &consumed, &lines, &error);
      REQUIRE(res != DelimitedParser::Result::kError);
      if (res == DelimitedParser::Result::kNeedMore) {
        REQUIRE(!at_end);
        piece *= 2;  // the record did not fit: a longer piece
        continue;
      }
      piece = 1 + rng.Next(300);
      Rec got;
      for (const auto& f : fields) got.push_back(f.null ? std::string("\\N") : std::string(f.value));
      REQUIRE(r < want.size());
      CHECK(got == want[r]);
      pos += consumed;
      at_line += lines;
      ++r;
    }
    CHECK(r == want.size());
  }
}
