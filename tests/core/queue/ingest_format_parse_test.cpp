#include <catch2/catch.hpp>
#include <map>
#include <string>

#include "core/queue/ingest_format.h"

using namespace nomnom;

namespace {

// A header lookup over a map (what a FetchedMessage's headers give).
HeaderLookup Headers(std::map<std::string, std::string> h) {
  return [h = std::move(h)](std::string_view name) -> std::optional<std::string> {
    auto it = h.find(std::string(name));
    if (it == h.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_CASE("ParseChunkMessage reads an NDJSON chunk's headers", "[ingest_format]") {
  const ChunkMessage m = ParseChunkMessage("nomnom.ingest.orders", Headers({{"Nats-Msg-Id", "b:1"},
                                                                            {"Nomnom-Entity", "orders"},
                                                                            {"Nomnom-Batch", "b"},
                                                                            {"Nomnom-Chunk", "1/3"},
                                                                            {"Nomnom-Rows", "7"}}));
  CHECK(m.malformed.empty());
  CHECK(m.id == "b:1");
  CHECK(m.entity == "orders");
  CHECK(m.batch == "b");
  CHECK(m.chunk_index == 1);
  CHECK(m.chunk_count == 3);
  CHECK(m.format.empty());
  CHECK(m.rows == 7);
}

TEST_CASE("ParseChunkMessage: entity from the subject, defaults for missing headers", "[ingest_format]") {
  const ChunkMessage m =
      ParseChunkMessage("nomnom.ingest.users", Headers({{"Nats-Msg-Id", "x"}, {"Nomnom-Chunk", "3/3"}}));
  CHECK(m.malformed.empty());
  CHECK(m.entity == "users");
  CHECK(m.batch.empty());
  CHECK(m.chunk_index == 0);  // "3/3" is malformed: the defaults
  CHECK(m.chunk_count == 1);
  CHECK(m.rows == 0);  // NDJSON does not need Nomnom-Rows
}

TEST_CASE("ParseChunkMessage: header bytes become valid UTF-8", "[ingest_format]") {
  const ChunkMessage m = ParseChunkMessage(
      "s.e", Headers({{"Nats-Msg-Id", "a\xff"}, {"Nomnom-Entity", "e\xfe"}, {"Nomnom-Batch", "\xc3"}}));
  CHECK(m.id == "a\\xFF");
  CHECK(m.entity == "e\\xFE");
  CHECK(m.batch == "\\xC3");
}

TEST_CASE("ParseChunkMessage: pgcopy1 chunks", "[ingest_format]") {
  std::map<std::string, std::string> h{{"Nats-Msg-Id", "b:0"},
                                       {"Nomnom-Entity", "orders"},
                                       {"Nomnom-Format", "pgcopy1"},
                                       {"Nomnom-Schema", "fp"},
                                       {"Nomnom-Rows", "12"}};
  ChunkMessage m = ParseChunkMessage("s.orders", Headers(h));
  CHECK(m.malformed.empty());
  CHECK(m.format == "pgcopy1");
  CHECK(m.schema == "fp");
  CHECK(m.rows == 12);

  for (const char* bad : {"", "x", "12x", "-1"}) {
    h["Nomnom-Rows"] = bad;
    m = ParseChunkMessage("s.orders", Headers(h));
    CHECK(m.malformed == "pgcopy1 chunk without a valid Nomnom-Rows header ('" + std::string(bad) + "')");
    CHECK(m.id == "b:0");  // still known, for the dead letter
  }
  h.erase("Nomnom-Rows");
  CHECK(ParseChunkMessage("s.orders", Headers(h)).malformed == "pgcopy1 chunk without a valid Nomnom-Rows header ('')");
}

TEST_CASE("ParseChunkMessage: why a message is malformed", "[ingest_format]") {
  CHECK(ParseChunkMessage("s.e", Headers({{"Nomnom-Entity", "e"}})).malformed == "message has no Nats-Msg-Id header");
  const ChunkMessage m =
      ParseChunkMessage("s.e", Headers({{"Nats-Msg-Id", "b:0"}, {"Nomnom-Entity", "e"}, {"Nomnom-Format", "csv9"}}));
  CHECK(m.malformed == "unknown chunk format 'csv9' (Nomnom-Format; this worker reads NDJSON and pgcopy1)");
  CHECK(m.entity == "e");
  CHECK(m.format == "csv9");
}
