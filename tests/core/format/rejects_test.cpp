// Rejected rows: UTF-8 escaping, the JSON record format and the thread-safe
// rejects file writer. Pure unit tests.
#include "core/format/rejects.h"

#include <simdjson.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/test_env.h"

using Catch::Matchers::Contains;
using nomnom::EscapeInvalidUtf8;
using nomnom::RejectFileWriter;
using nomnom::RejectRecord;
using nomnom::RejectToJson;
using nomnom::testing::ReadFile;
using nomnom::testing::TempDir;

namespace {

bool IsValidUtf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

RejectRecord Record(std::string file, uint64_t line, std::string error, std::string raw) {
  RejectRecord r;
  r.file = std::move(file);
  r.line = line;
  r.error = std::move(error);
  r.raw = std::move(raw);
  return r;
}

nlohmann::json ParseJson(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  INFO("text: " << text);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

}  // namespace

TEST_CASE("EscapeInvalidUtf8 keeps valid text", "[rejects]") {
  for (const std::string& s : {
           std::string(),
           std::string("plain ASCII {\"a\":1} \\ \t\r\n"),
           std::string("\x7f"),
           std::string("caf\xc3\xa9"),             // U+00E9
           std::string("\xc2\x80"),                // U+0080, smallest 2-byte
           std::string("\xe2\x82\xac"),            // U+20AC
           std::string("\xe0\xa0\x80"),            // U+0800, smallest 3-byte
           std::string("\xed\x9f\xbf"),            // U+D7FF, just below surrogates
           std::string("\xee\x80\x80"),            // U+E000, just above
           std::string("\xef\xbf\xbf"),            // U+FFFF
           std::string("\xf0\x90\x80\x80"),        // U+10000, smallest 4-byte
           std::string("\xf0\x9f\x98\x80 smile"),  // U+1F600
           std::string("\xf4\x8f\xbf\xbf"),        // U+10FFFF, the largest
           std::string("a\0b", 3),                 // NUL is valid UTF-8
           std::string("already escaped \\xFF text stays as it is"),
       }) {
    INFO("input: " << s);
    CHECK(EscapeInvalidUtf8(s) == s);
  }
}

TEST_CASE("EscapeInvalidUtf8 escapes each invalid byte as \\xNN", "[rejects]") {
  const std::pair<std::string, std::string> cases[] = {
      {"a\x80"
       "b",
       "a\\x80b"},  // lone continuation byte
      {"\xbf", "\\xBF"},
      {"\xff", "\\xFF"},  // never valid
      {"\xfe\xff", "\\xFE\\xFF"},
      {"\xc0\xaf", "\\xC0\\xAF"},                    // overlong '/'
      {"\xc1\xbf", "\\xC1\\xBF"},                    // overlong
      {"\xe0\x80\xaf", "\\xE0\\x80\\xAF"},           // overlong 3-byte '/'
      {"\xf0\x80\x80\xaf", "\\xF0\\x80\\x80\\xAF"},  // overlong 4-byte '/'
      {"\xed\xa0\x80", "\\xED\\xA0\\x80"},           // surrogate U+D800
      {"\xed\xbf\xbf", "\\xED\\xBF\\xBF"},           // surrogate U+DFFF
      {"\xf4\x90\x80\x80", "\\xF4\\x90\\x80\\x80"},  // U+110000
      {"\xf5\x80\x80\x80", "\\xF5\\x80\\x80\\x80"},
      {"ab\xe2\x82", "ab\\xE2\\x82"},  // truncated at the end
      {"\xe2", "\\xE2"},
      {"\xf0\x9f\x98", "\\xF0\\x9F\\x98"},
      {"\xe2\x82x\xe2\x82\xac", "\\xE2\\x82x\xe2\x82\xac"},  // truncated mid-text, then a valid char
      {"\xc3(", "\\xC3("},                                   // lead byte followed by a non-continuation
      {"\xc3\xa9\xa9", "\xc3\xa9\\xA9"},                     // one continuation too many
  };
  for (const auto& [in, want] : cases) {
    INFO("input bytes: " << in);
    const std::string out = EscapeInvalidUtf8(in);
    CHECK(out == want);
    CHECK(IsValidUtf8(out));
  }
}

TEST_CASE("EscapeInvalidUtf8 output is always valid UTF-8 and valid input is untouched", "[rejects]") {
  std::mt19937 rng(12345);
  // Bytes biased towards the interesting ranges (lead and continuation bytes).
  const unsigned char alphabet[] = {'a',  '"',  '\\', 0x00, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0,
                                    0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xfe, 0xff};
  std::uniform_int_distribution<size_t> pick(0, sizeof alphabet - 1);
  std::uniform_int_distribution<size_t> length(0, 12);
  int valid_inputs = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s;
    const size_t n = length(rng);
    for (size_t i = 0; i < n; ++i) s.push_back(static_cast<char>(alphabet[pick(rng)]));
    const std::string out = EscapeInvalidUtf8(s);
    INFO("input size " << s.size());
    CHECK(IsValidUtf8(out));
    if (IsValidUtf8(s)) {
      ++valid_inputs;
      CHECK(out == s);
    } else {
      CHECK(out != s);
      CHECK(out.size() > s.size());  // each bad byte became 4 characters
    }
    CHECK(EscapeInvalidUtf8(out) == out);  // idempotent
  }
  CHECK(valid_inputs > 100);  // the generator does produce both kinds
}

TEST_CASE("RejectToJson writes a parseable object with file, line, error and raw", "[rejects]") {
  const RejectRecord r = Record("data/orders.ndjson", 42, "field 'x': expected a string, got number",
                                R"({"x":5,"q":"say \"hi\"","p":"C:\\dir"})");
  const std::string text = RejectToJson(r);
  CHECK(text.find('\n') == std::string::npos);
  const nlohmann::json j = ParseJson(text);
  REQUIRE(j.is_object());
  CHECK(j.size() == 4);
  CHECK(j.at("file") == "data/orders.ndjson");
  CHECK(j.at("line").is_number_unsigned());
  CHECK(j.at("line") == 42);
  CHECK(j.at("error") == "field 'x': expected a string, got number");
  CHECK(j.at("raw") == r.raw);
  // Keys in the documented order.
  CHECK(text.rfind(R"({"file":)", 0) == 0);
  CHECK(text.find(R"("line":)") < text.find(R"("error":)"));
  CHECK(text.find(R"("error":)") < text.find(R"("raw":)"));
}

TEST_CASE("RejectToJson round-trips any valid UTF-8 raw line exactly", "[rejects]") {
  std::string all_controls;
  for (int c = 0; c < 0x20; ++c) all_controls.push_back(static_cast<char>(c));
  for (const std::string& raw : {
           std::string(),
           std::string("\"quoted\" and \\backslashes\\ and \\\" both"),
           std::string("tab\there, newline\nthere, cr\rthere"),
           std::string("{\"a\":\"\\u0000\"} literal escape text"),
           all_controls,
           std::string("\x7f del, caf\xc3\xa9, \xe2\x82\xac, \xf0\x9f\x98\x80, \xf4\x8f\xbf\xbf"),
           std::string("/ slash </script> \xe2\x80\xa8 line separator"),
           std::string(5000, 'x'),
       }) {
    const std::string text = RejectToJson(Record("-", 1, "why", raw));
    INFO("raw: " << raw);
    CHECK(text.find('\n') == std::string::npos);  // one record is one line
    const nlohmann::json j = ParseJson(text);
    CHECK(j.at("raw").get<std::string>() == raw);
    CHECK(j.at("file") == "-");
    // simdjson agrees that it is JSON.
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    REQUIRE(parser.parse(text).get(doc) == simdjson::SUCCESS);
    std::string_view raw_back;
    REQUIRE(doc["raw"].get(raw_back) == simdjson::SUCCESS);
    CHECK(raw_back == raw);
  }
}

TEST_CASE("RejectToJson escapes invalid UTF-8 in every text field", "[rejects]") {
  const RejectRecord r = Record("in\xff.ndjson", 7, "bad byte \xc0", "{\"a\":\"\xff\xfe ok \xc3\xa9\"}");
  const std::string text = RejectToJson(r);
  CHECK(IsValidUtf8(text));
  const nlohmann::json j = ParseJson(text);
  CHECK(j.at("file") == "in\\xFF.ndjson");
  CHECK(j.at("error") == "bad byte \\xC0");
  CHECK(j.at("raw") == "{\"a\":\"\\xFF\\xFE ok \xc3\xa9\"}");
  CHECK(j.at("line") == 7);

  const nlohmann::json big = ParseJson(RejectToJson(Record("f", UINT64_MAX, "e", "r")));
  CHECK(big.at("line").get<uint64_t>() == UINT64_MAX);
  const nlohmann::json zero = ParseJson(RejectToJson(Record("", 0, "", "")));
  CHECK(zero.at("line") == 0);
  CHECK(zero.at("file") == "");
}

TEST_CASE("RejectFileWriter writes one JSON line per record", "[rejects]") {
  TempDir dir;
  const std::string path = dir.path() + "/rejects.ndjson";
  // Open truncates an existing file.
  dir.Write("rejects.ndjson", "old content\nold content\n");
  std::vector<RejectRecord> records = {
      Record("a.ndjson", 1, "first", "{\"x\":1"),
      Record("a.ndjson", 2, "second", "line with\nnewline and \"quotes\""),
      Record("b.ndjson", 10, "third", "bad \xff byte"),
  };
  {
    auto w = RejectFileWriter::Open(path);
    INFO((w.ok() ? std::string() : w.status().message()));
    REQUIRE(w.ok());
    for (const RejectRecord& r : records) CHECK((*w)->Write(r).ok());
    CHECK((*w)->Flush().ok());
    const std::string flushed = ReadFile(path);
    CHECK(SplitLines(flushed).size() == 3);
    CHECK((*w)->Write(Record("c", 4, "after flush", "r")).ok());
    // Closing (destroying) the writer flushes the rest.
  }
  const std::string content = ReadFile(path);
  REQUIRE_FALSE(content.empty());
  CHECK(content.back() == '\n');
  const std::vector<std::string> lines = SplitLines(content);
  REQUIRE(lines.size() == 4);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(lines[i] == RejectToJson(records[i]));
    const nlohmann::json j = ParseJson(lines[i]);
    CHECK(j.at("line") == records[i].line);
    CHECK(j.at("error") == records[i].error);
  }
  CHECK(ParseJson(lines[1]).at("raw") == records[1].raw);
  CHECK(ParseJson(lines[2]).at("raw") == "bad \\xFF byte");
  CHECK(ParseJson(lines[3]).at("error") == "after flush");
}

TEST_CASE("RejectFileWriter is safe to use from several threads", "[rejects]") {
  TempDir dir;
  const std::string path = dir.path() + "/rejects.ndjson";
  auto opened = RejectFileWriter::Open(path);
  REQUIRE(opened.ok());
  std::unique_ptr<RejectFileWriter> writer = std::move(opened).value();
  nomnom::RejectSink* sink = writer.get();  // used through the interface, as the pipeline does

  constexpr int kThreads = 4;
  constexpr int kPerThread = 1000;
  std::vector<int> failures(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, sink, &failures] {
      for (int i = 0; i < kPerThread; ++i) {
        // Long, varied lines make torn writes likely if the locking were wrong.
        std::string raw = "{\"t\":" + std::to_string(t) + ",\"i\":" + std::to_string(i) + ",\"pad\":\"" +
                          std::string(static_cast<size_t>(50 + (i * 37 + t * 11) % 400), static_cast<char>('a' + t)) +
                          "\"}";
        const RejectRecord r =
            Record("t" + std::to_string(t), static_cast<uint64_t>(i + 1), "thread " + std::to_string(t), raw);
        if (!sink->Write(r).ok()) ++failures[static_cast<size_t>(t)];
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int f : failures) CHECK(f == 0);
  REQUIRE(sink->Flush().ok());

  const std::vector<std::string> lines = SplitLines(ReadFile(path));
  REQUIRE(lines.size() == static_cast<size_t>(kThreads * kPerThread));
  std::set<std::pair<int, int>> seen;
  std::vector<uint64_t> last_line(kThreads, 0);
  bool in_order = true;
  for (const std::string& line : lines) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    REQUIRE_FALSE(j.is_discarded());
    const nlohmann::json raw = nlohmann::json::parse(j.at("raw").get<std::string>(), nullptr, false);
    REQUIRE_FALSE(raw.is_discarded());
    const int t = raw.at("t").get<int>();
    const int i = raw.at("i").get<int>();
    REQUIRE(t >= 0);
    REQUIRE(t < kThreads);
    CHECK(j.at("file") == "t" + std::to_string(t));
    CHECK(j.at("line") == static_cast<uint64_t>(i + 1));
    CHECK(raw.at("pad").get<std::string>().find_first_not_of(static_cast<char>('a' + t)) == std::string::npos);
    seen.emplace(t, i);
    // Each thread's records appear in the order it wrote them.
    const uint64_t n = j.at("line").get<uint64_t>();
    if (n <= last_line[static_cast<size_t>(t)]) in_order = false;
    last_line[static_cast<size_t>(t)] = n;
  }
  CHECK(seen.size() == static_cast<size_t>(kThreads * kPerThread));
  CHECK(in_order);
}

TEST_CASE("RejectFileWriter::Open reports an unwritable path", "[rejects]") {
  TempDir dir;
  const std::string missing_dir = dir.path() + "/no/such/dir/rejects.ndjson";
  auto r = RejectFileWriter::Open(missing_dir);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == nomnom::StatusCode::kIo);
  CHECK_THAT(r.status().message(), Contains(missing_dir));
  CHECK_THAT(r.status().message(), Contains("No such file or directory"));

  // A directory cannot be opened as the rejects file either.
  auto d = RejectFileWriter::Open(dir.path());
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == nomnom::StatusCode::kIo);
  CHECK_THAT(d.status().message(), Contains(dir.path()));
}
