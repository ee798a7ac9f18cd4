// CheckMessage / CheckBatch: the validation half of the ingest endpoints.
#include "daemon/ingest_request.h"

#include <catch2/catch.hpp>
#include <string>

#include "core/schema.h"

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
  MessageCheck ok = CheckMessage(e, R"({"id":"a","n":1})", 1000);
  CHECK(ok.status == 200);
  CHECK(ok.row == R"({"id":"a","n":1})");
  MessageCheck multi = CheckMessage(e, "{\n  \"id\": \"b\",\r\n  \"n\": 2\n}\n", 1000);
  CHECK(multi.status == 200);
  CHECK(multi.row == R"({"id":"b","n":2})");
  CHECK(CheckMessage(e, R"({"id":"toolongvalue"})", 1000).status == 400);
  CHECK(CheckMessage(e, R"({"id":)", 1000).status == 400);
  MessageCheck big = CheckMessage(e, R"({"id":"a","n":1})", 10);
  CHECK(big.status == 413);
  CHECK(big.row.empty());
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
