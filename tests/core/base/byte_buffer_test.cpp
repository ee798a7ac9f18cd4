#include "core/base/byte_buffer.h"

#include <catch2/catch.hpp>
#include <string>

using nomnom::ByteBuffer;

TEST_CASE("ByteBuffer writes big-endian integers", "[byte_buffer]") {
  ByteBuffer b;
  b.PutI16(-1);
  b.PutI32(0x01020304);
  b.PutI64(-2);
  REQUIRE(b.size() == 14);
  const auto* p = reinterpret_cast<const unsigned char*>(b.data());
  CHECK(p[0] == 0xFF);
  CHECK(p[1] == 0xFF);
  CHECK(p[2] == 0x01);
  CHECK(p[5] == 0x04);
  CHECK(p[6] == 0xFF);
  CHECK(p[13] == 0xFE);
}

TEST_CASE("ByteBuffer grows, moves and patches", "[byte_buffer]") {
  ByteBuffer b(4);
  std::string big(10000, 'x');
  b.Append(big);
  b.PutI32(0);
  b.PatchI32(10000, 7);
  REQUIRE(b.size() == 10004);
  CHECK(b.view().substr(0, 10000) == big);
  CHECK(static_cast<unsigned char>(b.data()[10003]) == 7);
  ByteBuffer moved = std::move(b);
  CHECK(moved.size() == 10004);
  CHECK(b.size() == 0);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  moved.Truncate(3);
  CHECK(moved.view() == "xxx");
}
