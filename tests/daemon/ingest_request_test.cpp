// CheckMessage / CheckBatch: the validation half of the ingest endpoints.
#include "daemon/ingest_request.h"

#include <catch2/catch.hpp>
#include <string>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/pgcopy_chunk.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"

using namespace nomnom;

namespace {
Entity Item() {
  auto e = ParseEntity(
      "entity:\n  name: Item\n  fields:\n    - {name: id, type: String, args: [8]}\n"
      "    - {name: n, type: Integer, nullable: true}\n  persistence: {database: {conformant_table: items}}\n",
      "test");
  REQUIRE(e.ok());
  return *e;
}
}  // namespace

TEST_CASE("CheckMessage: a good row, a multi-line document minified, the refusals", "[ingest_request]") {
  const Entity e = Item();
  const std::string body = "{\"id\":\"a\",\"n\":1}  ";
  MessageCheck ok = CheckMessage(e, body, 1000);
  CHECK(ok.status == 200);
  CHECK(ok.row() == R"({"id":"a","n":1})");
  CHECK(ok.row().data() == body.data());  // the body's own bytes, trimmed: no copy
  MessageCheck multi = CheckMessage(e, "{\n  \"id\": \"b\",\r\n  \"n\": 2\n}\n", 1000);
  CHECK(multi.status == 200);
  CHECK(multi.row() == R"({"id":"b","n":2})");
  CHECK(CheckMessage(e, R"({"id":"toolongvalue"})", 1000).status == 400);
  CHECK(CheckMessage(e, R"({"id":)", 1000).status == 400);
  MessageCheck big = CheckMessage(e, R"({"id":"a","n":1})", 10);
  CHECK(big.status == 413);
  CHECK(big.row().empty());
}

TEST_CASE("CheckBatch: BOM, blank lines, CRLF, line numbers, the chunk limits", "[ingest_request]") {
  const Entity e = Item();
  std::string body =
      "\xEF\xBB\xBF{\"id\":\"a\"}\r\n\n{\"id\":\"toolongvalue\"}\n{\"id\":\"c\",\"n\":3}\n{\"id\":\"d\"}";
  BatchCheck b = CheckBatch(e, body, ChunkLimits{2, 1000}, 10);
  CHECK(b.accepted == 3);
  CHECK(b.rejected == 1);
  REQUIRE(b.errors.size() == 1);
  CHECK(b.errors[0].first == 3);
  REQUIRE(b.chunks.size() == 2);
  CHECK(b.chunks[0].body == "{\"id\":\"a\"}\n{\"id\":\"c\",\"n\":3}\n");
  CHECK(b.chunks[0].first_line == 1);
  CHECK(b.chunks[0].last_line == 4);
  CHECK(b.chunks[1].body == "{\"id\":\"d\"}\n");

  std::string one = "{\"id\":\"a\"}\n{\"id\":\"b\"}\n";
  BatchCheck small = CheckBatch(e, one, ChunkLimits{10, 11}, 0);  // 10 bytes + newline fit, no more
  CHECK(small.accepted == 2);
  CHECK(small.chunks.size() == 2);
  CHECK(small.errors.empty());  // max_errors 0: counted, not listed
}

TEST_CASE("CheckBatch, pgcopy1: the good rows' tuples as the encoder writes them, the same split and line numbers",
          "[ingest_request][pgcopy1]") {
  const Entity e = Item();
  std::string body = "{\"id\":\"a\"}\n{\"id\":\"toolongvalue\"}\n{\"id\":\"c\",\"n\":3}\n{\"id\":\"d\"}\n";
  std::string copy = body;
  BatchCheck b = CheckBatch(e, body, ChunkLimits{2, 1000}, 10, {}, PublishFormat::kPgCopy1);
  CHECK(b.format == PublishFormat::kPgCopy1);
  CHECK(b.accepted == 3);
  CHECK(b.rejected == 1);
  REQUIRE(b.chunks.size() == 2);
  CHECK(b.chunks[0].rows == 2);
  CHECK(b.chunks[0].first_line == 1);
  CHECK(b.chunks[0].last_line == 3);
  // Each good row's tuple, exactly as RowEncoder writes it.
  RowEncoder enc(e, RowEncoderOptions{});
  auto tuple = [&](std::string line) {
    ByteBuffer out;
    line.append(kChunkPadding, ' ');
    std::string error;
    REQUIRE(enc.Encode(std::string_view(line.data(), line.size() - kChunkPadding), line.size(), &out, nullptr, &error));
    return std::string(out.view());
  };
  CHECK(b.chunks[0].body == tuple("{\"id\":\"a\"}") + tuple("{\"id\":\"c\",\"n\":3}"));
  CHECK(b.chunks[1].body == tuple("{\"id\":\"d\"}"));
  std::vector<uint32_t> offsets;
  CHECK(WalkTuples(b.chunks[0].body, e.fields.size(), 2, &offsets).empty());
  // The same body as NDJSON: the same rows, split the same way here.
  BatchCheck n = CheckBatch(e, copy, ChunkLimits{2, 1000}, 10);
  CHECK(n.format == PublishFormat::kNdjson);
  REQUIRE(n.chunks.size() == 2);
  CHECK(n.chunks[0].rows == b.chunks[0].rows);
}

TEST_CASE("CheckMessage, pgcopy1: the row's tuple as the encoder writes it; the tuple must fit the limit",
          "[ingest_request]") {
  const Entity e = Item();
  RowEncoder enc(e, RowEncoderOptions{});
  ByteBuffer expected;
  std::string line = "{\"id\":\"ab\",\"n\":7}";
  std::string padded = line + std::string(kChunkPadding, ' ');
  std::string error;
  REQUIRE(enc.Encode(std::string_view(padded.data(), line.size()), padded.size(), &expected, nullptr, &error));
  const std::string body = "{\n \"id\": \"ab\",\n \"n\": 7\n}";  // minified for the line, same tuple
  MessageCheck m = CheckMessage(e, body, 1000, {}, PublishFormat::kPgCopy1);
  REQUIRE(m.status == 200);
  CHECK(m.row() == line);
  CHECK(m.tuple == expected.view());
  std::vector<uint32_t> offsets;
  CHECK(WalkTuples(m.tuple, e.fields.size(), 1, &offsets).empty());
  // NDJSON: no tuple.
  CHECK(CheckMessage(e, body, 1000).tuple.empty());
  // The limit is the tuple's: a line longer than the limit passes when the
  // tuple fits, and a tuple one byte over it is a 413.
  const size_t tuple_bytes = expected.view().size();
  REQUIRE(tuple_bytes < line.size());
  CHECK(CheckMessage(e, line, tuple_bytes, {}, PublishFormat::kPgCopy1).status == 200);
  MessageCheck over = CheckMessage(e, line, tuple_bytes - 1, {}, PublishFormat::kPgCopy1);
  CHECK(over.status == 413);
  CHECK(over.tuple.empty());
  CHECK(CheckMessage(e, line, tuple_bytes, {}).status == 413);  // as NDJSON the line (and newline) is too long
  CHECK(CheckMessage(e, R"({"id":"toolongvalue"})", 1000, {}, PublishFormat::kPgCopy1).status == 400);
}

TEST_CASE("nested entities: a bad element is refused naming it; good rows keep their elements",
          "[ingest_request][nested]") {
  auto all = LoadEntityDir(NOMNOM_SOURCE_DIR "/data/tpch/entities-nested");
  REQUIRE(all.ok());
  const Entity* order = FindEntity(*all, "Order");
  REQUIRE(order != nullptr);
  const auto derived = DerivedEntities(*all, *order);
  REQUIRE(derived.size() == 1);
  const std::string head =
      R"({"order_key":"1","customer_key":"c","order_status":"O","total_price":1,"order_date":"2024-01-01","line_items":)";
  const std::string good =
      head + R"([{"line_number":1,"part_key":"p","supplier_key":"s","quantity":1,"extended_price":2}]})";
  const std::string bad =
      head + R"([{"line_number":1,"part_key":"p","supplier_key":"s","quantity":"x","extended_price":2}]})";
  MessageCheck ok = CheckMessage(*order, good, 100000, derived);
  CHECK(ok.status == 200);
  CHECK(ok.row() == good);
  MessageCheck refused = CheckMessage(*order, bad, 100000, derived);
  CHECK(refused.status == 400);
  CHECK(refused.error == "line_items[0].quantity: expected a number, got string");
  // Without the derived entities the flat check lets the bad element through.
  CHECK(CheckMessage(*order, bad, 100000).status == 200);
  // Nested rows stay NDJSON: no tuple, whatever the format asked.
  CHECK(CheckMessage(*order, good, 100000, derived, PublishFormat::kPgCopy1).tuple.empty());
  // Rows with derived entities are published as NDJSON whatever the format asked.
  std::string nested_body = good + "\n";
  BatchCheck nb = CheckBatch(*order, nested_body, ChunkLimits{}, 10, derived, PublishFormat::kPgCopy1);
  CHECK(nb.format == PublishFormat::kNdjson);
  REQUIRE(nb.chunks.size() == 1);
  CHECK(nb.chunks[0].body == good + "\n");
  std::string body = good + "\n" + bad + "\n" + head + "[]}\n";
  BatchCheck batch = CheckBatch(*order, body, ChunkLimits{100, 1 << 20}, 10, derived);
  CHECK(batch.accepted == 1);
  CHECK(batch.rejected == 2);
  REQUIRE(batch.errors.size() == 2);
  CHECK(batch.errors[0].first == 2);
  CHECK(batch.errors[1].second.find("empty array") != std::string::npos);
}
