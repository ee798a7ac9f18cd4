// IsJsonValue: the check of spans simdjson On-Demand skips.
#include "core/format/json_check.h"

#include <catch2/catch.hpp>
#include <string>

#include "core/base/byte_buffer.h"
#include "core/format/ndjson_reader.h"
#include "core/format/row_encoder.h"
#include "core/format/schema.h"

using nomnom::IsJsonValue;

TEST_CASE("json check: valid values", "[json_check]") {
  for (const char* ok : {"1", "-0", "0.5", "1e10", "-1.5E-3", "\"\"", "\"a\\u00e9\\n\"", "true", "false", "null", "[]",
                         "{}", " [1, {\"a\": [null, \"x\"]}] ", "{\"k\":{\"k\":{}}}"}) {
    INFO(ok);
    CHECK(IsJsonValue(ok));
  }
}

TEST_CASE("json check: invalid values", "[json_check]") {
  for (const char* bad : {"", "[1,,2]", "{\"a\":[1]]", "[1,]", "{\"a\":1,}", "{a:1}", "01", "1.", ".5", "1e", "+1",
                          "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "[1] [2]", "{\"a\" 1}", "\"tab\there\""}) {
    INFO(bad);
    CHECK_FALSE(IsJsonValue(bad));
  }
  CHECK_FALSE(IsJsonValue(std::string(2000, '[') + std::string(2000, ']')));  // too deep
  CHECK(IsJsonValue(std::string(100, '[') + std::string(100, ']')));
}

TEST_CASE("json check: why a value is refused, and what jsonb cannot store", "[json_check]") {
  using nomnom::CheckJsonValue;
  using nomnom::JsonCheck;
  using nomnom::JsonRules;
  CHECK(CheckJsonValue("[1,,2]", JsonRules::kJson) == JsonCheck::kMalformed);
  const std::string deep = std::string(2000, '[') + std::string(2000, ']');
  CHECK(CheckJsonValue(deep, JsonRules::kJson) == JsonCheck::kTooDeep);
  CHECK(CheckJsonValue(deep, JsonRules::kJsonb) == JsonCheck::kTooDeep);
  CHECK(nomnom::JsonCheckMessage(JsonCheck::kTooDeep) == "JSON nested deeper than 1024 levels");
  const std::string at_limit = std::string(1024, '[') + std::string(1024, ']');
  CHECK(CheckJsonValue(at_limit, JsonRules::kJsonb) == JsonCheck::kOk);
  CHECK(CheckJsonValue("[" + at_limit + "]", JsonRules::kJson) == JsonCheck::kTooDeep);
  // JSON allows these; jsonb does not.
  for (const char* s : {R"("a\u0000b")", R"({"k":"\u0000"})"}) {
    INFO(s);
    CHECK(CheckJsonValue(s, JsonRules::kJson) == JsonCheck::kOk);
    CHECK(CheckJsonValue(s, JsonRules::kJsonb) == JsonCheck::kNulEscape);
  }
  for (const char* s : {R"("\ud83d")", R"("\ud83dx")", R"("\udc00")", R"("\ud83d\u0041")", R"(["\uDBFF"])"}) {
    INFO(s);
    CHECK(CheckJsonValue(s, JsonRules::kJson) == JsonCheck::kOk);
    CHECK(CheckJsonValue(s, JsonRules::kJsonb) == JsonCheck::kLoneSurrogate);
  }
  // A whole pair, and escapes that are no surrogates, are fine for jsonb.
  for (const char* s : {R"("\ud83d\ude00")", R"("\u00e9\u0001")", R"({"a":["\uD834\uDD1E"]})"}) {
    INFO(s);
    CHECK(CheckJsonValue(s, JsonRules::kJsonb) == JsonCheck::kOk);
  }
  CHECK(CheckJsonValue(R"("\ud83d\uzzzz")", JsonRules::kJsonb) == JsonCheck::kMalformed);
}

TEST_CASE("encoder: malformed JSON in an unknown field's value or a Json field is rejected",
          "[json_check][row_encoder]") {
  auto e = nomnom::ParseEntity(
      "entity:\n  name: T\n  fields:\n    - {name: name, type: String, nullable: true}\n"
      "    - {name: meta, type: Json, nullable: true}\n  persistence: {database: {conformant_table: t}}\n",
      "t.yaml");
  REQUIRE(e.ok());
  nomnom::RowEncoder enc(*e, {});
  auto encode = [&](std::string line, std::string* error) {
    const size_t size = line.size();
    line.append(nomnom::kChunkPadding, ' ');
    nomnom::ByteBuffer out;
    return enc.Encode(std::string_view(line.data(), size), line.size(), &out, nullptr, error);
  };
  std::string error;
  CHECK_FALSE(encode(R"({"name":"a","extra":[1,,2]})", &error));
  CHECK_THAT(error, Catch::Matchers::Contains("malformed JSON") && Catch::Matchers::Contains("extra"));
  CHECK_FALSE(encode(R"({"meta":{"a":[1]]}})", &error));
  CHECK_THAT(error, Catch::Matchers::Contains("meta"));
  CHECK(encode(R"({"name":"a","extra":{"x":[1,2,{"y":null}]},"more":"s","n":-1.5e3})", &error));
  CHECK(encode(R"({"meta":{"a":[1,{"b":"c"}]},"name":null})", &error));
}

TEST_CASE("encoder: a Decimal or integer given as a number that is not JSON is rejected", "[json_check][row_encoder]") {
  // Found by fuzz_row_encoder: "amount":0001 was loaded as 1.
  auto e = nomnom::ParseEntity(
      "entity:\n  name: T\n  fields:\n    - {name: amount, type: Decimal, nullable: true}\n"
      "    - {name: n, type: BigInt, nullable: true}\n  persistence: {database: {conformant_table: t}}\n",
      "t.yaml");
  REQUIRE(e.ok());
  nomnom::RowEncoder enc(*e, {});
  auto encode = [&](std::string line) {
    const size_t size = line.size();
    line.append(nomnom::kChunkPadding, ' ');
    nomnom::ByteBuffer out;
    std::string error;
    return enc.Encode(std::string_view(line.data(), size), line.size(), &out, nullptr, &error);
  };
  CHECK_FALSE(encode(R"({"amount":0001})"));
  CHECK_FALSE(encode(R"({"amount":-01.5})"));
  CHECK_FALSE(encode(R"({"n":00})"));
  CHECK(encode(R"({"amount":10.50,"n":1e3})"));
  CHECK(encode(R"({"amount":0,"n":-0})"));
}

TEST_CASE("encoder: a Json field refuses what jsonb cannot store, a JsonText field keeps JSON's rules",
          "[json_check][row_encoder]") {
  auto e = nomnom::ParseEntity(R"(entity:
  name: Doc
  fields:
    - { name: id, type: Integer, nullable: false }
    - { name: body, type: Json, nullable: true }
  persistence:
    database: { conformant_table: docs, unicity_fields: [id] }
)",
                               "docs.yaml");
  REQUIRE(e.ok());
  nomnom::RowEncoder enc(*e, {});
  auto encode = [&](std::string line, std::string* error) {
    const size_t size = line.size();
    line.append(nomnom::kChunkPadding, ' ');
    nomnom::ByteBuffer out;
    return enc.Encode(std::string_view(line.data(), size), line.size(), &out, nullptr, error);
  };
  std::string error;
  CHECK(encode(R"({"id":1,"body":{"a":"\u00e9 \ud83d\ude00"}})", &error));
  CHECK_FALSE(encode(R"({"id":2,"body":{"a":"x\u0000y"}})", &error));
  CHECK(error.find("\\u0000") != std::string::npos);
  CHECK(error.find("body") != std::string::npos);
  CHECK_FALSE(encode(R"({"id":3,"body":["\ud83d"]})", &error));
  CHECK(error.find("surrogate") != std::string::npos);
  CHECK_FALSE(encode(R"({"id":4,"body":{"a":[1,,2]}})", &error));
  CHECK(error.find("malformed JSON in the value") != std::string::npos);
}
