// ChunkWriter: the one chunk split of rows into messages.
#include "core/queue/chunk_writer.h"

#include <catch2/catch.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/queue/ingest_format.h"

using namespace nomnom;

TEST_CASE("chunk writer: splits by rows and by bytes, keeps order and line numbers", "[chunk_writer]") {
  ChunkWriter w(ChunkLimits{3, 20});
  CHECK(w.Add("aaaa", 1));        // 5 bytes
  CHECK(w.Add("bbbb", 2));        // 10
  CHECK(w.Add("cccc", 3));        // 15: full by rows
  CHECK(w.Add("dddddddd", 5));    // new chunk: 9
  CHECK(w.Add("eeeeeeeeee", 6));  // 9 + 11 = 20: fits exactly
  CHECK(w.Add("f", 7));           // 20 + 2 > 20: a new chunk
  auto full = w.TakeFull();
  REQUIRE(full.size() == 2);
  CHECK(full[0].body == "aaaa\nbbbb\ncccc\n");
  CHECK(full[0].rows == 3);
  CHECK(full[0].first_line == 1);
  CHECK(full[0].last_line == 3);
  CHECK(full[1].body == "dddddddd\neeeeeeeeee\n");
  CHECK(full[1].first_line == 5);
  auto rest = w.TakeAll();
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].body == "f\n");
  CHECK(w.TakeAll().empty());
}

TEST_CASE("chunk writer: a row that cannot fit any chunk is refused and leaves the rest alone", "[chunk_writer]") {
  ChunkWriter w(ChunkLimits{10, 8});
  CHECK(w.Add("1234567", 1));         // 8 bytes with its newline: fits
  CHECK_FALSE(w.Add("12345678", 2));  // 9: never fits
  CHECK(w.Add("x", 3));
  auto all = w.TakeAll();
  REQUIRE(all.size() == 2);
  CHECK(all[0].body == "1234567\n");
  CHECK(all[1].body == "x\n");
}

TEST_CASE("chunk writer, pgcopy1: tuples end to end, no newline, the same limits", "[chunk_writer]") {
  ChunkWriter w(ChunkLimits{3, 8}, PublishFormat::kPgCopy1);
  CHECK(w.Add("1234", 1));
  CHECK(w.Add("5678", 2));  // 8 bytes: fits exactly (an NDJSON line of 4 would not: 10)
  CHECK(w.Add("9", 3));     // over the bytes: a new chunk
  CHECK(w.Add("ab", 4));
  CHECK(w.Add("cd", 5));               // 3 rows: full by rows
  CHECK(w.Add("e", 6));                // a new chunk
  CHECK(w.Add("12345678", 7));         // 8 bytes alone: fits a chunk of its own
  CHECK_FALSE(w.Add("123456789", 8));  // never fits, nothing added
  auto all = w.TakeAll();
  REQUIRE(all.size() == 4);
  CHECK(all[0].body == "12345678");
  CHECK(all[0].rows == 2);
  CHECK(all[1].body == "9abcd");
  CHECK(all[1].rows == 3);
  CHECK(all[1].first_line == 3);
  CHECK(all[1].last_line == 5);
  CHECK(all[2].body == "e");
  CHECK(all[3].body == "12345678");
  OutgoingMessage m = MakeChunkMessage("s", "E", "b", 0, 1, 2, all[0].body,
                                       ChunkEncoding{PublishFormat::kPgCopy1, "0123456789abcdef", {}});
  REQUIRE(m.headers.size() == 6);
  CHECK(m.headers[4] == std::pair<std::string, std::string>("Nomnom-Format", "pgcopy1"));
  CHECK(m.headers[5] == std::pair<std::string, std::string>("Nomnom-Schema", "0123456789abcdef"));
}

TEST_CASE("chunk body limit: under max_payload with room for headers, never above the configuration",
          "[chunk_writer]") {
  CHECK(ChunkBodyLimit(1 << 20, "Order", 512 << 10) == 512 << 10);
  const size_t capped = ChunkBodyLimit(1 << 20, "Order", size_t{64} << 20);
  CHECK(capped < size_t{1} << 20);
  CHECK(capped > (size_t{1} << 20) - 2048);
  CHECK(ChunkBodyLimit(0, "Order", 1234) == 1234);  // unknown max_payload
  CHECK(RowTooLargeError(10, 5).find("max_payload") != std::string::npos);
}

TEST_CASE("chunk message: id, headers and body", "[chunk_writer]") {
  OutgoingMessage m = MakeChunkMessage("p.Order", "Order", "b-1", 2, 5, 3, "x\ny\nz\n");
  CHECK(m.subject == "p.Order");
  CHECK(m.msg_id == "b-1:2");
  CHECK(m.body == "x\ny\nz\n");
  auto header = [&](std::string_view name) {
    for (const auto& [k, v] : m.headers) {
      if (k == name) return v;
    }
    return std::string("<missing>");
  };
  CHECK(header(kHeaderEntity) == "Order");
  CHECK(header(kHeaderBatch) == "b-1");
  CHECK(header(kHeaderChunk) == "2/5");
  CHECK(header(kHeaderRows) == "3");
}

TEST_CASE("dead-letter message: ids, headers safe for NATS", "[chunk_writer][dead_letter]") {
  OutgoingMessage row = MakeDeadLetterMessage("dlq.Order", "b:0", "b", "Order", 3, "bad\r\nvalue \xff", "{\"x\":1}");
  CHECK(row.msg_id == "b:0:3");
  CHECK(row.body == "{\"x\":1}");
  bool saw_error = false;
  for (const auto& [k, v] : row.headers) {
    CHECK(v.find_first_of("\r\n") == std::string::npos);
    if (k == kHeaderError) {
      saw_error = true;
      CHECK(v == "bad  value \\xFF");
    }
    if (k == kHeaderLine) CHECK(v == "3");
  }
  CHECK(saw_error);
  OutgoingMessage whole = MakeDeadLetterMessage("dlq.Order", "b:1", "", "", std::nullopt, "why", "body");
  CHECK(whole.msg_id == "b:1:dead");
  for (const auto& [k, v] : whole.headers) CHECK((k != kHeaderLine && k != kHeaderBatch && k != kHeaderEntity));
  // A long error is cut on a character boundary.
  std::string long_error(998, 'e');
  long_error += "\xc3\xa9\xc3\xa9";
  CHECK(HeaderValue(long_error) == std::string(998, 'e') + "\xc3\xa9");
}
