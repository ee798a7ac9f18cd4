// NestedEncoder: one root line -> its row and one row per element of each
// derived entity's list, or one reject for the whole line. Pure unit tests:
// tuples are decoded here (text columns only, so the bytes are readable).
#include "core/nested_encoder.h"

#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/ndjson_reader.h"
#include "core/schema.h"

using nomnom::ByteBuffer;
using nomnom::Entity;
using nomnom::NestedEncoder;

namespace {

constexpr std::string_view kRoot = R"(entity:
  name: Order
  fields:
    - {name: order_key, type: String}
    - {name: note, type: String, nullable: true}
    - {name: items, type: "List[Object]"}
  persistence: {database: {unicity_fields: [order_key]}}
)";

constexpr std::string_view kItem = R"(entity:
  name: Item
  source_type: derived
  repeated_for: {entity: Order, field: items, each_known_as: it}
  fields:
    - name: order_key
      type: String
      computed_from: {transform: copy_field, sources: [{source: Order, field: order_key}]}
    - name: n
      type: Integer
      computed_from: {transform: json_get_int, sources: [it], args: {field: line}}
    - name: sku
      type: String
      nullable: true
      computed_from: {transform: json_get_optional_string, sources: [it], args: {field: sku}}
  persistence: {database: {unicity_fields: [order_key, n]}}
)";

Entity MustParse(std::string_view yaml) {
  auto e = nomnom::ParseEntity(yaml, "test.yaml");
  INFO((e.ok() ? std::string() : e.status().message()));
  REQUIRE(e.ok());
  return std::move(e).value();
}

// A binary COPY tuple's fields as text ("NULL" for null); integers as their
// 4-byte big-endian value.
std::vector<std::string> Fields(std::string_view t) {
  std::vector<std::string> out;
  size_t at = 2;
  while (at + 4 <= t.size()) {
    const auto* u = reinterpret_cast<const unsigned char*>(t.data() + at);
    const int32_t len =
        static_cast<int32_t>((uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3]);
    at += 4;
    if (len < 0) {
      out.push_back("NULL");
      continue;
    }
    std::string v(t.substr(at, static_cast<size_t>(len)));
    if (len == 4 && (v[0] == 0)) {
      const auto* b = reinterpret_cast<const unsigned char*>(v.data());
      v = std::to_string((uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3]);
    }
    out.push_back(v);
    at += static_cast<size_t>(len);
  }
  return out;
}

struct Result {
  bool ok = false;
  std::string error;
  std::vector<std::string> root;
  std::vector<std::vector<std::string>> items;
};

struct Fixture {
  Entity root = MustParse(kRoot);
  Entity item = MustParse(kItem);
  NestedEncoder enc{root, {&item}, {}};
  ByteBuffer root_out, child_out;
  std::vector<uint32_t> offsets;

  Result Encode(std::string_view json) {
    std::string padded(json);
    padded.resize(json.size() + nomnom::kChunkPadding, ' ');
    NestedEncoder::Output out;
    out.root = &root_out;
    out.children = {&child_out};
    out.child_offsets = {&offsets};
    const size_t root_before = root_out.size(), child_before = child_out.size(), offsets_before = offsets.size();
    Result r;
    r.ok = enc.Encode(std::string_view(padded.data(), json.size()), padded.size(), out, nullptr, &r.error);
    if (!r.ok) {
      // Nothing of the line stays.
      CHECK(root_out.size() == root_before);
      CHECK(child_out.size() == child_before);
      CHECK(offsets.size() == offsets_before);
      return r;
    }
    r.root = Fields(std::string_view(root_out.data() + root_before, root_out.size() - root_before));
    for (size_t i = offsets_before; i < offsets.size(); ++i) {
      const size_t end = i + 1 < offsets.size() ? offsets[i + 1] : child_out.size();
      r.items.push_back(Fields(std::string_view(child_out.data() + offsets[i], end - offsets[i])));
    }
    CHECK(child_out.size() >= child_before);
    return r;
  }
};

}  // namespace

TEST_CASE("a root line gives its row and one row per element", "[nested_encoder]") {
  Fixture f;
  Result r =
      f.Encode(R"({"order_key":"k1","items":[{"line":1,"sku":"a"},{"sku":null,"line":2}, {"line":3,"extra":[1]}]})");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.root == std::vector<std::string>{"k1", "NULL"});
  REQUIRE(r.items.size() == 3);
  CHECK(r.items[0] == std::vector<std::string>{"k1", "1", "a"});
  CHECK(r.items[1] == std::vector<std::string>{"k1", "2", "NULL"});
  CHECK(r.items[2] == std::vector<std::string>{"k1", "3", "NULL"});
  // A second line appends after the first.
  Result r2 = f.Encode(R"({"items":[{"line":7}],"order_key":"k\"2"})");
  REQUIRE(r2.ok);
  REQUIRE(r2.items.size() == 1);
  CHECK(r2.items[0] == std::vector<std::string>{"k\"2", "7", "NULL"});
  CHECK(f.offsets.size() == 4);
}

TEST_CASE("a bad element rejects the whole line and names the element", "[nested_encoder]") {
  Fixture f;
  REQUIRE(f.Encode(R"({"order_key":"ok","items":[{"line":1}]})").ok);
  struct Case {
    const char* json;
    const char* error;
  };
  const Case cases[] = {
      {R"({"order_key":"a","items":[{"line":1},{"sku":"x"}]})", "items[1].line: missing required field"},
      {R"({"order_key":"a","items":[{"line":1},{"line":null}]})", "items[1].line: null in a NOT NULL field"},
      {R"({"order_key":"a","items":[{"line":"1"}]})", "items[0].line: expected an integer, got string"},
      {R"({"order_key":"a","items":[{"line":1.5}]})", "items[0].line: "},
      {R"({"order_key":"a","items":[{"line":1,"sku":7}]})", "items[0].sku: expected a string, got number"},
      {R"({"order_key":"a","items":{"line":1}})", "field 'items': expected an array, got object"},
      {R"({"order_key":"a","items":[]})", "field 'items': empty array"},
      {R"({"order_key":"a","items":null})", "missing required field 'items'"},
      {R"({"order_key":"a"})", "missing required field 'items'"},
      {R"({"order_key":"a","items":[{"line":1},[2]]})", "items[1]: expected an object, got array"},
      {R"({"order_key":"a","items":[{"line":1},{"line":2},{"line":1}]})",
       "items[2]: duplicate key (order_key, n) of items[0]"},
      {R"({"items":[{"line":1}]})", "missing required field 'order_key'"},
  };
  for (const Case& c : cases) {
    INFO(c.json);
    Result r = f.Encode(c.json);
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.error, Catch::Matchers::StartsWith(c.error));
  }
  // The encoder goes on after rejects.
  Result r = f.Encode(R"({"order_key":"z","items":[{"line":9}]})");
  REQUIRE(r.ok);
  CHECK(r.items.at(0) == std::vector<std::string>{"z", "9", "NULL"});
}

TEST_CASE("nested loads support one level of derived entities", "[nested_encoder]") {
  Entity root = MustParse(kRoot);
  Entity item = MustParse(kItem);
  CHECK(NestedEncoder::Check(root, {&item}).ok());
  Entity deeper = item;
  deeper.repeated_for.entity = "Item";
  CHECK_FALSE(NestedEncoder::Check(root, {&item, &deeper}).ok());
}
