// core/utf8: validation, escaping, and cuts that never split a character.
#include "core/base/utf8.h"

#include <catch2/catch.hpp>
#include <string>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"

using nomnom::EscapeInvalidUtf8;
using nomnom::Excerpt;
using nomnom::IsValidUtf8;
using nomnom::TruncateUtf8;

TEST_CASE("utf8: validity of characters of each width and of invalid forms", "[utf8]") {
  CHECK(IsValidUtf8("plain ascii"));
  CHECK(IsValidUtf8("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));  // é € 😀
  CHECK_FALSE(IsValidUtf8("\xc3"));                              // truncated
  CHECK_FALSE(IsValidUtf8("\xc0\xaf"));                          // overlong
  CHECK_FALSE(IsValidUtf8("\xed\xa0\x80"));                      // surrogate
  CHECK_FALSE(IsValidUtf8("\xf4\x90\x80\x80"));                  // above U+10FFFF
  CHECK_FALSE(IsValidUtf8("\xff"));
  CHECK(EscapeInvalidUtf8("a\xff"
                          "b\xc3") == "a\\xFFb\\xC3");
  CHECK(EscapeInvalidUtf8("\xc3\xa9") == "\xc3\xa9");
}

TEST_CASE("utf8: a cut at every byte offset of every character width stays valid", "[utf8]") {
  for (const std::string ch : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
    const std::string s = "ab" + ch + ch + "cd";
    for (size_t max = 0; max <= s.size() + 1; ++max) {
      INFO("char width " << ch.size() << ", max " << max);
      const std::string_view cut = TruncateUtf8(s, max);
      CHECK(cut.size() <= max);
      CHECK(IsValidUtf8(cut));
      CHECK(s.compare(0, cut.size(), cut) == 0);  // a prefix
      // The longest such prefix: one more character would not fit.
      if (cut.size() < s.size()) {
        const size_t next = nomnom::ValidUtf8Length(s, cut.size());
        CHECK(cut.size() + next > max);
      }
      const std::string e = Excerpt(s, max);
      CHECK(IsValidUtf8(e));
      CHECK((cut.size() < s.size()) == (e.size() >= 3 && e.compare(e.size() - 3, 3, "...") == 0));
    }
  }
}

TEST_CASE("utf8: invalid bytes in an excerpt are escaped, not cut into", "[utf8]") {
  const std::string s = std::string(38, 'x') + "\xff\xfe\xfd";
  CHECK(Excerpt(s) == std::string(38, 'x') + "\\xFF\\xFE...");
  CHECK(Excerpt("short") == "short");
}

TEST_CASE("utf8: encoder errors about values cut inside a character are valid UTF-8", "[utf8][row_encoder]") {
  // Date, DateTime and number errors quote a 40-byte excerpt of the value.
  auto entity = nomnom::ParseEntity(R"(
entity:
  name: T
  fields:
    - { name: d, type: Date, nullable: true }
    - { name: ts, type: DateTime, nullable: true }
    - { name: s, type: String, args: [3], nullable: true }
  persistence: { database: { conformant_table: t } }
)",
                                    "t.yaml");
  REQUIRE(entity.ok());
  nomnom::RowEncoder enc(*entity, {});
  for (const std::string field : {"d", "ts", "s"}) {
    for (const std::string ch : {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"}) {
      for (size_t prefix = 40 - ch.size(); prefix <= 40; ++prefix) {
        std::string value(prefix, '1');
        for (int i = 0; i < 10; ++i) value += ch;
        std::string line = "{\"" + field + "\":\"" + value + "\"}";
        const size_t size = line.size();
        line.append(nomnom::kChunkPadding, ' ');
        nomnom::ByteBuffer out;
        std::string error;
        INFO(field << " prefix " << prefix << " width " << ch.size());
        REQUIRE_FALSE(enc.Encode(std::string_view(line.data(), size), line.size(), &out, nullptr, &error));
        CHECK_FALSE(error.empty());
        CHECK(IsValidUtf8(error));
      }
    }
  }
}
