#include "core/queue/ingest_format.h"

#include <catch2/catch.hpp>
#include <set>

using namespace nomnom;

TEST_CASE("UUIDs are well formed and unique; name UUIDs are stable", "[ingest_format]") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string u = NewUuid();
    REQUIRE(u.size() == 36);
    CHECK(u[14] == '4');  // version 4
    seen.insert(u);
  }
  CHECK(seen.size() == 1000);
  CHECK(NameUuid("key-1") == NameUuid("key-1"));
  CHECK(NameUuid("key-1") != NameUuid("key-2"));
  CHECK(NameUuid("key-1")[14] == '5');  // version 5
}

TEST_CASE("chunk ids and headers round-trip", "[ingest_format]") {
  CHECK(ChunkId("b", 3) == "b:3");
  CHECK(FormatChunkHeader(2, 5) == "2/5");
  auto h = ParseChunkHeader("2/5");
  REQUIRE(h.has_value());
  CHECK(h->first == 2);
  CHECK(h->second == 5);
  CHECK_FALSE(ParseChunkHeader("5/5").has_value());
  CHECK_FALSE(ParseChunkHeader("1/0").has_value());
  CHECK_FALSE(ParseChunkHeader("1-2").has_value());
  CHECK_FALSE(ParseChunkHeader("1/2x").has_value());
  CHECK_FALSE(ParseChunkHeader("").has_value());
}

TEST_CASE("status ids name a batch or a message row", "[ingest_format]") {
  const std::string u = NewUuid();
  auto batch = ParseStatusId(u);
  REQUIRE(batch.has_value());
  CHECK(batch->kind == StatusKey::Kind::kBatch);
  CHECK(batch->batch_id == u);
  CHECK(MessageId(u, 17) == u + ".17");
  auto msg = ParseStatusId(MessageId(u, 17));
  REQUIRE(msg.has_value());
  CHECK(msg->kind == StatusKey::Kind::kMessage);
  CHECK(msg->batch_id == u);
  CHECK(msg->row == 17);
  CHECK_FALSE(ParseStatusId("nope").has_value());
  CHECK_FALSE(ParseStatusId(u + ".").has_value());
  CHECK_FALSE(ParseStatusId(u + ".x").has_value());
  CHECK_FALSE(ParseStatusId(u + ":1").has_value());
  std::string upper = u;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK_FALSE(ParseStatusId(upper).has_value());
}
