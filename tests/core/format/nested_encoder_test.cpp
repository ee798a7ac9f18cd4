// NestedEncoder: one root line -> its row and one row per element of each
// derived entity's list, or one reject for the whole line. Pure unit tests:
// tuples are decoded here (text columns only, so the bytes are readable).
#include "core/format/nested_encoder.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/format/ndjson_reader.h"
#include "core/format/schema.h"

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

TEST_CASE("a nested load checks that every derived entity's parent is filled before it", "[nested_encoder]") {
  Entity root = MustParse(kRoot);
  Entity item = MustParse(kItem);
  CHECK(NestedEncoder::Check(root, {&item}).ok());
  // Item repeats for Item's own (non-existent) list: not a parent of the set.
  Entity deeper = item;
  deeper.name = "Deeper";
  deeper.repeated_for.entity = "Item";
  deeper.repeated_for.field = "items";
  auto s = NestedEncoder::Check(root, {&item, &deeper});
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Matchers::Contains("Item.items, which is not a List field of Item"));
  // A child listed before its parent.
  deeper.repeated_for.entity = "Other";
  s = NestedEncoder::Check(root, {&deeper, &item});
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Matchers::Contains("repeats for Other, which a nested load of Order does not fill"));
}

namespace {

// Depth 3: Order.items -> Item.adjs -> Adj.notes -> Note.
constexpr std::string_view kItemWithAdjs = R"(entity:
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
    - {name: adjs, type: "List[Object]", nullable: true}
  persistence: {database: {unicity_fields: [order_key, n]}}
)";

constexpr std::string_view kAdj = R"(entity:
  name: Adj
  source_type: derived
  repeated_for: {entity: Item, field: adjs, each_known_as: a}
  fields:
    - name: order_key
      type: String
      computed_from: {transform: copy_field, sources: [{source: Order, field: order_key}]}
    - name: n
      type: Integer
      computed_from: {transform: copy_field, sources: [{source: Item, field: n}]}
    - name: seq
      type: Integer
      computed_from: {transform: json_get_int, sources: [a], args: {field: seq}}
    - name: amount
      type: Float
      computed_from: {transform: json_get_float, sources: [a], args: {field: amount}}
    - {name: notes, type: "List[Object]"}
  persistence: {database: {unicity_fields: [order_key, n, seq]}}
)";

constexpr std::string_view kNote = R"(entity:
  name: Note
  source_type: derived
  repeated_for: {entity: Adj, field: notes, each_known_as: x}
  fields:
    - name: order_key
      type: String
      computed_from: {transform: copy_field, sources: [{source: Adj, field: order_key}]}
    - name: seq
      type: Integer
      computed_from: {transform: copy_field, sources: [{source: Adj, field: seq}]}
    - name: text
      type: String
      computed_from: {transform: json_get_string, sources: [x], args: {field: text}}
)";

// A Float field's 8 bytes (as Fields() returns them) as a double.
double Float8(const std::string& bytes) {
  REQUIRE(bytes.size() == 8);
  uint64_t u = 0;
  for (unsigned char c : bytes) u = (u << 8) | c;
  double d;
  std::memcpy(&d, &u, sizeof d);
  return d;
}

struct DeepResult {
  bool ok = false;
  std::string error;
  std::vector<std::string> root;
  std::vector<std::vector<std::vector<std::string>>> tables;  // per derived entity: its rows
};

// root with derived entities (in the given order), rows kept across lines.
struct DeepFixture {
  explicit DeepFixture(std::vector<std::string_view> yamls, std::string_view root_yaml = kRoot)
      : root(MustParse(root_yaml)) {
    for (std::string_view y : yamls) entities.push_back(MustParse(y));
    std::vector<const Entity*> derived;
    for (const Entity& e : entities) derived.push_back(&e);
    check = NestedEncoder::Check(root, derived);
    enc = std::make_unique<NestedEncoder>(root, derived, nomnom::RowEncoderOptions{});
    tuples.resize(entities.size());
    offsets.resize(entities.size());
  }
  Entity root;
  std::vector<Entity> entities;
  nomnom::Status check;
  std::unique_ptr<NestedEncoder> enc;
  ByteBuffer root_out;
  std::vector<ByteBuffer> tuples;
  std::vector<std::vector<uint32_t>> offsets;

  DeepResult Encode(std::string_view json) {
    std::string padded(json);
    padded.resize(json.size() + nomnom::kChunkPadding, ' ');
    NestedEncoder::Output out;
    out.root = &root_out;
    std::vector<size_t> bytes_before, rows_before;
    for (size_t d = 0; d < entities.size(); ++d) {
      out.children.push_back(&tuples[d]);
      out.child_offsets.push_back(&offsets[d]);
      bytes_before.push_back(tuples[d].size());
      rows_before.push_back(offsets[d].size());
    }
    const size_t root_before = root_out.size();
    DeepResult r;
    r.ok = enc->Encode(std::string_view(padded.data(), json.size()), padded.size(), out, nullptr, &r.error);
    if (!r.ok) {
      // Nothing of the line stays, in any table.
      CHECK(root_out.size() == root_before);
      for (size_t d = 0; d < entities.size(); ++d) {
        CHECK(tuples[d].size() == bytes_before[d]);
        CHECK(offsets[d].size() == rows_before[d]);
      }
      return r;
    }
    r.root = Fields(std::string_view(root_out.data() + root_before, root_out.size() - root_before));
    r.tables.resize(entities.size());
    for (size_t d = 0; d < entities.size(); ++d) {
      for (size_t i = rows_before[d]; i < offsets[d].size(); ++i) {
        const size_t end = i + 1 < offsets[d].size() ? offsets[d][i + 1] : tuples[d].size();
        r.tables[d].push_back(Fields(std::string_view(tuples[d].data() + offsets[d][i], end - offsets[d][i])));
      }
    }
    return r;
  }
};

}  // namespace

TEST_CASE("depth 2: each element's elements become rows with values copied from every ancestor", "[nested_encoder]") {
  DeepFixture f({kItemWithAdjs, kAdj});
  INFO(f.check.message());
  REQUIRE(f.check.ok());
  DeepResult r =
      f.Encode(R"({"order_key":"k1","items":[{"line":1,"adjs":[{"seq":1,"amount":2.5,"notes":[]},)"
               R"({"amount":-1,"seq":2,"notes":[]}]},{"line":2},{"line":3,"adjs":[]},{"adjs":null,"line":4}]})");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.root == std::vector<std::string>{"k1", "NULL"});
  REQUIRE(r.tables.size() == 2);
  CHECK(r.tables[0] == std::vector<std::vector<std::string>>{{"k1", "1"}, {"k1", "2"}, {"k1", "3"}, {"k1", "4"}});
  REQUIRE(r.tables[1].size() == 2);
  // Adj: order_key from Order, n from Item (its "line" key), seq, amount.
  CHECK(std::vector<std::string>(r.tables[1][0].begin(), r.tables[1][0].begin() + 3) ==
        std::vector<std::string>{"k1", "1", "1"});
  CHECK(Float8(r.tables[1][0][3]) == 2.5);
  CHECK(std::vector<std::string>(r.tables[1][1].begin(), r.tables[1][1].begin() + 3) ==
        std::vector<std::string>{"k1", "1", "2"});
  CHECK(Float8(r.tables[1][1][3]) == -1.0);
  // A second line: its rows follow the first line's in every table.
  DeepResult r2 = f.Encode(R"({"order_key":"k2","items":[{"line":9,"adjs":[{"seq":1,"amount":0,"notes":[]}]}]})");
  REQUIRE(r2.ok);
  CHECK(r2.tables[0] == std::vector<std::vector<std::string>>{{"k2", "9"}});
  REQUIRE(r2.tables[1].size() == 1);
  CHECK(r2.tables[1][0][0] == "k2");
  CHECK(r2.tables[1][0][1] == "9");
  CHECK(f.offsets[0].size() == 5);
  CHECK(f.offsets[1].size() == 3);
}

TEST_CASE("depth 3: grandchildren's elements, copies through copies", "[nested_encoder]") {
  DeepFixture f({kItemWithAdjs, kAdj, kNote});
  INFO(f.check.message());
  REQUIRE(f.check.ok());
  DeepResult r = f.Encode(R"({"items":[{"line":1,"adjs":[{"seq":7,"amount":1,"notes":[{"text":"a"}]},)"
                          R"({"seq":8,"amount":1,"notes":[{"text":"b"},{"text":"c"}]}]},)"
                          R"({"line":2,"adjs":[{"seq":9,"amount":1,"notes":[{"text":"d"}]}]}],"order_key":"o-1"})");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.tables[0] == std::vector<std::vector<std::string>>{{"o-1", "1"}, {"o-1", "2"}});
  REQUIRE(r.tables[1].size() == 3);
  CHECK(r.tables[1][2][1] == "2");
  CHECK(r.tables[1][2][2] == "9");
  // Note: order_key copied from Adj (itself a copy of Order's), seq from Adj.
  CHECK(r.tables[2] == std::vector<std::vector<std::string>>{
                           {"o-1", "7", "a"}, {"o-1", "8", "b"}, {"o-1", "8", "c"}, {"o-1", "9", "d"}});
}

TEST_CASE("a bad element at any depth rejects the whole line, naming its full path", "[nested_encoder]") {
  DeepFixture f({kItemWithAdjs, kAdj, kNote});
  REQUIRE(f.check.ok());
  REQUIRE(
      f.Encode(R"({"order_key":"good","items":[{"line":1,"adjs":[{"seq":1,"amount":1,"notes":[{"text":"t"}]}]}]})").ok);
  struct Case {
    const char* json;
    const char* error;
  };
  const Case cases[] = {
      {R"({"order_key":"a","items":[{"line":1},{"line":2,"adjs":[{"seq":1,"amount":"x","notes":[{"text":"t"}]}]}]})",
       "items[1].adjs[0].amount: expected a number, got string"},
      {R"({"order_key":"a","items":[{"line":1,"adjs":[{"seq":1,"amount":1,"notes":[{"text":"t"}]},)"
       R"({"seq":2,"amount":1,"notes":[]}]}]})",
       "items[0].adjs[1].notes: empty array (each Adj needs at least one Note)"},
      {R"({"order_key":"a","items":[{"line":1,"adjs":[{"seq":1,"amount":1}]}]})",
       "items[0].adjs[0].notes: missing required field"},
      {R"({"order_key":"a","items":[{"line":1,"adjs":{"seq":1}}]})", "items[0].adjs: expected an array, got object"},
      {R"({"order_key":"a","items":[{"line":1,"adjs":[{"seq":1,"amount":1,"notes":[{"text":"t"},{"txt":"u"}]}]}]})",
       "items[0].adjs[0].notes[1].text: missing required field"},
      {R"({"order_key":"a","items":[{"line":1,"adjs":[{"seq":1,"amount":1,"notes":[{"text":"t"}]},)"
       R"({"seq":1,"amount":2,"notes":[{"text":"t"}]}]}]})",
       "items[0].adjs[1]: duplicate key (order_key, n, seq) of items[0].adjs[0]"},
      {R"({"order_key":"a","items":[{"line":1,"adjs":[3]}]})", "items[0].adjs[0]: expected an object, got number"},
      {R"({"order_key":"a","items":[{"line":1,"adjs":[{"seq":1,"amount":1,"notes":[{"text":5}]}]}]})",
       "items[0].adjs[0].notes[0].text: expected a string, got number"},
  };
  for (const Case& c : cases) {
    INFO(c.json);
    DeepResult r = f.Encode(c.json);
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.error, Catch::Matchers::StartsWith(c.error));
  }
  // Unicity is per parent: the same seq under two items is fine.
  DeepResult r =
      f.Encode(R"({"order_key":"z","items":[{"line":1,"adjs":[{"seq":1,"amount":1,"notes":[{"text":"p"}]}]},)"
               R"({"line":2,"adjs":[{"seq":1,"amount":1,"notes":[{"text":"q"}]}]}]})");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.tables[2] == std::vector<std::vector<std::string>>{{"z", "1", "p"}, {"z", "1", "q"}});
  // Only the good lines' rows are in the outputs.
  CHECK(f.offsets[0].size() == 3);
  CHECK(f.offsets[1].size() == 3);
  CHECK(f.offsets[2].size() == 3);
}

TEST_CASE("copy_field from an entity that is not an ancestor is refused", "[nested_encoder]") {
  std::string bad(kNote);
  bad.replace(bad.find("{source: Adj, field: seq}"), 25, "{source: Sibling, field: seq}");
  DeepFixture f({kItemWithAdjs, kAdj, bad});
  CHECK_FALSE(f.check.ok());
  CHECK_THAT(f.check.message(), Catch::Matchers::Contains("entity Note, field 'seq'"));
  CHECK_THAT(f.check.message(), Catch::Matchers::Contains("'Sibling'"));
}

TEST_CASE("a derived entity loaded as the root reads its ancestors' values from its own copies", "[nested_encoder]") {
  // Item as the root of Adj: Adj's copy of Order.order_key comes from Item's
  // own order_key (a key of the input line).
  DeepFixture f({kAdj}, kItemWithAdjs);
  INFO(f.check.message());
  REQUIRE(f.check.ok());
  DeepResult r = f.Encode(R"({"order_key":"k","n":3,"adjs":[{"seq":5,"amount":1,"notes":[]}]})");
  INFO(r.error);
  REQUIRE(r.ok);
  CHECK(r.root == std::vector<std::string>{"k", "3"});
  REQUIRE(r.tables[0].size() == 1);
  CHECK(std::vector<std::string>(r.tables[0][0].begin(), r.tables[0][0].begin() + 3) ==
        std::vector<std::string>{"k", "3", "5"});
}
