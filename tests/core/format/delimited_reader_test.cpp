// DelimitedReader: CSV / .tbl inputs cut into chunks of whole records. Every
// chunk size from 1 byte up puts a chunk boundary at every position of the
// input, so a quoted field holding line breaks (LF and CRLF) is cut at every
// byte: each chunk must still parse into whole records, with the physical
// line numbers a parse of the whole input gives. Also the scanner itself,
// too-long records, the input formats and header decisions. Pure unit tests.
#include "core/format/delimited_reader.h"

#include <catch2/catch.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/format/schema.h"
#include "tests/support/test_env.h"

using Catch::Matchers::Contains;
using nomnom::Chunk;
using nomnom::DelimitedDialect;
using nomnom::DelimitedField;
using nomnom::DelimitedParser;
using nomnom::DelimitedReader;
using nomnom::InputFormat;
using nomnom::NdjsonReaderOptions;
using nomnom::testing::TempDir;

namespace {

struct Record {
  uint64_t line = 0;
  std::vector<std::string> values;  // "\\N" marks NULL
  std::string error;                // when the record is malformed
  bool operator==(const Record& o) const { return line == o.line && values == o.values && error == o.error; }
};

// Parses text made of whole records, starting on line first_line.
std::vector<Record> ParseRecords(DelimitedDialect dialect, std::string_view text, uint64_t first_line) {
  DelimitedParser p(dialect);
  std::vector<Record> out;
  std::vector<DelimitedField> fields;
  uint64_t line = first_line;
  while (!text.empty()) {
    size_t consumed = 0;
    uint64_t lines = 0;
    std::string error;
    auto r = p.Next(text, true, line, &fields, &consumed, &lines, &error);
    REQUIRE(r != DelimitedParser::Result::kNeedMore);
    REQUIRE(consumed > 0);
    Record rec;
    rec.line = line;
    if (r == DelimitedParser::Result::kError) {
      rec.error = error;
    } else {
      for (const auto& f : fields) rec.values.push_back(f.null ? std::string("\\N") : std::string(f.value));
    }
    out.push_back(rec);
    text.remove_prefix(consumed);
    line += lines;
  }
  return out;
}

struct ReadResult {
  std::vector<Record> records;  // parsed chunk by chunk
  std::string joined;           // the chunks' bytes, concatenated
  std::vector<nomnom::OversizeLine> oversize;
  size_t chunks = 0;
};

ReadResult ReadAll(const std::string& path, DelimitedDialect dialect, size_t chunk_bytes,
                   size_t max_line_bytes = 1 << 20) {
  NdjsonReaderOptions o;
  o.chunk_bytes = chunk_bytes;
  o.max_line_bytes = max_line_bytes;
  auto reader = DelimitedReader::Open(path, dialect, o);
  REQUIRE(reader.ok());
  ReadResult out;
  Chunk chunk;
  uint64_t expect_line = 1;
  for (;;) {
    auto more = (*reader)->Next(&chunk);
    REQUIRE(more.ok());
    for (const auto& x : chunk.oversize) out.oversize.push_back(x);
    if (!*more) break;
    ++out.chunks;
    const std::string_view text = chunk.data.view();
    REQUIRE(!text.empty());
    CHECK(text.back() == '\n');
    // Lines are contiguous unless a too-long record was dropped before.
    if (out.oversize.empty()) CHECK(chunk.first_line == expect_line);
    CHECK(chunk.line_count == static_cast<uint64_t>(std::count(text.begin(), text.end(), '\n')));
    expect_line = chunk.first_line + chunk.line_count;
    for (auto& r : ParseRecords(dialect, text, chunk.first_line)) out.records.push_back(r);
    out.joined.append(text);
  }
  return out;
}

using Values = std::vector<std::string>;

}  // namespace

TEST_CASE("ScanCsvRecords finds the line breaks that end records", "[delimited_reader]") {
  size_t first = 0, last = 0;
  SECTION("plain lines") {
    CHECK_FALSE(nomnom::ScanCsvRecords("a,b\nc,d\n", false, &first, &last));
    CHECK(first == 4);
    CHECK(last == 8);
  }
  SECTION("a quoted field holding a line break") {
    const std::string t = "1,\"x\ny\"\n2,z\n";
    CHECK_FALSE(nomnom::ScanCsvRecords(t, false, &first, &last));
    CHECK(first == t.find("2,z"));
    CHECK(last == t.size());
  }
  SECTION("ends inside a quoted field") {
    const std::string t = "1,a\n2,\"x\ny,\"\"\n";
    CHECK(nomnom::ScanCsvRecords(t, false, &first, &last));
    CHECK(first == 4);
    CHECK(last == 4);
  }
  SECTION("continues a quoted field") {
    const std::string t = "still inside\nend\",3\n4,5\n";
    CHECK_FALSE(nomnom::ScanCsvRecords(t, true, &first, &last));
    CHECK(first == t.find("4,5"));
    CHECK(last == t.size());
    CHECK(nomnom::ScanCsvRecords("no quote\nhere\n", true, &first, &last));
    CHECK(first == 0);
    CHECK(last == 0);
  }
  SECTION("CRLF") {
    const std::string t = "\"a\r\nb\"\r\nc\r\n";
    CHECK_FALSE(nomnom::ScanCsvRecords(t, false, &first, &last));
    CHECK(first == t.find('c'));
    CHECK(last == t.size());
  }
  SECTION("a quote inside an unquoted field opens nothing: the parser resumes at the next line") {
    const std::string t = "ab\"c\n1,2\n";
    CHECK_FALSE(nomnom::ScanCsvRecords(t, false, &first, &last));
    CHECK(first == 5);
    CHECK(last == t.size());
  }
  SECTION("text after a closing quote: the record ends at its line's end") {
    const std::string t = "\"a\"x,\"b\n1\n";
    CHECK_FALSE(nomnom::ScanCsvRecords(t, false, &first, &last));
    CHECK(first == t.find("1\n"));
  }
}

TEST_CASE("DelimitedReader: a chunk boundary at every byte never cuts a record", "[delimited_reader]") {
  TempDir dir;
  // Quoted fields with line breaks (LF and CRLF), commas, escaped quotes, an
  // empty quoted field, a blank line, and a last record without its newline.
  const std::string text =
      "id,name,note\n"
      "1,\"multi\nline\nfield\",plain\n"
      "2,\"comma, and \"\"quote\"\"\",\"\"\r\n"
      "3,\"crlf\r\ninside\",x\r\n"
      "\n"
      "4,,\"last\nrecord, no newline\"";
  const std::string path = dir.Write("t.csv", text);
  const std::vector<Record> whole = ParseRecords(DelimitedDialect::kCsv, text, 1);
  REQUIRE(whole.size() == 6);
  CHECK(whole[1] == Record{2, Values{"1", "multi\nline\nfield", "plain"}, ""});
  CHECK(whole[2] == Record{5, Values{"2", "comma, and \"quote\"", ""}, ""});
  CHECK(whole[3] == Record{6, Values{"3", "crlf\r\ninside", "x"}, ""});
  CHECK(whole[5] == Record{9, Values{"4", "\\N", "last\nrecord, no newline"}, ""});
  for (size_t chunk_bytes = 1; chunk_bytes <= text.size() + 1; ++chunk_bytes) {
    INFO("chunk_bytes " << chunk_bytes);
    const ReadResult r = ReadAll(path, DelimitedDialect::kCsv, chunk_bytes);
    CHECK(r.oversize.empty());
    CHECK(r.joined == text + "\n");  // the missing final newline is supplied
    CHECK(r.records == whole);
    if (chunk_bytes == 1) CHECK(r.chunks == whole.size());  // every record its own chunk (the blank line too)
  }
}

TEST_CASE("DelimitedReader: malformed quoting costs only its own records", "[delimited_reader]") {
  TempDir dir;
  const std::string text =
      "1,ab\"c,x\n"              // a quote inside an unquoted field
      "2,\"q\"junk,\"y\n"        // text after a closing quote; the quote after it is on the same line
      "3,\"ok\nok\",z\n"         // a good multi-line record after them
      "4,\"open\nto the end\n";  // unterminated at the end of the input
  const std::string path = dir.Write("bad.csv", text);
  const std::vector<Record> whole = ParseRecords(DelimitedDialect::kCsv, text, 1);
  REQUIRE(whole.size() == 4);
  CHECK_THAT(whole[0].error, Contains("quote inside an unquoted field"));
  CHECK_THAT(whole[1].error, Contains("after the closing quote"));
  CHECK(whole[2] == Record{3, Values{"3", "ok\nok", "z"}, ""});
  CHECK_THAT(whole[3].error, Contains("unterminated"));
  CHECK(whole[3].line == 5);
  for (size_t chunk_bytes = 1; chunk_bytes <= text.size() + 1; ++chunk_bytes) {
    INFO("chunk_bytes " << chunk_bytes);
    const ReadResult r = ReadAll(path, DelimitedDialect::kCsv, chunk_bytes);
    CHECK(r.records == whole);
  }
}

TEST_CASE("DelimitedReader: random CSV-like bytes give the whole input's records at every chunk size",
          "[delimited_reader]") {
  // Well formed or not: the reader's record ends must be the parser's, or a
  // chunk would cut a record (or glue two) and records would change.
  TempDir dir;
  std::mt19937 rng(20261128);
  const char alphabet[] = {'a', 'b', ',', ',', '"', '"', '\n', '\n', '\r', ' '};
  for (int round = 0; round < 300; ++round) {
    std::string text(1 + rng() % 40, ' ');
    for (char& c : text) c = alphabet[rng() % sizeof alphabet];
    const std::string path = dir.Write("r.csv", text);
    // What the reader hands out always ends in a line break: parse that.
    const std::string whole_text = text.back() == '\n' ? text : text + "\n";
    const std::vector<Record> whole = ParseRecords(DelimitedDialect::kCsv, whole_text, 1);
    for (size_t chunk_bytes = 1; chunk_bytes <= text.size() + 1; ++chunk_bytes) {
      INFO("text '" << text << "', chunk_bytes " << chunk_bytes);
      const ReadResult r = ReadAll(path, DelimitedDialect::kCsv, chunk_bytes);
      CHECK(r.joined == whole_text);
      CHECK(r.records == whole);
    }
  }
}

TEST_CASE("DelimitedReader: .tbl chunks are whole lines, CRLF and a missing final newline too", "[delimited_reader]") {
  TempDir dir;
  const std::string text = "1|a|x|\r\n2||y|\n3|c|\"z|";
  const std::string path = dir.Write("t.tbl", text);
  const std::vector<Record> whole = ParseRecords(DelimitedDialect::kTbl, text, 1);
  REQUIRE(whole.size() == 3);
  CHECK(whole[2] == Record{3, Values{"3", "c", "\"z"}, ""});
  for (size_t chunk_bytes = 1; chunk_bytes <= text.size() + 1; ++chunk_bytes) {
    const ReadResult r = ReadAll(path, DelimitedDialect::kTbl, chunk_bytes);
    CHECK(r.records == whole);
  }
}

TEST_CASE("DelimitedReader: records longer than the limit are reported, the others kept", "[delimited_reader]") {
  TempDir dir;
  const std::string long_field(300, 'x');
  SECTION("a multi-line record longer than the limit, every line of it short") {
    std::string text = "1,a\n2,\"";
    for (int i = 0; i < 10; ++i) text += long_field.substr(0, 60) + "\n";
    text += "\",b\n3,c\n";
    const std::string path = dir.Write("long.csv", text);
    for (size_t chunk_bytes : {size_t{1}, size_t{50}, size_t{300}}) {
      INFO("chunk_bytes " << chunk_bytes);
      const ReadResult r = ReadAll(path, DelimitedDialect::kCsv, chunk_bytes, 200);
      REQUIRE(r.oversize.size() == 1);
      CHECK(r.oversize[0].line == 2);
      CHECK(r.oversize[0].last_line == 12);
      CHECK(r.oversize[0].bytes > 200);
      CHECK(r.oversize[0].prefix.rfind("2,\"xxx", 0) == 0);
      REQUIRE(r.records.size() == 2);
      CHECK(r.records[0] == Record{1, Values{"1", "a"}, ""});
      CHECK(r.records[1] == Record{13, Values{"3", "c"}, ""});
    }
    // Within one line chunk the record is kept (the pipeline rejects it by its size).
    const ReadResult r = ReadAll(path, DelimitedDialect::kCsv, 4096, 200);
    CHECK(r.oversize.empty());
    REQUIRE(r.records.size() == 3);
    CHECK(r.records[1].line == 2);
  }
  SECTION("a line longer than the limit inside a quoted field: that record, once") {
    const std::string text = "1,a\n2,\"short\n" + long_field + "\n\",b\n3,c\n";
    const std::string path = dir.Write("longline.csv", text);
    const ReadResult r = ReadAll(path, DelimitedDialect::kCsv, 64, 200);
    REQUIRE(r.oversize.size() == 1);
    CHECK(r.oversize[0].line == 2);
    CHECK(r.oversize[0].last_line == 3);
    // Reading resumes at the next line as at a record start: its lone quote
    // opens a field, so the rest is one bad record, not silently data.
    REQUIRE(!r.records.empty());
    CHECK(r.records[0] == Record{1, Values{"1", "a"}, ""});
    CHECK(r.records.back().line >= 4);
  }
  SECTION("a long single line at a record start") {
    const std::string text = "1,a\n2," + long_field + "\n3,c\n";
    const std::string path = dir.Write("longone.csv", text);
    const ReadResult r = ReadAll(path, DelimitedDialect::kCsv, 64, 200);
    REQUIRE(r.oversize.size() == 1);
    CHECK(r.oversize[0].line == 2);
    CHECK(r.oversize[0].last_line == 0);
    REQUIRE(r.records.size() == 2);
    CHECK(r.records[1] == Record{3, Values{"3", "c"}, ""});
  }
}

TEST_CASE("input formats by name", "[delimited_reader]") {
  CHECK(nomnom::InputFormatOfPath("a.csv") == InputFormat::kCsv);
  CHECK(nomnom::InputFormatOfPath("dir/lineitem.tbl.gz") == InputFormat::kTbl);
  CHECK(nomnom::InputFormatOfPath("a.csv.zst") == InputFormat::kCsv);
  CHECK(nomnom::InputFormatOfPath("a.ndjson") == InputFormat::kNdjson);
  CHECK(nomnom::InputFormatOfPath("a.jsonl.gz") == InputFormat::kNdjson);
  CHECK(nomnom::InputFormatOfPath("-") == InputFormat::kNdjson);
  CHECK(nomnom::InputFormatOfPath("csv") == InputFormat::kNdjson);
  auto same = nomnom::ResolveInputFormat({"a.tbl", "b.tbl.gz"}, InputFormat::kAuto);
  REQUIRE(same.ok());
  CHECK(*same == InputFormat::kTbl);
  auto mixed = nomnom::ResolveInputFormat({"a.csv", "b.ndjson"}, InputFormat::kAuto);
  REQUIRE_FALSE(mixed.ok());
  CHECK_THAT(mixed.status().message(), Contains("a.csv is csv") && Contains("b.ndjson is ndjson"));
  auto forced = nomnom::ResolveInputFormat({"a.csv", "b.ndjson"}, InputFormat::kCsv);
  REQUIRE(forced.ok());
  CHECK(*forced == InputFormat::kCsv);
  CHECK_FALSE(nomnom::ParseInputFormat("xml").ok());
}

TEST_CASE("header decisions", "[delimited_reader]") {
  auto entity = nomnom::ParseEntity(R"(
entity:
  name: Item
  fields:
    - { name: id, type: Integer, nullable: false }
    - { name: label, type: String, nullable: true }
    - { name: price, type: Float, nullable: true }
  persistence:
    database: { conformant_table: items, unicity_fields: [id] }
)",
                                    "test");
  REQUIRE(entity.ok());
  auto fields = [](std::vector<std::string> v) {
    static std::vector<std::string> keep;
    keep = std::move(v);
    std::vector<DelimitedField> out;
    for (const auto& s : keep) out.push_back(DelimitedField{s, s.empty()});
    return out;
  };
  using nomnom::HeaderMode;
  SECTION("auto: field names in any order are a header; data is not") {
    auto d = nomnom::DecideHeader(*entity, HeaderMode::kAuto, false, "a.csv", 1, true, "", fields({"price", "id"}));
    REQUIRE(d.ok());
    CHECK(d->is_header);
    CHECK(d->columns == Values{"price", "id"});
    d = nomnom::DecideHeader(*entity, HeaderMode::kAuto, false, "a.csv", 1, true, "", fields({"1", "label", "2.5"}));
    REQUIRE(d.ok());
    CHECK_FALSE(d->is_header);
    d = nomnom::DecideHeader(*entity, HeaderMode::kAuto, false, "a.csv", 1, true, "", fields({"id", "id", "label"}));
    REQUIRE(d.ok());
    CHECK_FALSE(d->is_header);
  }
  SECTION("kYes: any record is the header, and a bad one is an error naming the input and line") {
    auto d = nomnom::DecideHeader(*entity, HeaderMode::kYes, true, "a.csv", 3, true, "", fields({"id", "colour"}));
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.status().message(), Contains("a.csv:3:") && Contains("'colour'"));
    d = nomnom::DecideHeader(*entity, HeaderMode::kYes, true, "a.csv", 1, true, "", fields({"label"}));
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.status().message(), Contains("NOT NULL field 'id'"));
    d = nomnom::DecideHeader(*entity, HeaderMode::kYes, true, "a.csv", 1, false, "column 2: unterminated", {});
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.status().message(), Contains("cannot read the header: column 2: unterminated"));
  }
  SECTION("kYes without strict: columns the entity does not have are left out") {
    auto d = nomnom::DecideHeader(*entity, HeaderMode::kYes, false, "a.csv", 1, true, "",
                                  fields({"colour", "id", "size", "label"}));
    REQUIRE(d.ok());
    CHECK(d->is_header);
    CHECK(d->columns == Values{"id", "label"});
    CHECK(d->kept == std::vector<size_t>{1, 3});
    CHECK(d->width == 4);
    d = nomnom::DecideHeader(*entity, HeaderMode::kYes, false, "a.csv", 1, true, "", fields({"id", "label"}));
    REQUIRE(d.ok());
    CHECK(d->kept.empty());  // every column loaded
    d = nomnom::DecideHeader(*entity, HeaderMode::kYes, false, "a.csv", 1, true, "", fields({"colour", "size"}));
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.status().message(), Contains("names no field of entity Item"));
  }
  SECTION("kNo: never a header") {
    auto d =
        nomnom::DecideHeader(*entity, HeaderMode::kNo, false, "a.csv", 1, true, "", fields({"id", "label", "price"}));
    REQUIRE(d.ok());
    CHECK_FALSE(d->is_header);
  }
}
